"""Window attention's prefill form: keep the last C context tokens.

Score = position, so the top-k of every head is the most recent k. (StreamingLLM's
paper, the "window attention" baseline; no kvpress press: StreamingLLMPress with n_sink=0.)
"""
PRESS = "StreamingLLMPress(n_sink=0)"


def score(layer, settings):
    import torch

    return torch.arange(layer.n, dtype=torch.float32).expand(layer.kv_heads, -1).clone()


def protected(settings) -> int:
    return 0
