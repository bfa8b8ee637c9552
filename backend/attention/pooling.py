"""Attention pooled to screen size: max and mean over cells of queries × keys, with sink columns kept single.

A cell is a range of queries (a row bin) × a range of keys (a column bin). Its *max* is the largest weight
any of its queries put on any of its keys; its *mean* is the mean over its causal entries (key ≤ query),
zeros included, so mean pooling keeps each row bin's total mass per column bin honest. A cell with no
causal entry is NaN (drawn as "future"). Max pooling keeps a sink visible at any size; mean pooling dilutes
it into its bin, which is why the columns of the first S keys and of every detected sink get a bin of
their own (`edges(..., keep=...)`): they are never pooled away.

Rows arrive a block at a time (view_rows.py); `RowPool` keeps per row bin the max and the sum over its
rows at full key resolution (row bins × keys, 2 floats each: 256 × 8,192 → 24 MB), so the column bins can
be chosen after the pass, once the sinks are known. Nothing here is n × n.
"""
import numpy as np


def edges(lo: int, hi: int, cells: int, keep=()) -> np.ndarray:
    """Bin edges over [lo, hi): single tokens when the range fits in `cells`, else about `cells` equal bins,
    with each position in `keep` given a bin of its own."""
    if hi - lo <= cells:
        return np.arange(lo, hi + 1, dtype=np.int64)
    kept = sorted({int(k) for k in keep if lo <= k < hi})
    width = -(-(hi - lo) // max(1, cells - 2 * len(kept)))
    cuts = set(range(lo, hi, width)) | {hi} | set(kept) | {k + 1 for k in kept}
    return np.array(sorted(cuts), dtype=np.int64)


def causal_counts(row_lo, row_hi, col_edges) -> np.ndarray:
    """[row bins, column bins]: how many (query, key) pairs of each cell have key ≤ query (rows row_lo..row_hi-1)."""
    col_edges = np.asarray(col_edges, np.int64)
    keys = np.arange(col_edges[0], col_edges[-1])
    a, b = np.asarray(row_lo, np.int64)[:, None], np.asarray(row_hi, np.int64)[:, None]
    causal = np.maximum(0, b - np.maximum(a, keys[None, :]))  # queries q in [a, b) with q ≥ key
    return np.add.reduceat(causal, col_edges[:-1] - col_edges[0], axis=1)


class RowPool:
    """Max and sum over each row bin's rows, keys k0..k1-1 at full resolution; fed block by block."""

    def __init__(self, row_edges, k0: int, k1: int):
        self.row_edges = np.asarray(row_edges, np.int64)
        self.k0, self.k1 = k0, k1
        bins = len(self.row_edges) - 1
        self.max = np.zeros((bins, k1 - k0), np.float32)
        self.sum = np.zeros((bins, k1 - k0), np.float64)

    def add(self, q0: int, rows: np.ndarray) -> None:
        """rows: float32 [b, k1 - k0], queries q0..q0+b-1 (inside the row edges)."""
        queries = np.arange(q0, q0 + rows.shape[0])
        bin_of = np.searchsorted(self.row_edges, queries, side="right") - 1
        starts = np.flatnonzero(np.r_[True, bin_of[1:] != bin_of[:-1]])
        bins = bin_of[starts]
        self.max[bins] = np.maximum(self.max[bins], np.maximum.reduceat(rows, starts, axis=0))
        self.sum[bins] += np.add.reduceat(rows.astype(np.float64), starts, axis=0)

    def cells(self, col_edges) -> dict:
        """{"max", "mean"}: float [row bins, column bins], NaN where a cell has no key ≤ its queries."""
        col_edges = np.asarray(col_edges, np.int64)
        starts = col_edges[:-1] - self.k0
        count = causal_counts(self.row_edges[:-1], self.row_edges[1:], col_edges)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.add.reduceat(self.sum, starts, axis=1) / count
        top = np.maximum.reduceat(self.max, starts, axis=1).astype(np.float64)
        empty = count == 0
        mean[empty], top[empty] = np.nan, np.nan
        return {"max": top, "mean": mean}


def pool(blocks, row_edges, col_edges, k0: int, k1: int) -> dict:
    """Pool (first row, rows [b, k1 - k0]) blocks into cells at once (a zoom, where the columns are known)."""
    acc = RowPool(row_edges, k0, k1)
    for q0, rows in blocks:
        acc.add(q0, rows)
    return acc.cells(col_edges)
