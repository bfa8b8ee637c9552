"""Plain-Python reference for kernels/tiers/: the same rules, written for clarity, not speed.

Tiers are sets; "coldest" is a min() over the set by (key, id), where the key is the heat
(heat rule) or the last step the block was used (LRU offload, top-k fetch). Heat and the
margin use the same arithmetic (the same IEEE float operations in the same order) as the
kernel (kernels/tiers/heat_hysteresis.py), so the two must agree exactly. Inputs that are
not rules (the local prefix-sum table, heavy-hitter positions) are passed in ready-made,
exactly as the kernel gets them.
"""
import numpy as np

N_TIERS = 4
SCALE = float(1 << 24)
RENORM = 900
FLUSH = 2.0 ** -700
MASK64 = (1 << 64) - 1


def splitmix(seed, t, i, r):
    z = (seed + (t * r + i + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def synthetic_row(t, B, sink_count, w_sink, w_local, w_hh, w_bg, bg_keys, seed, lcum, hh_pos):
    """{block: attention mass} for query t, in first-touch order (sinks, local, heavy hitters, background)."""
    row = {}

    def add(b, m):
        row[b] = row.get(b, 0.0) + m

    nt = t + 1
    ns = min(sink_count, nt)
    nh = sum(1 for p in hh_pos if p <= t)
    total = float(w_local)
    if ns > 0:
        total += w_sink
    if nh > 0:
        total += w_hh
    if bg_keys > 0:
        total += w_bg
    if ns > 0:
        per = (w_sink / total) / ns
        for b in range((ns - 1) // B + 1):
            add(b, min(B, ns - b * B) * per)
    window = min(len(lcum) - 1, nt)
    first = nt - window
    lf = (w_local / total) / float(lcum[window])
    for b in range(first // B, t // B + 1):
        lo, hi = max(b * B, first), min(b * B + B - 1, t)
        add(b, (float(lcum[t - lo + 1]) - float(lcum[t - hi])) * lf)
    if nh > 0:
        per = (w_hh / total) / nh
        for p in hh_pos[:nh]:
            add(int(p) // B, per)
    if bg_keys > 0:
        per = (w_bg / total) / bg_keys
        for i in range(bg_keys):
            add((splitmix(seed, t, i, bg_keys) % nt) // B, per)
    return row


def trace_row(t, B, trace):
    row = {}
    for b in range(t // B + 1):
        s = 0.0
        for j in range(b * B, min(b * B + B, t + 1)):
            s += float(trace[t, j])
        row[b] = s
    return row


class Reference:
    def __init__(self, n_tokens, B, capacity, pinned, policy, margin, patience, reuse, window, k):
        self.n_tokens, self.B, self.policy = n_tokens, B, policy
        self.margin_q, self.patience, self.reuse, self.window, self.k = int(margin * SCALE), patience, reuse, window, k
        self.cap = [int(c) for c in capacity]
        self.pinned = [bool(p) for p in pinned]
        n_blocks = len(self.pinned)
        self.members = [set() for _ in range(N_TIERS)]
        self.tier = [-1] * n_blocks
        self.heat = [0.0] * n_blocks
        self.last_used = [0] * n_blocks
        self.since = [-1] * n_blocks
        self.acc = [0] * n_blocks
        self.access = [0] * n_blocks
        self.hits = [0] * N_TIERS
        self.tokens = [0] * N_TIERS
        self.read_tokens = [0] * N_TIERS
        self.promotions = self.demotions = self.moved_tokens = self.fetched_tokens = 0
        self.base = 0

    # ---- shared ----
    def tokens_in(self, b, nt):
        return min(self.B, nt - b * self.B)

    def key(self, b):
        return self.heat[b] if self.policy == "heat" else self.last_used[b]

    def coldest(self, k):
        candidates = [b for b in self.members[k] if not self.pinned[b]]
        return min(candidates, key=lambda b: (self.key(b), b)) if candidates else None

    def below(self, k):
        """The nearest tier below k that holds blocks."""
        return next((u for u in range(k + 1, N_TIERS) if self.cap[u] > 0), N_TIERS)

    def above(self, k):
        """The nearest tier above k that holds blocks, or None."""
        return next((u for u in range(k - 1, -1, -1) if self.cap[u] > 0), None)

    def move(self, b, dst, nt):
        src = self.tier[b]
        self.members[src].remove(b)
        self.members[dst].add(b)
        self.tier[b] = dst
        n = self.tokens_in(b, nt)
        self.tokens[src] -= n
        self.tokens[dst] += n
        self.moved_tokens += n

    def make_room(self, top, nt):
        """If tier `top` is full, the coldest of each full tier from `top` down goes one tier down."""
        k = next(k for k in range(top, N_TIERS) if len(self.members[k]) < self.cap[k])
        dst = k
        for j in range(k - 1, top - 1, -1):  # bottom-up: each victim chosen before anything arrives in its tier
            if self.cap[j] == 0:
                continue
            self.move(self.coldest(j), dst, nt)
            self.demotions += 1
            dst = j

    def open_block(self, c):
        self.members[0].add(c)
        self.tier[c] = 0

    def rise(self, b, top, nt):
        """b moves up to `top`; the coldest of each full tier on the way down goes one tier down."""
        src = self.tier[b]
        self.members[src].remove(b)  # b's slot is the hole the chain ends in
        victims, u = [], top
        while u != src and len(self.members[u]) >= self.cap[u]:
            victims.append(self.coldest(u))
            u = self.below(u)
        self.members[src].add(b)
        for v in reversed(victims):
            self.move(v, self.below(self.tier[v]), nt)
            self.demotions += 1
        self.move(b, top, nt)
        self.promotions += 1

    # ---- the three policies ----
    def heat_step(self, t, row, scale):
        margin = self.margin_q * scale
        for b in row:
            if self.tier[b] <= 0 or self.pinned[b]:
                continue
            top, u = self.tier[b], self.above(self.tier[b])
            while u is not None and self.coldest(u) is not None and self.heat[b] > self.heat[self.coldest(u)] + margin:
                top, u = u, self.above(u)
            if top == self.tier[b]:
                self.since[b] = -1
                continue
            if self.since[b] < 0:
                self.since[b] = t
            if t - self.since[b] >= self.patience:
                self.rise(b, top, t + 1)
                self.since[b] = -1

    def lru_step(self, t, row, tau):
        self.last_used[t // self.B] = t
        bring_up = []
        for b, m in row.items():
            if m < tau or self.pinned[b]:
                continue
            if self.tier[b] > 0 and t - self.last_used[b] <= self.reuse:
                bring_up.append(b)
            self.last_used[b] = t
        for b in bring_up:
            if self.tier[b] > 0:
                self.rise(b, 0, t + 1)

    def topk_open(self, c, t):
        self.last_used[c] = t
        self.open_block(c)
        old = c - self.window
        if old >= 0 and not self.pinned[old] and self.tier[old] == 0:
            dst = self.below(0)
            self.make_room(dst, t)
            self.move(old, dst, t)

    def topk_step(self, t, row, given=None):
        c = t // self.B
        self.last_used[c] = t
        if given is not None:  # Quest's page choice: its offloaded blocks are fetched, nothing fills in
            chosen = [int(b) for b in given if b >= 0 and self.tier[int(b)] > 0]
        else:
            offloaded = [b for b, m in row.items() if self.tier[b] > 0 and m > 0]
            chosen = sorted(offloaded, key=lambda b: (-row[b], b))[: self.k]
            for b in range(c + 1):  # Quest loads k pages: the lowest-id offloaded blocks fill in
                if len(chosen) >= self.k:
                    break
                if self.tier[b] > 0 and not row.get(b, 0.0) > 0:
                    chosen.append(b)
        read = [0] * N_TIERS
        for f in chosen:
            got = self.tokens_in(f, t + 1)
            read[self.tier[f]] += got
            self.fetched_tokens += got
            self.last_used[f] = t
        read[0] += self.tokens[0]
        return read

    def step(self, t, row_of, tau, half_life, given=None):
        moved_before = self.moved_tokens
        scale = 1.0
        if self.policy == "heat":
            shift = t // half_life - self.base
            if shift >= RENORM:
                self.heat = [h * 2.0 ** -RENORM for h in self.heat]
                self.heat = [0.0 if h < FLUSH else h for h in self.heat]
                self.base += RENORM
                shift -= RENORM
            scale = 2.0 ** shift
        c = t // self.B
        if t % self.B == 0:
            if self.policy == "topk":
                self.topk_open(c, t)
            else:
                self.make_room(0, t)
                self.last_used[c] = t
                self.open_block(c)
        self.tokens[self.tier[c]] += 1
        row = row_of(t)
        for b, m in row.items():
            if m >= tau:
                self.access[b] += 1
                self.hits[self.tier[b]] += 1
            q = int(m * SCALE)
            if q > 0:
                self.acc[b] += q
                if self.policy == "heat":
                    self.heat[b] += q * scale
        if self.policy == "heat":
            self.heat_step(t, row, scale)
        elif self.policy == "lru":
            self.lru_step(t, row, tau)
        if self.policy == "topk":
            read = self.topk_step(t, row, given)
        else:
            read = list(self.tokens)  # dense attention reads every block where it lives
        for k in range(N_TIERS):
            self.read_tokens[k] += read[k]
        return read, self.moved_tokens - moved_before


def simulate(n_tokens, block_size, capacity, pinned, *, policy="lru", trace=None, sink_count=0, w_sink=0.0,
             w_local=1.0, w_hh=0.0, w_bg=0.0, bg_keys=0, seed=0, lcum=None, hh_pos=None, tau=0.01, half_life=256,
             margin=0.5, patience=32, reuse=16, window=16, k=16, fetch=None, snap_steps=(), buckets=512, steps=None) -> dict:
    """Same arguments and outputs as kernels.tiers.simulate (steps: stop early, for timing a slice)."""
    ref = Reference(n_tokens, block_size, capacity, pinned, policy, margin, patience, reuse, window, k)
    hh = [int(p) for p in (hh_pos if hh_pos is not None else [])]
    if trace is not None:
        trace = np.asarray(trace, np.float32)

        def row_of(t):
            return trace_row(t, block_size, trace)
    else:
        def row_of(t):
            return synthetic_row(t, block_size, sink_count, w_sink, w_local, w_hh, w_bg, bg_keys, int(seed), lcum, hh)
    buckets = max(1, min(buckets, n_tokens))
    tl_read = [[0] * N_TIERS for _ in range(buckets)]
    tl_moved = [0] * buckets
    snaps, snap_read, snap_moved = [], [], []
    wanted = list(snap_steps if snap_steps is not None else [])
    for t in range(n_tokens if steps is None else steps):
        read, moved = ref.step(t, row_of, tau, half_life, None if fetch is None else list(fetch[t]))
        bucket = t * buckets // n_tokens
        tl_read[bucket] = [a + r for a, r in zip(tl_read[bucket], read)]
        tl_moved[bucket] += moved
        for s in wanted:
            if s == t:
                snaps.append(list(ref.tier))
                snap_read.append(list(read))
                snap_moved.append(moved)
    return {"tier": ref.tier, "acc": ref.acc, "access": ref.access, "hits": ref.hits, "tokens": ref.tokens,
            "blocks": [len(m) for m in ref.members], "read_tokens": ref.read_tokens, "promotions": ref.promotions,
            "demotions": ref.demotions, "moved_tokens": ref.moved_tokens, "fetched_tokens": ref.fetched_tokens,
            "snapshots": snaps, "snap_read": snap_read, "snap_moved": snap_moved, "timeline_read": tl_read,
            "timeline_moved": tl_moved, "heat": ref.heat}
