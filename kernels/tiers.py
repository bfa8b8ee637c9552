"""Tier simulator: where the KV blocks of a sequence live across four memory tiers, step by step.

The model (../shared/DESIGN.md, "Cache profile"): KV memory is paged in blocks of B
tokens. Tiers are ordered top to bottom (the service uses GPU HBM, GPU L2, system
RAM, disk); tier 0 is the top. Each decode step t:

1. If t opens a new block (t % B == 0), the block goes to the top tier. When that is
   full, the coldest unpinned block of each full tier moves down one tier, starting
   from the first tier with room (a cascade). Tiers of capacity 0 are skipped.
2. Token t is appended to the newest block.
3. The query at t puts attention on blocks (one row of the trace, summed per block).
   A block whose row mass is ≥ the access threshold is *accessed*: a hit in its tier.
4. Heat: every block's heat is the attention it received, halved every `half_life`
   steps (exponential decay). Row mass m becomes q = int(m · 2^24) and is added as
   q · 2^(t // half_life − base): heat is kept in a scale that doubles every half_life
   steps instead of decaying every block every step (O(touched), not O(blocks), per
   step). The scale is a float64 power of two, so q · scale is exact and only the
   sum rounds, identically in the Python reference (same IEEE operations, same
   order): the two agree bit for bit. Every RENORM epochs all heats are multiplied by
   2^-RENORM (exact) and those below 2^-700 (cold for hundreds of half-lives) become
   0, so nothing overflows or goes subnormal; the heaps are rebuilt then.
5. Promotion: each block that got attention this step, in the order the row first
   touched it, rises past every tier above whose coldest unpinned block is strictly
   colder than it, in one move (one promotion); each coldest block it passes moves
   one tier down (one demotion each). "Coldest" = lowest heat, ties: the lower id.
   Bytes moved counts every block move once.
6. Sink blocks are pinned to the top tier: never demoted, never in a heap.

Coldest-block queries use one indexed binary min-heap per tier keyed by (heat, id).
Heat only grows between renormalisations, so a heat update leaves the heap alone and
its entry stale (a lower bound); a query refreshes stale roots until the root is
current (see _coldest). Renormalisation recomputes every key and rebuilds the heaps.

Rows come either from a model trace (an n×n float32 attention matrix, rows summed
per block in key order) or from a synthetic generator evaluated per block, never per
token: sinks (the first `sink_count` tokens), a local window with geometric decay
(closed form via a prefix-sum table), heavy hitters (fixed positions) and a sparse
background (`bg_keys` random earlier keys per step, from a counter-based splitmix64
so any chunk can be replayed). Spreading the background over every key would touch
every block every step while no single block would ever reach the access threshold.

Only numpy and numba here: arrays in, arrays and numbers out.
"""
import numpy as np
from numba import njit

N_TIERS = 4
SCALE_BITS = 24            # row mass fixed point: 1.0 attention = 2^24
SCALE = float(1 << SCALE_BITS)
RENORM = 900               # epochs between heat renormalisations
RESCALE = 2.0 ** -RENORM
FLUSH = 2.0 ** -700        # heat below this after a renormalisation becomes 0: never subnormal
MAX_HALF_LIFE = 1 << 20    # heat < half_life·2^(24+RENORM+1) ≤ 2^945 < float64 max (2^1024)
MAX_WINDOW = 4096
# counters[...] slots
PROMOTIONS, DEMOTIONS, MOVED_TOKENS, BASE_EPOCH, SNAP_NEXT = 0, 1, 2, 3, 4
UNDERFLOW_LOG = -690.0     # e^-690 ≈ 1e-300: weights below this are set to 0, never subnormal

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def local_table(decay: float, window: int) -> np.ndarray:
    """Prefix sums of the local weights decay^d, d = 0..window-1: lcum[d] = Σ_{d'<d} decay^d'."""
    d = np.arange(window, dtype=np.float64)
    log_w = d * np.log(decay)
    w = np.where(log_w < UNDERFLOW_LOG, 0.0, np.exp(np.maximum(log_w, UNDERFLOW_LOG)))
    return np.concatenate(([0.0], np.cumsum(w)))


def heavy_positions(n_tokens: int, count: int, first: int, seed: int) -> np.ndarray:
    """`count` distinct heavy-hitter token positions in [first, n_tokens), sorted."""
    span = max(0, n_tokens - first)
    count = min(count, span)
    rng = np.random.default_rng(seed)
    return np.sort(first + rng.choice(span, size=count, replace=False)).astype(np.int64)


