"""Run a sweep's tasks on this machine: in this process (workers=0), or in worker processes.

Workers are spawned (not forked: the app has threads and torch state a fork would copy
half-way) and each loads the sweep's models once, in its initializer. Results come
back to the driver as tasks finish (imap_unordered); Cancel terminates the workers,
so a long Evaluate cell stops at once instead of at its end, and so does a user's rule
that never returns (issue #25: a sweep with a user rule always runs in a worker).
"""
import multiprocessing
import os
import socket
from functools import partial

from .cells import init_worker, run_task

POLL_SECONDS = 0.25


MAX_DEFAULT_WORKERS = 4  # each worker holds its own copy of every model of the sweep


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


def _init_pool_worker(models, device, precision) -> None:
    from ..workers import mark_contained

    mark_contained()  # user rules run right here: Cancel terminates this process
    init_worker(models, device, precision)


class LocalRunner:
    def __init__(self, workers: int | None = None):
        self.workers = default_workers() if workers is None else max(0, int(workers))
        self.pool = None
        self.node = f"local:{socket.gethostname()}"
        self.where = "this process" if self.workers == 0 else f"{self.workers} local worker processes"

    def run(self, tasks: list[dict], spec, should_stop):
        """Yields the rows of each task as it finishes; stops (and kills the workers) when should_stop()."""
        settings = {"device": spec.device, "precision": spec.precision}
        # A user's rule never runs in this process (issue #25): only a worker can be killed mid-rule.
        workers = self.workers or (1 if any(t.get("user_policies") for t in tasks) else 0)
        if workers == 0:
            init_worker(spec.models, spec.device, spec.precision, threads=None)  # this process keeps its threads
            for task in tasks:
                if should_stop():
                    return
                yield [dict(r, node=self.node) for r in run_task(task, settings)]
            return
        context = multiprocessing.get_context("spawn")
        self.pool = context.Pool(min(workers, len(tasks)) or 1, initializer=_init_pool_worker,
                                 initargs=(spec.models, spec.device, spec.precision))
        finished = False
        try:
            results = self.pool.imap_unordered(partial(run_task, settings=settings), tasks)
            for _ in range(len(tasks)):
                while True:
                    if should_stop():
                        return
                    try:
                        rows = results.next(timeout=POLL_SECONDS)
                        break
                    except multiprocessing.TimeoutError:
                        continue
                yield [dict(r, node=self.node) for r in rows]
            finished = True
        finally:
            self.close(wait=finished)

    def close(self, wait: bool = False):
        """wait: let idle workers exit on their own; else terminate them (a cancelled sweep stops now)."""
        if self.pool is not None:
            self.pool.close() if wait else self.pool.terminate()
            self.pool.join()
            self.pool = None

