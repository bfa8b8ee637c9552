"""The attention SinkVis runs over compressed caches: a key mask per (row, layer, KV head).

Methods keep different positions, and different counts per layer (PyramidKV) or per
head (Ada-KV). Each layer's cache is one rectangular tensor [rows, KV, L, d], L the
most any (row, head) keeps in that layer; the shorter heads are padded and masked here.
kvpress does per-head budgets the same way in spirit (attention_patch.py replaces the
dropped keys by a key no query attends to, and refuses eager); a mask is exact on
every implementation. Memory is therefore counted as the mean number of kept entries.

Registered with transformers' AttentionInterface as "sinkvis_compressed" and switched
on only around SinkVis's own forwards (`compressed_attention(model)`). A module without
SinkVis's mask (any other caller meanwhile) gets plain causal eager attention, so
nothing else breaks while it is on.
"""
from contextlib import contextmanager
from dataclasses import dataclass

NAME = "sinkvis_compressed"
SLOT = "_sinkvis_context_mask"


@dataclass
class ContextMask:
    valid: object                 # torch bool [rows, KV, L]: which of the layer's first L entries are kept keys
    needle: object = None         # torch bool [rows, KV, L]: kept entries inside the needle span, or None
    probe: int | None = None      # query index whose share of attention on the needle is recorded
    needle_share: object = None   # torch float [rows], written by the forward


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    import torch

    rows, heads, q, d = query.shape
    kv, k_len = key.shape[1], key.shape[2]
    group = heads // kv
    scaling = d ** -0.5 if scaling is None else scaling
    logits = torch.matmul(query.view(rows, kv, group, q, d), key[:, :, None].transpose(-1, -2)) * scaling
    i = torch.arange(q, device=query.device)[:, None]
    j = torch.arange(k_len, device=query.device)[None]
    mask = getattr(module, SLOT, None)
    if mask is None:  # plain causal attention, queries at the end
        allowed = (j <= k_len - q + i)[None, None, None]
    else:
        ctx = mask.valid.shape[-1]
        new = j - ctx  # index among the tokens appended after the context
        causal = (j >= ctx) & (new <= k_len - ctx - q + i)  # [q, K]
        context = torch.nn.functional.pad(mask.valid, (0, k_len - ctx))[:, :, None, None, :]  # [R, KV, 1, 1, K]
        allowed = context | causal[None, None, None]
    logits = logits.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(logits, dim=-1, dtype=torch.float32).to(query.dtype)
    if mask is not None and mask.needle is not None and mask.probe is not None:
        on_needle = probs[:, :, :, mask.probe, : mask.needle.shape[-1]].float() * mask.needle[:, :, None]
        mask.needle_share = on_needle.sum(dim=-1).mean(dim=(1, 2))  # mean over every query head
    out = torch.matmul(probs, value[:, :, None])  # [R, KV, group, q, d]
    return out.reshape(rows, heads, q, d).transpose(1, 2).contiguous(), None


def _register():
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, _attention)


@contextmanager
def compressed_attention(model, masks=None):
    """SinkVis's masked attention on, with masks[layer] (ContextMask) set on each attention module."""
    from .prefill import attention_modules

    _register()
    modules, _ = attention_modules(model)
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = NAME
    for layer, module in enumerate(modules):
        setattr(module, SLOT, None if masks is None else masks[layer])
    try:
        yield
    finally:
        config._attn_implementation = before
        for module in modules:
            if hasattr(module, SLOT):
                delattr(module, SLOT)