# ---- indexed min-heap per tier, keyed by (heat, block id) ----
# heap[k, i] = (block id, key): key = the bits of its float heat read as int64, which
# orders exactly like the float for heat ≥ 0. Keys sit next to ids, so a sift reads one cache
# line per level instead of looking up heat[] at random. The functions index
# heap[k, i, ...] directly (a heap[k] view is a reference-counted object per call)
# and are inlined: moving blocks is the hot path of a full hierarchy.

@njit(cache=True, inline="always")
def _colder(ka, a, kb, b):
    return ka < kb or (ka == kb and a < b)


@njit(cache=True, inline="always")
def _sift_up(heap, k, hpos, i):
    b, kb = heap[k, i, 0], heap[k, i, 1]
    while i > 0:
        p = (i - 1) >> 1
        if not _colder(kb, b, heap[k, p, 1], heap[k, p, 0]):
            break
        heap[k, i, 0], heap[k, i, 1] = heap[k, p, 0], heap[k, p, 1]
        hpos[heap[k, i, 0]] = i
        i = p
    heap[k, i, 0], heap[k, i, 1] = b, kb
    hpos[b] = i


@njit(cache=True, inline="always")
def _sift_down(heap, k, n, hpos, i):
    b, kb = heap[k, i, 0], heap[k, i, 1]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _colder(heap[k, c + 1, 1], heap[k, c + 1, 0], heap[k, c, 1], heap[k, c, 0]):
            c += 1
        if not _colder(heap[k, c, 1], heap[k, c, 0], kb, b):
            break
        heap[k, i, 0], heap[k, i, 1] = heap[k, c, 0], heap[k, c, 1]
        hpos[heap[k, i, 0]] = i
        i = c
    heap[k, i, 0], heap[k, i, 1] = b, kb
    hpos[b] = i


@njit(cache=True, inline="always")
def _heap_push(heap, hsize, hpos, key, k, b):
    i = hsize[k]
    hsize[k] += 1
    heap[k, i, 0], heap[k, i, 1] = b, key[b]
    _sift_up(heap, k, hpos, i)


@njit(cache=True, inline="always")
def _heap_remove(heap, hsize, hpos, k, b):
    i = hpos[b]
    hpos[b] = -1
    hsize[k] -= 1
    last = hsize[k]
    if i < last:  # the last entry fills the hole, then finds its place
        moved = heap[k, last, 0]
        heap[k, i, 0], heap[k, i, 1] = moved, heap[k, last, 1]
        hpos[moved] = i
        _sift_up(heap, k, hpos, i)
        _sift_down(heap, k, hsize[k], hpos, hpos[moved])


@njit(cache=True, inline="always")
def _coldest(heap, hsize, hpos, key, k):
    """The coldest block of tier k. Stored keys may be stale: heat only grows between
    renormalisations, so a stale key is a lower bound and the heap is still a valid
    min-heap on what it stores. Refresh the root until it is current: then it is the
    true minimum. (Updating the heap on every heat change cost a sift per touch.)"""
    while True:
        b = heap[k, 0, 0]
        if heap[k, 0, 1] == key[b]:
            return b
        heap[k, 0, 1] = key[b]
        _sift_down(heap, k, hsize[k], hpos, 0)


# ---- moving blocks ----

@njit(cache=True)
def _tokens_in(b, B, nt):
    return min(B, nt - b * B)


@njit(cache=True, inline="always")
def _move(b, dst, B, nt, tier, key, heap, hsize, hpos, count, tok, counters):
    src = tier[b]
    n = _tokens_in(b, B, nt)
    _heap_remove(heap, hsize, hpos, src, b)
    count[src] -= 1
    tok[src] -= n
    tier[b] = dst
    count[dst] += 1
    tok[dst] += n
    _heap_push(heap, hsize, hpos, key, dst, b)
    counters[MOVED_TOKENS] += n


@njit(cache=True, inline="always")
def _place(b, k, slot, B, nt, tier, key, heap, hsize, hpos, tok, counters):
    """Put block b into heap slot `slot` of tier k (a slot someone just left) and let it find its place."""
    n = _tokens_in(b, B, nt)
    tok[tier[b]] -= n
    tok[k] += n
    counters[MOVED_TOKENS] += n
    tier[b] = k
    heap[k, slot, 0], heap[k, slot, 1] = b, key[b]
    hpos[b] = slot
    _sift_up(heap, k, hpos, slot)
    _sift_down(heap, k, hsize[k], hpos, hpos[b])


