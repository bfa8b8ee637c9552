"""The live stream's history of past rows, pooled to screen size so that it never grows with n².

Every view (each head, each layer's mean, the all-layer mean) keeps a fixed grid over the stream's whole
length: row bins × column bins (pooling.py's `edges`: single tokens while the length fits `cells`, else
equal bins with the first `keep` keys in columns of their own, so the usual sinks stay visible in mean
pooling too; max pooling keeps any other sink visible). Each cell holds the max and the mean of its causal
weights as float16. The row bin being filled is kept in float32/float64 until it is complete.

Bytes: views × (row bins × column bins × 4 + column bins × 12), plus the edges. SmolLM2 (30 layers × 9 heads: 301 views)
at 8,192 tokens and 256 cells (256 × 245 bins): 76.4 MB, the same at any length. A stream that fits its cells (the demo
model's 256 tokens) keeps every row exactly (float16: relative error ≤ 2^-11).
"""
import numpy as np

from .pooling import causal_counts, edges


class PooledHistory:
    def __init__(self, views: int, length: int, cells: int, keep=()):
        self.row_edges = edges(0, length, cells)
        self.col_edges = edges(0, length, cells, keep)
        self.single = len(self.row_edges) == length + 1 and len(self.col_edges) == length + 1
        rows, cols = len(self.row_edges) - 1, len(self.col_edges) - 1
        self.max = np.zeros((views, rows, cols), np.float16)
        self.mean = np.zeros((views, rows, cols), np.float16)
        self._cur_max = np.zeros((views, cols), np.float32)   # the row bin being filled
        self._cur_sum = np.zeros((views, cols), np.float64)
        self.position = 0                                     # rows added so far

    @property
    def nbytes(self) -> int:
        return int(self.max.nbytes + self.mean.nbytes + self._cur_max.nbytes + self._cur_sum.nbytes
                   + self.row_edges.nbytes + self.col_edges.nbytes)

    @staticmethod
    def bound(views: int, length: int, cells: int, keep=()) -> int:
        """The bytes a history of this shape holds, whatever has been streamed."""
        rows, cols = len(edges(0, length, cells)) - 1, len(edges(0, length, cells, keep)) - 1
        return views * (rows * cols * 4 + cols * 12) + (rows + cols + 2) * 8

    def _bin(self, t: int) -> int:
        return int(np.searchsorted(self.row_edges, t, side="right")) - 1

    def add(self, t: int, views: np.ndarray) -> None:
        """Query t's row in every view: views [n_views, t + 1]."""
        starts = self.col_edges[:-1][self.col_edges[:-1] <= t]
        c = len(starts)
        self._cur_max[:, :c] = np.maximum(self._cur_max[:, :c], np.maximum.reduceat(views, starts, axis=1))
        self._cur_sum[:, :c] += np.add.reduceat(views.astype(np.float64), starts, axis=1)
        self.position = t + 1
        r = self._bin(t)
        if t + 1 == self.row_edges[r + 1]:  # the bin is complete: store it and start the next
            self.max[:, r], self.mean[:, r] = self._current(r)
            self._cur_max[:], self._cur_sum[:] = 0.0, 0.0

    def _current(self, r: int):
        """(max, mean) of row bin r from the accumulators: NaN where no key ≤ its queries yet."""
        count = causal_counts([self.row_edges[r]], [min(self.row_edges[r + 1], self.position)], self.col_edges)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, self._cur_sum / np.maximum(count, 1), np.nan)
        return np.where(count > 0, self._cur_max, np.nan), mean

    def current_row(self, view: int) -> dict:
        """The row bin holding the newest query, in one view: {row, max, mean} (NaN: no key yet)."""
        r = self._bin(self.position - 1)
        if self.position == self.row_edges[r + 1]:  # complete: already stored
            return {"row": r, "max": self.max[view, r].astype(np.float64), "mean": self.mean[view, r].astype(np.float64)}
        top, mean = self._current(r)
        return {"row": r, "max": top[view], "mean": mean[view]}

    def cells(self, view: int) -> dict:
        """Every row bin reached so far in one view: row_edges, col_edges, max and mean [bins so far, column bins]."""
        if self.position == 0:
            return {"row_edges": self.row_edges[:1], "col_edges": self.col_edges, "max": np.zeros((0, len(self.col_edges) - 1)),
                    "mean": np.zeros((0, len(self.col_edges) - 1))}
        r = self._bin(self.position - 1)
        top, mean = self.max[view, : r + 1].astype(np.float64), self.mean[view, : r + 1].astype(np.float64)
        current = self.current_row(view)
        top[r], mean[r] = current["max"], current["mean"]
        empty = causal_counts(self.row_edges[: r + 1], self.row_edges[1: r + 2], self.col_edges) == 0
        top[empty], mean[empty] = np.nan, np.nan
        return {"row_edges": self.row_edges[: r + 2], "col_edges": self.col_edges, "max": top, "mean": mean}

    def rows(self, view: int) -> list[np.ndarray]:
        """Row t over keys 0..t for every t so far: only when the history holds single tokens (`single`)."""
        assert self.single, "a pooled history has cells, not rows"
        grid = self.cells(view)["mean"]
        return [grid[t, : t + 1].astype(np.float32) for t in range(self.position)]
