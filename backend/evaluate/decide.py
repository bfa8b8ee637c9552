"""Every evicting policy's decision maker, driven together over the batched caches.

Row b of the batch is policy b's cache. A policy that decides per (layer, KV head) sees
its own row of each unit; one that keeps the same positions in every head (or runs with
granularity "shared") is given one unit, the mean row, and its mask is broadcast to every
unit. Evaluate (run.py) and Retrieval's streaming protocol (backend/retrieval) share it.

A user policy (#17) that fails mid-run (rule_nan, rule_timeout, #25) is recorded in
`failed` and replaced by KeepNewest, so its batch row goes on and the other policies'
results stand; with only that one policy the error is the run's.
"""
import numpy as np

from ..errors import UserError
from .deciders import policy_entry


class KeepNewest:
    """Stands in for a user policy that failed mid-run, so the batch stays rectangular: the C
    newest entries stay (its numbers are not reported)."""

    def __init__(self, cache_size: int):
        self.C = cache_size

    def step(self, t, positions, weights) -> None:
        pass

    def cached(self, positions: np.ndarray) -> np.ndarray:
        if positions.shape[1] <= self.C:
            return np.ones(positions.shape, bool)
        return positions >= np.sort(positions, axis=1)[:, -self.C:][:, :1]


class PolicyDeciders:
    def __init__(self, policies: list[str], units: int, n: int, cache_size: int, sinks: int, window: int, tau: int,
                 granularity: str = "per_head"):
        self.policies = list(policies)
        self.cache_size = cache_size
        self.makers = {}
        self.failed: dict[str, dict] = {}  # policy → its error (code, message, field)
        for p in self.policies:
            entry = policy_entry(p)
            per_head = entry.per_head and granularity == "per_head"
            self.makers[p] = (entry.make(units if per_head else 1, n, cache_size, sinks, window, tau), per_head)

    def _guarded(self, p: str, call):
        """call(maker, per_head); a user policy's error retires it (see the module docstring)."""
        maker, per_head = self.makers[p]
        try:
            return call(maker, per_head)
        except UserError as exc:
            if not getattr(maker, "user", False) or len(self.policies) == 1:
                raise
            self.failed[p] = {"code": exc.code, "message": exc.message, "field": exc.field}
            self.makers[p] = (KeepNewest(self.cache_size), per_head)
            _close(maker)
            return call(*self.makers[p])

    def step(self, t: int, pos: np.ndarray, rows: np.ndarray) -> None:
        """Query t's attention: pos int64 [B, units, k] (the entries it saw, ascending, t last), rows float [B, units, k]."""
        self.step_block(t, pos, rows[:, :, None, :])

    def step_block(self, t0: int, pos: np.ndarray, rows: np.ndarray) -> None:
        """Queries t0 .. t0 + q − 1 over the same entries: pos int64 [B, units, k] (ascending, ending
        with t0 .. t0 + q − 1: query t0 + i saw the first k − q + 1 + i), rows float32 or float64
        [B, units, q, k]. A decision maker with step_block takes the chunk in one call; any other is
        stepped query by query, on float64 rows as step() always is."""
        q, k = rows.shape[2], rows.shape[3]
        seen = k - q + 1 + np.arange(q)

        def block(maker, per_head, b):
            # the mean row in float64 whatever came in: the same numbers as step()'s
            w = rows[b] if per_head else rows[b].astype(np.float64).mean(axis=0, keepdims=True)
            p = pos[b] if per_head else pos[b][:1]
            if hasattr(maker, "step_block"):
                return maker.step_block(t0, p, w)  # to the kernels' fixed point: float32 and float64 agree
            w = w.astype(np.float64, copy=False)
            for i in range(q):
                maker.step(t0 + i, p[:, : seen[i]], w[:, i, : seen[i]])

        for b, p in enumerate(self.policies):
            self._guarded(p, lambda maker, per_head: block(maker, per_head, b))

    def cached(self, pos: np.ndarray) -> np.ndarray:
        """Which of the entries pos [B, units, k] stay: bool [B, units, k]."""
        return np.stack([self._guarded(p, lambda maker, per_head: maker.cached(pos[b]) if per_head
                                       else np.broadcast_to(maker.cached(pos[b][:1]), pos[b].shape))
                         for b, p in enumerate(self.policies)])

    def decide(self, t: int, pos: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """One token: step, then the keep masks [B, units, k] for the same entries."""
        self.step(t, pos, rows)
        return self.cached(pos)

    def close(self) -> None:
        """Decision makers in worker processes go back to the idle workers (remote_decider.py)."""
        for maker, _ in self.makers.values():
            _close(maker)


def _close(maker) -> None:
    if hasattr(maker, "close"):
        maker.close()
