"""Every evicting policy's decision maker, driven together over the batched caches.

Row b of the batch is policy b's cache. A policy that decides per (layer, KV head) sees
its own row of each unit; one that keeps the same positions in every head (or runs with
granularity "shared") is given one unit, the mean row, and its mask is broadcast to every
unit. Evaluate (run.py) and Retrieval's streaming protocol (backend/retrieval) share it.
"""
import numpy as np

from .deciders import policy_entry


class PolicyDeciders:
    def __init__(self, policies: list[str], units: int, n: int, cache_size: int, sinks: int, window: int, tau: int,
                 granularity: str = "per_head"):
        self.policies = list(policies)
        self.makers = {}
        for p in self.policies:
            entry = policy_entry(p)
            per_head = entry.per_head and granularity == "per_head"
            self.makers[p] = (entry.make(units if per_head else 1, n, cache_size, sinks, window, tau), per_head)

    def step(self, t: int, pos: np.ndarray, rows: np.ndarray) -> None:
        """Query t's attention: pos int64 [B, units, k] (the entries it saw, t last), rows float [B, units, k]."""
        for b, p in enumerate(self.policies):
            maker, per_head = self.makers[p]
            if per_head:
                maker.step(t, pos[b], rows[b])
            else:
                maker.step(t, pos[b][:1], rows[b].mean(axis=0, keepdims=True))

    def cached(self, pos: np.ndarray) -> np.ndarray:
        """Which of the entries pos [B, units, k] stay: bool [B, units, k]."""
        masks = []
        for b, p in enumerate(self.policies):
            maker, per_head = self.makers[p]
            masks.append(maker.cached(pos[b]) if per_head else np.broadcast_to(maker.cached(pos[b][:1]), pos[b].shape))
        return np.stack(masks)

    def decide(self, t: int, pos: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """One token: step, then the keep masks [B, units, k] for the same entries."""
        self.step(t, pos, rows)
        return self.cached(pos)
