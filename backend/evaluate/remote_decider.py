"""A user rule's decision maker in a worker process (issue #25): Evaluate's per-step round trip.

Evaluate steps every policy's decision maker once per token, next to the model. A user's
rule must run where Cancel can kill it (backend/workers.py), so its KernelDecider lives
in the rule's worker (backend/usercode/pool.py) and this stand-in, with the same
interface (deciders.py), sends each step there: the positions and the fixed-point
weights go through shared memory, the pipe carries only (t, k), and the answer (which
entries stay) comes back through shared memory too, so cached() right after step() is
free. A step that takes longer than the rule's step limit is stopped (backend/usercode/watch.py).
bench/evaluate_rule.py measures the cost against the built-in twin in-process.
"""
import weakref
from multiprocessing import shared_memory

import numpy as np

from ..usercode.pool import give_back, loaded, take
from ..usercode.watch import step_limit, watching
from ..jobs import current_job_cancelled
from .deciders import KernelDecider, to_fixed_row


def _views(buf, units: int, width: int):
    cells = units * width
    pos = np.ndarray((units, width), np.int64, buf, 0)
    fixed = np.ndarray((units, width), np.int64, buf, 8 * cells)
    keep = np.ndarray((units, width), np.bool_, buf, 16 * cells)
    return pos, fixed, keep


def _size(units: int, width: int) -> int:
    return 17 * units * width


class RemoteDecider:
    user = True  # a user's rule: Evaluate lists its failure and keeps the other policies' results

    def __init__(self, policy, units: int, n: int, cache_size: int, sinks: int, window: int, tau: int,
                 limit: float | None = None):
        # at most C kept + what arrived since the last cut: one token (Evaluate) or a chunk (Retrieval's k)
        self.units, self.width = units, n  # never more than the n positions of the text
        self.worker = take(policy, "evaluate", _stop_if_cancelled)
        self.shm = shared_memory.SharedMemory(create=True, size=_size(units, self.width))
        self.pos, self.fixed, self.keep = _views(self.shm.buf, units, self.width)
        self._closer = weakref.finalize(self, _close, self.worker, self.shm, policy)
        self.worker.call(_open, policy.shipment(), self.shm.name, units, n, cache_size, sinks, window, tau,
                         step_limit(limit), should_stop=current_job_cancelled)
        self.n, self.last, self.k = n, None, 0
        self.recorded = None

    def record(self) -> None:
        """Keep every row shown to the rule (tests compare them), as KernelDecider.record does."""
        self.recorded = np.zeros((self.units, self.n, self.n), np.int64)

    def step(self, t: int, positions: np.ndarray, weights: np.ndarray) -> None:
        k = positions.shape[1]
        fixed = to_fixed_row(weights)
        self.pos[:, :k], self.fixed[:, :k] = positions, fixed
        if self.recorded is not None:
            for u in range(self.units):
                self.recorded[u, t, positions[u]] = fixed[u]
        self.worker.call(_step, t, k, should_stop=current_job_cancelled)
        self.last, self.k = positions, k

    def cached(self, positions: np.ndarray) -> np.ndarray:
        if positions is not self.last:  # not the entries of the last step: ask again
            k = positions.shape[1]
            self.pos[:, :k] = positions
            self.worker.call(_cached, k, should_stop=current_job_cancelled)
            self.last, self.k = positions, k
        return self.keep[:, :self.k].copy()

    def close(self) -> None:
        """Back to the idle workers (Evaluate calls it when the run ends; else the garbage collector)."""
        del self.pos, self.fixed, self.keep  # the shared memory cannot close while views of it exist
        self._closer()


def _stop_if_cancelled():
    from ..errors import Cancelled

    if current_job_cancelled():
        raise Cancelled()


def _close(worker, shm, policy) -> None:
    try:
        if worker.alive and not worker.busy:
            worker.call(_release)
    except Exception:  # noqa: BLE001 - a worker that fails here is killed by give_back
        worker.busy = True
    give_back(worker, policy)
    shm.close()
    shm.unlink()


# ---------- in the worker ----------

_here: dict = {}


def _open(shipment, shm_name, units, n, cache_size, sinks, window, tau, limit) -> None:
    policy = loaded(shipment)
    shm = shared_memory.SharedMemory(name=shm_name)
    decider = KernelDecider(policy.simulation, units, n, cache_size, sinks, window, tau)
    for sim in decider.sims:
        sim.run(0, 0)  # compiles the loop if this worker has not yet (prepare_rule): not a step
    _here.clear()
    _here.update(policy=policy, shm=shm, views=_views(shm.buf, units, n), decider=decider, n=n,
                 limit=limit, step=None)


def _step(t: int, k: int) -> None:
    pos, fixed, keep = _here["views"]
    policy, decider = _here["policy"], _here["decider"]
    positions = pos[:, :k].copy()  # the decider keeps them (the entries to clear next step)
    _here["step"] = t
    with watching(policy, lambda: _here["step"], decider.sims[0].settings, _here["limit"]):
        decider.step_fixed(t, positions, fixed[:, :k])
    _here["step"] = None
    for sim in decider.sims:
        policy.check(sim)  # a NaN score: rule_nan, naming the step and the key
    keep[:, :k] = decider.cached(positions)


def _cached(k: int) -> None:
    pos, _, keep = _here["views"]
    keep[:, :k] = _here["decider"].cached(pos[:, :k].copy())


def _release() -> None:
    views = _here.pop("views", None)
    del views
    shm = _here.pop("shm", None)
    _here.clear()
    if shm is not None:
        shm.close()
