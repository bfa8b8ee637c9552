"""KV-cache eviction kernels: one module per policy around a shared accounting loop.

    trace = synthetic_trace(1_000_000)            # or model_trace(float_matrix), or sparse.py's compact one
    sim = Simulation("h2o", trace, capacity=256, sinks=4, window=128, tau=to_fixed(0.01))
    sim.run(0, trace.n)                            # or in chunks, for progress and cancel
    sim.counters(), sim.kept(), sim.timeline()
"""
import numpy as np

from . import oracle
from .loop import FULL, LRU, ORACLE, POLICY_CODES, run_steps
from .state import (ACCESSES, EVICTIONS, HITS, MISSES, NCACHED, RECALL_SUM, TL_N, State)
from .totals import received
from .sparse import SparseBuilder, fixed_rows, sparse_trace
from .trace import MODEL, ONE, SPARSE, SYNTHETIC, Trace, model_trace, synthetic_trace, to_fixed

POLICIES = tuple(POLICY_CODES)
_NO_BLOCK, _NO_COLS = np.zeros((0, 0), np.int64), np.zeros(0, np.int64)

__all__ = ["Simulation", "KeyTotals", "Trace", "model_trace", "synthetic_trace", "sparse_trace", "SparseBuilder",
           "fixed_rows", "count_accesses", "to_fixed", "ONE", "MODEL", "SPARSE", "SYNTHETIC", "POLICIES"]


def _row_buffers(trace: Trace):
    return np.zeros(trace.max_row, np.int64), np.zeros(trace.max_row, np.int64)


def count_accesses(trace: Trace, tau: int) -> int:
    """Accesses over the whole trace (what the oracle's plan grows with), row by row: no n × n."""
    return int(oracle.count_accesses(trace.kind, trace.weights, trace.n, tau, trace.sp, trace.heavy,
                                     *_row_buffers(trace)).sum())


class Simulation:
    """One policy on one trace; `run(t0, t1)` advances it, state carried between calls."""

    def __init__(self, policy: str, trace: Trace, capacity: int, sinks: int, window: int, tau: int,
                 record_evictions: bool = False):
        self.code = POLICY_CODES[policy]
        self.trace, self.capacity, self.sinks, self.window, self.tau = trace, capacity, sinks, window, tau
        if self.code == ORACLE:
            if not trace.is_model:
                raise ValueError("the oracle needs the whole future: model traces only")
            needed = trace.n > capacity  # with n ≤ C nothing is evicted
            self.plan_end = oracle.plan(trace.kind, trace.weights, trace.n, capacity, tau, trace.sp, trace.heavy,
                                        *_row_buffers(trace)) if needed else np.zeros(trace.n, np.int64)
        else:
            self.plan_end = np.zeros(0, np.int64)
        self.state = State(trace.n, capacity, self.code == FULL, record_evictions, lru_queue=self.code == LRU)
        self.ridx = np.zeros(trace.max_row, np.int64)
        self.rval = np.zeros(trace.max_row, np.int64)
        self.loccum = trace.loccum
        self.steps_done = 0

    def run(self, t0: int, t1: int) -> None:
        self._run(t0, t1, _NO_BLOCK, _NO_COLS)

    def run_rows(self, t0: int, block: np.ndarray, cols: np.ndarray) -> None:
        """Steps t0 .. t0 + q − 1 on rows given over the keys `cols` instead of the trace's: block int64
        [q, len(cols)] in the kernels' fixed point; cols int64 ascending and ending with t0 .. t0 + q − 1.
        Query t0 + i is read over cols[: len(cols) − q + 1 + i] (a model trace's row over those, zeros
        elsewhere, gives the same step). One call for a chunk of queries."""
        if len(block):
            # contiguous and writeable, as run()'s empty ones: a read-only view (np.broadcast_to) would be another
            # type to Numba, compiled again on the first chunk (seconds for a user rule, inside its step watch)
            self._run(t0, t0 + len(block), np.require(block, np.int64, "CW"), np.require(cols, np.int64, "CW"))

    def _run(self, t0, t1, block, cols) -> None:
        tr, st = self.trace, self.state
        run_steps(self.code, t0, t1, tr.n, self.capacity, self.sinks, self.window, self.tau,
                  tr.kind, tr.weights, tr.sp, tr.loc, self.loccum, tr.heavy, tr.fixed, self.plan_end,
                  st.slots, st.slot_of, st.free, st.heap, st.stamp, st.queue, st.ctr, st.flt, st.tl, st.stride,
                  st.evicted_at, self.ridx, self.rval, block, cols)
        self.steps_done = t1

    def counters(self) -> dict:
        c = self.state.ctr
        steps = self.steps_done
        return {"tokens_processed": steps, "accesses": int(c[ACCESSES]), "hits": int(c[HITS]),
                "misses": int(c[MISSES]), "evictions": int(c[EVICTIONS]), "cached": int(c[NCACHED]),
                "recall_sum": float(self.state.flt[RECALL_SUM])}

    def cached_mask(self) -> np.ndarray:
        return self.state.slot_of[: self.steps_done] >= 0

    def kept(self) -> np.ndarray:
        return np.nonzero(self.cached_mask())[0]

    def timeline(self) -> np.ndarray:
        """Rows of (step, occupancy, mean recall since the previous point, cumulative misses)."""
        return self.state.tl[: self.state.ctr[TL_N]].copy()

    @property
    def evicted_at(self) -> np.ndarray:
        return self.state.evicted_at


class KeyTotals:
    """Attention each key receives: `after[j]` from queries t > j, `self_w[j]` = A[j, j]."""

    def __init__(self, trace: Trace):
        self.trace = trace
        self.after = np.zeros(trace.n, np.int64)
        self.self_w = np.zeros(trace.n, np.int64)
        self.g = np.zeros(1, np.int64)
        self.ridx = np.zeros(trace.max_row, np.int64)
        self.rval = np.zeros(trace.max_row, np.int64)

    def run(self, t0: int, t1: int) -> None:
        tr = self.trace
        received(t0, t1, tr.kind, tr.weights, tr.sp, tr.loc, tr.heavy, self.after, self.self_w, self.g,
                 self.ridx, self.rval)
        if t1 == tr.n:
            self.after += self.g[0]
            if len(tr.loc):  # key j hears loc[1..m] from the m = min(span, n−1−j) queries after it
                later = np.minimum(len(tr.loc) - 1, tr.n - 1 - np.arange(tr.n))
                self.after += tr.loccum[later] - tr.loc[0]

    def sinks(self, threshold: int) -> np.ndarray:
        """Keys whose mean attention over the queries after them is ≥ threshold (fixed point)."""
        later = self.trace.n - 1 - np.arange(self.trace.n, dtype=np.int64)
        return np.nonzero((later > 0) & (self.after >= threshold * later))[0]

    def heavy_hitters(self, k: int) -> np.ndarray:
        """The k keys with the most attention over the whole trace (ties: the older key)."""
        total = self.after + self.self_w
        k = min(k, len(total))
        if k <= 0:
            return np.zeros(0, np.int64)
        kth = np.partition(total, len(total) - k)[len(total) - k]  # the k-th largest total
        above = np.nonzero(total > kth)[0]
        ties = np.nonzero(total == kth)[0][: k - len(above)]
        return np.sort(np.concatenate([above, ties]))
