"""Heat rule with hysteresis: blocks rise by attention received, decayed, and only when clearly hotter.

Heat: every block's heat is the attention it received, halved every `half_life` steps.
Row mass m becomes q = int(m · 2^24) (the loop does this) and is added as
q · 2^(t // half_life − base): heat is kept in a scale that doubles every half_life steps
instead of decaying every block every step (O(touched), not O(blocks), per step). The
scale is a float64 power of two, so q · scale is exact and only the sum rounds,
identically in the Python reference (same IEEE operations, same order): the two agree
bit for bit. Every RENORM epochs all heats are multiplied by 2^-RENORM (exact) and
those below 2^-700 (cold for hundreds of half-lives) become 0, so nothing overflows or
goes subnormal; the heaps are rebuilt then.

Placement: new blocks enter the top tier, pushing the coldest block of each full tier one
tier down. A block that got attention this step *beats* a tier above when its heat exceeds
the heat of that tier's coldest unpinned block plus `margin` (in heat units: rows of
attention, decayed; ties: the lower id is colder). It rises, in one move, past every tier
it beats — but only once it has beaten the tier right above it on every step it got
attention for at least `patience` steps (`since` holds the first step of that run; a step
it fails resets it). The margin is fixed point like the heat, margin_q · scale, so the
comparison is exact arithmetic plus one rounding, as in the reference. Margin 0 and
patience 0 is the rule without hysteresis, which thrashes: a block that gets a little
attention once jumps past colder ones and pushes them down.
"""
from numba import njit

from . import heap as hp
from .state import BASE_EPOCH, N_TIERS, above, make_room, open_block, rise

RENORM = 900               # epochs between heat renormalisations
RESCALE = 2.0 ** -RENORM
FLUSH = 2.0 ** -700        # heat below this after a renormalisation becomes 0: never subnormal
MAX_HALF_LIFE = 1 << 20    # heat < half_life·2^(24+RENORM+1) ≤ 2^945 < float64 max (2^1024)


@njit(cache=True, inline="always")
def heat_scale(s, t, half_life, n_opened, heat, counters):
    """2^(epochs since base) for step t, renormalising first when that would grow too large."""
    shift = t // half_life - counters[BASE_EPOCH]
    if shift >= RENORM:
        for b in range(n_opened):
            heat[b] *= RESCALE
            if heat[b] < FLUSH:
                heat[b] = 0.0
        hp.rebuild(s.heap, s.hsize, s.hpos, s.key, N_TIERS)
        counters[BASE_EPOCH] += RENORM
        shift -= RENORM
    return 2.0 ** shift


@njit(cache=True, inline="always")
def on_open(s, c, pinned, cap, B, t):
    tier, count, tok, heap, hsize, hpos, key, counters = s.tier, s.count, s.tok, s.heap, s.hsize, s.hpos, s.key, s.counters
    make_room(0, cap, B, t, tier, count, tok, heap, hsize, hpos, key, counters)
    open_block(c, pinned, tier, count, heap, hsize, hpos, key)


@njit(cache=True, inline="always")
def on_step(t, n, pinned, cap, B, margin_q, scale, patience, heat, since, touched, chain,
            tier, count, tok, heap, hsize, hpos, key, counters):
    """After the row's heat is added: blocks that got attention may rise (first-touch order)."""
    margin = margin_q * scale
    for i in range(n):
        b = touched[i]
        if tier[b] <= 0 or pinned[b]:
            continue
        top = tier[b]
        u = above(top, cap)
        while u >= 0 and hsize[u] > 0 and heat[b] > heat[hp.coldest(heap, hsize, hpos, key, u)] + margin:
            top = u
            u = above(u, cap)
        if top == tier[b]:
            since[b] = -1
            continue
        if since[b] < 0:
            since[b] = t
        if t - since[b] >= patience:
            rise(b, top, cap, B, t + 1, chain, tier, count, tok, heap, hsize, hpos, key, counters)
            since[b] = -1
