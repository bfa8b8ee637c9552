"""Ada-KV: per-head budgets inside a layer, from one top-k over all the layer's heads.

Feng et al., "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation"
(arXiv:2407.11550); reference code github.com/FFY0/AdaKV. Follows kvpress
presses/adakv_press.py (AdaKVPress, alpha_safeguard = 0.20): each head first keeps its
own top int(k · 0.2) (the safeguard), then the layer keeps the KV·k highest scores over
all heads together, so heads differ in how many entries they keep but the layer's total
is the uniform one. It wraps a scorer (SnapKV or Expected Attention here). kvpress
fakes the dropped entries with keys no query attends to (attention_patch.py) and
refuses eager attention; SinkVis masks them in its own attention function
(backend/compress/masked_attention.py), which works on every implementation.
"""
import numpy as np

PRESS = "AdaKVPress"
ALPHA = 0.20


def select(scores, kept: int, alpha: float = ALPHA) -> list[np.ndarray]:
    """scores [KV, n] → per head the sorted kept positions; their counts sum to KV·kept."""
    import torch

    kv, n = scores.shape
    s = scores.clone().float()
    safe = int(kept * alpha)
    if safe:
        top = torch.from_numpy(np.argsort(-s.cpu().numpy(), axis=-1, kind="stable")[:, :safe])
        s.scatter_(-1, top.to(s.device), torch.finfo(s.dtype).max)
    order = np.argsort(-s.reshape(-1).cpu().numpy(), kind="stable")[: kv * kept]
    heads, positions = order // n, order % n
    return [np.sort(positions[heads == h]) for h in range(kv)]
