"""One attention row at a time, in three parts: key j ≤ t gets
    bg  +  loc[t − j] (0 past the table)  +  extra[j] for the few explicit keys,
with the explicit (position, extra) pairs in position order. Synthetic rows are made
here from a few parameters, so a 10M-step trace never exists in memory (trace.py has
the definition); a model row is all explicit (no bg, no loc); a compact model row (sparse.py) is
its listed keys over a bg (no loc)."""
import numpy as np
from numba import njit

from .trace import BG_TOTAL, HEAVY_LIFE, HEAVY_TOTAL, MODEL, ROW_BG, ROW_COUNT, ROW_KEYS, S_SYN, SEED, SINK_Q, SPARSE


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
def synthetic_row(t, sp, heavy, ridx, rval):
    """The few special keys: sinks and the live heavy hitters. The locality part
    (same weights by age for every key) and the background are added by the caller."""
    s_syn = sp[S_SYN]
    cnt = 0
    for j in range(min(s_syn, t + 1)):
        ridx[cnt] = j
        rval[cnt] = sp[SINK_Q]
        cnt += 1
    # The heavy mass is shared by the live heavy hitters: before t, and (with a lifetime)
    # at most `life` tokens back. Positions are sorted, so they are one run.
    life = sp[HEAVY_LIFE]
    hi = np.searchsorted(heavy, t)
    lo = np.searchsorted(heavy, t - life) if life > 0 else 0
    unit = sp[HEAVY_TOTAL] // max(1, hi - lo)
    for i in range(lo, hi):
        ridx[cnt] = heavy[i]
        rval[cnt] = heavy_weight(unit, sp[SEED], t, i)
        cnt += 1
    return cnt, sp[BG_TOTAL] // (t + 1)


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
def sparse_row(t, weights, ridx, rval):
    """Row t of a compact trace: [bg, count, keys, extras] (sparse.py)."""
    keep = (weights.shape[1] - ROW_KEYS) // 2
    cnt = weights[t, ROW_COUNT]
    for e in range(cnt):
        ridx[e] = weights[t, ROW_KEYS + e]
        rval[e] = weights[t, ROW_KEYS + keep + e]
    return cnt, weights[t, ROW_BG]


@njit(cache=True)
def given_row(i, weights, cols, ridx, rval):
    """Row i of a block of q rows over the same keys: weights[i, e] on key cols[e] (cols ascending,
    the block's own q queries last). Query i saw the keys before the block and the block's first
    i + 1, so the entries after those are not read. Evaluate's chunks (backend/evaluate/deciders.py)
    hand the kernel the rows over the cache's entries directly: one call per chunk, no dense row."""
    cnt = 0
    for e in range(cols.shape[0] - weights.shape[0] + 1 + i):
        w = weights[i, e]
        if w > 0:
            ridx[cnt] = cols[e]
            rval[cnt] = w
            cnt += 1
    return cnt, np.int64(0)


@njit(cache=True)
def row(kind, t, weights, sp, heavy, ridx, rval):
    if kind == MODEL:
        return model_row(t, weights, ridx, rval)
    if kind == SPARSE:
        return sparse_row(t, weights, ridx, rval)
    return synthetic_row(t, sp, heavy, ridx, rval)


@njit(cache=True)
def loc_at(loc, age):
    """Locality weight at this age (0 past the table, and always 0 for model traces)."""
    return loc[age] if age < loc.shape[0] else 0


@njit(cache=True)
def loc_upto(loccum, age):
    """Sum of the locality weights of ages 0..age."""
    if age < 0 or loccum.shape[0] == 0:
        return 0
    return loccum[min(age, loccum.shape[0] - 1)]
