"""Public Api methods for stream (see backend/api/__init__.py for the rules)."""


class StreamMethods:
    pass
