"""Eviction simulation: settings → trace → Numba kernels (kernels/eviction) → metrics.

    p = parse(params)                      # UserError naming the field on bad input
    trace = traces.synthetic(p)            # or traces.from_attention(matrix) / from_model(...)
    out = simulate(p, trace, progress)     # {"trace": {...}, "results": [...]}
"""
from . import traces
from .params import DEFAULTS, MAX_LENGTH, DENSE_TRACE_TOKENS, SimParams, parse
from .policies import POLICIES
from .run import simulate

__all__ = ["DEFAULTS", "parse", "simulate", "traces", "POLICIES", "SimParams", "MAX_LENGTH", "DENSE_TRACE_TOKENS"]
