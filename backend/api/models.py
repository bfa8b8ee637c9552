"""Public Api methods for models (see backend/api/__init__.py for the rules)."""


class ModelMethods:
    pass
