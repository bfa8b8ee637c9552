"""How long a retrieval grid will take, measured on this machine before it starts, and the time
left while it runs (issue 33: a 3 × 6 grid ran 25 minutes with no warning).

A cell's cost is counted in three forwards of the loaded model, each timed once here: a 64-token
chunk of Full Cache's pass, one chunk of k tokens for every evicting policy at once over a cache
of C entries, and one decode step of that batch (the question and the answer).
  streaming: ⌈L/64⌉ Full chunks + ⌈(L − C − 1)/k⌉ batched chunks + (2 + new tokens) decode steps;
  prefill:   ⌈L/64⌉ Full chunks (the prefill and its scores) + 2 × (1 + new tokens) decode steps.
It counts the forwards only, not the cache bookkeeping around them (cutting the caches back, the
kept-key masks), so it runs low where those weigh (up to ~4× on the tiny demo at k = 1, on a busy
machine). While the grid runs, the cells still to come are counted at that prediction scaled by
how long the finished cells took against theirs, which corrects it from the first cell on.
"""
from ..evaluate.estimate import timed
from ..evaluate.full import CHUNK
from .answer import MAX_NEW_TOKENS


def _forward(loaded, batch: int, tokens: int, cached: int):
    """A forward of `tokens` new tokens for `batch` rows after `cached` cached entries, attentions returned."""
    import torch
    from transformers import DynamicCache

    spec, dev, model = loaded.spec, loaded.device, loaded.model
    dtype = next(model.parameters()).dtype
    shape = (batch, spec["kv_heads"], cached, spec["head_dim"])

    def run():
        cache = DynamicCache()
        if cached:
            for layer in range(spec["layers"]):
                cache.update(torch.zeros(shape, dtype=dtype, device=dev), torch.zeros(shape, dtype=dtype, device=dev), layer)
        with torch.inference_mode():
            model(input_ids=torch.zeros((batch, tokens), dtype=torch.long, device=dev),
                  position_ids=torch.arange(cached, cached + tokens, device=dev).expand(batch, -1),
                  past_key_values=cache, use_cache=True, output_attentions=True, logits_to_keep=1)
    return run


def probe(loaded, protocol: str, policies: list[str], settings: dict) -> dict:
    """The three forwards' seconds on the loaded model and device (best of a few)."""
    batch = max(1, len([p for p in policies if p != "full"]) if protocol == "streaming" else len(policies))
    cache = settings.get("cache_size") or CHUNK
    chunk = settings.get("chunk") or 1
    return {"full_chunk": timed(_forward(loaded, 1, CHUNK, 0), 1),
            "policy_chunk": timed(_forward(loaded, batch, chunk, cache)) if protocol == "streaming" else 0.0,
            "decode": timed(_forward(loaded, batch, 1, cache))}


def cell_seconds(measured: dict, protocol: str, length: int, settings: dict) -> float:
    full = -(-length // CHUNK) * measured["full_chunk"]
    if protocol == "prefill":
        return full + 2 * (1 + MAX_NEW_TOKENS) * measured["decode"]
    C, k = settings["cache_size"], settings["chunk"]
    return full + -(-max(0, length - C - 1) // k) * measured["policy_chunk"] + (2 + MAX_NEW_TOKENS) * measured["decode"]


def grid_seconds(loaded, protocol: str, policies: list[str], lengths: list[int], depths: list[float],
                 settings: dict) -> dict:
    """Before Run: {seconds, cells, seconds_per_cell by length, the measured forwards}."""
    measured = probe(loaded, protocol, policies, settings)
    per_length = {L: cell_seconds(measured, protocol, L, settings) for L in lengths}
    return {"seconds": round(sum(per_length.values()) * len(depths), 1), "cells": len(lengths) * len(depths),
            "seconds_per_cell": {str(L): round(s, 2) for L, s in per_length.items()},
            "measured": {k: round(v, 4) for k, v in measured.items()}}


class GridTimeLeft:
    """Each cell's predicted seconds, scaled by the finished cells' measured / predicted."""

    def __init__(self, predicted: list[float]):
        self.predicted = predicted
        self.measured: list[float] = []

    def cell_done(self, seconds: float) -> None:
        self.measured.append(seconds)

    def left(self, fraction_of_current: float = 0.0) -> float:
        i = len(self.measured)
        done_predicted = sum(self.predicted[:i])
        scale = sum(self.measured) / done_predicted if i and done_predicted > 0 else 1.0
        remaining = sum(self.predicted[i:]) - (fraction_of_current * self.predicted[i] if i < len(self.predicted) else 0)
        return max(0.0, remaining * scale)
