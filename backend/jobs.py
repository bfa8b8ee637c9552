"""Long work off the UI thread: start a job, poll its progress, cancel it.

A job is a function `work(progress)` run on a daemon thread. It reports with
`progress(fraction, stage, **extra)`; that call raises Cancelled once the user
cancelled, so a job stops at its next report and leaves the app as it was.
The UI polls `job_status(id)`; both fronts (window and --serve) work the same.
"""
import itertools
import threading
import time

from .envelope import error_from_exception
from .errors import Cancelled, UserError

_KEEP_FINISHED = 32  # finished jobs whose results stay readable


class Job:
    def __init__(self, job_id: str, kind: str):
        self.id = job_id
        self.kind = kind
        self.state = "running"  # running | done | error | cancelled
        self.fraction = 0.0
        self.stage = "Starting"
        self.extra: dict = {}
        self.result = None
        self.error = None
        self.started = time.time()
        self.finished = None
        self.cancel_event = threading.Event()
        self.thread: threading.Thread | None = None

    def report(self, fraction=None, stage=None, **extra):
        if self.cancel_event.is_set():
            raise Cancelled()
        if fraction is not None:
            self.fraction = max(0.0, min(1.0, float(fraction)))
        if stage is not None:
            self.stage = stage
        self.extra.update(extra)

    def status(self) -> dict:
        out = {"job_id": self.id, "kind": self.kind, "state": self.state, "fraction": self.fraction,
               "stage": self.stage, "elapsed": round((self.finished or time.time()) - self.started, 3), **self.extra}
        if self.state == "done":
            out["result"] = self.result
        elif self.error is not None:
            out["error"] = self.error["error"]
        return out


class JobRunner:
    def __init__(self):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def start(self, kind: str, work, exclusive: bool = False) -> Job:
        """Run work(job.report) on a thread. exclusive: refuse while another job of this kind runs."""
        with self._lock:
            if exclusive and any(j.kind == kind and j.state == "running" for j in self._jobs.values()):
                raise UserError("busy", f"A {kind} job is already running; wait for it or cancel it first.")
            job = Job(f"{kind}-{next(self._ids)}", kind)
            self._jobs[job.id] = job
            self._forget_old()

        def run():
            try:
                job.result = work(job.report)
                job.state, job.fraction, job.stage = "done", 1.0, "Done"
            except Cancelled:
                job.state, job.stage = "cancelled", "Cancelled"
                job.error = error_from_exception(Cancelled())
            except BaseException as exc:  # noqa: BLE001 - reported through status()
                job.state, job.stage = "error", "Failed"
                job.error = error_from_exception(exc)
            finally:
                job.finished = time.time()

        job.thread = threading.Thread(target=run, name=f"job {job.id}", daemon=True)
        job.thread.start()
        return job

    def get(self, job_id) -> Job:
        job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise UserError("unknown_job", f"No job with id {str(job_id)[:40]!r}; it may have finished long ago.", "job_id")
        return job

    def cancel(self, job_id) -> Job:
        job = self.get(job_id)
        job.cancel_event.set()
        return job

    def running(self) -> list[Job]:
        return [j for j in self._jobs.values() if j.state == "running"]

    def cancel_all(self, wait: float = 5.0) -> None:
        for job in self.running():
            job.cancel_event.set()
        deadline = time.time() + wait
        for job in list(self._jobs.values()):
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.time()))

    def _forget_old(self):
        finished = [j for j in self._jobs.values() if j.state != "running"]
        for job in sorted(finished, key=lambda j: j.finished or 0)[:-_KEEP_FINISHED]:
            del self._jobs[job.id]
