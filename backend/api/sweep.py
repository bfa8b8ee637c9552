"""Public Api methods for sweeps (the Sweeps tab).

sweep_start runs a sweep as a job, locally (worker processes) or on an existing Ray
cluster; its results file lives under ~/SinkVis-exports/sweeps (a plain file name
from the caller, so a --serve client cannot write elsewhere). sweep_progress adds the
rows written since the caller's last look, so the chart grows as cells finish.
"""
import re
from pathlib import Path

from ..envelope import public
from ..errors import UserError
from ..validate import integer, params_dict
from . import app as _app

_NAME = re.compile(r"^[\w.\- ]{1,120}\.jsonl$")
MAX_ROWS = 20_000


def sweep_dir() -> Path:
    return _app.EXPORT_DIR / "sweeps"


def _out_path(value) -> Path:
    """A plain file name under the sweeps folder; required, so a call with no settings starts nothing."""
    if not isinstance(value, str) or not _NAME.match(value) or value.startswith("."):
        raise UserError("bad_input", "out must be a plain file name ending in .jsonl, like sweep-1.jsonl (it is kept "
                        f"under {sweep_dir()}; an existing file is resumed).", "out")
    return sweep_dir() / value


def _ray_address(value):
    if value in (None, ""):
        return None
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise UserError("no_ray", "Ray is not part of this build (the single-file app leaves it out): leave the Ray "
                        "field blank to run the sweep on this machine, or run SinkVis from source.", "ray")
    if not isinstance(value, str) or len(value) > 200 or not re.match(r"^(auto|[\w.\-]+:\d{1,5}|ray://[\w.\-]+:\d{1,5})$", value.strip()):
        raise UserError("bad_input", "ray must be blank (run here), 'auto' or a cluster address like 10.0.0.5:6379.", "ray")
    return value.strip()


class SweepMethods:
    @public
    def sweep_start(self, params=None):
        """Start a sweep job; progress has cells done / per minute / time left, the result is the run's summary."""
        from ..sweep import make_runner, parse_spec

        p = dict(params_dict(params))
        out = _out_path(p.get("out"))
        loaded = self._state.model
        if not p.get("models") and not p.get("model"):
            p["models"] = [loaded.source if loaded is not None else "demo"]
        if not p.get("texts"):
            from ..defaults import sweep_texts

            p["texts"] = sweep_texts(p.get("models") or [p.get("model")])
        if p.get("max_tokens") in (None, "") and loaded is not None and loaded.source in (p.get("models") or []):
            from ..defaults import evaluate_defaults  # Evaluate's tokens, sized to this device

            p["max_tokens"] = evaluate_defaults(loaded.source, loaded.spec, loaded.device)["max_tokens"]
        from .policies import policy_registry

        spec = parse_spec(p, policy_registry(self._state).snapshot(prefill=True))  # user rule and prefill files
        ray = _ray_address(p.get("ray"))
        workers = integer(p, "workers", None, lo=0, hi=64, allow_none=True)

        def work(report):
            from ..sweep import run_sweep

            runner = make_runner(ray, workers)
            report(0.0, f"Planning the cells; running on {runner.where}")

            def progress(s):
                report(s["fraction"], f"{s['cells_done']} / {s['cells_todo']} cells", sweep=s, out=str(out))

            def stop_if_cancelled():
                report()  # raises Cancelled once the user pressed Cancel: the runner stops its workers
                return False

            return run_sweep(spec, out, runner, progress, should_stop=stop_if_cancelled)

        job = self._state.jobs.start("sweep", work, exclusive=True)
        return {"job_id": job.id, "out": str(out), "file": out.name}

    @public
    def sweep_progress(self, params=None):
        """The job's status plus the rows of its file from index `since` on (the chart's new points)."""
        p = params_dict(params)
        job = self._state.jobs.get(p.get("job_id"))
        since = integer(p, "since", 0, lo=0)
        status = job.status()
        out = status.get("out") or (status.get("result") or {}).get("out")
        rows = _rows(Path(out)) if out else []
        status["rows"] = rows[since:since + MAX_ROWS]
        status["rows_total"] = len(rows)
        return status

    @public
    def sweep_cancel(self, params=None):
        job = self._state.jobs.get(params_dict(params).get("job_id"))
        if job.kind != "sweep":
            raise UserError("bad_input", "job_id is not a sweep.", "job_id")
        job.cancel_event.set()
        return {"job_id": job.id, "state": job.state}

    @public
    def sweep_results(self, params=None):
        """Every row of a results file under the sweeps folder (one per cell), e.g. to reopen a finished sweep."""
        p = params_dict(params)
        if p.get("file") in (None, ""):
            folder = sweep_dir()
            files = sorted(folder.glob("*.jsonl"), key=lambda f: f.stat().st_mtime, reverse=True) if folder.is_dir() else []
            return {"files": [f.name for f in files[:200]], "folder": str(folder)}
        path = _out_path(p["file"])
        if not path.is_file():
            raise UserError("not_found", f"No sweep file {p['file']!r} in {sweep_dir()}.", "file")
        rows = _rows(path)
        return {"file": path.name, "out": str(path), "rows": rows[:MAX_ROWS], "rows_total": len(rows)}


def _rows(path: Path) -> list[dict]:
    from ..sweep import read_rows

    return read_rows(path)
