"""Tier simulator: where the KV blocks of a sequence live across four memory tiers, step by step.

KV memory is paged in blocks of B tokens. One shared step loop (loop.py) and state
(state.py); each placement policy is one file:

  heat_hysteresis.py  heat = decayed attention; a block rises only when clearly and steadily hotter
  lru_offload.py      LRU offload, brought back up on reuse (vLLM swap, LMCache, Dynamo)
  topk_fetch.py       offload all but sinks + a recent window, fetch the top-k per step (Quest, InfiniGen)

rows.py generates the attention rows (a model trace or the synthetic generator), heap.py
finds a tier's coldest block. Every rule has a plain-Python twin in
tests/reference_tiers.py, and the two agree bit for bit (mass in fixed point, heat in a
power-of-two scale, everything else integers). Only numpy and numba here.
"""
import numpy as np

from .heat_hysteresis import MAX_HALF_LIFE, RENORM
from .loop import POLICY_CODES, SCALE, run_steps
from .rows import MAX_WINDOW, heavy_positions, local_table, pool_rows
from .state import FETCHED_TOKENS, MOVED_TOKENS, N_TIERS, PROMOTIONS, DEMOTIONS, new_state

__all__ = ["simulate", "local_table", "heavy_positions", "pool_rows", "pool", "POLICIES", "MAX_HALF_LIFE", "MAX_WINDOW",
           "RENORM", "N_TIERS", "room_needed"]
POLICIES = tuple(POLICY_CODES)
MAX_BUCKETS = 512
MAX_MARGIN = 4096.0  # heat < half_life·2^(24+RENORM+1); a margin this size keeps sums far below float64 max


def room_needed(policy: str, n_pinned: int, n_blocks: int, window: int = 0, k: int = 0) -> int:
    """Blocks the top tier must hold: the sinks plus one (plus, for top-k, the window and k fetch slots)."""
    if policy == "topk":
        return n_pinned + window + k
    return n_pinned + (1 if n_blocks > n_pinned else 0)


