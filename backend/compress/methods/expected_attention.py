"""Expected Attention: the attention future queries are expected to pay each key, × ‖v‖.

Devoto et al., "Expected Attention: KV Cache Compression by Estimating Attention from
Future Queries Distribution" (NVIDIA, arXiv:2510.00636). Follows kvpress
presses/expected_attention_press.py (ExpectedAttentionPress) exactly, with its defaults:
the prefill queries' mean μ and covariance Σ before RoPE (the first 4 sink positions
left out), both rotated by the rotary matrix averaged over the next 512 positions;
score = softmax over keys of (μ·k/√d + ½·kᵀΣk/d), averaged over the GQA group, × ‖v‖;
the 4 sink tokens are kept (max + 1). No attention is needed: only the queries.
"""
PRESS = "ExpectedAttentionPress"
FUTURE = 512
SINKS = 4


def score(layer, settings):
    import math

    import torch
    import torch.nn.functional as F

    sinks, d = min(SINKS, layer.n - 1), layer.head_dim
    q = layer.prerope_queries(sinks)  # [H, n − sinks, d]
    mu = q.mean(dim=1)
    centred = q - mu[:, None]
    cov = torch.einsum("hsi,hsj->hij", centred, centred) / q.shape[1]
    r = layer.mean_rotation(layer.n, FUTURE)  # R averaged over positions n..n+511 (the layer's own rotary)
    mu, cov = mu @ r.T, r @ cov @ r.T
    keys = layer.keys[:, sinks:].repeat_interleave(layer.group, dim=0)  # [H, n − sinks, d]
    logits = (keys @ mu[:, :, None])[..., 0] / math.sqrt(d)
    logits = logits + ((keys @ cov) * keys).sum(dim=-1) / d / 2  # ½·kᵀΣk
    s = layer.per_kv_head(F.softmax(logits, dim=-1)) * layer.values[:, sinks:].norm(dim=-1)
    return F.pad(s, (sinks, 0), value=float(s.max()) + 1)


def protected(settings) -> int:
    return SINKS
