"""Public Api methods for hub (see backend/api/__init__.py for the rules)."""


class HubMethods:
    pass
