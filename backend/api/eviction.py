"""Public Api methods for eviction (see backend/api/__init__.py for the rules)."""


class EvictionMethods:
    pass
