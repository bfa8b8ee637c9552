"""Traces for the simulator: synthetic from settings, or the loaded model's attention.

A model trace up to DENSE_TRACE_TOKENS is dense (n × n, exact: every number as it always was); past it,
up to the model's context, it is compact (kernels/eviction/sparse.py: each row's TRACE_KEYS largest
weights, the rest folded into an even background), built from the model's rows block by block."""
import numpy as np

from ..errors import UserError
from .params import DENSE_TRACE_TOKENS, TRACE_KEYS, SimParams
from kernels.eviction import ONE, SparseBuilder, Trace, fixed_rows, model_trace, synthetic_trace

ROW_SUM_TOLERANCE = 1e-3  # float32 softmax rows, averaged over heads and layers, sum to 1 within ~1e-6
CHECK_ROWS = 512          # rows of a given matrix checked and converted at a time (compact traces)


def synthetic(p: SimParams) -> Trace:
    return synthetic_trace(p.length, **p.synthetic)


def check_rows(a: np.ndarray, first_row: int = 0, learned_sink=None) -> None:
    """float64 rows of queries first_row.. over every key: each causal row a probability distribution (with the
    row's share on a learned sink, if any); an all-zero row or one summing elsewhere would give recall and hit
    rates that mean nothing (hardening issue: reject it, naming the first bad row)."""
    if not np.isfinite(a).all():
        raise UserError("non_finite", "The attention weights contain inf/NaN; reload the model in fp32 or bf16.",
                        "trace")
    causal = np.tril(a, first_row)
    if (causal < 0).any():
        row = first_row + int(np.flatnonzero((causal < 0).any(axis=1))[0])
        raise UserError("bad_trace", f"Attention weights must be non-negative (row {row} has a negative weight).", "trace")
    sums = causal.sum(axis=1) + (0.0 if learned_sink is None else np.asarray(learned_sink, np.float64))
    off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        i = int(np.flatnonzero(off)[0])
        what = "is all zeros" if sums[i] == 0 else f"sums to {sums[i]:.6g}"
        raise UserError("bad_trace", f"Each attention row must sum to 1 over keys 0..t (and a learned sink); row "
                        f"{first_row + i} {what} ({int(off.sum()):,} rows off by more than {ROW_SUM_TOLERANCE}).", "trace")


def from_attention(matrix, learned_sink=None, keep: int = TRACE_KEYS) -> Trace:
    """A float [n, n] attention matrix (rows = queries, each summing to 1 with the row's share on a learned
    sink, if the model has one: [n] or None) → a model trace that carries that share as a key never evicted;
    dense up to DENSE_TRACE_TOKENS, compact past it."""
    a = np.asarray(matrix)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise UserError("bad_input", f"An attention trace must be a square n × n matrix (got {a.shape}).", "trace")
    if a.shape[0] <= DENSE_TRACE_TOKENS:
        a = a.astype(np.float64)
        check_rows(a, 0, learned_sink)
        return model_trace(a, learned_sink)
    builder = SparseBuilder(a.shape[0], keep, learned_sink is not None)
    share = None if learned_sink is None else np.asarray(learned_sink, np.float64)
    for t0 in range(0, a.shape[0], CHECK_ROWS):
        _add(builder, t0, a[t0:t0 + CHECK_ROWS], None if share is None else share[t0:t0 + CHECK_ROWS])
    return builder.trace()


def _add(builder: SparseBuilder, t0: int, block, learned_sink) -> None:
    rows = np.asarray(block, np.float64)
    check_rows(rows, t0, learned_sink)
    builder.add(t0, fixed_rows(rows, t0), learned_sink)


def from_rows(rows, keep: int = TRACE_KEYS) -> tuple[Trace, dict]:
    """A view's rows (backend/attention/view_rows.py), block by block → the compact trace and what it
    approximates (sparse.py's facts). Never n × n: one block of rows at a time."""
    from ..attention.extract import learned_sink_share

    builder = SparseBuilder(rows.n, keep, rows.learned_sinks)
    for t0, block in rows.blocks():
        _add(builder, t0, block, learned_sink_share(block, t0) if rows.learned_sinks else None)
    return builder.trace(), builder.facts()


def approximation(facts: dict, access_threshold: float) -> dict:
    """The trace summary's words on a compact trace: what was folded, and whether τ can miss accesses."""
    out = {"compact": True, **facts,
           "folded_is": f"each row keeps its {facts['keys_per_row']} largest weights; the rest of the row (the folded "
                        "mass) is spread evenly over its other keys"}
    if access_threshold <= facts["largest_folded_weight"]:
        out["warning"] = (f"access_threshold {access_threshold:g} is at or below the largest folded weight "
                          f"{facts['largest_folded_weight']:.3g}: accesses to folded keys can be undercounted; raise "
                          "access_threshold above it for exact hits and misses.")
    return out


def from_model(loaded, p: SimParams) -> tuple[Trace, dict]:
    """Runs the model once on the text (up to its context); returns the trace and what the UI shows beside it."""
    from ..attention.extract import learned_sink_share, token_labels, view_rows

    aggregate = "all_layers" if p.aggregate == "all_layers" else "layer"
    head = p.head if p.aggregate == "head" else None
    ids, rows = view_rows(loaded, p.text, p.layer, head, aggregate)
    one = aggregate != "all_layers"
    info = {"tokens": token_labels(loaded.tokenizer, ids), "token_ids": ids, "layer": rows.layers[0] if one else None,
            "head": rows.head if one else None, "aggregate": p.aggregate}
    if rows.n <= DENSE_TRACE_TOKENS:  # dense: the attention_view arithmetic, as it always was
        matrix = np.concatenate([block for _, block in rows.blocks()]).astype(np.float32)
        learned = learned_sink_share(matrix) if rows.learned_sinks else None
        if learned is not None:
            info["learned_sink_share"] = float(np.mean(learned))
        return from_attention(matrix, learned), info
    trace, facts = from_rows(rows)
    if rows.learned_sinks:
        info["learned_sink_share"] = float(np.mean(trace.fixed) / ONE)
    info["approximation"] = approximation(facts, p.access_threshold)
    return trace, info