def pool(matrix: np.ndarray, block_size: int) -> np.ndarray:
    """A whole float32 [n, n] attention matrix → each row's mass per block, float64 [n, ceil(n / B)]."""
    matrix = np.ascontiguousarray(matrix, np.float32)
    n = matrix.shape[0]
    mass = np.zeros((n, -(-n // int(block_size))), np.float64)
    pool_rows(matrix, 0, int(block_size), mass, np.zeros(n, np.float64))
    return mass


def simulate(n_tokens, block_size, capacity, pinned, *, policy="lru", trace=None, mass=None, sink_count=0, w_sink=0.0,
             w_local=1.0, w_hh=0.0, w_bg=0.0, bg_keys=0, seed=0, lcum=None, hh_pos=None, tau=0.01, half_life=256,
             margin=0.5, patience=32, reuse=16, window=16, k=16, fetch=None, snap_steps=None, buckets=MAX_BUCKETS,
             chunk_steps=1 << 16, on_chunk=None) -> dict:
    """Run all n_tokens steps in chunks; on_chunk(steps_done) is called between chunks (it may raise to stop).

    capacity: blocks per tier (int64[4]); pinned: bool per block (sink blocks).
    trace: float32 [n, n] attention rows; or mass: each row's mass per block, float64 [n, n_blocks] (pool,
    pool_rows: what a model trace past a few thousand tokens is kept as); neither: the synthetic generator.
    policy "heat": half_life, margin (heat units: rows of attention), patience (steps); "lru": reuse; "topk": window (blocks), k (blocks per step).
    fetch: top-k only, int64 [n_tokens, ≤k]: the blocks to fetch at each step (−1 pads), e.g. Quest's page
    choice; None ranks the offloaded blocks by the step's attention.
    snap_steps: ascending steps after which the tier of every block is recorded.
    buckets: timeline length (at most one bucket per step).
    """
    if policy not in POLICY_CODES:
        raise ValueError(f"policy must be one of {POLICIES}")
    B = int(block_size)
    n_blocks = -(-int(n_tokens) // B)
    cap = np.asarray(capacity, np.int64)
    pinned = np.asarray(pinned, np.bool_)
    if pinned.shape != (n_blocks,) or cap.shape != (N_TIERS,):
        raise ValueError("pinned must have one entry per block and capacity one per tier")
    n_pinned = int(pinned.sum())
    if policy == "topk" and (window < 1 or k < 0):
        raise ValueError("top-k fetch needs a window of at least 1 block and k ≥ 0")
    below = n_blocks - n_pinned - window if policy == "topk" else 0  # top-k keeps only sinks + window in HBM
    if cap.sum() < n_blocks or cap[0] < room_needed(policy, n_pinned, n_blocks, window, k) or (cap < 0).any() \
            or cap[1:].sum() < below:
        raise ValueError("not enough room: the top tier must hold every sink block plus one "
                         "(top-k: plus the window and k, and the tiers below it everything else), all tiers every block")
    if not 1 <= half_life <= MAX_HALF_LIFE or not 0.0 <= margin <= MAX_MARGIN or patience < 0 or reuse < 0:
        raise ValueError("half_life, margin, patience or reuse out of range")
    if trace is not None:
        trace = np.ascontiguousarray(trace, np.float32)
        if (trace < 0).any() or (trace.sum(axis=1, dtype=np.float64) > 1.001).any():
            raise ValueError("trace rows must be attention: non-negative, summing to at most 1")  # keeps heat bounded
        mass = pool(trace, B)
    mass = np.zeros((0, 0), np.float64) if mass is None else np.ascontiguousarray(mass, np.float64)
    if mass.size and (mass.shape != (int(n_tokens), n_blocks) or (mass < 0).any() or (mass.sum(axis=1) > 1.001).any()):
        raise ValueError("mass must be [n_tokens, blocks] of attention: non-negative, rows summing to at most 1")
    fetch = _check_fetch(fetch, policy, int(n_tokens), n_blocks, int(k))
    lcum = local_table(0.9, 1) if lcum is None else np.asarray(lcum, np.float64)
    hh_pos = np.zeros(0, np.int64) if hh_pos is None else np.asarray(hh_pos, np.int64)
    snap_steps = np.zeros(0, np.int64) if snap_steps is None else np.asarray(snap_steps, np.int64)
    buckets = max(1, min(int(buckets), int(n_tokens)))
    max_pairs = n_blocks + len(lcum) + len(hh_pos) + int(bg_keys) + 2  # ≥ sink + window blocks + hh + bg
    s = new_state(n_blocks, len(snap_steps), max_pairs, buckets, policy == "heat", int(k))
    for t0 in range(0, int(n_tokens), int(chunk_steps)):
        t1 = min(int(n_tokens), t0 + int(chunk_steps))
        run_steps(POLICY_CODES[policy], t0, t1, int(n_tokens), B, pinned, cap, mass, int(sink_count), float(w_sink),
                  float(w_local), float(w_hh), float(w_bg), int(bg_keys), np.uint64(seed), lcum, hh_pos, float(tau),
                  int(half_life), np.int64(margin * SCALE), int(patience), int(reuse), int(window), int(k), fetch, snap_steps, s)
        if on_chunk is not None:
            on_chunk(t1)
    bucket_of_step = np.arange(int(n_tokens), dtype=np.int64) * buckets // int(n_tokens)
    return {"tier": s.tier, "acc": s.acc, "access": s.access, "blocks": s.count.copy(), "tokens": s.tok.copy(),
            "hits": s.hits.copy(), "read_tokens": s.read_sum.copy(), "promotions": int(s.counters[PROMOTIONS]),
            "demotions": int(s.counters[DEMOTIONS]), "moved_tokens": int(s.counters[MOVED_TOKENS]),
            "fetched_tokens": int(s.counters[FETCHED_TOKENS]), "snapshots": s.snaps, "snap_steps": snap_steps,
            "snap_read": s.snap_read, "snap_moved": s.snap_moved, "timeline_read": s.tl_read,
            "timeline_moved": s.tl_moved, "timeline_steps": np.bincount(bucket_of_step, minlength=buckets),
            "heat": s.heat}


def _check_fetch(fetch, policy, n_tokens, n_blocks, k) -> np.ndarray:
    """A given fetch set: one row per step, at most k distinct block ids (−1 pads); (0, 0) when none.
    A block not yet opened at that step lives nowhere and is not fetched."""
    if fetch is None:
        return np.zeros((0, 0), np.int64)
    fetch = np.ascontiguousarray(fetch, np.int64)
    if policy != "topk" or fetch.ndim != 2 or fetch.shape[0] != n_tokens or fetch.shape[1] > k:
        raise ValueError("fetch needs policy 'topk' and one row of at most k blocks per step")
    ordered = np.sort(fetch, axis=1)
    if (fetch < -1).any() or (fetch >= n_blocks).any() or ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any():
        raise ValueError("fetch rows hold distinct block ids (or −1)")
    return fetch
