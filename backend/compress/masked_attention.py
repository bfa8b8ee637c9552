"""The attention SinkVis runs over compressed caches: a key mask per (row, layer, KV head).

Methods keep different positions, and different counts per layer (PyramidKV) or per
head (Ada-KV). Each layer's cache is one rectangular tensor [rows, KV, L, d], L the
most any (row, head) keeps in that layer; the shorter heads are padded and masked here.
kvpress does per-head budgets the same way in spirit (attention_patch.py replaces the
dropped keys by a key no query attends to, and refuses eager); a mask is exact on
every implementation. Memory is therefore counted as the mean number of kept entries.

The mask joins the model's own (causal, sliding window) and the model's own eager attention
computes the rest, soft-caps and learned sinks included: a tap on SinkVis's attention
function (backend/attention/seam.py) for this thread's forwards only. A layer with no
ContextMask (a sliding-window layer, which keeps its own window) is the model's attention.
"""
from dataclasses import dataclass


@dataclass
class ContextMask:
    valid: object                 # torch bool [rows, KV, L]: which of the layer's first L entries are kept keys
    needle: object = None         # torch bool [rows, KV, L]: kept entries inside the needle span, or None
    probe: int | None = None      # query index whose share of attention on the needle is recorded
    needle_share: object = None   # torch float [rows], written by the forward


def key_mask(call, allowed):
    """The call's additive mask with the keys not `allowed` ([B, KV, K] bool) masked too: [B, H, q, K]."""
    import torch

    heads = call.query.shape[1]
    low = torch.finfo(call.query.dtype).min
    extra = torch.zeros(allowed.shape, dtype=call.query.dtype, device=allowed.device).masked_fill(~allowed, low)
    extra = extra.repeat_interleave(heads // allowed.shape[1], dim=1)[:, :, None]  # [B, H, 1, K]
    return extra if call.mask is None else torch.minimum(call.mask[..., : allowed.shape[-1]], extra)


def masked_tap(masks):
    """A seam tap: each layer's keys outside its ContextMask are masked; the needle share is recorded."""
    import torch

    def tap(call):
        mask = masks[call.layer] if 0 <= call.layer < len(masks) else None
        if mask is None:
            return call.eager()
        ctx, k_len = mask.valid.shape[-1], call.key.shape[2]
        allowed = torch.nn.functional.pad(mask.valid, (0, k_len - ctx), value=True)  # appended tokens: causal only
        out, weights = call.eager(mask=key_mask(call, allowed))
        if mask.needle is not None and mask.probe is not None:
            heads = weights.shape[1]
            needle = mask.needle.repeat_interleave(heads // mask.needle.shape[1], dim=1)  # [R, H, L]
            on_needle = weights[:, :, mask.probe, :ctx].float() * needle
            mask.needle_share = on_needle.sum(dim=-1).mean(dim=1)  # mean over every query head
        return out, weights

    return tap


def compressed_attention(masks):
    """SinkVis's masked attention for this thread's forwards inside the block (masks[layer]: ContextMask or None)."""
    from ..attention.seam import tapped

    return tapped(masked_tap(masks))
