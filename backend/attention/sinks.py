"""Attention sinks, heavy hitters and a recommended sink count: pure numpy, arrays in, arrays out.

Definitions (../shared/DESIGN.md):
- A *sink* is a key whose mean received attention over the queries after it is at
  least the sink threshold (default 0.10). A key needs MIN_QUERIES queries after it
  before it can be called one: with a single query after it, every key that the
  next token looks at would count.
- A *heavy hitter* is one of the top `fraction` (default 10%) keys by accumulated
  attention, the H2O score: the column sum of the attention matrix, every query
  that saw the key (itself included, as H2O accumulates it).
- The *first-k mass* of a query row is the attention it puts on keys 0..k-1 (the
  StreamingLLM paper's Figure 2 measure).

Every function takes the "after" sums (attention received from later queries) so
the live stream can keep running column sums instead of the whole matrix;
`received_after` builds them from a full matrix for one-shot use and tests.
"""
import math

import numpy as np

MIN_QUERIES = 4
SINK_THRESHOLD = 0.10
HEAVY_FRACTION = 0.10
RECOMMEND_MAX_K = 16     # the recommended sink count looks at the first 16 positions only
RECOMMEND_COVER = 0.90   # ... and keeps the fewest leading tokens holding 90% of their sink mass


def received_after(attn: np.ndarray) -> np.ndarray:
    """attn [..., n, n] (row q over keys ≤ q) → [..., n]: Σ_{q>j} A[q, j] for each key j."""
    strictly_below = np.tril(np.ones(attn.shape[-2:], dtype=bool), k=-1)
    return np.where(strictly_below, attn, 0.0).sum(axis=-2, dtype=np.float64)


def mean_received(after: np.ndarray, last: int) -> np.ndarray:
    """Mean attention each key 0..last received from the queries after it (j+1..last); NaN with none."""
    after = np.asarray(after, dtype=np.float64)[..., : last + 1]
    n_after = last - np.arange(last + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_after > 0, after / np.maximum(n_after, 1), np.nan)


def sink_mask(after: np.ndarray, last: int, threshold: float = SINK_THRESHOLD,
              min_queries: int = MIN_QUERIES) -> np.ndarray:
    """Boolean [..., last+1]: key j is a sink when ≥ min_queries queries followed it and their mean ≥ threshold."""
    n_after = last - np.arange(last + 1)
    mean = np.nan_to_num(mean_received(after, last), nan=0.0)
    return (n_after >= min_queries) & (mean >= threshold)


def sinks_in_matrix(attn: np.ndarray, threshold: float = SINK_THRESHOLD, min_queries: int = MIN_QUERIES) -> list[int]:
    """Sink positions of one full [n, n] attention matrix (the one-shot reference)."""
    n = attn.shape[-1]
    return np.flatnonzero(sink_mask(received_after(attn), n - 1, threshold, min_queries)).tolist()


def heavy_hitters(accumulated: np.ndarray, fraction: float = HEAVY_FRACTION) -> list[int]:
    """Positions of the top ceil(fraction × n) keys by accumulated attention, ascending.

    Ties go to the earlier key (a stable sort), so the answer never flickers.
    """
    accumulated = np.asarray(accumulated, dtype=np.float64)
    k = min(len(accumulated), math.ceil(fraction * len(accumulated) - 1e-9))
    if k <= 0:
        return []
    order = np.argsort(-accumulated, kind="stable")[:k]
    return sorted(order.tolist())


def first_k_mass(rows: np.ndarray, k: int) -> np.ndarray:
    """Attention mass each row puts on keys 0..k-1: rows [..., n] → [...]."""
    return np.asarray(rows)[..., :k].sum(axis=-1)


def recommended_sink_count(mean_recv: np.ndarray, threshold: float = SINK_THRESHOLD,
                           max_k: int = RECOMMEND_MAX_K, cover: float = RECOMMEND_COVER) -> int:
    """How many leading tokens a StreamingLLM-style cache should pin for this model.

    mean_recv: mean received attention per key (mean over all layers and heads),
    NaN where too few queries followed. Among the first `max_k` positions, take
    those that are sinks (≥ threshold); return the smallest k such that keys
    0..k-1 hold at least `cover` of those sinks' mean received attention.
    0 means no sink among the leading tokens (pinning them buys nothing here).
    """
    lead = np.nan_to_num(np.asarray(mean_recv, dtype=np.float64)[:max_k], nan=0.0)
    sink_mass = np.where(lead >= threshold, lead, 0.0)
    total = sink_mass.sum()
    if total <= 0:
        return 0
    covered = np.cumsum(sink_mass)
    return int(np.argmax(covered >= cover * total - 1e-12)) + 1
