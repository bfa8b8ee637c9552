"""SnapKV: the observation window's attention, pooled, per KV head; the window itself kept.

Li et al., "SnapKV: LLM Knows What You are Looking for Before Generation" (NeurIPS 2024,
arXiv:2404.14469); reference code github.com/FasterDecoding/SnapKV. Follows kvpress
presses/snapkv_press.py (SnapKVPress) exactly, with its defaults: the last w = 64
queries' attention over the keys before the window, averaged over the window, pooled
along the positions with kernel 5 (kvpress pools with avg_pool1d, padding 2, stride 1;
the SnapKV paper's code max-pools — SinkVis follows kvpress, whose numbers it is
checked against), averaged over each GQA group's query heads (SnapKV issue #22), and
the window padded with max + 1 so it is never pruned.
"""
PRESS = "SnapKVPress"
WINDOW = 64
KERNEL = 5


def window_size(n: int) -> int:
    """kvpress asserts n > 64; shorter contexts use a window of n − 1 (the result's note says so)."""
    return max(1, min(WINDOW, n - 1))


def score(layer, settings):
    import torch
    import torch.nn.functional as F

    w = window_size(layer.n)
    a = layer.window_attention(w)[:, :, : layer.n - w]  # [H, w, n − w]
    s = F.avg_pool1d(a.mean(dim=1)[None], kernel_size=KERNEL, padding=KERNEL // 2, stride=1)[0]
    s = layer.per_kv_head(s)
    return F.pad(s, (0, w), value=float(s.max()) + 1 if s.numel() else 1.0) if w else s


def protected(settings) -> int:
    return WINDOW
