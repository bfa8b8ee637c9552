"""Simulations of one policy, one per unit (Evaluate's (layer, KV head) kept sets), advanced by ONE kernel call.

Calling the kernel once per unit cost more in Python and Numba's argument checks than the kernel's own
work (SmolLM2: 90 units × 3 per-head policies = 270 calls per decode step). Here the units' State arrays
are stacked along a leading axis and each Simulation's state is re-pointed at its row of the stack, so a
Simulation still reads (kept(), slot_of) and the kernels still write the same numbers: loop.run_units
runs run_steps for every unit inside compiled code.
"""
import numpy as np

from .loop import run_units

STACKED = ("slots", "slot_of", "free", "heap", "stamp", "queue", "ctr", "flt", "tl", "evicted_at")


class Units:
    def __init__(self, sims: list):
        """sims: Simulations of one built-in policy with the same settings and trace length."""
        self.sims = sims
        self.stack = {}
        for name in STACKED:
            self.stack[name] = np.stack([getattr(s.state, name) for s in sims])
            for u, sim in enumerate(sims):
                setattr(sim.state, name, self.stack[name][u])  # a view: the Simulation sees every step

    def run_rows(self, t0: int, blocks: np.ndarray, cols: np.ndarray) -> None:
        """Simulation.run_rows for every unit at once: blocks int64 [U, q, k], cols int64 [U, k]."""
        s, st, tr = self.sims[0], self.stack, self.sims[0].trace
        t1 = t0 + blocks.shape[1]
        run_units(s.code, t0, t1, tr.n, s.capacity, s.sinks, s.window, s.tau, tr.kind, tr.weights, tr.sp, tr.loc,
                  s.loccum, tr.heavy, tr.fixed, s.plan_end, st["slots"], st["slot_of"], st["free"], st["heap"],
                  st["stamp"], st["queue"], st["ctr"], st["flt"], st["tl"], s.state.stride, st["evicted_at"],
                  s.ridx, s.rval, np.require(blocks, np.int64, "CW"), np.require(cols, np.int64, "CW"))
        for sim in self.sims:
            sim.steps_done = t1

    def cached(self, positions: np.ndarray) -> np.ndarray:
        """bool [U, k]: which of each unit's entries positions [U, k] are cached."""
        return np.take_along_axis(self.stack["slot_of"], positions, axis=1) >= 0
