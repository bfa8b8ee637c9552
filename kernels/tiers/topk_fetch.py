"""Offload everything but the sinks and a recent window; fetch the top-k blocks per step (Quest, InfiniGen).

HBM holds the sink blocks and the `window` newest blocks. When a block leaves the window
it is offloaded to the first tier below HBM (if that is full, its least recently used
block moves one tier further down, and so on). Each step, the k offloaded blocks with the
most attention from this query (ties: the lower id) are fetched over the link from where
they live into a scratch buffer in HBM; when fewer than k offloaded blocks got any
attention, the lowest-id offloaded blocks fill the rest, as Quest always loads k pages.
A fetch is a read, not a move: the block stays where it lives, and its key records the
step (the lower tiers' LRU order). So attention reads, per step, the sinks + window from
HBM and k blocks from below: read tokens = sinks + window + k blocks (fewer only while
fewer blocks are offloaded).

Fetch rule "quest_bound": the caller passes Quest's own page choice per step (fetch[t]:
up to k block ids, −1 pads; backend/profile/quest_fetch.py computes it from the model's
keys and queries). The offloaded blocks of that set are fetched; the chosen blocks already
in HBM (sinks, window) are read there; nothing fills in, since Quest reads exactly its set.
"""
from numba import njit

from .state import FETCHED_TOKENS, below, make_room, move, open_block, tokens_in


@njit(cache=True, inline="always")
def on_open(s, c, pinned, cap, B, t, window):
    """Block c enters HBM; block c − window leaves the window and is offloaded."""
    tier, count, tok, heap, hsize, hpos, key, counters = s.tier, s.count, s.tok, s.heap, s.hsize, s.hpos, s.key, s.counters
    key[c] = t
    open_block(c, pinned, tier, count, heap, hsize, hpos, key)
    old = c - window
    if old >= 0 and not pinned[old] and tier[old] == 0:
        dst = below(0, cap)
        make_room(dst, cap, B, t, tier, count, tok, heap, hsize, hpos, key, counters)
        move(old, dst, B, t, tier, count, tok, heap, hsize, hpos, key, counters)


@njit(cache=True, inline="always")
def _better(mass, a, b):
    """a is fetched before b: more attention, then the lower id."""
    return mass[a] > mass[b] or (mass[a] == mass[b] and a < b)


@njit(cache=True, inline="always")
def _by_attention(t, n, B, k, tier, mass, sel, touched, stamp):
    """The k offloaded blocks with the most attention this step into sel (best first); returns how many."""
    m = 0
    for i in range(n if k > 0 else 0):  # top k of the touched offloaded blocks, kept sorted best first
        b = touched[i]
        if tier[b] <= 0 or mass[b] <= 0.0:
            continue
        if m == k and not _better(mass, b, sel[k - 1]):
            continue
        j = min(m, k - 1)
        while j > 0 and _better(mass, b, sel[j - 1]):
            sel[j] = sel[j - 1]
            j -= 1
        sel[j] = b
        m = min(m + 1, k)
    b = 0
    while m < k and b <= t // B:  # fewer than k got attention: the lowest-id offloaded blocks fill in
        if tier[b] > 0 and not (stamp[b] == t and mass[b] > 0.0):
            sel[m] = b
            m += 1
        b += 1
    return m


@njit(cache=True, inline="always")
def on_step(t, n, B, k, tier, mass, sel, touched, stamp, key, read_now, counters, tok, fetch):
    key[t // B] = t
    m = 0
    if fetch.shape[0] > 0:  # the given set (Quest's page choice): its offloaded blocks, no fill-in
        for i in range(fetch.shape[1]):
            f = fetch[t, i]
            if f >= 0 and tier[f] > 0:
                sel[m] = f
                m += 1
    else:
        m = _by_attention(t, n, B, k, tier, mass, sel, touched, stamp)
    for i in range(m):
        f = sel[i]
        got = tokens_in(f, B, t + 1)
        read_now[tier[f]] += got
        counters[FETCHED_TOKENS] += got
        key[f] = t
    read_now[0] += tok[0]
