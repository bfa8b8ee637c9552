"""LRU: keeps the C keys accessed most recently (entering counts as an access; ties:
the older key goes). Only accesses the policy can see count: those to cached keys.

Recency order is a FIFO queue of (slot, step) entries: an access appends an entry and
sets the slot's KEY (last access) to the step, leaving the older entry stale; the victim
is the first entry still current. Appending is two stores, where moving a key in a
linked list is a dozen; stale entries are skipped once, or squeezed out when the queue
fills. Accessed keys are appended in position order, which keeps ties right.
"""
from numba import njit

from .state import HEAD, KEY, NEXT, Q_HEAD, Q_TAIL


@njit(cache=True)
def _touch(slots, queue, ctr, s, t):
    """Append (s, t). Called once per access: the loops in observe write the same
    inline, because a call that takes arrays is not free (see state.py)."""
    if ctr[Q_TAIL] - ctr[Q_HEAD] == queue.shape[0]:
        _squeeze(slots, queue, ctr)
    slots[s, KEY] = t
    i = ctr[Q_TAIL] & (queue.shape[0] - 1)
    queue[i, 0] = s
    queue[i, 1] = t
    ctr[Q_TAIL] += 1


@njit(cache=True)
def _squeeze(slots, queue, ctr):
    """Drop the stale entries, keeping order (at most C + 1 stay)."""
    mask = queue.shape[0] - 1
    w = ctr[Q_HEAD]
    for r in range(ctr[Q_HEAD], ctr[Q_TAIL]):
        if slots[queue[r & mask, 0], KEY] == queue[r & mask, 1]:
            queue[w & mask, 0] = queue[r & mask, 0]
            queue[w & mask, 1] = queue[r & mask, 1]
            w += 1
    ctr[Q_TAIL] = w


@njit(cache=True)
def observe(slots, slot_of, queue, ctr, ridx, rval, cnt, t, bg, tau, loc, dstar):
    if bg >= tau:
        # Every key reached τ: recency order becomes position order.
        ctr[Q_HEAD] = ctr[Q_TAIL]
        s = ctr[HEAD]
        while s >= 0:
            _touch(slots, queue, ctr, s, t)
            s = slots[s, NEXT]
        return
    nloc = loc.shape[0]
    # Explicit keys older than the recent block, then the block (ages dstar..1 reach τ
    # on locality alone): position order either way.
    for e in range(cnt + dstar):
        if e < cnt:
            j = ridx[e]
            if j >= t - dstar or rval[e] + bg + (loc[t - j] if t - j < nloc else 0) < tau:
                continue
        else:
            j = t - dstar + (e - cnt)
        s = slot_of[j]
        if s < 0:
            continue
        if ctr[Q_TAIL] - ctr[Q_HEAD] == queue.shape[0]:
            _squeeze(slots, queue, ctr)
        slots[s, KEY] = t
        i = ctr[Q_TAIL] & (queue.shape[0] - 1)
        queue[i, 0] = s
        queue[i, 1] = t
        ctr[Q_TAIL] += 1


@njit(cache=True)
def on_insert(slots, queue, ctr, s, t):
    _touch(slots, queue, ctr, s, t)


@njit(cache=True)
def victim(slots, queue, ctr):
    mask = queue.shape[0] - 1
    while slots[queue[ctr[Q_HEAD] & mask, 0], KEY] != queue[ctr[Q_HEAD] & mask, 1]:  # stale
        ctr[Q_HEAD] += 1
    s = queue[ctr[Q_HEAD] & mask, 0]
    ctr[Q_HEAD] += 1
    slots[s, KEY] = -1  # its other entries are stale now, even after the slot is reused
    return s
