"""Traces as the kernels see them: attention weights as int64 fixed point (units of 2^-24).

Integers make every sum exact whatever the order, so a kernel and its plain-Python
reference agree bit for bit. Row t gives key j ≤ t

    bg  +  loc[t − j]  +  extra[j]

a background shared by all keys, a locality weight that depends only on the age t − j
(0 past the table), and extras for a few explicit keys (sinks, heavy hitters).
A model trace has no bg and no loc: every nonzero weight is explicit. A model with learned
sink logits (gpt-oss) gives part of every row to its learned sink, which is no cache entry:
`fixed[t]` is row t's share there, a key that no policy can evict (always kept, never an access).
A compact model trace (SPARSE, sparse.py: past a few thousand tokens) keeps each row's largest
weights explicit and folds the rest into the row's bg: O(n·keep) memory instead of n².
"""
from dataclasses import dataclass, field

import numpy as np

ONE = 1 << 24  # attention 1.0
MODEL, SYNTHETIC, SPARSE = 0, 1, 2
# Columns of a SPARSE trace's row (sparse.py): [bg, count, keys (keep), extras (keep)].
ROW_BG, ROW_COUNT, ROW_KEYS = 0, 1, 2
# Entries of the synthetic parameter array `sp`.
S_SYN, SINK_Q, HEAVY_TOTAL, SEED, BG_TOTAL, HEAVY_LIFE = range(6)
MAX_LOCALITY_AGES = 1 << 16


def to_fixed(x: float) -> int:
    return int(round(float(x) * ONE))


@dataclass
class Trace:
    kind: int
    n: int
    weights: np.ndarray  # model: int64 [n, n] lower triangle; sparse: int64 [n, 2 + 2·keep]; synthetic: (1, 1) dummy
    sp: np.ndarray       # synthetic parameters (int64[6]); model: zeros
    loc: np.ndarray      # synthetic: locality weight by age, non-increasing, int64; model: empty
    heavy: np.ndarray    # synthetic: sorted heavy-hitter positions, int64; model: empty
    fixed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # int64 [n] learned-sink share, or empty

    @property
    def loccum(self) -> np.ndarray:
        return np.cumsum(self.loc).astype(np.int64)

    @property
    def is_model(self) -> bool:
        """A model's attention (dense or compact): the whole future is known, so the oracle can plan."""
        return self.kind in (MODEL, SPARSE)

    @property
    def max_row(self) -> int:
        """Most explicit entries one row can have (the size of the row buffers)."""
        if self.kind == MODEL:
            return self.n
        if self.kind == SPARSE:
            return (self.weights.shape[1] - ROW_KEYS) // 2
        return int(self.sp[S_SYN]) + len(self.heavy) + 1


def model_trace(attention: np.ndarray, learned_sink=None) -> Trace:
    """A float [n, n] attention matrix (rows = queries) → fixed point, causal part only;
    learned_sink: each row's share on the model's learned sink ([n] floats), or None."""
    a = np.asarray(attention, dtype=np.float64)
    q = np.rint(np.tril(np.clip(a, 0.0, 1.0)) * ONE).astype(np.int64)
    fixed = np.zeros(0, np.int64) if learned_sink is None else \
        np.rint(np.clip(np.asarray(learned_sink, np.float64), 0.0, 1.0) * ONE).astype(np.int64)
    return Trace(MODEL, int(a.shape[0]), np.ascontiguousarray(q), np.zeros(6, np.int64),
                 np.zeros(0, np.int64), np.zeros(0, np.int64), fixed)


def synthetic_trace(n: int, sink_count: int = 4, sink_mass: float = 0.5, locality: float = 0.8,
                    heavy_hitters: int = 16, heavy_mass: float = 0.2, background: float = 0.1,
                    seed: int = 0, heavy_life: int = 0) -> Trace:
    """Row t: each of the first `sink_count` keys gets sink_mass / sink_count; each live
    heavy hitter (before t, and at most `heavy_life` tokens back unless heavy_life = 0)
    gets about heavy_mass / (live heavy hitters), ×0.5–1.5 hashed from (seed, t, hitter);
    the key at age d gets locality_mass·(1−r)·r^d (r = `locality`); every key gets
    background / (t + 1). locality_mass is what the others leave of 1.
    Heavy-hitter positions are drawn once from the seed, uniformly after the sinks.

    Rows sum to 1 (± the jitter) while a heavy hitter is live and t is past the locality
    span, a little less before; recall divides by the row's own total, so it is exact.
    Memory: O(locality span + heavy hitters); nothing grows with n.
    """
    local_mass = 1.0 - sink_mass - heavy_mass - background
    ages = np.arange(MAX_LOCALITY_AGES, dtype=np.float64)
    with np.errstate(under="ignore"):
        loc = np.rint(local_mass * ONE * (1.0 - locality) * locality ** ages).astype(np.int64)
    nonzero = np.nonzero(loc)[0]
    loc = loc[: nonzero[-1] + 1] if len(nonzero) else np.zeros(0, np.int64)  # beyond: exactly 0
    rng = np.random.default_rng(seed)
    span = max(0, n - sink_count)
    h = min(heavy_hitters, span)
    heavy = np.sort(sink_count + rng.choice(span, size=h, replace=False)) if h else np.zeros(0)
    sp = np.array([sink_count, to_fixed(sink_mass / max(1, sink_count)),
                   to_fixed(heavy_mass), seed, to_fixed(background), heavy_life], np.int64)
    return Trace(SYNTHETIC, int(n), np.zeros((1, 1), np.int64), sp, loc, heavy.astype(np.int64))
