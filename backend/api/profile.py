"""Public Api methods for profile (see backend/api/__init__.py for the rules)."""


class ProfileMethods:
    pass
