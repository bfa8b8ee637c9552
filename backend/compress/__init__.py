"""Compression of the KV cache at prefill (kvpress's protocol), on the model's real cache.

    prefill_methods() -> list[str]
    prefill_answers(loaded, context_ids, question_ids, answer_ids, methods, *, cache_size=None, ratio=None,
                    sinks=4, window=32, max_new_tokens=10, needle_span=None, report=None) -> dict[str, dict]
    prefill_perplexity(loaded, ids, context_tokens, continuation_tokens, methods, *, cache_size=None,
                       ratio=None, sinks=4, window=32, report=None) -> dict[str, dict]
    prefill_kept(loaded, context_ids, methods, *, cache_size=None, ratio=None, sinks=4, window=32,
                 report=None) -> dict[str, dict]     # only the kept positions (the Eviction Sim heatmap)

(contracts in answers.py / perplexity.py / kept.py and /work/wt/BRIEF.md.) Exactly one of cache_size
(C, tokens kept per KV head) or ratio (the fraction removed, kvpress's compression_ratio:
kept = int(n·(1 − ratio))) is given.

SinkVis method  ↔  kvpress press (kvpress/presses/*.py), defaults as kvpress's:
    full                      no press
    sliding_window            StreamingLLMPress(n_sink=0)
    streaming_llm             StreamingLLMPress (n_sink = sinks, 4)
    observed_attention        ObservedAttentionPress
    h2o                       ObservedAttentionPress accumulated (summed) + the recent `window` kept
    tova                      TOVAPress
    snapkv                    SnapKVPress (window 64, kernel 5)
    pyramidkv                 PyramidKVPress (β 20, window 64)
    adakv_snapkv              AdaKVPress(SnapKVPress()) (alpha_safeguard 0.2)
    expected_attention        ExpectedAttentionPress (512 future positions, 4 sinks, covariance, ‖v‖)
    adakv_expected_attention  AdaKVPress(ExpectedAttentionPress())
    knorm                     KnormPress
    keydiff                   KeyDiffPress
    random                    RandomPress(seed=0)

Where attention comes from: the prefill runs the model's own (eager) attention, taken at
its attention function (backend/attention/seam.py) with the layer's final queries and keys;
h2o and observed_attention read that forward's attention weights for the layer (as
kvpress's ObservedAttentionPress, which needs eager); snapkv/pyramidkv/adakv_snapkv and
tova read the window's rows of them (kvpress's compute_window_attention recomputes the
same rows from the queries); expected_attention takes the captured queries rotated back
by the layer's own rotary; knorm, keydiff, random, streaming_llm and sliding_window need
no attention. After compression every method's forwards run
SinkVis's masked attention (masked_attention.py), which also gives Ada-KV's per-head
budgets on any model (kvpress's AdaKV refuses eager).
"""
from .answers import prefill_answers
from .kept import prefill_kept
from .perplexity import prefill_perplexity
from .plan import method_registry


def prefill_methods() -> list[str]:
    """Every prefill method, Full Cache first (built-ins, then the user's files)."""
    return list(method_registry())


__all__ = ["prefill_methods", "prefill_answers", "prefill_perplexity", "prefill_kept"]
