"""The attention SinkVis runs over compressed caches: a key mask per (row, layer, KV head).

Methods keep different positions, and different counts per layer (PyramidKV) or per
head (Ada-KV). Each layer's cache is one rectangular tensor [rows, KV, L, d], L the
most any (row, head) keeps in that layer; the shorter heads are padded and masked here.
kvpress does per-head budgets the same way in spirit (attention_patch.py replaces the
dropped keys by a key no query attends to, and refuses eager); a mask is exact on
every implementation. Memory is therefore counted as the mean number of kept entries.

The mask joins the model's own (causal) and the model's own eager attention computes the
rest, soft-caps and learned sinks included: a tap on SinkVis's attention function
(backend/attention/seam.py) for this thread's forwards only. A sliding-window layer reads
only the kept keys within its window of each query, by original position (kept_keys.py).
"""
from dataclasses import dataclass


@dataclass
class ContextMask:
    valid: object                 # torch bool [rows, KV, L]: which of the layer's first L entries are kept keys
    needle: object = None         # torch bool [rows, KV, L]: kept entries inside the needle span, or None
    probe: int | None = None      # query index whose share of attention on the needle is recorded
    needle_share: object = None   # torch float [rows], written by the forward


def masked_tap(masks, positions, start: int):
    """A seam tap: each layer's keys outside its ContextMask are masked, and a sliding-window layer
    reads only its window, from the kept entries' original positions (kept_keys.py); the needle share
    is recorded."""
    from ..attention.kept_keys import KeptKeys, key_mask

    kept = KeptKeys(positions, start, [m.valid for m in masks])

    def tap(call):
        allowed = kept.allowed(call)
        if allowed is None:
            return call.eager()
        out, weights = call.eager(mask=key_mask(call, allowed))
        mask, ctx = masks[call.layer], masks[call.layer].valid.shape[-1]
        if mask.needle is not None and mask.probe is not None:
            heads = weights.shape[1]
            needle = mask.needle.repeat_interleave(heads // mask.needle.shape[1], dim=1)  # [R, H, L]
            on_needle = weights[:, :, mask.probe, :ctx].float() * needle
            mask.needle_share = on_needle.sum(dim=-1).mean(dim=1)  # mean over every query head
        return out, weights

    return tap


def compressed_attention(masks, positions, start: int):
    """SinkVis's masked attention for this thread's forwards inside the block (masks[layer]: ContextMask;
    positions[layer]: the kept entries' original positions [rows, KV, L]; start: the first appended position)."""
    from ..attention.seam import tapped

    return tapped(masked_tap(masks, positions, start))
