"""What every placement policy shares: the arrays of a run and the ways a block moves.

Tiers are ordered top to bottom (the service uses GPU HBM, GPU L2, system RAM, disk);
tier 0 is the top; a tier of capacity 0 is skipped. Every unpinned block sits in its
tier's heap (heap.py) under the policy's key (heat bits, or the last step it was used),
so "the coldest block of a tier" is one query. Sink blocks are pinned to the top tier:
never moved, never in a heap. Moving a block counts its tokens in MOVED_TOKENS once.
"""
from collections import namedtuple

import numpy as np
from numba import njit

from . import heap as hp

N_TIERS = 4
# counters[...] slots
PROMOTIONS, DEMOTIONS, MOVED_TOKENS, BASE_EPOCH, SNAP_NEXT, FETCHED_TOKENS = range(6)

State = namedtuple("State", [
    "tier",       # int8 per block: its tier, -1 before the block opens
    "heat",       # float64 per block (heat rule only; see heat_hysteresis.py)
    "key",        # int64 per block: the heap key (heat's bits, or the last step the block was used)
    "since",      # int64 per block: heat rule, first step of the current run beating the tier above (-1: none)
    "acc",        # int64 per block: attention received, fixed point, no decay (for the map's heavy hitters)
    "access",     # int32 per block: steps on which the block was accessed (row mass ≥ τ)
    "heap", "hsize", "hpos",  # per-tier heaps (heap.py)
    "count",      # blocks per tier
    "tok",        # tokens per tier
    "hits",       # accesses per tier
    "read_sum",   # Σ over steps of the tokens attention read from each tier
    "read_now",   # tokens read from each tier at this step
    "counters",   # PROMOTIONS, DEMOTIONS, MOVED_TOKENS, BASE_EPOCH, SNAP_NEXT, FETCHED_TOKENS
    "mass", "stamp", "touched", "cb", "cm", "sel", "chain",  # scratch
    "snaps",      # int8 [snapshots, blocks]: the tier of every block at each snapshot step
    "snap_read",  # int64 [snapshots, tiers]: tokens read per tier at that step
    "snap_moved",  # int64 [snapshots]: tokens moved at that step
    "tl_read",    # int64 [buckets, tiers]: tokens read per tier, summed over the steps of a bucket
    "tl_moved",   # int64 [buckets]: tokens moved, summed over the steps of a bucket
])


def new_state(n_blocks: int, n_snapshots: int, max_pairs: int, n_buckets: int, key_is_heat: bool, k_fetch: int = 0):
    """Zeroed arrays for a run. For the heat rule the heap key is the heat's own memory read as int64."""
    heat = np.zeros(n_blocks, np.float64)
    return State(
        tier=np.full(n_blocks, -1, np.int8), heat=heat,
        key=heat.view(np.int64) if key_is_heat else np.zeros(n_blocks, np.int64),
        since=np.full(n_blocks, -1, np.int64), acc=np.zeros(n_blocks, np.int64), access=np.zeros(n_blocks, np.int32),
        heap=np.zeros((N_TIERS, n_blocks, 2), np.int64), hsize=np.zeros(N_TIERS, np.int64),
        hpos=np.full(n_blocks, -1, np.int64), count=np.zeros(N_TIERS, np.int64), tok=np.zeros(N_TIERS, np.int64),
        hits=np.zeros(N_TIERS, np.int64), read_sum=np.zeros(N_TIERS, np.int64), read_now=np.zeros(N_TIERS, np.int64),
        counters=np.zeros(6, np.int64), mass=np.zeros(n_blocks, np.float64), stamp=np.full(n_blocks, -1, np.int64),
        touched=np.zeros(n_blocks, np.int64), cb=np.zeros(max_pairs, np.int64), cm=np.zeros(max_pairs, np.float64),
        sel=np.zeros(max(1, k_fetch), np.int64), chain=np.zeros(N_TIERS, np.int64),
        snaps=np.full((n_snapshots, n_blocks), -1, np.int8), snap_read=np.zeros((n_snapshots, N_TIERS), np.int64),
        snap_moved=np.zeros(n_snapshots, np.int64), tl_read=np.zeros((n_buckets, N_TIERS), np.int64),
        tl_moved=np.zeros(n_buckets, np.int64))


