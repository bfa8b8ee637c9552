"""Budget rules: from one layer's scores [KV, n] to the positions each KV head keeps.

- uniform: every head of every layer keeps k = C (or int(n·(1 − ratio)), kvpress's
  ScorerPress rounding, but at least 1: a cache of nothing is not a cache) — its top-k.
- pyramid: PyramidKV's k for this layer (methods/pyramidkv.py), top-k per head.
- adaptive: Ada-KV's per-head counts inside the layer (methods/adakv.py); the layer's
  total is KV·k, the heads differ.
Ties go to the earlier position (a stable sort), so runs are deterministic.
"""
from dataclasses import dataclass

import numpy as np

from .methods import adakv, pyramidkv


@dataclass(frozen=True)
class Budget:
    n: int          # context tokens
    kept: int       # uniform tokens kept per (layer, head)
    ratio: float    # fraction removed (given, or 1 − C/n), for PyramidKV's formula
    floored: bool = False  # the ratio's int(n·(1 − r)) was 0, so 1 is kept (the note says so)

    @classmethod
    def of(cls, n: int, cache_size: int | None, ratio: float | None) -> "Budget":
        if cache_size is not None:
            kept = min(int(cache_size), n)
            return cls(n, kept, 1.0 - kept / n)
        kept = int(n * (1 - ratio))
        return cls(n, max(1, kept), float(ratio), kept < 1)  # int(n·(1 − r)) = 0 would keep nothing


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """[KV, n] → [KV, k] sorted positions of each row's k highest scores."""
    return np.sort(np.argsort(-scores, axis=-1, kind="stable")[:, :k], axis=-1)


def padded(rows: list[np.ndarray]) -> np.ndarray:
    """Per-head position lists → [KV, max count] int64, −1 padding the shorter heads."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), -1, dtype=np.int64)
    for h, r in enumerate(rows):
        out[h, : len(r)] = r
    return out


def kept_positions(scores, rule: str, budget: Budget, layer: int, layers: int) -> np.ndarray:
    """scores: torch [KV, n]. Returns int64 [KV, k_layer], sorted, −1 padded."""
    n = budget.n
    if rule == "all" or budget.kept >= n:
        return np.broadcast_to(np.arange(n), (scores.shape[0], n)).copy()
    s = scores.detach().float().cpu().numpy()
    if rule == "uniform":
        return top_k(s, budget.kept)
    if rule == "pyramid":
        return top_k(s, min(n, pyramidkv.layer_budget(n, budget.ratio, layer, layers)))
    if rule == "adaptive":
        return padded(adakv.select(scores, budget.kept))
    raise ValueError(f"unknown budget rule {rule!r}")
