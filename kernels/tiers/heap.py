"""Indexed binary min-heap per tier, keyed by (key, block id): the coldest block of a tier.

heap[k, i] = (block id, key). The key is an int64 that orders blocks: the bits of a
non-negative float64 heat (they order exactly like the float) or a step number (LRU).
Keys sit next to ids, so a sift reads one cache line per level instead of looking up
key[] at random. Keys only grow between rebuilds, so a key update leaves the heap
alone and the stored entry stale (a lower bound); coldest() refreshes stale roots
until the root is current, and then it is the true minimum. The functions index
heap[k, i, ...] directly (a heap[k] view is a reference-counted object per call) and
are inlined: moving blocks is the hot path of a full hierarchy.
"""
from numba import njit


@njit(cache=True, inline="always")
def colder(ka, a, kb, b):
    return ka < kb or (ka == kb and a < b)


@njit(cache=True, inline="always")
def sift_up(heap, k, hpos, i):
    b, kb = heap[k, i, 0], heap[k, i, 1]
    while i > 0:
        p = (i - 1) >> 1
        if not colder(kb, b, heap[k, p, 1], heap[k, p, 0]):
            break
        heap[k, i, 0], heap[k, i, 1] = heap[k, p, 0], heap[k, p, 1]
        hpos[heap[k, i, 0]] = i
        i = p
    heap[k, i, 0], heap[k, i, 1] = b, kb
    hpos[b] = i


@njit(cache=True, inline="always")
def sift_down(heap, k, n, hpos, i):
    b, kb = heap[k, i, 0], heap[k, i, 1]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and colder(heap[k, c + 1, 1], heap[k, c + 1, 0], heap[k, c, 1], heap[k, c, 0]):
            c += 1
        if not colder(heap[k, c, 1], heap[k, c, 0], kb, b):
            break
        heap[k, i, 0], heap[k, i, 1] = heap[k, c, 0], heap[k, c, 1]
        hpos[heap[k, i, 0]] = i
        i = c
    heap[k, i, 0], heap[k, i, 1] = b, kb
    hpos[b] = i


@njit(cache=True, inline="always")
def push(heap, hsize, hpos, key, k, b):
    i = hsize[k]
    hsize[k] += 1
    heap[k, i, 0], heap[k, i, 1] = b, key[b]
    sift_up(heap, k, hpos, i)


@njit(cache=True, inline="always")
def remove(heap, hsize, hpos, k, b):
    i = hpos[b]
    hpos[b] = -1
    hsize[k] -= 1
    last = hsize[k]
    if i < last:  # the last entry fills the hole, then finds its place
        moved = heap[k, last, 0]
        heap[k, i, 0], heap[k, i, 1] = moved, heap[k, last, 1]
        hpos[moved] = i
        sift_up(heap, k, hpos, i)
        sift_down(heap, k, hsize[k], hpos, hpos[moved])


@njit(cache=True, inline="always")
def coldest(heap, hsize, hpos, key, k):
    """The coldest block of tier k: refresh the root until its stored key is current."""
    while True:
        b = heap[k, 0, 0]
        if heap[k, 0, 1] == key[b]:
            return b
        heap[k, 0, 1] = key[b]
        sift_down(heap, k, hsize[k], hpos, 0)


@njit(cache=True)
def rebuild(heap, hsize, hpos, key, n_tiers):
    """Every stored key made current, every heap re-heapified (after keys shrank)."""
    for k in range(n_tiers):
        for i in range(hsize[k]):
            heap[k, i, 1] = key[heap[k, i, 0]]
        for i in range(hsize[k] // 2 - 1, -1, -1):
            sift_down(heap, k, hsize[k], hpos, i)
