"""H2O's prefill form: attention accumulated over all context queries, plus the recent window W.

Zhang et al., "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of LLMs"
(NeurIPS 2023, arXiv:2306.14048): heavy hitters by accumulated attention, and the
recent tokens always kept. The accumulated (summed, not averaged) score is SinkVis's
decode-time H2O's (kernels/eviction); kvpress's normalised form is `observed_attention`.
Per KV head: the mean over its query heads. The last W positions score above every
other (kvpress's way of protecting a window: max + 1).
"""
ATTENTION = "every query"  # the prefill sums each key's column block by block during the forward
PRESS = "ObservedAttentionPress (accumulated, + window)"


def score(layer, settings):
    s = layer.per_kv_head(layer.attention_sums)
    w = min(settings.window, layer.n)
    s[:, layer.n - w:] = s.max() + 1
    return s


def protected(settings) -> int:
    return settings.window
