"""Random: uniform scores from a seeded generator, the floor every method must beat.

Follows kvpress presses/random_press.py (RandomPress(seed=…)): the generator is seeded
afresh for every layer, so with the same seed each layer draws the same numbers (as in
kvpress). SinkVis's default seed is 0, so runs are reproducible.
"""
PRESS = "RandomPress"


def score(layer, settings):
    import torch

    generator = torch.Generator().manual_seed(settings.seed)
    return torch.rand(layer.kv_heads, layer.n, generator=generator)


def protected(settings) -> int:
    return 0
