"""One layer's prefill attention without an n × n tensor: the fast kernel, or the model's eager attention in query blocks.

The prefill forward runs under `tapped(tap, masks="sdpa")` (backend/attention/seam.py), so a layer's
mask arrives as sdpa gets it: None where it is plain causal, else boolean; never n × n floats.
- `fast_output`: transformers' own sdpa_attention_forward (flash / memory-efficient kernels on a GPU,
  torch's blocked CPU kernel otherwise) where it computes what the model's eager attention computes:
  not where the layer has a soft-cap (Gemma 2) or learned sinks (gpt-oss), nor on a model transformers
  does not run with sdpa. There, and whenever every query's attention is needed:
- `eager_blocks`: the model's own eager attention over query blocks, each row normalised exactly (its
  softmax sees the whole row), returning the output and the attention each key received summed over
  every query (H2O's and ObservedAttention's column sums) in O(block · n) memory.
- `rows`: a few queries' attention (SnapKV's window, TOVA's last query) by the same eager attention.
"""
import dataclasses

BLOCK_FLOATS = 1 << 24  # weights per eager block (64 MB in float32): rows = this / (heads · n)


def mask_rows(call, a: int, b: int):
    """The additive mask [B, 1, b − a, k] of queries a..b−1 (what eager attention adds to its logits)."""
    import torch

    q, n = call.query, call.key.shape[2]
    low = torch.finfo(q.dtype).min
    mask = call.mask
    if mask is None:  # sdpa's "plain causal": query a + r sits at position n − q_len + a + r and sees keys up to it
        i = torch.arange(a, b, device=q.device)[:, None] + (n - q.shape[2])
        j = torch.arange(n, device=q.device)[None]
        return torch.zeros(b - a, n, dtype=q.dtype, device=q.device).masked_fill(j > i, low)[None, None]
    rows = mask[:, :, a:b]
    if rows.dtype == torch.bool:  # True = attend
        return torch.zeros(rows.shape, dtype=q.dtype, device=q.device).masked_fill(~rows, low)
    return rows


def rows(call, a: int, b: int):
    """[H, b − a, k] float32: queries a..b−1's attention over every key, by the model's own eager attention."""
    return call.eager(query=call.query[:, :, a:b], mask=mask_rows(call, a, b))[1][0].float()


def block_rows(call) -> int:
    heads, n = call.query.shape[1], call.key.shape[2]
    return max(1, min(call.query.shape[2], BLOCK_FLOATS // (heads * n)))


def eager_blocks(call, sums: bool):
    """(output [B, q, H, d], column sums [H, k] float32 or None): the model's eager attention, query block by
    query block."""
    import torch

    q, n = call.query.shape[2], call.key.shape[2]
    step, outs = block_rows(call), []
    total = torch.zeros(call.query.shape[1], n, device=call.query.device) if sums else None
    for a in range(0, q, step):
        b = min(a + step, q)
        # plain causal (mask None): queries before key n − q + b see none after it, so the block's attention
        # runs over those keys only (about half the work of the whole rows; the rows' values are the same)
        seen = n - q + b if call.mask is None else n
        part = call if seen == n else dataclasses.replace(call, key=call.key[:, :, :seen], value=call.value[:, :, :seen])
        out, weights = part.eager(query=call.query[:, :, a:b], mask=mask_rows(call, a, b)[..., :seen])
        outs.append(out)
        if sums:
            total[:, :seen] += weights[0].float().sum(dim=1)
        del weights
    return torch.cat(outs, dim=1), total


def exact_with_sdpa(call, model) -> bool:
    """Whether sdpa computes what this layer's own eager attention does: transformers runs the model with
    sdpa (`_supports_sdpa`), and the layer passes no soft-cap and no learned sinks (sdpa ignores both)."""
    return bool(getattr(model, "_supports_sdpa", False)) and call.kwargs.get("softcap") is None and call.sinks is None


def fast_output(call):
    """[B, q, H, d]: the layer's attention output by transformers' sdpa_attention_forward (the mask as sdpa
    gets it: None = causal, which lets flash / memory-efficient kernels run)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    kwargs = {k: v for k, v in call.kwargs.items() if k not in ("sliding_window", "softcap", "s_aux")}
    return sdpa_attention_forward(call.module, call.query, call.key, call.value, call.mask, **kwargs)[0]
