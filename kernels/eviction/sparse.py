"""The compact model trace (kind SPARSE): each row's `keep` largest weights explicit, the rest folded.

A dense model trace is n × n int64 (SmolLM2's 8,192 tokens: 512 MiB; compact at keep = 256: 32 MiB).
Here row t is one line of `weights` (int64 [n, 2 + 2·keep]):

    [bg, count, keys (keep, ascending, 0-padded), extras (keep, 0-padded)]

and key j ≤ t weighs bg + extra for the `count` listed keys, bg for every other key — the row
form every kernel already reads (rows.py: bg + loc + explicit extras). A row with at most `keep`
nonzero weights lists them all with bg = 0: exactly the dense row (so keep ≥ n gives the dense
trace's numbers bit for bit). A longer row lists its `keep` largest (ties: the older key) and
spreads what is left, the *folded* mass, evenly over the t + 1 − keep keys not listed, rounded
down (less than t + 1 units of 2^-24 lost). A listed weight is ≥ every folded one ≥ bg, so extras
are ≥ 0. What this approximates: a folded key weighs the row's folded mean, not its own weight,
so recall and H2O's scores see the folded mass spread evenly; an access (weight ≥ τ) is missed
only if τ ≤ the largest folded weight, which `largest_folded` records (it is < 1/keep, as at
most keep weights of a row summing to 1 can exceed 1/(keep + 1)).

Built block by block from the model's rows (never n × n): add(t0, rows) per block of queries.
"""
import numpy as np

from .trace import ONE, ROW_BG, ROW_COUNT, ROW_KEYS, SPARSE, Trace


def fixed_rows(block: np.ndarray, t0: int) -> np.ndarray:
    """float rows of queries t0.. over every key → int64 fixed point, causal part only: the rounding of
    trace.model_trace, row for row."""
    a = np.asarray(block, dtype=np.float64)
    return np.rint(np.tril(np.clip(a, 0.0, 1.0), t0) * ONE).astype(np.int64)


class SparseBuilder:
    def __init__(self, n: int, keep: int, learned_sink: bool = False):
        self.n, self.keep = int(n), max(1, min(int(keep), int(n)))
        self.weights = np.zeros((self.n, ROW_KEYS + 2 * self.keep), np.int64)
        self.fixed = np.zeros(self.n if learned_sink else 0, np.int64)
        self.folded = np.zeros(self.n, np.int64)  # each row's mass outside its listed keys (fixed point)
        self.largest_folded = 0                   # the largest single weight folded into a bg (fixed point)

    def add(self, t0: int, rows: np.ndarray, learned_sink=None) -> None:
        """rows: int64 [q, n] queries t0..t0+q−1 (fixed_rows); learned_sink: their share on a learned sink ([q])."""
        q, n, k = rows.shape[0], self.n, self.keep
        # Rank by weight, then the older key first, as one integer (weights < 2^25, n < 2^38): no ties.
        rank = rows * n + (n - 1 - np.arange(n))
        top = np.argpartition(rank, n - k, axis=1)[:, n - k:]
        w = np.take_along_axis(rows, top, 1)
        listed = w > 0
        pos = np.where(listed, top, n)  # the unlisted (zero) ones sort last
        order = np.argsort(pos, axis=1, kind="stable")
        pos, w, listed = (np.take_along_axis(x, order, 1) for x in (pos, w, listed))
        count = listed.sum(axis=1)
        folded = rows.sum(axis=1) - np.where(listed, w, 0).sum(axis=1)
        t = t0 + np.arange(q)
        bg = np.where(folded > 0, folded // np.maximum(1, t + 1 - count), 0)
        out = self.weights[t0:t0 + q]
        out[:, ROW_BG], out[:, ROW_COUNT] = bg, count
        out[:, ROW_KEYS:ROW_KEYS + k] = np.where(listed, pos, 0)
        out[:, ROW_KEYS + k:] = np.where(listed, w - bg[:, None], 0)
        self.folded[t0:t0 + q] = folded
        if folded.any():
            rest = rows.copy()
            np.put_along_axis(rest, top, 0, 1)
            self.largest_folded = max(self.largest_folded, int(rest.max()))
        if learned_sink is not None:
            self.fixed[t0:t0 + q] = np.rint(np.clip(np.asarray(learned_sink, np.float64), 0.0, 1.0) * ONE)

    def trace(self) -> Trace:
        return Trace(SPARSE, self.n, self.weights, np.zeros(6, np.int64), np.zeros(0, np.int64),
                     np.zeros(0, np.int64), self.fixed)

    def facts(self) -> dict:
        """What the compact trace approximates, in units of attention (1.0 = a whole row)."""
        return {"keys_per_row": self.keep, "folded_rows": int(np.count_nonzero(self.folded)),
                "folded_mass_mean": float(self.folded.mean() / ONE) if self.n else 0.0,
                "folded_mass_max": float(self.folded.max() / ONE) if self.n else 0.0,
                "largest_folded_weight": self.largest_folded / ONE, "bytes": int(self.weights.nbytes + self.fixed.nbytes)}


def sparse_trace(attention: np.ndarray, keep: int, learned_sink=None) -> Trace:
    """A whole float [n, n] matrix → the compact trace (tests; the app builds it block by block)."""
    a = np.asarray(attention)
    b = SparseBuilder(a.shape[0], keep, learned_sink is not None)
    b.add(0, fixed_rows(a, 0), learned_sink)
    return b.trace()
