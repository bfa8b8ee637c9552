"""One attention row at a time, as (count, bg) plus explicit (position, extra) pairs in
position order. Synthetic rows are generated here from a few parameters, so a 10M-step
trace never exists in memory; see trace.py for the definition."""
import numpy as np
from numba import njit

from .trace import BG_TOTAL, HEAVY_TOTAL, MODEL, S_SYN, SEED, SINK_Q


@njit(cache=True)
def jitter(seed, t, i):
    """A reproducible number in [0, 1024) for heavy hitter i at step t (splitmix-style hash)."""
    x = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(t) * np.uint64(0xBF58476D1CE4E5B9)
         + np.uint64(i) * np.uint64(0x94D049BB133111EB))
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xD6E8FEB86659FD93)
    x ^= x >> np.uint64(32)
    return np.int64(x & np.uint64(1023))


@njit(cache=True)
def heavy_weight(unit, seed, t, i):
    return (unit * (512 + jitter(seed, t, i))) >> 10


@njit(cache=True)
def synthetic_row(t, sp, loc, heavy, ridx, rval):
    s_syn = sp[S_SYN]
    sink_q = sp[SINK_Q]
    # The heavy mass is shared by the heavy hitters seen so far (those before t).
    active = np.searchsorted(heavy, t)
    unit = sp[HEAVY_TOTAL] // max(1, active)
    seed = sp[SEED]
    bg = sp[BG_TOTAL] // (t + 1)
    lo = max(0, t - (loc.shape[0] - 1))  # oldest position still inside the locality ages
    cnt = 0
    for j in range(min(s_syn, lo)):  # sinks older than the locality range
        ridx[cnt] = j
        rval[cnt] = sink_q
        cnt += 1
    i = 0
    while i < heavy.shape[0] and heavy[i] < lo:  # heavy hitters older than the locality range
        ridx[cnt] = heavy[i]
        rval[cnt] = heavy_weight(unit, seed, t, i)
        cnt += 1
        i += 1
    for j in range(lo, t + 1):
        w = loc[t - j]
        if j < s_syn:
            w += sink_q
        if i < heavy.shape[0] and heavy[i] == j:
            if j < t:  # a heavy hitter draws attention from the queries after it
                w += heavy_weight(unit, seed, t, i)
            i += 1
        if w > 0:
            ridx[cnt] = j
            rval[cnt] = w
            cnt += 1
    return cnt, bg


@njit(cache=True)
def model_row(t, weights, ridx, rval):
    cnt = 0
    for j in range(t + 1):
        w = weights[t, j]
        if w > 0:
            ridx[cnt] = j
            rval[cnt] = w
            cnt += 1
    return cnt, np.int64(0)


@njit(cache=True)
def row(kind, t, weights, sp, loc, heavy, ridx, rval):
    if kind == MODEL:
        return model_row(t, weights, ridx, rval)
    return synthetic_row(t, sp, loc, heavy, ridx, rval)
