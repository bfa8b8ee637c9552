"""Public Api method for the Quick Attention Test: one forward, one matrix, its sinks."""
import time

import numpy as np

from ..envelope import public
from ..errors import UserError
from ..validate import choice, integer, number, params_dict, text

MAX_MATRIX_TOKENS = 1024  # n×n floats cross the bridge once; beyond this the JSON gets heavy


def require_model(state):
    loaded = state.model
    if loaded is None:
        raise UserError("no_model", "Load a model first (Model Hub tab).")
    return loaded


def received_attention_sinks(matrix: np.ndarray, threshold: float, min_queries: int = 1) -> list[tuple[int, float]]:
    """DESIGN.md: a sink is a key whose mean received attention over the queries after it ≥ threshold."""
    n = matrix.shape[0]
    out = []
    for j in range(n - min_queries):
        score = float(matrix[j + 1:, j].mean())
        if score >= threshold:
            out.append((j, score))
    return out


class AttentionMethods:
    @public
    def attention(self, params=None):
        from ..attention.extract import attention_view

        params = params_dict(params)
        prompt = text(params, "text")
        layer = integer(params, "layer", -1)
        head = integer(params, "head", None, allow_none=True)
        aggregate = choice(params, "aggregate", ("layer", "all_layers"), "layer")
        threshold = number(params, "sink_threshold", 0.10, lo=0.0, hi=1.0)
        loaded = require_model(self._state)
        started = time.perf_counter()
        view = attention_view(loaded, prompt, layer, head, aggregate)
        matrix = view["matrix"]
        if matrix.shape[0] > MAX_MATRIX_TOKENS:
            raise UserError("too_long", f"The Quick Attention Test shows at most {MAX_MATRIX_TOKENS} tokens; shorten the text.", "text")
        sinks = [{"position": j, "token": view["tokens"][j], "score": round(s, 6)}
                 for j, s in received_attention_sinks(matrix, threshold)]
        return {"tokens": view["tokens"], "token_ids": view["token_ids"], "layer": view["layer"], "head": view["head"],
                "n": int(matrix.shape[0]), "matrix": np.round(matrix, 6).tolist(), "sinks": sinks,
                "seconds": round(time.perf_counter() - started, 4)}
