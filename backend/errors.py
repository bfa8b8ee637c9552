"""The one exception type that carries a message meant for the user."""


class UserError(Exception):
    """Bad input or an expected failure. `code` is stable, `message` says what to change.

    `field` names the input at fault (the UI highlights it, the CLI prints it).
    """

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class Cancelled(Exception):
    """Raised inside a job when the user pressed Cancel. `partial`: what the job had computed by then
    (a result marked partial: true), which the cancelled job keeps as its result (jobs.py)."""

    def __init__(self, partial: dict | None = None):
        super().__init__("cancelled")
        self.partial = partial
