"""Which cached entries each policy keeps: a registry from policy name to decision maker.

A decision maker holds `units` independent kept sets, each of at most C entries: one per
(layer, KV head) when the policy decides per head, one for the whole model otherwise.
Evaluate drives it one token at a time:

    maker = make(units=U, n=n, cache_size=C, sinks=S, window=W, tau=τ)   # τ in kernel fixed point
    maker.step(t, positions, weights)
        positions: int64 [U, k], the original positions of the entries query t saw (t itself last);
        weights:   float [U, k], query t's attention on them (a KV head's row is the mean over the
                   query heads of its group, as NVIDIA kvpress aggregates; one kept set for all
                   heads: the mean over every layer and head).
    maker.cached(positions) -> bool [U, k]: which of those entries stay after step t.

Every unit must keep the same number of entries (the cache tensors stay rectangular).

Hook for user-written policies (#17): one call makes a policy available to Evaluate,

    register_policy("my_policy", make, per_head=True)

where `make` has the signature above; per_head=False means the policy keeps the same
positions in every head (it is then given one unit and the mean row). A kernel policy that
the eviction Simulation already knows registers as `KernelDecider.maker("its_kernel_name")`.
"""
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from kernels.eviction import MODEL, ONE, Simulation, Trace
from kernels.eviction.units import Units


@dataclass(frozen=True)
class PolicyEntry:
    make: object     # (units, n, cache_size, sinks, window, tau) -> decision maker
    per_head: bool   # decides per (layer, KV head) unless "one kept set for all heads" is asked


def row_trace(n: int) -> tuple[Trace, np.ndarray]:
    """A model trace whose every row is one buffer of n weights: O(n), not n × n.

    The kernel reads row t as weights[t, 0..t]; with a row stride of 0 that is always the
    same buffer, which the caller fills with query t's attention before running step t.
    """
    buf = np.zeros(n, np.int64)
    weights = as_strided(buf, shape=(n, n), strides=(0, buf.strides[0]), writeable=True)
    empty = np.zeros(0, np.int64)
    return Trace(MODEL, n, weights, np.zeros(6, np.int64), empty, empty), buf


def to_fixed_row(weights: np.ndarray) -> np.ndarray:
    """Attention as the kernels see it (units of 2^-24), the same rounding as model_trace."""
    return np.rint(np.clip(weights, 0.0, 1.0) * ONE).astype(np.int64)


class KernelDecider:
    """One eviction-kernel Simulation per unit, each advanced by exactly one step per token:
    the kept sets are the kernel's own decisions on the attention it is shown."""

    def __init__(self, policy, units: int, n: int, cache_size: int, sinks: int, window: int, tau: int):
        """policy: a kernel's name, or (a user's rule file, #17) make(trace, cache_size, sinks, window, tau)
        returning an object with Simulation's interface."""
        self.sims, self.bufs = [], []
        for _ in range(units):
            trace, buf = row_trace(n)
            self.sims.append(policy(trace, cache_size, sinks, window, tau) if callable(policy)
                             else Simulation(policy, trace, cache_size, sinks, window, tau))
            self.bufs.append(buf)
        self.last = [np.zeros(0, np.int64)] * units
        # a built-in kernel: every unit advanced by one kernel call (a user's rule runs its own loop per unit)
        self.units = None if callable(policy) else Units(self.sims)
        self.recorded = None  # int64 [units, n, n] once record() is called (tests: small n only)

    def record(self) -> None:
        """Keep every row shown to the kernel, so a test can replay them through a fresh Simulation."""
        n = self.sims[0].trace.n
        self.recorded = np.zeros((len(self.sims), n, n), np.int64)

    @classmethod
    def maker(cls, policy: str):
        return lambda units, n, cache_size, sinks, window, tau: cls(policy, units, n, cache_size, sinks, window, tau)

    def step(self, t: int, positions: np.ndarray, weights: np.ndarray) -> None:
        self.step_fixed(t, positions, to_fixed_row(weights))

    def step_fixed(self, t: int, positions: np.ndarray, fixed: np.ndarray) -> None:
        """step() on weights already in the kernels' fixed point (a worker's decider, remote_decider.py)."""
        for u, (sim, buf) in enumerate(zip(self.sims, self.bufs)):
            buf[self.last[u]] = 0  # only the entries written last step are nonzero
            buf[positions[u]] = fixed[u]
            self.last[u] = positions[u]
            if self.recorded is not None:
                self.recorded[u, t, positions[u]] = fixed[u]
            sim.run(t, t + 1)

    def step_block(self, t0: int, positions: np.ndarray, weights: np.ndarray) -> None:
        """Queries t0 .. t0 + q − 1 in one kernel call for every unit (a built-in kernel; a user rule: one call per
        unit), a chunk of queries (backend/retrieval/streaming.py) or one (Evaluate):
        positions int64 [U, k] ascending, ending with the chunk's own t0 .. t0 + q − 1; weights float
        [U, q, k]. Query t0 + i saw the first k − q + 1 + i entries (the kernel reads no further):
        the same steps as q calls of step() on each query's part of the row."""
        fixed = to_fixed_row(weights)
        q = fixed.shape[1]
        if self.recorded is not None:
            seen = positions.shape[1] - q + 1 + np.arange(q)
            for u in range(len(self.sims)):
                self.recorded[u, np.arange(t0, t0 + q)[:, None], positions[u]] = np.where(
                    np.arange(positions.shape[1]) < seen[:, None], fixed[u], 0)
        if self.units is not None:
            self.units.run_rows(t0, fixed, positions)
            return
        for u, sim in enumerate(self.sims):
            sim.run_rows(t0, fixed[u], positions[u])

    def cached(self, positions: np.ndarray) -> np.ndarray:
        if self.units is not None:
            return self.units.cached(positions)
        return np.stack([sim.state.slot_of[positions[u]] >= 0 for u, sim in enumerate(self.sims)])


_REGISTRY: dict[str, PolicyEntry] = {}


def register_policy(name: str, make, per_head: bool = True) -> None:
    """Make a policy available to Evaluate (see the module docstring for `make`)."""
    _REGISTRY[name] = PolicyEntry(make, per_head)


def unregister_policy(name: str) -> None:
    """A user policy whose file was removed or renamed (#17) leaves Evaluate too."""
    _REGISTRY.pop(name, None)


def policy_entry(name: str) -> PolicyEntry:
    return _REGISTRY[name]


def registered_policies() -> list[str]:
    return list(_REGISTRY)


# StreamingLLM and the window keep the same positions in every head (they ignore attention);
# H2O, TOVA and LRU score per head, as their papers do.
for _name, _per_head in (("sliding_window", False), ("streaming_llm", False), ("h2o", True), ("lru", True),
                         ("tova", True)):
    register_policy(_name, KernelDecider.maker(_name), per_head=_per_head)