@njit(cache=True)
def _open_block(c, B, nt, pinned, cap, tier, key, heap, hsize, hpos, count, tok, counters):
    """Place new block c in the top tier, cascading the coldest blocks down first if it is full."""
    k = 0
    while k < N_TIERS and count[k] >= cap[k]:
        k += 1
    if k == N_TIERS:
        raise ValueError("tiers are full: total capacity is smaller than the sequence")
    dst = k
    for j in range(k - 1, -1, -1):
        if cap[j] == 0:
            continue
        if hsize[j] == 0:
            raise ValueError("top tier holds only pinned sink blocks")
        _move(_coldest(heap, hsize, hpos, key, j), dst, B, nt, tier, key, heap, hsize, hpos, count, tok, counters)
        counters[DEMOTIONS] += 1
        dst = j
    tier[c] = 0
    count[0] += 1
    if not pinned:
        _heap_push(heap, hsize, hpos, key, 0, c)


@njit(cache=True, inline="always")
def _above(k, cap):
    u = k - 1
    while u >= 0 and cap[u] == 0:
        u -= 1
    return u


@njit(cache=True)
def _promote(b, B, nt, cap, tier, key, heap, hsize, hpos, tok, counters):
    """Block b rises past every tier above whose coldest block is colder than b; each of those
    coldest blocks moves one tier down, into the slot freed below it. Tiers fill top-down and
    never shrink, so every tier above a block is full: a promotion is always such a rotation."""
    k = tier[b]
    top = k
    u = _above(k, cap)
    while u >= 0 and hsize[u] > 0 and key[b] > key[_coldest(heap, hsize, hpos, key, u)]:
        top = u
        u = _above(u, cap)
    if top == k:
        return
    hole_tier, hole = k, hpos[b]
    u = _above(k, cap)
    while True:  # the roots on the path are current: the climb just refreshed them
        _place(heap[u, 0, 0], hole_tier, hole, B, nt, tier, key, heap, hsize, hpos, tok, counters)
        counters[DEMOTIONS] += 1
        hole_tier, hole = u, 0
        if u == top:
            break
        u = _above(u, cap)
    _place(b, top, 0, B, nt, tier, key, heap, hsize, hpos, tok, counters)
    counters[PROMOTIONS] += 1


# ---- rows: the attention of query t, per block ----
# A row generator appends (block, mass) pairs to cb/cm, in order; run_steps merges
# them per block. Appending is written out inline: calling a helper (with its
# arrays) per pair measured slower than all the arithmetic of the pair.

