"""The ok/error envelope every public Api method returns.

No exception, traceback or secret crosses the bridge: UserError becomes its own
code and message, anything else becomes code "internal" with a redacted one-line
message, and the traceback goes to the log (redacted too).
"""
import functools
import logging
import math

from .errors import Cancelled, UserError
from .secrets import install_log_redaction, redact

log = logging.getLogger("sinkvis")
install_log_redaction()  # every front imports this module: no log line carries a known token


def error(code: str, message: str, field: str | None = None) -> dict:
    err = {"code": code, "message": redact(message)}
    if field:
        err["field"] = field
    return {"ok": False, "error": err}


def error_from_exception(exc: BaseException) -> dict:
    if isinstance(exc, UserError):
        return error(exc.code, exc.message, exc.field)
    if isinstance(exc, Cancelled):
        return error("cancelled", "Cancelled.")
    if isinstance(exc, MemoryError):
        return error("out_of_memory", "Out of memory. Try a smaller input, a lower precision or another device.")
    log.error("internal error: %s", redact(repr(exc)), exc_info=False)
    return error("internal", f"Unexpected error ({type(exc).__name__}): {redact(str(exc))[:300]}")


def json_safe(value):
    """NaN and inf are not JSON: turn them into None so the UI never draws garbage; strings are redacted."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        # Results echo inputs (a saved file's path, a folder, a token label): a secret typed into
        # one of them must not come back either (hardening: "no secret crosses the bridge").
        return redact(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def public(method):
    """Wrap an Api method: result dict → {"ok": True, **result}; exceptions → error."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            result = method(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - the bridge must never see one
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return error_from_exception(exc)
        return {"ok": True, **json_safe(result or {})}

    return wrapper