@njit(cache=True, inline="always")
def tokens_in(b, B, nt):
    """Tokens block b holds when nt tokens exist."""
    return min(B, nt - b * B)


@njit(cache=True, inline="always")
def above(k, cap):
    """The nearest tier above k that holds blocks, or -1."""
    u = k - 1
    while u >= 0 and cap[u] == 0:
        u -= 1
    return u


@njit(cache=True, inline="always")
def below(k, cap):
    """The nearest tier below k that holds blocks, or N_TIERS."""
    u = k + 1
    while u < N_TIERS and cap[u] == 0:
        u += 1
    return u


# The movers take the arrays, not the State: reading a field of a namedtuple inside a
# compiled loop takes and drops a reference (two atomic operations) every time, which
# measured 80% of the run. So callers unpack the State once per call and pass arrays.
# M = the arrays every move touches, in this order:
#     tier, count, tok, heap, hsize, hpos, key, counters

@njit(cache=True, inline="always")
def move(b, dst, B, nt, tier, count, tok, heap, hsize, hpos, key, counters):
    """Unpinned block b from its tier to tier dst."""
    src = tier[b]
    n = tokens_in(b, B, nt)
    hp.remove(heap, hsize, hpos, src, b)
    count[src] -= 1
    tok[src] -= n
    tier[b] = dst
    count[dst] += 1
    tok[dst] += n
    hp.push(heap, hsize, hpos, key, dst, b)
    counters[MOVED_TOKENS] += n


@njit(cache=True, inline="always")
def make_room(top, cap, B, nt, tier, count, tok, heap, hsize, hpos, key, counters):
    """Free a slot in tier `top`: if it is full, the coldest unpinned block of each full tier from
    `top` down moves one tier down, into the first tier with room (a cascade, bottom-up, so every
    victim is chosen before anything arrives in its tier)."""
    k = top
    while k < N_TIERS and count[k] >= cap[k]:
        k += 1
    if k == N_TIERS:
        raise ValueError("tiers are full: total capacity is smaller than the sequence")
    dst = k
    for j in range(k - 1, top - 1, -1):
        if cap[j] == 0:
            continue
        if hsize[j] == 0:
            raise ValueError("a full tier holds only pinned sink blocks")
        move(hp.coldest(heap, hsize, hpos, key, j), dst, B, nt, tier, count, tok, heap, hsize, hpos, key, counters)
        counters[DEMOTIONS] += 1
        dst = j


@njit(cache=True, inline="always")
def open_block(c, pinned, tier, count, heap, hsize, hpos, key):
    """New block c enters the top tier (the caller made room and set its key)."""
    tier[c] = 0
    count[0] += 1
    if not pinned[c]:
        hp.push(heap, hsize, hpos, key, 0, c)


@njit(cache=True, inline="always")
def rise(b, top, cap, B, nt, chain, tier, count, tok, heap, hsize, hpos, key, counters):
    """Block b moves up to tier `top` in one move (one promotion). If `top` is full its coldest
    block goes one tier down, and so on down to the first tier with room — b's own tier has the
    slot b left. Victims are all chosen first, then moved bottom-up: none is chosen twice."""
    src = tier[b]
    n = tokens_in(b, B, nt)
    hp.remove(heap, hsize, hpos, src, b)
    count[src] -= 1
    tok[src] -= n
    m = 0
    u = top
    while u != src and count[u] >= cap[u]:
        chain[m] = hp.coldest(heap, hsize, hpos, key, u)
        m += 1
        u = below(u, cap)
    for i in range(m - 1, -1, -1):
        v = chain[i]
        move(v, below(tier[v], cap), B, nt, tier, count, tok, heap, hsize, hpos, key, counters)
        counters[DEMOTIONS] += 1
    tier[b] = top
    count[top] += 1
    tok[top] += n
    hp.push(heap, hsize, hpos, key, top, b)
    counters[MOVED_TOKENS] += n
    counters[PROMOTIONS] += 1
