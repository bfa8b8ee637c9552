"""The cache state every policy shares, kept in plain numpy arrays.

Plain arrays (no objects) so Numba compiles it and so a run can stop after any step
and resume: the service runs long traces in chunks to report progress and cancel.

A cached key lives in a *slot* (C + 1 of them: the cache overflows by one key before
the policy evicts). `slot_of[pos]` maps a position to its slot, −1 once evicted.
Slots are linked in position order (oldest first) and, for LRU, in recency order.
"""
import numpy as np
from numba import njit

# Columns of `slots`.
POS, PREV, NEXT, KEY, HEAP, LPREV, LNEXT = range(7)
NFIELDS = 7
# Entries of `ctr` (int64 counters and list heads).
(NCACHED, ACCESSES, HITS, MISSES, EVICTIONS, HEAD, TAIL, FREE, HEAP_N, LHEAD, LTAIL,
 GPREV, TL_N, BUCKET_N, EV_RECENT, PENDING, Q_HEAD, Q_TAIL) = range(18)
NCTR = 18
# Entries of `flt`.
RECALL_SUM, BUCKET_RECALL = range(2)
# Columns of the timeline `tl`: step, occupancy, mean recall over the bucket, cumulative misses.
TL_STEP, TL_OCC, TL_RECALL, TL_MISSES = range(4)

MAX_TIMELINE = 2000


def timeline_stride(n: int) -> int:
    return max(1, -(-n // MAX_TIMELINE))


class State:
    """All arrays of one run; `run_steps` mutates them in place."""

    def __init__(self, n: int, capacity: int, full: bool, record_evictions: bool, lru_queue: bool = False):
        nslots = 1 if full else capacity + 1  # Full Cache never evicts: one dummy slot marks "cached"
        self.slots = np.full((nslots, NFIELDS), -1, np.int64)
        self.slot_of = np.full(n, -1, np.int32)
        self.free = np.arange(nslots - 1, -1, -1, dtype=np.int64)  # stack of free slots
        self.heap = np.zeros(nslots, np.int64)
        self.stamp = np.full(nslots, -1, np.int64)
        self.ctr = np.zeros(NCTR, np.int64)
        self.ctr[HEAD] = self.ctr[TAIL] = self.ctr[LHEAD] = self.ctr[LTAIL] = -1
        self.ctr[FREE] = nslots
        self.ctr[PENDING] = -1
        # LRU's queue of (slot, step): ≥ 4 entries per slot, so a squeeze frees ≥ 3/4 of it.
        qsize = 1 << max(6, int(4 * nslots).bit_length()) if lru_queue else 1
        self.queue = np.zeros((qsize, 2), np.int64)
        self.flt = np.zeros(2, np.float64)
        self.stride = timeline_stride(n)
        self.tl = np.zeros((-(-n // self.stride) + 1, 4), np.float64)
        self.evicted_at = np.full(n if record_evictions else 0, -1, np.int64)


@njit(cache=True)
def list_append(slots, ctr, s, prev_f, next_f, head_i, tail_i):
    tail = ctr[tail_i]
    slots[s, prev_f] = tail
    slots[s, next_f] = -1
    if tail >= 0:
        slots[tail, next_f] = s
    else:
        ctr[head_i] = s
    ctr[tail_i] = s


@njit(cache=True)
def list_unlink(slots, ctr, s, prev_f, next_f, head_i, tail_i):
    p = slots[s, prev_f]
    q = slots[s, next_f]
    if p >= 0:
        slots[p, next_f] = q
    else:
        ctr[head_i] = q
    if q >= 0:
        slots[q, prev_f] = p
    else:
        ctr[tail_i] = p


# A binary min-heap of slots ordered by (KEY, POS): ties evict the older key.
#
# Performance rule for every hot loop here and in the policies: call no function that
# takes an array. Each such call costs an atomic incref/decref per array (Numba's
# refcounts), which tripled H2O's time; functions of plain numbers are free.
@njit(cache=True)
def before(ka, pa, kb, pb):
    return ka < kb or (ka == kb and pa < pb)


@njit(cache=True)
def _less(slots, a, b):
    return before(slots[a, KEY], slots[a, POS], slots[b, KEY], slots[b, POS])


@njit(cache=True)
def _sift_up(slots, heap, i):
    s = heap[i]
    ks, ps = slots[s, KEY], slots[s, POS]
    while i > 0:
        p = (i - 1) >> 1
        if not before(ks, ps, slots[heap[p], KEY], slots[heap[p], POS]):
            break
        heap[i] = heap[p]
        slots[heap[i], HEAP] = i
        i = p
    heap[i] = s
    slots[s, HEAP] = i


@njit(cache=True)
def heap_sift_down(slots, heap, ctr, i):
    """Restore order after slot heap[i]'s KEY grew."""
    n = ctr[HEAP_N]
    s = heap[i]
    ks, ps = slots[s, KEY], slots[s, POS]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        a, b = heap[c], heap[min(c + 1, n - 1)]
        if before(slots[b, KEY], slots[b, POS], slots[a, KEY], slots[a, POS]):
            c += 1
        if not before(slots[heap[c], KEY], slots[heap[c], POS], ks, ps):
            break
        heap[i] = heap[c]
        slots[heap[i], HEAP] = i
        i = c
    heap[i] = s
    slots[s, HEAP] = i


@njit(cache=True)
def heap_push(slots, heap, ctr, s):
    i = ctr[HEAP_N]
    ctr[HEAP_N] = i + 1
    heap[i] = s
    _sift_up(slots, heap, i)


@njit(cache=True)
def heap_pushpop(slots, heap, ctr, s):
    """Push s, then pop the minimum: one sift instead of two."""
    if ctr[HEAP_N] == 0 or not _less(slots, heap[0], s):
        return s
    top = heap[0]
    heap[0] = s
    heap_sift_down(slots, heap, ctr, 0)
    slots[top, HEAP] = -1
    return top


@njit(cache=True)
def heap_pop(slots, heap, ctr):
    s = heap[0]
    n = ctr[HEAP_N] - 1
    ctr[HEAP_N] = n
    if n > 0:
        heap[0] = heap[n]
        heap_sift_down(slots, heap, ctr, 0)
    slots[s, HEAP] = -1
    return s
