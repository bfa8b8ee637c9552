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


def _mean_rotation(layer, d: int):
    """R averaged over positions n..n+511: R = cos·I + sin·P, P the rotate_half pairing (kvpress)."""
    import torch

    cos, sin = layer.rotation(layer.n, FUTURE)  # [FUTURE, d]
    eye = torch.eye(d, device=cos.device)
    p = torch.zeros(d, d, device=cos.device)
    half = d // 2
    p[half:, :half], p[:half, half:] = torch.eye(half), -torch.eye(half)
    return (cos[:, :, None] * eye + sin[:, :, None] * p).mean(dim=0)


def score(layer, settings):
    import math

    import torch
    import torch.nn.functional as F

    sinks, d = min(SINKS, layer.n - 1), layer.head_dim
    q = layer.prerope_queries(sinks)  # [H, n − sinks, d]
    mu = q.mean(dim=1)
    centred = q - mu[:, None]
    cov = torch.einsum("hsi,hsj->hij", centred, centred) / q.shape[1]
    r = _mean_rotation(layer, d)
    mu, cov = mu @ r.T, r @ cov @ r.T
    keys = layer.keys[:, sinks:].repeat_interleave(layer.group, dim=0)  # [H, n − sinks, d]
    logits = (keys @ mu[:, :, None])[..., 0] / math.sqrt(d)
    logits = logits + torch.einsum("hni,hij,hnj->hn", keys, cov, keys) / d / 2
    s = layer.per_kv_head(F.softmax(logits, dim=-1)) * layer.values[:, sinks:].norm(dim=-1)
    return F.pad(s, (sinks, 0), value=float(s.max()) + 1)


def protected(settings) -> int:
    return SINKS
