"""The simulation kernel driven one step at a time, on attention recorded as the model runs.

Evaluation cannot hand the kernel a whole trace up front: the attention at step t
depends on what was evicted before it. So the trace buffer starts empty, row t is
written (in the kernel's fixed point) once the model has produced it, and the
kernel advances by exactly one step. The decisions are the kernel's own.
"""
import numpy as np

from kernels.eviction import ONE, Simulation, model_trace, to_fixed


class OnlinePolicy:
    def __init__(self, policy: str, n: int, cache_size: int, sinks: int, window: int, access_threshold: float):
        self.trace = model_trace(np.zeros((n, n)))
        self.sim = Simulation(policy, self.trace, cache_size, sinks, window, max(1, to_fixed(access_threshold)))

    def step(self, t: int, row: np.ndarray) -> np.ndarray:
        """Record query t's attention (over keys 0..t; zeros where evicted), advance; returns the kept positions."""
        self.trace.weights[t, : t + 1] = np.rint(np.clip(row, 0.0, 1.0) * ONE).astype(np.int64)
        self.sim.run(t, t + 1)
        return self.sim.kept()

    def recorded(self) -> np.ndarray:
        """The trace as floats: feeding it to the simulation replays exactly these decisions."""
        return self.trace.weights.astype(np.float64) / ONE
