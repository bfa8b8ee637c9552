"""Public Api methods for attention (see backend/api/__init__.py for the rules)."""


class AttentionMethods:
    pass
