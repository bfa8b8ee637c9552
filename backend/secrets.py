"""Keeps the HF token out of everything that leaves the backend."""
import logging
import re

_known: set[str] = set()
# Hugging Face user access tokens look like hf_ + 30-40 letters.
_HF_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{8,}")


def remember_secret(value: str | None) -> None:
    if value and len(value) >= 8:
        _known.add(value)


def mask(token: str | None) -> str | None:
    """'hf_…abcd': enough to recognise a token, never enough to use it."""
    if not token:
        return None
    return f"{token[:3]}…{token[-4:]}" if len(token) > 8 else "…"


def redact(text: str) -> str:
    for value in sorted(_known, key=len, reverse=True):
        text = text.replace(value, mask(value))
    return _HF_TOKEN_RE.sub(lambda m: mask(m.group(0)), text)


def install_log_redaction() -> None:
    """Redact every log record, whoever logs it: httpx logs request URLs at INFO, and a token typed
    where a repo id goes ends up in one. Only records a logger lets through are built, so this costs
    nothing for the DEBUG chatter nobody listens to."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "sinkvis_redacts", False):
        return

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is the logger's problem, not ours
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    factory.sinkvis_redacts = True
    logging.setLogRecordFactory(factory)
