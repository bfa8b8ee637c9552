"""TOVA (Oren et al. 2024): evict the key (the new one included) that the current query
attends to least; ties: the older key goes.

Keys the row does not name explicitly get bg + loc[age], and loc does not grow with
age, so among them the oldest is the least attended: walk the position list from the
oldest end past the explicit keys (stamped) and compare that one with the best explicit.
"""
from numba import njit

from .state import HEAD, NEXT, POS


@njit(cache=True)
def victim(slots, slot_of, stamp, ctr, ridx, rval, cnt, t, bg, loc):
    nloc = loc.shape[0]
    best_w = -1
    best_s = -1
    for e in range(cnt):  # position order, so strict < keeps the older key on ties
        s = slot_of[ridx[e]]
        if s >= 0:
            stamp[s] = t
            age = t - ridx[e]
            w = bg + rval[e] + (loc[age] if age < nloc else 0)
            if best_s < 0 or w < best_w:
                best_w = w
                best_s = s
    s = ctr[HEAD]
    while s >= 0 and stamp[s] == t:
        s = slots[s, NEXT]
    if s >= 0:
        age = t - slots[s, POS]
        w = bg + (loc[age] if age < nloc else 0)
        if best_s < 0 or w < best_w or (w == best_w and slots[s, POS] < slots[best_s, POS]):
            return s
    return best_s
