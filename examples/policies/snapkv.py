"""SnapKV written as a user prefill method: it keeps exactly what the built-in `snapkv` keeps.

A prefill file (docs/write-your-own-policy.md "Your own prefill method") has NAME and score(layer, settings),
which returns one score per (KV head, context position) of one layer; the top-k per head are
kept. `layer` gives the layer's keys, values, queries and window attention
(backend/compress/layer.py). This one follows kvpress's SnapKVPress: the last 64 queries'
attention over the keys before the window, averaged over the window, pooled with kernel 5,
averaged over each GQA group, and the window itself kept (scored above everything).
"""
import torch
import torch.nn.functional as F

NAME = "snapkv_file"
LABEL = "SnapKV (user file)"
BUDGET = "uniform"
PROTECT = 64  # the observation window is always kept


def score(layer, settings):
    w = max(1, min(64, layer.n - 1))
    attention = layer.window_attention(w)[:, :, : layer.n - w]          # [heads, w, n − w]
    pooled = F.avg_pool1d(attention.mean(dim=1)[None], kernel_size=5, padding=2, stride=1)[0]
    per_kv = pooled.view(layer.kv_heads, layer.group, -1).mean(dim=1)  # mean over each GQA group
    return F.pad(per_kv, (0, w), value=float(per_kv.max()) + 1)
