"""LRU offload with on-access reuse, as vLLM's swap space, LMCache and Dynamo's KV block manager do.

New blocks enter the top tier (HBM). When a tier is full, its least recently used
unpinned block moves one tier down (a cascade through the full tiers). A block is *used*
when the query's attention on it reaches the access threshold, and the block being
written is used every step. A block used in a lower tier is read from there (dense
attention reads every block where it lives, at that tier's bandwidth); it is brought
back up to the top tier only when it is used again within `reuse` steps of its previous
use — one access is served in place, a block that keeps being used comes back.
Key = the last step the block was used; ties: the lower id goes first.
"""
from numba import njit

from .state import make_room, open_block, rise


@njit(cache=True, inline="always")
def on_open(s, c, pinned, cap, B, t):
    tier, count, tok, heap, hsize, hpos, key, counters = s.tier, s.count, s.tok, s.heap, s.hsize, s.hpos, s.key, s.counters
    make_room(0, cap, B, t, tier, count, tok, heap, hsize, hpos, key, counters)
    key[c] = t
    open_block(c, pinned, tier, count, heap, hsize, hpos, key)


@njit(cache=True, inline="always")
def on_step(t, n, pinned, cap, B, tau, reuse, touched, mass, chain, tier, count, tok, heap, hsize, hpos, key, counters):
    key[t // B] = t  # the block being written
    m = 0  # blocks to bring up, in first-touch order; decided on their previous use, before any key changes
    for i in range(n):
        b = touched[i]
        if mass[b] < tau or pinned[b]:
            continue
        if tier[b] > 0 and t - key[b] <= reuse:
            touched[m], m = b, m + 1  # reuse the slots already read: m ≤ i
        key[b] = t
    for i in range(m):
        b = touched[i]
        if tier[b] > 0:
            rise(b, 0, cap, B, t + 1, chain, tier, count, tok, heap, hsize, hpos, key, counters)
