"""LRU: keeps the C keys accessed most recently (entering counts as an access; ties:
the older key goes). Only accesses the policy can see count: those to cached keys.

Slots sit in a recency list ordered by (last access, position); an access moves a key
to the back, so the victim is the front. A row's explicit keys come in position order,
which keeps ties in position order for free.
"""
from numba import njit

from .state import HEAD, KEY, LHEAD, LNEXT, LPREV, LTAIL, NEXT, list_append, list_unlink


@njit(cache=True)
def observe(slots, slot_of, ctr, ridx, rval, cnt, t, bg, tau):
    if bg >= tau:
        # Every key reached τ: recency order becomes position order.
        ctr[LHEAD] = -1
        ctr[LTAIL] = -1
        s = ctr[HEAD]
        while s >= 0:
            slots[s, KEY] = t
            list_append(slots, ctr, s, LPREV, LNEXT, LHEAD, LTAIL)
            s = slots[s, NEXT]
        return
    for e in range(cnt):
        j = ridx[e]
        if j < t and rval[e] + bg >= tau:
            s = slot_of[j]
            if s >= 0:
                slots[s, KEY] = t
                list_unlink(slots, ctr, s, LPREV, LNEXT, LHEAD, LTAIL)
                list_append(slots, ctr, s, LPREV, LNEXT, LHEAD, LTAIL)


@njit(cache=True)
def on_insert(slots, ctr, s, t):
    slots[s, KEY] = t
    list_append(slots, ctr, s, LPREV, LNEXT, LHEAD, LTAIL)


@njit(cache=True)
def on_evict(slots, ctr, s):
    list_unlink(slots, ctr, s, LPREV, LNEXT, LHEAD, LTAIL)


@njit(cache=True)
def victim(slots, ctr):
    return ctr[LHEAD]
