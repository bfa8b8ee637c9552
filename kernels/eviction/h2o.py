"""H2O (Zhang et al. 2023): the W most recent keys + the C − W with the most attention
accumulated while cached (a key's own query counts: it sees itself).

Scores sit in a min-heap of the keys older than the window. The uniform background of
a row adds the same to every cached key, so it is kept as one running total G instead
of being added to C keys: KEY = accumulated extras − G(step before the key entered),
and score = KEY + G(now) orders the keys exactly like the full score.
"""
from numba import njit

from .state import GPREV, HEAP, KEY, heap_pop, heap_push, heap_sift_down


@njit(cache=True)
def observe(slots, slot_of, heap, ctr, ridx, rval, cnt, t):
    for e in range(cnt):
        j = ridx[e]
        if j == t:
            continue  # the new key is scored when it enters
        s = slot_of[j]
        if s >= 0:
            slots[s, KEY] += rval[e]
            if slots[s, HEAP] >= 0:
                heap_sift_down(slots, heap, ctr, slots[s, HEAP])


@njit(cache=True)
def on_insert(slots, slot_of, heap, ctr, s, t, self_extra, bg, window):
    slots[s, KEY] = self_extra - ctr[GPREV]
    ctr[GPREV] += bg
    leaving = t - window  # this key leaves the recent window and becomes a candidate
    if leaving >= 0 and slot_of[leaving] >= 0:
        heap_push(slots, heap, ctr, slot_of[leaving])


@njit(cache=True)
def victim(slots, heap, ctr):
    return heap_pop(slots, heap, ctr)
