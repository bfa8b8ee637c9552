"""StreamingLLM's prefill form: the first S (attention sinks) plus the last C − S tokens.

Xiao et al., "Efficient Streaming Language Models with Attention Sinks" (ICLR 2024,
arXiv:2309.17453). Follows kvpress presses/streaming_llm_press.py (StreamingLLMPress,
n_sink = 4): sinks score 2, the rest its position order below them, so the top-k keeps
the S sinks and the most recent k − S (kvpress zeroes the pruned middle; same kept set).
Keys keep their original positions (kvpress without KeyRerotationPress).
"""
PRESS = "StreamingLLMPress"


def score(layer, settings):
    import torch

    s = torch.arange(layer.n, dtype=torch.float32) / layer.n
    s[: settings.sinks] = 2.0
    return s.expand(layer.kv_heads, -1).clone()


def protected(settings) -> int:
    return settings.sinks
