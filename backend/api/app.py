"""App-wide Api methods: what this machine offers, jobs (status, cancel), exports."""
import base64
import binascii
import os
import re
from pathlib import Path

from .. import __version__
from ..envelope import public
from ..errors import UserError
from ..validate import choice, params_dict, text

# Exports and sweep results; $SINKVIS_EXPORT_DIR moves them (the tests keep theirs in a temporary folder).
EXPORT_DIR = Path(os.environ.get("SINKVIS_EXPORT_DIR") or Path.home() / "SinkVis-exports").expanduser()
_SAFE_NAME = re.compile(r"^[\w.\- ]{1,120}\.(png|json|csv|txt)$")


def token_summary(state) -> dict:
    try:
        from ..hub.token import token_status
    except ImportError:
        return {"present": bool(state.session_token), "source": "session" if state.session_token else None, "masked": None}
    return token_status(state)


class AppMethods:
    @public
    def ping(self, params=None):
        params_dict(params)
        return {"pong": True}

    @public
    def app_info(self, params=None):
        params_dict(params)
        from ..models.devices import available_devices
        from ..models.load import DEMO_MODEL_DIR

        return {"version": __version__, "devices": available_devices(), "precisions": ["auto", "fp16", "bf16", "fp32"],
                "token": token_summary(self._state),
                "demo_model": {"path": str(DEMO_MODEL_DIR), "present": (DEMO_MODEL_DIR / "config.json").is_file()},
                "model": self.model_info()}

    @public
    def job_status(self, params=None):
        return self._state.jobs.get(params_dict(params).get("job_id")).status()

    @public
    def cancel_job(self, params=None):
        job = self._state.jobs.cancel(params_dict(params).get("job_id"))
        return {"job_id": job.id, "state": job.state}

    @public
    def running_jobs(self, params=None):
        params_dict(params)
        return {"jobs": [j.status() for j in self._state.jobs.running()]}

    @public
    def save_export(self, params=None):
        """Write an export (PNG as base64, JSON/CSV as text) under ~/SinkVis-exports; returns the path."""
        params = params_dict(params)
        name = text(params, "filename", max_len=130)
        if not _SAFE_NAME.match(name) or name.startswith("."):
            raise UserError("bad_input", "filename must be a plain name ending in .png, .json, .csv or .txt (no folders).", "filename")
        encoding = choice(params, "encoding", ("text", "base64"), "text")
        content = text(params, "content", max_len=64_000_000, allow_empty=True)
        if encoding == "base64":
            try:
                data = base64.b64decode(content.split(",", 1)[-1], validate=True)
            except (binascii.Error, ValueError):
                raise UserError("bad_input", "content is not valid base64.", "content") from None
        else:
            data = content.encode("utf-8")
        EXPORT_DIR.mkdir(parents=True, exist_ok=True)
        path = EXPORT_DIR / name
        path.write_bytes(data)
        return {"path": str(path), "bytes": len(data)}
