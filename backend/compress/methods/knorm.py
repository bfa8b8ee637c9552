"""Knorm: keep the keys with the smallest L2 norm (score −‖k‖).

Devoto et al., "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression"
(EMNLP 2024, arXiv:2406.11430). Follows kvpress presses/knorm_press.py (KnormPress).
No attention, no queries: the cached (rotated) keys only.
"""
PRESS = "KnormPress"


def score(layer, settings):
    return -layer.keys.norm(dim=-1)


def protected(settings) -> int:
    return 0
