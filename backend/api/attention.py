"""Public Api method for the Quick Attention Test: one forward, one matrix, its sinks (backend/attention/sinks.py)."""
import time

import numpy as np

from ..attention.sinks import mean_received, received_after, sinks_in_matrix
from ..envelope import public
from ..errors import UserError
from ..validate import choice, integer, number, params_dict, text

MAX_MATRIX_TOKENS = 1024  # n×n floats cross the bridge once; beyond this the JSON gets heavy


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
        # Count first: a text over the limit fails in milliseconds, not after a long forward pass.
        n = len(loaded.tokenizer(prompt, add_special_tokens=True, verbose=False)["input_ids"])
        limit = min(MAX_MATRIX_TOKENS, loaded.context_length)
        if n > limit:
            why = "the model's context" if limit == loaded.context_length else "what the Quick Attention Test draws"
            raise UserError("too_long", f"The text is {n:,} tokens; the limit is {limit:,} ({why}). Shorten the text.", "text")
        view = attention_view(loaded, prompt, layer, head, aggregate)
        matrix = view["matrix"]
        scores = mean_received(received_after(matrix), matrix.shape[0] - 1)
        sinks = [{"position": j, "token": view["tokens"][j], "score": round(float(scores[j]), 6)}
                 for j in sinks_in_matrix(matrix, threshold)]
        learned = view["learned_sink"]  # gpt-oss: each row's share on the model's learned sink logit
        return {"tokens": view["tokens"], "token_ids": view["token_ids"], "layer": view["layer"], "head": view["head"],
                "n": int(matrix.shape[0]), "matrix": np.round(matrix, 6).tolist(), "sinks": sinks,
                "learned_sink": None if learned is None else np.round(learned, 6).tolist(),
                "learned_sink_mean": None if learned is None else round(float(learned.mean()), 6),
                "seconds": round(time.perf_counter() - started, 4)}
