"""The error a user's file gets: what is wrong, in which file and, where there is one, on which line."""
from ..errors import UserError


class PolicyFileError(UserError):
    """A policy file that cannot be used: `code` names the mistake, `file` and `line` where."""

    def __init__(self, code: str, file: str, line: int | None, message: str, field: str | None = "policy_file"):
        where = f"{file}, line {line}" if line else file
        super().__init__(code, f"{where}: {message}", field)
        self.file, self.line, self.detail = file, line, message

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "code": self.code, "message": self.message}

    def shipped(self) -> dict:
        """What crosses a worker's pipe (an exception with its own __init__ does not pickle back)."""
        return {"policy_file_error": (self.code, self.file, self.line, self.detail, self.field)}


def received(answer):
    """A worker's answer: the PolicyFileError it shipped raised here, else the answer."""
    if isinstance(answer, dict) and "policy_file_error" in answer:
        raise PolicyFileError(*answer["policy_file_error"])
    return answer


def line_in(tb, file: str) -> int | None:
    """The last line of `file` in a traceback (where the user's code was when it failed)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == file:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def first_line(fn) -> int | None:
    """The line of a function's def; None for what has no code of its own (a partial, a builtin, a callable object)."""
    code = getattr(fn, "__code__", None) or getattr(getattr(fn, "__call__", None), "__code__", None)
    return getattr(code, "co_firstlineno", None)
