"""Which HF token to use, and where it came from — never the token itself in any answer.

Order: a token pasted in the UI for this session, then huggingface_hub's own lookup
(the HF_TOKEN variable, then the file `hf auth login` writes), then a `.env` file in
the project root (a line `HF_TOKEN=...`). Every token found is registered with
backend.secrets so the envelope and the logs redact it wherever it shows up.
"""
import os
from pathlib import Path

from huggingface_hub import get_token

from ..secrets import mask, remember_secret

DOTENV_PATH = Path(__file__).resolve().parents[2] / ".env"  # module attribute: tests point it elsewhere
_ENV_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def _clean(value) -> str | None:
    value = (value or "").strip().strip("'\"").strip()
    return value or None


def _dotenv_token(path: Path) -> str | None:
    from ..safe_read import FileRefused, read_text

    try:  # bounded: a .env that is a FIFO or a huge file must not hang or fill memory at start-up
        lines = read_text(path, "config").splitlines()
    except (OSError, FileRefused):
        return None
    for line in lines:
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):].strip()
        name, sep, value = line.partition("=")
        if sep and name.strip() in _ENV_NAMES:
            return _clean(value.split(" #", 1)[0])
    return None


def resolve_token(state) -> tuple[str | None, str | None]:
    """(token, source) with source one of "session", "env", "file", "dotenv"; (None, None) when there is none."""
    session = _clean(getattr(state, "session_token", None))
    if session:
        remember_secret(session)
        return session, "session"
    try:
        found = _clean(get_token())
    except Exception:  # noqa: BLE001 - e.g. a broken OIDC setup must not break the app; fall through
        found = None
    if found:
        from_env = next((_clean(os.environ.get(n)) for n in _ENV_NAMES if _clean(os.environ.get(n))), None)
        remember_secret(found)
        return found, "env" if found == from_env else "file"
    dotenv = _dotenv_token(DOTENV_PATH)
    if dotenv:
        remember_secret(dotenv)
        return dotenv, "dotenv"
    return None, None


def token_status(state) -> dict:
    token, source = resolve_token(state)
    return {"present": token is not None, "source": source, "masked": mask(token)}
