"""Which context positions each method keeps, without answering anything (the Eviction Sim heatmap).

    prefill_kept(loaded, context_ids, methods, *, cache_size=None, ratio=None, sinks=4, window=32,
                 report=None) -> dict[str, dict]
    # one entry per method: "kept" (list over layers of int64 [KV heads, k_layer], sorted original
    # positions, −1 pads a head that keeps fewer), "memory_tokens", "note" — as prefill_answers'.

The same one full prefill and the same scoring and budgets as prefill_answers and
prefill_perplexity (plan.compress); it stops once the kept sets are known.
"""
from .plan import check, compress
from .prefill import Settings


def prefill_kept(loaded, context_ids, methods, *, cache_size=None, ratio=None, sinks=4, window=32,
                 report=None) -> dict:
    methods = list(dict.fromkeys(methods))
    budget = check(loaded, len(context_ids), methods, cache_size, ratio, sinks, window, 0)
    _, per_method = compress(loaded, context_ids, methods, budget, Settings(sinks=sinks, window=window), report)
    if report is not None:
        report(1.0, "Done")
    return per_method
