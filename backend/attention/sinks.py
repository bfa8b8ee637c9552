"""Attention sinks, heavy hitters and a recommended sink count: pure numpy, arrays in, arrays out.

Definitions (../shared/DESIGN.md):
- A *sink* is a key whose mean received attention over the queries after it is at
  least the sink threshold (default 0.10). A key needs enough queries after it before
  it can be called one: at least max(4, 10% of the tokens so far) (`min_later_queries`).
  With a handful of queries after it, any key the last few tokens happen to look at
  would count (on SmolLM2, tokens 3–8 from the end of a stream often pass 0.10).
- A *heavy hitter* is one of the top `fraction` (default 10%) keys by accumulated
  attention, the H2O score: the column sum of the attention matrix, every query
  that saw the key (itself included, as H2O accumulates it).
- The *first-k mass* of a query row is the attention it puts on keys 0..k-1 (the
  StreamingLLM paper's Figure 2 measure).
- The *recommended sink count* of a layer is the fewest leading tokens k such that
  pinning token k as well would add under 1% of the attention mass: k is the first
  position (0, 1, 2, … up to 16) whose *lead share* is < 0.01 — or no more than an
  even spread would give it. The lead share of key j is its attention averaged over
  the layer's heads and over the queries at least 16 tokens after it (RECOMMEND_GAP:
  a query's attention to its recent neighbours is the sliding window's job, not a
  sink's); the even share is the same mean of 1/(q+1), what key j would get if every
  query q spread its attention evenly (on a short stream that is over 1%: the demo
  model's broad layer 0 would otherwise "need" all 16 positions at 64 tokens). A key
  with fewer than 16 such queries cannot be judged yet and ends the count there.
  The model's count is the largest over layers: a StreamingLLM cache pins the same
  leading tokens in every layer, so it must serve the layer that leans on them most.

Every function takes the "after" sums (attention received from later queries) so
the live stream can keep running column sums instead of the whole matrix;
`received_after` builds them from a full matrix for one-shot use and tests.
"""
import math

import numpy as np

MIN_QUERIES = 4          # a sink needs at least this many later queries...
MIN_QUERY_SHARE = 0.10   # ... and at least this share of the tokens so far
SINK_THRESHOLD = 0.10
HEAVY_FRACTION = 0.10
RECOMMEND_MAX_K = 16       # the recommended sink count looks at the first 16 positions only
RECOMMEND_MIN_SHARE = 0.01  # a leading token worth pinning takes ≥ 1% of later queries' attention
RECOMMEND_GAP = 16          # ... counting only queries at least this many tokens after it
RECOMMEND_MIN_QUERIES = 16  # ... and at least this many of them


def min_later_queries(n_tokens: int) -> int:
    """Queries that must follow a key (of n_tokens so far) before it can be called a sink."""
    return max(MIN_QUERIES, math.ceil(MIN_QUERY_SHARE * n_tokens - 1e-9))


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
              min_queries: int | None = None) -> np.ndarray:
    """Boolean [..., last+1]: key j is a sink when enough queries followed it (min_queries, default
    min_later_queries(last + 1)) and their mean ≥ threshold."""
    if min_queries is None:
        min_queries = min_later_queries(last + 1)
    n_after = last - np.arange(last + 1)
    mean = np.nan_to_num(mean_received(after, last), nan=0.0)
    return (n_after >= min_queries) & (mean >= threshold)


def sinks_in_matrix(attn: np.ndarray, threshold: float = SINK_THRESHOLD, min_queries: int | None = None) -> list[int]:
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


def lead_share(attn: np.ndarray, max_k: int = RECOMMEND_MAX_K, gap: int = RECOMMEND_GAP,
               min_queries: int = RECOMMEND_MIN_QUERIES) -> np.ndarray:
    """Lead shares of keys 0..max_k-1 from full matrices attn [..., n, n] (heads averaged by the caller).

    share[j] = mean of A[q, j] over the queries q ≥ j + gap; NaN with fewer than min_queries of them.
    The live stream keeps the same sums step by step (StreamSession.lead_shares).
    """
    n = attn.shape[-1]
    out = np.full(attn.shape[:-2] + (max_k,), np.nan)
    for j in range(min(max_k, n)):
        if n - (j + gap) >= min_queries:
            out[..., j] = np.asarray(attn[..., j + gap:, j], dtype=np.float64).mean(axis=-1)
    return out


def even_share(n: int, max_k: int = RECOMMEND_MAX_K, gap: int = RECOMMEND_GAP,
               min_queries: int = RECOMMEND_MIN_QUERIES) -> np.ndarray:
    """What keys 0..max_k-1 would get under even attention: mean of 1/(q+1) over q ≥ j + gap (NaN as lead_share)."""
    out = np.full(max_k, np.nan)
    inverse = 1.0 / np.arange(1, n + 1)
    for j in range(min(max_k, n)):
        if n - (j + gap) >= min_queries:
            out[j] = inverse[j + gap:].mean()
    return out


def recommended_sink_count(share: np.ndarray, even: np.ndarray | None = None,
                           min_share: float = RECOMMEND_MIN_SHARE) -> int:
    """The fewest leading tokens k such that token k adds < min_share, or no more than `even` gives it.

    share: lead shares of positions 0, 1, … (see lead_share); even: even_share for the
    same stream (None: compare with min_share only). NaN = not enough queries yet,
    which ends the count (a token that cannot be judged is not recommended). 0 means
    position 0 itself is no sink: pinning leading tokens buys this layer nothing.
    """
    share = np.asarray(share, dtype=np.float64)
    keep = share >= min_share                      # NaN compares False: "stop"
    if even is not None:
        keep &= share > np.asarray(even, dtype=np.float64)[: len(share)]
    return int(np.argmin(keep)) if not keep.all() else len(share)