@njit(cache=True)
def splitmix(seed, t, i, r):
    """Counter-based random 64-bit value for background key i of step t (r keys per step)."""
    z = np.uint64(seed) + (np.uint64(t) * np.uint64(r) + np.uint64(i) + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _synthetic_row(t, B, sink_count, w_sink, w_local, w_hh, w_bg, bg_keys, seed, lcum, hh_pos, cb, cm):
    nt = t + 1
    ns = min(sink_count, nt)
    nh = np.searchsorted(hh_pos, t, side="right")
    total = w_local
    if ns > 0:
        total += w_sink
    if nh > 0:
        total += w_hh
    if bg_keys > 0:
        total += w_bg
    n = 0
    if ns > 0:  # sinks: the first sink_count tokens share the sink mass
        per = (w_sink / total) / ns
        for b in range((ns - 1) // B + 1):
            cb[n], cm[n] = b, min(B, ns - b * B) * per
            n += 1
    window = min(lcum.shape[0] - 1, nt)  # local: geometric in distance, closed form per block
    first = nt - window
    lf = (w_local / total) / lcum[window]
    for b in range(first // B, t // B + 1):
        lo = max(b * B, first)
        hi = min(b * B + B - 1, t)
        cb[n], cm[n] = b, (lcum[t - lo + 1] - lcum[t - hi]) * lf
        n += 1
    if nh > 0:  # heavy hitters: fixed positions share the heavy mass once they exist
        per = (w_hh / total) / nh
        for i in range(nh):
            cb[n], cm[n] = hh_pos[i] // B, per
            n += 1
    if bg_keys > 0:  # background: a few random earlier keys
        per = (w_bg / total) / bg_keys
        for i in range(bg_keys):
            j = np.int64(splitmix(seed, t, i, bg_keys) % np.uint64(nt))
            cb[n], cm[n] = j // B, per
            n += 1
    return n


@njit(cache=True)
def _trace_row(t, B, trace, cb, cm):
    n = 0
    for b in range(t // B + 1):
        s = 0.0
        for j in range(b * B, min(b * B + B, t + 1)):
            s += np.float64(trace[t, j])
        cb[n], cm[n] = b, s
        n += 1
    return n


# ---- the step loop ----

@njit(cache=True, nogil=True)  # nogil: the UI thread keeps answering while a job runs a chunk
def run_steps(t0, t1, n_tokens, B, pinned, cap, trace, sink_count, w_sink, w_local, w_hh, w_bg, bg_keys, seed,
              lcum, hh_pos, tau, half_life, snap_steps, state):
    """Advance the simulation over steps t0..t1-1; `state` (see new_state) is updated in place."""
    (tier, heat, key, acc, access, heap, hsize, hpos, count, tok, hits, tok_steps, counters,
     mass, stamp, touched, cb, cm, snaps) = state
    use_trace = trace.shape[0] > 0
    for t in range(t0, t1):
        shift = t // half_life - counters[BASE_EPOCH]
        if shift >= RENORM:  # keep heat in range: scale all by 2^-RENORM, flush the long-cold to 0, rebuild heaps
            for b in range((t + B - 1) // B):
                heat[b] *= RESCALE
                if heat[b] < FLUSH:
                    heat[b] = 0.0
            for k in range(N_TIERS):
                for i in range(hsize[k]):
                    heap[k, i, 1] = key[heap[k, i, 0]]
                for i in range(hsize[k] // 2 - 1, -1, -1):
                    _sift_down(heap, k, hsize[k], hpos, i)
            counters[BASE_EPOCH] += RENORM
            shift -= RENORM
        scale = 2.0 ** shift
        c = t // B
        if t % B == 0:
            _open_block(c, B, t, pinned[c], cap, tier, key, heap, hsize, hpos, count, tok, counters)
        tok[tier[c]] += 1
        if use_trace:
            n_pairs = _trace_row(t, B, trace, cb, cm)
        else:
            n_pairs = _synthetic_row(t, B, sink_count, w_sink, w_local, w_hh, w_bg, bg_keys, seed, lcum, hh_pos, cb, cm)
        n = 0  # merge: mass per block, blocks listed in first-touch order
        for i in range(n_pairs):
            b = cb[i]
            if stamp[b] != t:
                stamp[b] = t
                mass[b] = 0.0
                touched[n] = b
                n += 1
            mass[b] += cm[i]
        for i in range(n):
            b = touched[i]
            m = mass[b]
            if m >= tau:
                access[b] += 1
                hits[tier[b]] += 1
            q = np.int64(m * SCALE)
            if q > 0:
                acc[b] += q
                heat[b] += q * scale  # its heap entry goes stale: see _coldest
        for i in range(n):
            b = touched[i]
            if tier[b] > 0 and not pinned[b]:  # a top-tier block cannot rise: skip the call
                _promote(b, B, t + 1, cap, tier, key, heap, hsize, hpos, tok, counters)
        for k in range(N_TIERS):
            tok_steps[k] += tok[k]
        while counters[SNAP_NEXT] < snap_steps.shape[0] and snap_steps[counters[SNAP_NEXT]] == t:
            snaps[counters[SNAP_NEXT], :] = tier
            counters[SNAP_NEXT] += 1


def new_state(n_blocks: int, n_snapshots: int, max_pairs: int):
    """Zeroed arrays for run_steps; blocks not yet opened have tier -1."""
    heat = np.zeros(n_blocks, np.float64)
    return (
        np.full(n_blocks, -1, np.int8),          # tier
        heat,                                    # heat (float64, scaled, see module doc)
        heat.view(np.int64),                     # the same memory read as int64: the heap key
        np.zeros(n_blocks, np.int64),            # acc: attention received, fixed point, no decay
        np.zeros(n_blocks, np.int32),            # access count
        np.zeros((N_TIERS, n_blocks, 2), np.int64),  # heap per tier: (block id, key)
        np.zeros(N_TIERS, np.int64),             # heap sizes
        np.full(n_blocks, -1, np.int64),         # heap position (-1: pinned or not opened)
        np.zeros(N_TIERS, np.int64),             # blocks per tier
        np.zeros(N_TIERS, np.int64),             # tokens per tier
        np.zeros(N_TIERS, np.int64),             # hits per tier
        np.zeros(N_TIERS, np.int64),             # Σ over steps of tokens resident per tier
        np.zeros(5, np.int64),                   # counters: promotions, demotions, moved tokens, base, next snapshot
        np.zeros(n_blocks, np.float64),          # scratch: row mass per block
        np.full(n_blocks, -1, np.int64),         # scratch: step that last touched the block
        np.zeros(n_blocks, np.int64),            # scratch: touched blocks, in first-touch order
        np.zeros(max_pairs, np.int64),           # scratch: row pairs, block
        np.zeros(max_pairs, np.float64),         # scratch: row pairs, mass
        np.full((n_snapshots, n_blocks), -1, np.int8),  # tier of every block at each snapshot step
    )


def simulate(n_tokens, block_size, capacity, pinned, *, trace=None, sink_count=0, w_sink=0.0, w_local=1.0,
             w_hh=0.0, w_bg=0.0, bg_keys=0, seed=0, lcum=None, hh_pos=None, tau=0.01, half_life=256,
             snap_steps=None, chunk_steps=1 << 16, on_chunk=None) -> dict:
    """Run all n_tokens steps in chunks; on_chunk(steps_done) is called between chunks (it may raise to stop).

    capacity: blocks per tier (int64[4]); pinned: bool per block (sink blocks).
    trace: float32 [n, n] attention rows, or None for the synthetic generator.
    snap_steps: ascending steps after which the tier of every block is recorded.
    """
    B = int(block_size)
    n_blocks = -(-int(n_tokens) // B)
    cap = np.asarray(capacity, np.int64)
    pinned = np.asarray(pinned, np.bool_)
    if pinned.shape != (n_blocks,) or cap.shape != (N_TIERS,):
        raise ValueError("pinned must have one entry per block and capacity one per tier")
    if cap.sum() < n_blocks or (n_blocks > pinned.sum() and cap[0] <= pinned.sum()) or cap[0] < pinned.sum():
        raise ValueError("not enough room: the top tier must hold every sink block plus one, all tiers every block")
    if not 1 <= half_life <= MAX_HALF_LIFE:
        raise ValueError("half_life out of range")
    trace = np.zeros((0, 0), np.float32) if trace is None else np.ascontiguousarray(trace, np.float32)
    if trace.size and ((trace < 0).any() or (trace.sum(axis=1, dtype=np.float64) > 1.001).any()):
        raise ValueError("trace rows must be attention: non-negative, summing to at most 1")  # keeps heat bounded
    lcum = local_table(0.9, 1) if lcum is None else np.asarray(lcum, np.float64)
    hh_pos = np.zeros(0, np.int64) if hh_pos is None else np.asarray(hh_pos, np.int64)
    snap_steps = np.zeros(0, np.int64) if snap_steps is None else np.asarray(snap_steps, np.int64)
    max_pairs = n_blocks + len(lcum) + len(hh_pos) + int(bg_keys) + 2  # ≥ sink + window blocks + hh + bg
    state = new_state(n_blocks, len(snap_steps), max_pairs)
    for t0 in range(0, int(n_tokens), int(chunk_steps)):
        t1 = min(int(n_tokens), t0 + int(chunk_steps))
        run_steps(t0, t1, int(n_tokens), B, pinned, cap, trace, int(sink_count), float(w_sink), float(w_local),
                  float(w_hh), float(w_bg), int(bg_keys), np.uint64(seed), lcum, hh_pos, float(tau),
                  int(half_life), snap_steps, state)
        if on_chunk is not None:
            on_chunk(t1)
    tier, heat, _, acc, access, _, _, _, count, tok, hits, tok_steps, counters = state[:13]
    return {"tier": tier, "acc": acc, "access": access, "blocks": count.copy(), "tokens": tok.copy(),
            "hits": hits.copy(), "token_steps": tok_steps.copy(), "promotions": int(counters[PROMOTIONS]),
            "demotions": int(counters[DEMOTIONS]), "moved_tokens": int(counters[MOVED_TOKENS]),
            "snapshots": state[-1], "snap_steps": snap_steps, "heat": heat}
