"""Public Api methods for the Quick Attention Test: one forward, an overview pooled to screen size with its
sinks (backend/attention/overview.py), and zooms into any region of it down to single tokens."""
import time

import numpy as np

from ..attention.sinks import SINK_THRESHOLD
from ..envelope import public
from ..errors import UserError
from ..validate import choice, integer, number, params_dict, text

MAX_MATRIX_TOKENS = 1024  # up to this the exact n×n matrix crosses the bridge too (exports, tests); beyond, only cells
CELLS = 256               # overview and zoom cells per side by default: about a heatmap's height in pixels
SINK_COLUMNS = 4          # the first keys that always get a column of their own (StreamingLLM's 4 sinks)


def model_facts(loaded) -> dict:
    """What every result says of the model it came from (and what its attention layers do)."""
    from ..attention.seam import sliding_note

    return {"source": loaded.source, "model_type": loaded.spec.get("model_type"),
            "context_length": loaded.context_length, "layers": loaded.spec["layers"],
            "kv_heads": loaded.spec["kv_heads"], "sliding_window_note": sliding_note(loaded.model)}


def require_model(state):
    loaded = state.model
    if loaded is None:
        raise UserError("no_model", "Load a model first (Model Hub tab).")
    return loaded


def _cells(grid) -> list:
    """Cells as JSON: 6 decimals, null where a cell has no key at or before its queries."""
    return [[None if np.isnan(x) else x for x in row] for row in np.round(grid, 6).tolist()]


def _grid(result: dict) -> dict:
    return {"row_edges": result["row_edges"].tolist(), "col_edges": result["col_edges"].tolist(),
            "max": _cells(result["max"]), "mean": _cells(result["mean"])}


def _per_row_bin(share, row_edges):
    """Each row bin's mean learned-sink share (None for a model without learned sinks)."""
    if share is None:
        return None
    starts = np.asarray(row_edges[:-1])
    return np.round(np.add.reduceat(share, starts) / np.diff(row_edges), 6).tolist()


class AttentionMethods:
    @public
    def attention(self, params=None):
        from ..attention.extract import token_labels, view_rows
        from ..attention.overview import overview

        params = params_dict(params)
        prompt = text(params, "text")
        layer = integer(params, "layer", -1)
        head = integer(params, "head", None, allow_none=True)
        aggregate = choice(params, "aggregate", ("layer", "all_layers"), "layer")
        threshold = number(params, "sink_threshold", SINK_THRESHOLD, lo=0.0, hi=1.0)
        cells = integer(params, "cells", CELLS, lo=16, hi=1024)
        sink_columns = integer(params, "sink_columns", SINK_COLUMNS, lo=0, hi=64)
        loaded = require_model(self._state)
        started = time.perf_counter()
        self._state.attention = None  # the previous view's queries and keys go before this forward needs the room
        ids, rows = view_rows(loaded, prompt, layer, head, aggregate)  # encode() refuses past the model's context
        tokens = token_labels(loaded.tokenizer, ids)
        view = overview(rows, cells, sink_columns, threshold, keep_matrix=MAX_MATRIX_TOKENS)
        self._state.attention = rows
        n = rows.n
        sinks = [{"position": j, "token": tokens[j], "score": round(float(view["scores"][j]), 6)} for j in view["sinks"]]
        learned = view["learned_sink"]  # gpt-oss: each row's share on the model's learned sink logit
        one = aggregate == "layer"
        return {"tokens": tokens, "token_ids": ids, "layer": rows.layers[0] if one else None, "head": rows.head if one else None,
                "n": n, "matrix": None if view["matrix"] is None else np.round(view["matrix"], 6).tolist(),
                "overview": {**_grid(view), "kept_columns": sorted(set(range(min(n, sink_columns))) | set(view["sinks"])),
                             "learned_sink": _per_row_bin(learned, view["row_edges"])},
                "sinks": sinks, "learned_sink": None if learned is None else np.round(learned, 6).tolist(),
                "learned_sink_mean": None if learned is None else round(float(learned.mean()), 6),
                "seconds": round(time.perf_counter() - started, 4)}

    @public
    def attention_zoom(self, params=None):
        """Queries q0..q1-1 × keys k0..k1-1 of the last Quick Attention view: single tokens when each side fits
        `cells`, else pooled (max and mean, sink columns single). Recomputes only those queries' rows."""
        from ..attention.overview import zoom

        params = params_dict(params)
        rows = self._state.attention
        if rows is None or rows.loaded is not self._state.model:
            self._state.attention = None
            raise UserError("no_attention", "Get Attention first: a zoom looks into the last Quick Attention view.")
        n = rows.n
        q0 = integer(params, "q0", 0, lo=0, hi=n - 1)
        q1 = integer(params, "q1", n, lo=q0 + 1, hi=n)
        k0 = integer(params, "k0", 0, lo=0, hi=q1 - 1)  # a region right of every query has nothing to show
        k1 = integer(params, "k1", q1, lo=k0 + 1, hi=n)
        cells = integer(params, "cells", CELLS, lo=16, hi=1024)
        keep = params.get("keep_columns") or []
        if not isinstance(keep, list) or not all(isinstance(k, int) and not isinstance(k, bool) for k in keep):
            raise UserError("bad_input", "keep_columns must be a list of key positions.", "keep_columns")
        started = time.perf_counter()
        result = zoom(rows, q0, q1, k0, k1, cells, keep)
        return {"q0": q0, "q1": q1, "k0": k0, "k1": k1, **_grid(result), "seconds": round(time.perf_counter() - started, 4)}
