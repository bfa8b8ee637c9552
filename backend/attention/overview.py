"""The Quick Attention Test's picture at any length: one pass over a view's rows, block by block, gives the
overview pooled to screen size (pooling.py), the sinks (sinks.py: column sums strictly below the diagonal)
and each row's learned-sink share; `zoom` recomputes just a region's rows and pools them again (single
tokens once the region fits the cells). Memory: one block of rows plus row bins × n, never n × n."""
import numpy as np

from . import sinks as S
from .pooling import RowPool, edges, pool


def overview(rows, cells: int, sink_columns: int, threshold: float, keep_matrix: int = 0) -> dict:
    """rows: view_rows.ViewRows. Returns row_edges, col_edges, max, mean (cells), sinks (positions),
    scores (mean received attention per key), learned_sink ([n] or None), matrix ([n, n] when n ≤ keep_matrix)."""
    n = rows.n
    row_edges = edges(0, n, cells)
    acc = RowPool(row_edges, 0, n)
    received = np.zeros(n, np.float64)
    learned, dense = [], []
    for q0, block in rows.blocks():
        acc.add(q0, block)
        below = block.copy()
        below[np.arange(len(block)), q0 + np.arange(len(block))] = 0.0  # a key's own query is not "after" it
        received += below.sum(axis=0, dtype=np.float64)
        if rows.learned_sinks:
            learned.append(np.clip(1.0 - block.sum(axis=-1, dtype=np.float64), 0.0, 1.0))
        if n <= keep_matrix:
            dense.append(block)
    sinks = np.flatnonzero(S.sink_mask(received, n - 1, threshold)).tolist()
    col_edges = edges(0, n, cells, keep=list(range(min(n, sink_columns))) + sinks)
    return {"row_edges": row_edges, "col_edges": col_edges, **acc.cells(col_edges), "sinks": sinks,
            "scores": S.mean_received(received, n - 1), "learned_sink": np.concatenate(learned) if learned else None,
            "matrix": np.concatenate(dense) if dense else None}


def zoom(rows, q0: int, q1: int, k0: int, k1: int, cells: int, keep=()) -> dict:
    """Queries q0..q1-1 × keys k0..k1-1: single tokens when each side fits `cells`, else pooled (keep: columns
    given a bin of their own). Only those rows are computed, over every key (softmax needs them all)."""
    row_edges, col_edges = edges(q0, q1, cells), edges(k0, k1, cells, keep)
    blocks = ((a, block[:, k0:k1]) for a, block in rows.blocks(q0, q1))
    return {"row_edges": row_edges, "col_edges": col_edges, **pool(blocks, row_edges, col_edges, k0, k1)}
