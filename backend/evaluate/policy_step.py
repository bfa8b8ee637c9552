"""The simulation kernel driven one step at a time, for the re-computation baseline.

Evaluation cannot hand the kernel a whole trace up front: the attention at step t
depends on what was evicted before it. So row t is written (in the kernel's fixed
point) into a one-row buffer once the model has produced it, and the kernel advances
by exactly one step. The decisions are the kernel's own; memory is O(n).
"""
import numpy as np

from kernels.eviction import Simulation, to_fixed

from .deciders import row_trace, to_fixed_row


class OnlinePolicy:
    def __init__(self, policy: str, n: int, cache_size: int, sinks: int, window: int, access_threshold: float,
                 keep_trace: bool = False):
        trace, self.buf = row_trace(n)
        self.sim = Simulation(policy, trace, cache_size, sinks, window, max(1, to_fixed(access_threshold)))
        self.trace = np.zeros((n, n), np.int64) if keep_trace else None

    def step(self, t: int, row: np.ndarray) -> np.ndarray:
        """Record query t's attention (over keys 0..t; zeros where evicted), advance; returns the kept positions."""
        self.buf[: t + 1] = to_fixed_row(row)
        if self.trace is not None:
            self.trace[t, : t + 1] = self.buf[: t + 1]
        self.sim.run(t, t + 1)
        return self.sim.kept()
