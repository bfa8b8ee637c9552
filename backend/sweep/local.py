"""Run a sweep's tasks on this machine: in this process (workers=0), or in worker processes.

The workers are the app's Workers (backend/workers.py: spawned, killable), one thread
here feeding each; every worker loads the sweep's models once, when it starts. Rows come
back to the driver as tasks finish; Cancel kills the workers, so a long Evaluate cell
stops at once instead of at its end, and so does a user's rule that never returns
(issue #25: a sweep with a user rule always runs in workers, `workers: 0` included; a
step stuck past the rule's step limit ends the sweep with rule_timeout).
"""
import logging
import os
import queue
import socket
import threading

from ..errors import Cancelled, UserError
from ..workers import Worker, WorkerDied
from .cells import init_worker, run_task
from .driver import task_failed

log = logging.getLogger("sinkvis")
POLL_SECONDS = 0.05
MAX_DEFAULT_WORKERS = 4  # each worker holds its own copy of every model of the sweep


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


class LocalRunner:
    def __init__(self, workers: int | None = None):
        self.workers = default_workers() if workers is None else max(0, int(workers))
        self.pool: list[Worker] = []
        self.node = f"local:{socket.gethostname()}"
        self.where = "this process" if self.workers == 0 else f"{self.workers} local worker processes"

    def run(self, tasks: list[dict], spec, should_stop):
        """Yields the rows of each task as it finishes; stops (and kills the workers) when should_stop()."""
        settings = {"device": spec.device, "precision": spec.precision}
        # A user's rule never runs in this process (issue #25): only a worker can be killed mid-rule.
        workers = self.workers or (1 if any(t.get("user_policies") for t in tasks) else 0)
        if workers == 0:
            init_worker(spec.models, spec.device, spec.precision, threads=None)  # this process keeps its threads

            def check(*_, **__):  # each progress report of a cell: Cancel stops it there, not at the cell's end
                if should_stop():
                    raise Cancelled()

            for task in tasks:
                if should_stop():
                    return
                try:
                    rows = run_task(task, settings, check)
                except (UserError, Cancelled):
                    raise
                except Exception as exc:  # noqa: BLE001 - as a worker's would be: named, the traceback logged
                    log.info("sweep task failed", exc_info=True)
                    raise task_failed(task, f"{type(exc).__name__}: {exc}") from None
                yield [dict(r, node=self.node) for r in rows]
            return
        todo, done, stop = queue.SimpleQueue(), queue.SimpleQueue(), threading.Event()
        for task in tasks:
            todo.put(task)
        self.pool = [Worker(init_worker, (spec.models, spec.device, spec.precision)) for _ in range(min(workers, len(tasks)))]

        def feed(worker):  # one task at a time to this worker, until none is left or the sweep stops
            try:
                while not stop.is_set():
                    try:
                        task = todo.get_nowait()
                    except queue.Empty:
                        return
                    done.put(("rows", worker.call(run_task, task, settings, should_stop=stop.is_set)))
            except Cancelled:
                pass
            except WorkerDied as exc:  # an exception in the task (not a bad setting): named, not a traceback
                done.put(("error", task_failed(task, str(exc).removeprefix("the worker failed: "))))
            except BaseException as exc:  # noqa: BLE001 - the driver raises it
                done.put(("error", exc))

        feeders = [threading.Thread(target=feed, args=(w,), daemon=True, name="sweep feeder") for w in self.pool]
        for thread in feeders:
            thread.start()
        try:
            for _ in range(len(tasks)):
                while True:
                    if should_stop():
                        return
                    try:
                        kind, value = done.get(timeout=POLL_SECONDS)
                        break
                    except queue.Empty:
                        continue
                if kind == "error":
                    raise value
                yield [dict(r, node=self.node) for r in value]
        finally:
            stop.set()
            self.close()
            for thread in feeders:
                thread.join(5)

    def close(self):
        """End the workers: idle ones exit, busy ones (a cancelled sweep's) are killed now."""
        for worker in self.pool:
            worker.close()
        self.pool = []
