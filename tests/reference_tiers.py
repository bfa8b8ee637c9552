"""Plain-Python reference for kernels/tiers.py: the same rules, written for clarity, not speed.

Tiers are sets; "coldest" is a min() over the set. Heat uses the same arithmetic
(the same IEEE float operations in the same order) as the kernel (see the kernel's module docstring), so the two must agree
exactly. Inputs that are not rules (the local prefix-sum table, heavy-hitter
positions) are passed in ready-made, exactly as the kernel gets them.
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
    def __init__(self, n_tokens, B, capacity, pinned):
        self.n_tokens, self.B = n_tokens, B
        self.cap = [int(c) for c in capacity]
        self.pinned = [bool(p) for p in pinned]
        n_blocks = len(self.pinned)
        self.members = [set() for _ in range(N_TIERS)]
        self.tier = [-1] * n_blocks
        self.heat = [0.0] * n_blocks
        self.acc = [0] * n_blocks
        self.access = [0] * n_blocks
        self.hits = [0] * N_TIERS
        self.tokens = [0] * N_TIERS
        self.token_steps = [0] * N_TIERS
        self.promotions = self.demotions = self.moved_tokens = 0
        self.base = 0

    def tokens_in(self, b, nt):
        return min(self.B, nt - b * self.B)

    def coldest(self, k):
        candidates = [b for b in self.members[k] if not self.pinned[b]]
        return min(candidates, key=lambda b: (self.heat[b], b)) if candidates else None

    def move(self, b, dst, nt):
        src = self.tier[b]
        self.members[src].remove(b)
        self.members[dst].add(b)
        self.tier[b] = dst
        n = self.tokens_in(b, nt)
        self.tokens[src] -= n
        self.tokens[dst] += n
        self.moved_tokens += n

    def open_block(self, c, nt):
        k = next(k for k in range(N_TIERS) if len(self.members[k]) < self.cap[k])
        dst = k
        for j in range(k - 1, -1, -1):  # cascade: the coldest of each full tier goes one (non-empty) tier down
            if self.cap[j] == 0:
                continue
            self.move(self.coldest(j), dst, nt)
            self.demotions += 1
            dst = j
        self.members[0].add(c)
        self.tier[c] = 0

    def above(self, k):
        """The nearest tier above k that can hold blocks, or None."""
        return next((u for u in range(k - 1, -1, -1) if self.cap[u] > 0), None)

    def promote(self, b, nt):
        passed = []  # tiers whose coldest block is colder than b, bottom up
        u = self.above(self.tier[b])
        while u is not None and self.coldest(u) is not None and self.heat[b] > self.heat[self.coldest(u)]:
            passed.append(u)
            u = self.above(u)
        if not passed:
            return
        colds = [self.coldest(u) for u in passed]
        below = self.tier[b]
        for u, cold in zip(passed, colds):  # each passed coldest block moves one tier down
            self.move(cold, below, nt)
            self.demotions += 1
            below = u
        self.move(b, passed[-1], nt)  # b rises in one move
        self.promotions += 1

    def step(self, t, row_of, tau, half_life):
        shift = t // half_life - self.base
        if shift >= RENORM:
            self.heat = [h * 2.0 ** -RENORM for h in self.heat]
            self.heat = [0.0 if h < FLUSH else h for h in self.heat]
            self.base += RENORM
            shift -= RENORM
        c = t // self.B
        if t % self.B == 0:
            self.open_block(c, t)
        self.tokens[self.tier[c]] += 1
        row = row_of(t)
        for b, m in row.items():
            if m >= tau:
                self.access[b] += 1
                self.hits[self.tier[b]] += 1
            q = int(m * SCALE)
            if q > 0:
                self.acc[b] += q
                self.heat[b] += q * 2.0 ** shift
        for b in row:
            if not self.pinned[b]:
                self.promote(b, t + 1)
        for k in range(N_TIERS):
            self.token_steps[k] += self.tokens[k]


def simulate(n_tokens, block_size, capacity, pinned, *, trace=None, sink_count=0, w_sink=0.0, w_local=1.0,
             w_hh=0.0, w_bg=0.0, bg_keys=0, seed=0, lcum=None, hh_pos=None, tau=0.01, half_life=256,
             snap_steps=(), steps=None) -> dict:
    """Same arguments and outputs as kernels.tiers.simulate (steps: stop early, for timing a slice)."""
    ref = Reference(n_tokens, block_size, capacity, pinned)
    hh = [int(p) for p in (hh_pos if hh_pos is not None else [])]
    if trace is not None:
        trace = np.asarray(trace, np.float32)

        def row_of(t):
            return trace_row(t, block_size, trace)
    else:
        def row_of(t):
            return synthetic_row(t, block_size, sink_count, w_sink, w_local, w_hh, w_bg, bg_keys, int(seed), lcum, hh)
    snaps = []
    wanted = list(snap_steps)
    for t in range(n_tokens if steps is None else steps):
        ref.step(t, row_of, tau, half_life)
        snaps.extend(list(ref.tier) for s in wanted if s == t)
    return {"tier": ref.tier, "acc": ref.acc, "access": ref.access, "hits": ref.hits, "tokens": ref.tokens,
            "blocks": [len(m) for m in ref.members], "token_steps": ref.token_steps, "promotions": ref.promotions,
            "demotions": ref.demotions, "moved_tokens": ref.moved_tokens, "snapshots": snaps, "heat": ref.heat}
