"""KeyDiff: keep the keys least similar to the layer's mean key (score −cos(k, mean key)).

Park et al., "KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context LLM
Inference in Resource-Constrained Environments" (arXiv:2504.15364). Follows kvpress
presses/keydiff_press.py (KeyDiffPress): the anchor is the mean of the normalised keys
per KV head; one-shot at prefill (the paper's block-wise form is kvpress's BlockPress).
"""
PRESS = "KeyDiffPress"


def score(layer, settings):
    import torch.nn.functional as F

    anchor = F.normalize(layer.keys, p=2, dim=-1).mean(dim=1, keepdim=True)
    return -F.cosine_similarity(layer.keys, anchor, dim=-1)


def protected(settings) -> int:
    return 0
