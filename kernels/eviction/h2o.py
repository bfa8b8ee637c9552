"""H2O (Zhang et al. 2023): the W most recent keys + the C − W with the most attention
accumulated while cached (a key's own query counts: it sees itself).

Scores of the keys older than the window sit in a min-heap. Two shortcuts keep a step
cheap, both exact:
- The background adds the same to every cached key, so it is one running total G:
  KEY = accumulated extras − G(step before the key entered); KEY + G(now) = score.
- Locality weights depend only on age, so a key leaving the window gets the sum of
  ages 0..W at once; only ages past W (if the locality span is longer) add per step.
- The key leaving the window is often the victim right away (newer keys have had less
  background), so it waits as PENDING and goes through one push-pop, not push + pop.
"""
from numba import njit

from .rows import loc_upto
from .state import GPREV, HEAP, HEAP_N, KEY, PENDING, heap_pop, heap_push, heap_pushpop, heap_sift_down


@njit(cache=True)
def observe(slots, slot_of, heap, ctr, ridx, rval, cnt, t, loc, window):
    n = ctr[HEAP_N]
    for e in range(cnt + max(0, min(t, loc.shape[0] - 1) - window)):
        if e < cnt:  # the row's explicit keys
            j, w = ridx[e], rval[e]
        else:  # locality on keys past the window, if the locality span is longer
            age = window + 1 + e - cnt
            j, w = t - age, loc[age]
        s = slot_of[j] if j < t else -1  # the new key is scored when it enters
        if s < 0:
            continue
        slots[s, KEY] += w
        i = slots[s, HEAP]
        # Sift only if a child may now come first: heavy keys sit at the leaves, so
        # the call (and its refcounting, see state.py) is rare.
        if i >= 0 and 2 * i + 1 < n:
            k = slots[s, KEY]
            if slots[heap[2 * i + 1], KEY] <= k or (2 * i + 2 < n and slots[heap[2 * i + 2], KEY] <= k):
                heap_sift_down(slots, heap, ctr, i)


@njit(cache=True)
def on_insert(slots, slot_of, heap, ctr, s, t, self_extra, bg, window, loccum):
    slots[s, KEY] = self_extra - ctr[GPREV]
    ctr[GPREV] += bg
    leaving = t - window  # this key leaves the recent window and becomes a candidate
    if leaving >= 0 and slot_of[leaving] >= 0:
        c = slot_of[leaving]
        slots[c, KEY] += loc_upto(loccum, window)
        ctr[PENDING] = c


@njit(cache=True)
def victim(slots, heap, ctr):
    c = ctr[PENDING]
    ctr[PENDING] = -1
    if c < 0:
        return heap_pop(slots, heap, ctr)
    return heap_pushpop(slots, heap, ctr, c)


@njit(cache=True)
def settle(slots, heap, ctr):
    """End of step: a candidate that was not evicted joins the heap."""
    if ctr[PENDING] >= 0:
        heap_push(slots, heap, ctr, ctr[PENDING])
        ctr[PENDING] = -1
