"""Rows: the attention of query t, per block, as (block, mass) pairs in first-touch order.

Rows come either from a model trace (each row's mass per block, float64 [n, blocks]: pool_rows
sums a row's float32 weights per block in key order) or from a synthetic generator evaluated per block, never per
token: sinks (the first `sink_count` tokens), a local window with geometric decay
(closed form via a prefix-sum table), heavy hitters (fixed positions) and a sparse
background (`bg_keys` random earlier keys per step, from a counter-based splitmix64
so any chunk can be replayed). Spreading the background over every key would touch
every block every step while no single block would ever reach the access threshold.
A generator appends pairs to cb/cm inline: calling a helper per pair measured slower
than all the arithmetic of the pair.
"""
import numpy as np
from numba import njit

MAX_WINDOW = 4096
UNDERFLOW_LOG = -690.0     # e^-690 ≈ 1e-300: weights below this are set to 0, never subnormal

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def local_table(decay: float, window: int) -> np.ndarray:
    """Prefix sums of the local weights decay^d, d = 0..window-1: lcum[d] = Σ_{d'<d} decay^d'."""
    d = np.arange(window, dtype=np.float64)
    log_w = d * np.log(decay)
    w = np.where(log_w < UNDERFLOW_LOG, 0.0, np.exp(np.maximum(log_w, UNDERFLOW_LOG)))
    return np.concatenate(([0.0], np.cumsum(w)))


def heavy_positions(n_tokens: int, count: int, first: int, seed: int) -> np.ndarray:
    """`count` distinct heavy-hitter token positions in [first, n_tokens), sorted."""
    span = max(0, n_tokens - first)
    count = min(count, span)
    rng = np.random.default_rng(seed)
    return np.sort(first + rng.choice(span, size=count, replace=False)).astype(np.int64)


@njit(cache=True)
def splitmix(seed, t, i, r):
    """Counter-based random 64-bit value for background key i of step t (r keys per step)."""
    z = np.uint64(seed) + (np.uint64(t) * np.uint64(r) + np.uint64(i) + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def synthetic_row(t, B, sink_count, w_sink, w_local, w_hh, w_bg, bg_keys, seed, lcum, hh_pos, cb, cm):
    nt = t + 1
    ns = min(sink_count, nt)
    nh = np.searchsorted(hh_pos, t, side="right")
    total = w_local
    if ns > 0:
        total += w_sink
    if nh > 0:
        total += w_hh
    if bg_keys > 0:
        total += w_bg
    n = 0
    if ns > 0:  # sinks: the first sink_count tokens share the sink mass
        per = (w_sink / total) / ns
        for b in range((ns - 1) // B + 1):
            cb[n], cm[n] = b, min(B, ns - b * B) * per
            n += 1
    window = min(lcum.shape[0] - 1, nt)  # local: geometric in distance, closed form per block
    first = nt - window
    lf = (w_local / total) / lcum[window]
    for b in range(first // B, t // B + 1):
        lo = max(b * B, first)
        hi = min(b * B + B - 1, t)
        cb[n], cm[n] = b, (lcum[t - lo + 1] - lcum[t - hi]) * lf
        n += 1
    if nh > 0:  # heavy hitters: fixed positions share the heavy mass once they exist
        per = (w_hh / total) / nh
        for i in range(nh):
            cb[n], cm[n] = hh_pos[i] // B, per
            n += 1
    if bg_keys > 0:  # background: a few random earlier keys
        per = (w_bg / total) / bg_keys
        for i in range(bg_keys):
            j = np.int64(splitmix(seed, t, i, bg_keys) % np.uint64(nt))
            cb[n], cm[n] = j // B, per
            n += 1
    return n


@njit(cache=True)
def trace_row(t, B, mass, cb, cm):
    """Row t of a model trace: its mass on each block 0..t // B (pool_rows made them)."""
    n = 0
    for b in range(t // B + 1):
        cb[n], cm[n] = b, mass[t, b]
        n += 1
    return n


@njit(cache=True, nogil=True)
def pool_rows(rows, t0, B, mass, received):
    """rows: float32 [q, n] attention of queries t0..t0+q−1 over every key → mass[t, b] = the row's weights on
    block b summed in key order (float64, as the simulator always summed them), and received[j] += the weight
    on key j < t (each key's attention from the queries after it, summed query by query). A block of rows at a
    time, so the n × n matrix never exists."""
    for i in range(rows.shape[0]):
        t = t0 + i
        for b in range(t // B + 1):
            s = 0.0
            for j in range(b * B, min(b * B + B, t + 1)):
                s += np.float64(rows[i, j])
            mass[t, b] = s
        for j in range(t):
            received[j] += np.float64(rows[i, j])
