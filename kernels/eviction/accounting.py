"""What every policy's step shares, whatever decides the victim: accounting (hits, misses,
recall), a key entering, a key leaving, the timeline. The built-in loop (loop.py) and the
loop for user policies (custom.py) both use these, so a user policy is measured exactly
as the built-ins are.

_nrt=False: compiled without reference counting, so a call costs no atomic incref/decref
per array (state.py: that made these calls double the loop's time; inline="always" did
not help). They allocate nothing, which is all _nrt=False asks. Numba's disk cache of the
loops does not see an edit here: touch loop.py and custom.py after changing this file.
"""
from numba import njit

from .rows import loc_upto
from .state import (ACCESSES, BUCKET_N, BUCKET_RECALL, EV_RECENT, EVICTIONS, FREE, HEAD, HITS, MISSES, NCACHED, NEXT,
                    POS, PREV, RECALL_SUM, TAIL, TL_MISSES, TL_N, TL_OCC, TL_RECALL, TL_STEP, list_append,
                    list_unlink)


@njit(cache=True, _nrt=False)
def account(t, cnt, bg, ridx, rval, loc, loccum, tau, slot_of, ctr, flt, fixed):
    """Step 2 of DESIGN.md: accesses, hits, misses and recall of query t against the cache.
    fixed[t] (if the array reaches t): the row's share on a learned sink, kept whatever is evicted.
    Key j gets bg + loc[t − j] + its explicit extra (rows.py). The recent block, ages
    1..top, is handled as a whole: EV_RECENT counts its evicted keys.
    Returns (self_extra, dstar): key t's explicit extra, and the ages 1..dstar that reach τ
    on locality alone (loc does not grow with age)."""
    span = loc.shape[0] - 1  # oldest age with a locality weight (−1: none)
    if span >= 0 and t - 1 - span >= 0 and slot_of[t - 1 - span] < 0:
        ctr[EV_RECENT] -= 1  # that key just aged out of the block
    ncached = ctr[NCACHED]
    every_key = bg >= tau
    top = min(t, span)
    dstar = 0
    if not every_key:
        while dstar < top and loc[dstar + 1] + bg >= tau:
            dstar += 1
    total = bg * (t + 1) + loc_upto(loccum, top)
    kept = bg * (ncached + 1)
    if every_key:
        ctr[ACCESSES] += t
        ctr[HITS] += ncached
        ctr[MISSES] += t - ncached
    if ctr[EV_RECENT] == 0:  # the whole block is cached
        kept += loc_upto(loccum, top)
        ctr[ACCESSES] += dstar
        ctr[HITS] += dstar
    else:
        if top >= 0:
            kept += loc[0]
        for age in range(1, top + 1):
            cached = slot_of[t - age] >= 0
            if cached:
                kept += loc[age]
            if age <= dstar:
                ctr[ACCESSES] += 1
                if cached:
                    ctr[HITS] += 1
                else:
                    ctr[MISSES] += 1
    self_extra = 0
    for e in range(cnt):
        j = ridx[e]
        x = rval[e]
        total += x
        if j == t:
            kept += x
            self_extra = x
            continue
        cached = slot_of[j] >= 0
        if cached:
            kept += x
        if not every_key and t - j > dstar and x + bg + (loc[t - j] if t - j <= span else 0) >= tau:
            ctr[ACCESSES] += 1
            if cached:
                ctr[HITS] += 1
            else:
                ctr[MISSES] += 1
    if t < fixed.shape[0]:  # the learned sink: always there, never a cache entry to hit or miss
        total += fixed[t]
        kept += fixed[t]
    recall = 1.0 if total == 0 else kept / total
    flt[RECALL_SUM] += recall
    flt[BUCKET_RECALL] += recall
    return self_extra, dstar


@njit(cache=True, _nrt=False)
def admit(t, slots, slot_of, free, ctr):
    """Key t enters a free slot at the young end of the position list; returns the slot."""
    ctr[FREE] -= 1
    s = free[ctr[FREE]]
    slot_of[t] = s
    slots[s, POS] = t
    list_append(slots, ctr, s, PREV, NEXT, HEAD, TAIL)
    ctr[NCACHED] += 1
    return s


@njit(cache=True, _nrt=False)
def drop(v, t, slots, slot_of, free, ctr, evicted_at, span):
    """Evict the key in slot v at step t; returns its position."""
    list_unlink(slots, ctr, v, PREV, NEXT, HEAD, TAIL)
    gone = slots[v, POS]
    slot_of[gone] = -1
    free[ctr[FREE]] = v
    ctr[FREE] += 1
    ctr[NCACHED] -= 1
    ctr[EVICTIONS] += 1
    if span >= 0 and gone >= t - span:
        ctr[EV_RECENT] += 1  # an evicted key inside next step's block
    if evicted_at.shape[0] > 0:
        evicted_at[gone] = t
    return gone


@njit(cache=True, _nrt=False)
def timeline_point(t, n, stride, ctr, flt, tl):
    """One point per `stride` steps (≤ 2,000), recall averaged over the bucket. The bucket's
    count reaching `stride` is (t + 1) % stride == 0 (points fall on those steps only, the
    last step's is the last), without a division every step."""
    ctr[BUCKET_N] += 1
    if ctr[BUCKET_N] == stride or t == n - 1:
        k = ctr[TL_N]
        tl[k, TL_STEP] = t
        tl[k, TL_OCC] = ctr[NCACHED]
        tl[k, TL_RECALL] = flt[BUCKET_RECALL] / ctr[BUCKET_N]
        tl[k, TL_MISSES] = ctr[MISSES]
        ctr[TL_N] = k + 1
        ctr[BUCKET_N] = 0
        flt[BUCKET_RECALL] = 0.0
