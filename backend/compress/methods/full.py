"""Full Cache: nothing is removed (the reference every method is compared with)."""
PRESS = "(no press)"


def score(layer, settings):
    import torch

    return torch.ones(layer.kv_heads, layer.n)


def protected(settings) -> int:
    return 0
