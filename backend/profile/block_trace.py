"""The Cache Profile's model trace: what the tier simulator reads of the model's attention, and no more.

The simulator needs each row's mass per block of B tokens (kernels/tiers/rows.py) and, to pin the sink
blocks, each key's attention from the queries after it. Both are pooled from the model's rows one block of
queries at a time (kernels.tiers.pool_rows, summed in the order the simulator always summed them), so a
model trace at the whole context costs n × ceil(n / B) float64 (SmolLM2 at 8,192 tokens, B = 16: 32 MiB),
never the n × n matrix (256 MiB float32, and the float64 copies its checks made).
"""
from dataclasses import dataclass

import numpy as np

from kernels.tiers import pool_rows

from ..errors import UserError

ROW_SUM_TOLERANCE = 1e-3


@dataclass
class BlockTrace:
    block_size: int
    mass: np.ndarray                # float64 [n, ceil(n / B)]: row t's attention on each block
    received: np.ndarray            # float64 [n]: Σ over queries t > j of A[t, j]
    learned_sink: np.ndarray | None  # float64 [n]: each row's share on a learned sink (gpt-oss), in no block

    @property
    def n(self) -> int:
        return self.mass.shape[0]


class Pooler:
    def __init__(self, n: int, block_size: int, learned_sink: bool = False):
        self.trace = BlockTrace(block_size, np.zeros((n, -(-n // block_size)), np.float64), np.zeros(n, np.float64),
                                np.zeros(n, np.float64) if learned_sink else None)

    def add(self, t0: int, rows: np.ndarray, learned_sink=None) -> None:
        """float32 [q, n] rows of queries t0.. over every key; learned_sink: their share on the learned sink."""
        rows = np.ascontiguousarray(rows, np.float32)
        check(rows, t0, learned_sink)
        pool_rows(rows, t0, self.trace.block_size, self.trace.mass, self.trace.received)
        if learned_sink is not None:
            self.trace.learned_sink[t0:t0 + len(rows)] = learned_sink


def check(rows: np.ndarray, t0: int, learned_sink=None) -> None:
    """Attention, or heat and hits would mean nothing: finite, non-negative, each causal row summing to 1."""
    if not np.isfinite(rows).all() or (rows < 0).any():
        raise UserError("bad_trace", "The model trace must be square attention: finite, non-negative, rows "
                        "summing to 1.", "trace")
    sums = np.tril(rows, t0).sum(axis=1, dtype=np.float64) + (0.0 if learned_sink is None else learned_sink)
    off = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if off.size:
        what = "is all zeros" if sums[off[0]] == 0 else f"sums to {sums[off[0]]:.6g}"
        raise UserError("bad_trace", f"Each attention row of the model trace must sum to 1 (with a learned sink's "
                        f"share); row {t0 + off[0]} {what}.", "trace")


def from_matrix(matrix, block_size: int, learned_sink=None) -> BlockTrace:
    """A whole float [n, n] attention matrix (tests, small texts) → its BlockTrace."""
    matrix = np.asarray(matrix, np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise UserError("bad_trace", "The model trace must be square attention: finite, non-negative, rows "
                        "summing to 1.", "trace")
    pooler = Pooler(matrix.shape[0], block_size, learned_sink is not None)
    pooler.add(0, matrix, None if learned_sink is None else np.asarray(learned_sink, np.float64))
    return pooler.trace


def from_rows(rows, block_size: int) -> BlockTrace:
    """A view's rows (backend/attention/view_rows.py), block by block → its BlockTrace."""
    from ..attention.extract import learned_sink_share

    pooler = Pooler(rows.n, block_size, rows.learned_sinks)
    for t0, block in rows.blocks():
        pooler.add(t0, block, learned_sink_share(block, t0) if rows.learned_sinks else None)
    return pooler.trace
