"""The step loop every placement policy shares (../shared/DESIGN.md, "Cache profile").

Each decode step t:
1. If t opens a new block (t % B == 0), the policy places it (its on_open).
2. Token t is appended to the newest block.
3. The query at t puts attention on blocks (rows.py: a model trace's mass per block, or the
   synthetic generator's pairs; first-touch order).
   A block whose row mass is ≥ the access threshold τ is *accessed*: a hit in its tier.
   Its mass in fixed point, q = int(m · 2^24), adds to acc (and to heat, heat rule only).
4. The policy moves blocks (its on_step).
5. Accounting: the tokens attention read from each tier this step (dense attention reads
   every block where it lives; top-k fetch reads sinks + window + k blocks, chosen by attention
   or given per step as Quest's page choice), and the tokens
   moved this step, summed per timeline bucket (bucket = t · buckets // n) and recorded
   exactly at the snapshot steps. Integers only, so kernel and reference agree exactly.

Numba's on-disk cache of run_steps is keyed on this file only: after editing another
module of this package, touch this file (or delete kernels/tiers/__pycache__) or old code runs.
"""
import numpy as np
from numba import njit

from . import heat_hysteresis, lru_offload, topk_fetch
from .rows import synthetic_row, trace_row
from .state import MOVED_TOKENS, N_TIERS, SNAP_NEXT

HEAT, LRU, TOPK = 0, 1, 2
POLICY_CODES = {"heat": HEAT, "lru": LRU, "topk": TOPK}
SCALE = float(1 << 24)     # row mass fixed point: 1.0 attention = 2^24


@njit(cache=True, nogil=True)  # nogil: the UI thread keeps answering while a job runs a chunk
def run_steps(policy, t0, t1, n_tokens, B, pinned, cap, trace_mass, sink_count, w_sink, w_local, w_hh, w_bg, bg_keys,
              seed, lcum, hh_pos, tau, half_life, margin_q, patience, reuse, window, k_fetch, fetch, snap_steps, s):
    """Advance the simulation over steps t0..t1-1; the State `s` is updated in place.

    fetch: int64 [n_tokens, ≤k] the blocks top-k fetch reads per step (Quest's choice, −1 pads),
    or shape (0, 0) for the attention rule."""
    # Unpack once: reading a State field inside the loop costs two atomic operations (state.py).
    tier, acc, access, heat, tok, hits, counters = s.tier, s.acc, s.access, s.heat, s.tok, s.hits, s.counters
    mass, stamp, touched, cb, cm = s.mass, s.stamp, s.touched, s.cb, s.cm
    read_now, read_sum, tl_read, tl_moved = s.read_now, s.read_sum, s.tl_read, s.tl_moved
    count, heap, hsize, hpos, key, since, chain, sel = s.count, s.heap, s.hsize, s.hpos, s.key, s.since, s.chain, s.sel
    use_trace = trace_mass.shape[0] > 0  # a model trace: each row's mass per block (rows.pool_rows)
    n_buckets = tl_moved.shape[0]
    for t in range(t0, t1):
        moved_before = counters[MOVED_TOKENS]
        c = t // B
        scale = 1.0
        if policy == HEAT:
            scale = heat_hysteresis.heat_scale(s, t, half_life, (t + B - 1) // B, heat, counters)
        if t % B == 0:
            if policy == HEAT:
                heat_hysteresis.on_open(s, c, pinned, cap, B, t)
            elif policy == LRU:
                lru_offload.on_open(s, c, pinned, cap, B, t)
            else:
                topk_fetch.on_open(s, c, pinned, cap, B, t, window)
        tok[tier[c]] += 1
        if use_trace:
            n_pairs = trace_row(t, B, trace_mass, cb, cm)
        else:
            n_pairs = synthetic_row(t, B, sink_count, w_sink, w_local, w_hh, w_bg, bg_keys, seed, lcum, hh_pos,
                                    cb, cm)
        n = 0  # merge: mass per block, blocks listed in first-touch order
        for i in range(n_pairs):
            b = cb[i]
            if stamp[b] != t:
                stamp[b] = t
                mass[b] = 0.0
                touched[n] = b
                n += 1
            mass[b] += cm[i]
        for i in range(n):
            b = touched[i]
            m = mass[b]
            if m >= tau:
                access[b] += 1
                hits[tier[b]] += 1
            q = np.int64(m * SCALE)
            if q > 0:
                acc[b] += q
                if policy == HEAT:
                    heat[b] += q * scale  # its heap entry goes stale: see heap.coldest
        for k in range(N_TIERS):
            read_now[k] = 0
        if policy == HEAT:
            heat_hysteresis.on_step(t, n, pinned, cap, B, margin_q, scale, patience, heat, since, touched, chain,
                                    tier, count, tok, heap, hsize, hpos, key, counters)
        elif policy == LRU:
            lru_offload.on_step(t, n, pinned, cap, B, tau, reuse, touched, mass, chain,
                                tier, count, tok, heap, hsize, hpos, key, counters)
        else:
            topk_fetch.on_step(t, n, B, k_fetch, tier, mass, sel, touched, stamp, key, read_now, counters, tok, fetch)
        if policy != TOPK:  # dense attention reads every block where it lives
            for k in range(N_TIERS):
                read_now[k] = tok[k]
        moved = counters[MOVED_TOKENS] - moved_before
        bucket = t * n_buckets // n_tokens
        for k in range(N_TIERS):
            read_sum[k] += read_now[k]
            tl_read[bucket, k] += read_now[k]
        tl_moved[bucket] += moved
        while counters[SNAP_NEXT] < snap_steps.shape[0] and snap_steps[counters[SNAP_NEXT]] == t:
            i = counters[SNAP_NEXT]
            s.snaps[i, :] = tier
            s.snap_read[i, :] = read_now
            s.snap_moved[i] = moved
            counters[SNAP_NEXT] += 1
