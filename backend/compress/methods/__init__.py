"""The prefill methods: one registry line each — (scorer module, budget rule).

Scoring contract (also for user files, docs/write-your-own-policy.md "Your own prefill method"):
    score(layer, settings) -> torch.Tensor [KV heads, n] (float; higher = kept first)
`layer` is a backend.compress.layer.LayerInputs (keys, values, queries, window
attention, attention sums of one layer); `settings` has .sinks, .window, .seed.
`protected(settings)` says how many positions the method always keeps (for the note
when that is more than the budget).

Budget rules (backend/compress/budgets.py): "all" (nothing removed), "uniform" (k per
head, every layer), "pyramid" (PyramidKV's per-layer k), "adaptive" (Ada-KV's per-head
k inside a layer, the layer's total uniform).
"""
from dataclasses import dataclass
from types import ModuleType

from . import (expected_attention, full, h2o, keydiff, knorm, observed_attention, random, snapkv,
               sliding_window, streaming_llm, tova)


@dataclass(frozen=True)
class Method:
    scorer: ModuleType      # has score(layer, settings) and protected(settings)
    budget: str             # all | uniform | pyramid | adaptive
    press: str              # the kvpress press it corresponds to


METHODS = {
    "full": Method(full, "all", "(no press)"),
    "sliding_window": Method(sliding_window, "uniform", sliding_window.PRESS),
    "streaming_llm": Method(streaming_llm, "uniform", streaming_llm.PRESS),
    "h2o": Method(h2o, "uniform", h2o.PRESS),
    "tova": Method(tova, "uniform", tova.PRESS),
    "observed_attention": Method(observed_attention, "uniform", observed_attention.PRESS),
    "snapkv": Method(snapkv, "uniform", snapkv.PRESS),
    "pyramidkv": Method(snapkv, "pyramid", "PyramidKVPress"),
    "adakv_snapkv": Method(snapkv, "adaptive", "AdaKVPress(SnapKVPress)"),
    "expected_attention": Method(expected_attention, "uniform", expected_attention.PRESS),
    "adakv_expected_attention": Method(expected_attention, "adaptive", "AdaKVPress(ExpectedAttentionPress)"),
    "knorm": Method(knorm, "uniform", knorm.PRESS),
    "keydiff": Method(keydiff, "uniform", keydiff.PRESS),
    "random": Method(random, "uniform", random.PRESS),
}
