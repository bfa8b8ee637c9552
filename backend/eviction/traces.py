"""Traces for the simulator: synthetic from settings, or the loaded model's attention."""
import numpy as np

from ..errors import UserError
from .params import MAX_MODEL_TOKENS, SimParams
from kernels.eviction import Trace, model_trace, synthetic_trace

ROW_SUM_TOLERANCE = 1e-3  # float32 softmax rows, averaged over heads and layers, sum to 1 within ~1e-6


def synthetic(p: SimParams) -> Trace:
    return synthetic_trace(p.length, **p.synthetic)


def from_attention(matrix, learned_sink=None) -> Trace:
    """A float [n, n] attention matrix (rows = queries, each summing to 1 with the row's share on a learned
    sink, if the model has one: [n] or None) → a model trace that carries that share as a key never evicted."""
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise UserError("bad_input", f"An attention trace must be a square n × n matrix (got {a.shape}).", "trace")
    if not np.isfinite(a).all():
        raise UserError("non_finite", "The attention weights contain inf/NaN; reload the model in fp32 or bf16.",
                        "trace")
    # Each causal row is a probability distribution; an all-zero row or one summing elsewhere would
    # give recall and hit rates that mean nothing (hardening issue: reject it, naming the first bad row).
    causal = np.tril(a)
    if (causal < 0).any():
        row = int(np.flatnonzero((causal < 0).any(axis=1))[0])
        raise UserError("bad_trace", f"Attention weights must be non-negative (row {row} has a negative weight).", "trace")
    sums = causal.sum(axis=1) + (0.0 if learned_sink is None else np.asarray(learned_sink, np.float64))
    off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        what = "is all zeros" if sums[row] == 0 else f"sums to {sums[row]:.6g}"
        raise UserError("bad_trace", f"Each attention row must sum to 1 over keys 0..t (and a learned sink); row {row} {what} "
                        f"({int(off.sum()):,} rows off by more than {ROW_SUM_TOLERANCE}).", "trace")
    if a.shape[0] > MAX_MODEL_TOKENS:
        raise UserError("too_long", f"A model trace is at most {MAX_MODEL_TOKENS:,} tokens "
                        f"(the text has {a.shape[0]:,}); shorten it.", "text")
    return model_trace(a, learned_sink)


def from_model(loaded, p: SimParams) -> tuple[Trace, dict]:
    """Runs the model once on the text; returns the trace and what the UI shows beside it."""
    from ..attention.extract import attention_view

    aggregate = "all_layers" if p.aggregate == "all_layers" else "layer"
    head = p.head if p.aggregate == "head" else None
    view = attention_view(loaded, p.text, p.layer, head, aggregate)
    info = {"tokens": view["tokens"], "token_ids": view["token_ids"], "layer": view["layer"], "head": view["head"],
            "aggregate": p.aggregate}
    if view["learned_sink"] is not None:
        info["learned_sink_share"] = float(np.mean(view["learned_sink"]))
    return from_attention(view["matrix"], view["learned_sink"]), info
