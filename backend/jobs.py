"""Long work off the UI thread: start a job, poll its progress, cancel it.

A job is a function `work(progress)` run on a daemon thread. It reports with
`progress(fraction, stage, **extra)`; that call raises Cancelled once the user
cancelled, so a job stops at its next report and leaves the app as it was.
The UI polls `job_status(id)`; both fronts (window and --serve) work the same.

Results that arrive as they are computed (issue 33) ride on the same reports: a job
passes `partial=` (its result so far, marked `partial: true`) and the UI draws it from
the status it polls. A job that raises `Cancelled(partial)` keeps that partial result:
its status is "cancelled" and still carries `result`.

Heavy jobs (simulations, profiles, evaluations, retrieval grids, sweeps, prefill_kept) each hold hundreds of MB:
at most MAX_HEAVY run at once; the next ones wait in line (state "running", stage
"Queued…", extra `queued: true, queue_position`) and start as soon as one ends; a
queued job can be cancelled. More than MAX_WAITING in line is refused with `busy`.
So the app's memory is at most MAX_HEAVY of the per-run peaks in docs/hardening.md.
"""
import collections
import gc
import itertools
import sys
import threading
import time

from .envelope import error_from_exception
from .errors import Cancelled, UserError

_KEEP_FINISHED = 32  # finished jobs whose results stay readable
# prefill_kept is one full prefill with every method's scores (16 at once passed 9.6 GB): heavy too.
HEAVY_KINDS = frozenset({"simulate", "profile", "evaluate", "retrieval", "sweep", "prefill_kept", "quantization_error"})
MAX_HEAVY = 2        # heavy jobs running at once (a 20M-step simulation alone peaks at ~830 MB)
MAX_WAITING = 8      # heavy jobs waiting in line; more are refused


_current = threading.local()  # the job a job thread runs (for code that has no report callback)


def current_job_cancelled() -> bool:
    """True on a job's thread once the user cancelled it (a worker's caller polls this, workers.py)."""
    job = getattr(_current, "job", None)
    return job is not None and job.cancel_event.is_set()


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
        if self.state == "done" or (self.state == "cancelled" and self.result is not None):
            out["result"] = self.result  # a cancelled job's: what it had computed, marked partial
        if self.state != "done" and self.error is not None:
            out["error"] = self.error["error"]
        return out


class JobRunner:
    def __init__(self):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._slots = threading.Condition(self._lock)  # heavy-job slots; notified when one frees or a job is cancelled
        self._heavy_running = 0
        self._line: collections.deque[Job] = collections.deque()  # heavy jobs waiting, first come first served

    def start(self, kind: str, work, exclusive: bool = False) -> Job:
        """Run work(job.report) on a thread. exclusive: refuse while another job of this kind runs."""
        with self._lock:
            if exclusive and any(j.kind == kind and j.state == "running" for j in self._jobs.values()):
                raise UserError("busy", f"A {kind} job is already running; wait for it or cancel it first.")
            heavy = kind in HEAVY_KINDS
            if heavy and len(self._line) >= MAX_WAITING:
                raise UserError("busy", f"{MAX_HEAVY} heavy jobs are running and {len(self._line)} are waiting; "
                                "wait for one to finish or cancel one first.")
            job = Job(f"{kind}-{next(self._ids)}", kind)
            self._jobs[job.id] = job
            if heavy:
                self._line.append(job)
                self._update_line()
            self._forget_old()

        def run():
            _current.job = job
            holds_slot, result, error = False, None, None
            try:
                if heavy:
                    self._wait_for_slot(job)
                    holds_slot = True
                result = work(job.report)
            except Cancelled as exc:
                error, result = error_from_exception(Cancelled()), exc.partial
            except BaseException as exc:  # noqa: BLE001 - reported through status()
                error = error_from_exception(exc)
            # The exception (and the frames it held: a half-built model) is gone by here.
            if heavy:
                self._leave(job, holds_slot)
            if job.kind == "load" and error is not None:
                _release_memory()  # a cancelled or failed load frees its memory before it says it ended
            job.finished = time.time()
            job.extra.pop("partial", None)  # the last streamed partial: superseded by the result (or the partial kept)
            if error is None:
                job.result = result
                job.state, job.fraction, job.stage = "done", 1.0, "Done"
            else:
                job.error = error
                cancelled = error["error"]["code"] == "cancelled"
                job.result = result if cancelled else None  # Cancel keeps what was computed (marked partial)
                job.state, job.stage = ("cancelled", "Cancelled") if cancelled else ("error", "Failed")

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
        with self._slots:
            self._slots.notify_all()  # a job waiting in line leaves it now
        return job

    def _wait_for_slot(self, job: Job) -> None:
        """Block until this heavy job is first in line and a slot is free; Cancelled if cancelled meanwhile."""
        with self._slots:
            while not (self._line and self._line[0] is job and self._heavy_running < MAX_HEAVY):
                if job.cancel_event.is_set():
                    raise Cancelled()
                self._slots.wait(0.5)
            if job.cancel_event.is_set():
                raise Cancelled()
            self._line.popleft()
            self._heavy_running += 1
            job.extra.pop("queued", None)
            job.extra.pop("queue_position", None)
            job.stage = "Starting"
            self._update_line()

    def _leave(self, job: Job, holds_slot: bool) -> None:
        with self._slots:
            if holds_slot:
                self._heavy_running -= 1
            elif job in self._line:
                self._line.remove(job)
            self._update_line()
            self._slots.notify_all()

    def _update_line(self) -> None:
        """Queued jobs say where they stand (called with the lock held)."""
        for position, waiting in enumerate(self._line, 1):
            waiting.stage = f"Queued: {self._heavy_running} heavy jobs running, at most {MAX_HEAVY} at once"
            waiting.extra.update(queued=True, queue_position=position)

    def running(self) -> list[Job]:
        return [j for j in self._jobs.values() if j.state == "running"]

    def cancel_all(self, wait: float = 5.0) -> None:
        for job in self.running():
            job.cancel_event.set()
        with self._slots:
            self._slots.notify_all()
        deadline = time.time() + wait
        for job in list(self._jobs.values()):
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.time()))

    def _forget_old(self):  # called with the lock held
        finished = [j for j in self._jobs.values() if j.state != "running"]
        for job in sorted(finished, key=lambda j: j.finished or 0)[:-_KEEP_FINISHED]:
            del self._jobs[job.id]


def _release_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")  # only if already imported: jobs never import torch themselves
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
