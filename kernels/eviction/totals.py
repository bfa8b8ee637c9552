"""Attention each key receives over the whole trace: it defines the sinks (mean over the
queries after the key ≥ threshold) and the heavy hitters (top-k by total) of DESIGN.md.
Policy-independent, so computed once per trace; chunked like the simulation. A compact model trace's
folded keys receive their row's bg, as every kernel reads them (rows.py)."""
from numba import njit

from .rows import loc_at, row


@njit(cache=True, nogil=True)  # other threads (the UI polling this job) run meanwhile
def received(t0, t1, kind, weights, sp, loc, heavy, after, self_w, g, ridx, rval):
    """after[j] += explicit attention from queries t > j; self_w[t] = A[t, t].

    The background part of `after` is G(n−1) − G(j) with G the running sum of bg: each
    key subtracts G(j) here and the caller adds G(n−1) = g[0] once at the end; the
    caller adds the locality part (it depends only on how many queries follow).
    """
    for t in range(t0, t1):
        cnt, bg = row(kind, t, weights, sp, heavy, ridx, rval)
        self_w[t] = bg + loc_at(loc, 0)
        for e in range(cnt):
            j = ridx[e]
            if j == t:
                self_w[t] += rval[e]
            else:
                after[j] += rval[e]
        g[0] += bg
        after[t] -= g[0]
