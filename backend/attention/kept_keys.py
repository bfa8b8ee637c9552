"""Attention over an evicted cache, as the model would compute it: a seam tap (seam.py).

Once entries are evicted, a cache's index is no longer a position. transformers builds each
layer's mask from indices (causal, and the sliding window for sliding layers), which stays right
for causality but lets a sliding-window layer read keys further back than its window. This tap
adds what the indices cannot say, from the entries' original positions:
  - the first k0 entries of every layer sit at `positions` [B, layers·KV, k0] (original token
    positions; `valid` False marks padding), the entries after them at start, start + 1, …;
  - a layer that passes a sliding window W reads a key only if query position − key position < W.
Everything else is the model's own eager attention (soft-caps and learned sinks included).
"""
import numpy as np


def key_mask(call, allowed):
    """The call's additive mask with the keys not `allowed` masked too: allowed [B, KV, K] or
    [B, KV, q, K] bool → an additive mask [B, H, q, K] in the query's dtype.

    transformers builds one mask per forward from one layer's cache length; a compressed cache's
    layers hold different counts (PyramidKV's budgets, Ada-KV's heads, rows of other methods), so
    where the model's mask does not have this layer's width the causal part is made here, by index:
    the forward's q queries are the last q entries."""
    import torch

    k_len, q = call.key.shape[2], call.query.shape[2]
    if allowed.dim() == 3:
        allowed = allowed[:, :, None]
    model_mask = call.mask if call.mask is not None and call.mask.shape[-1] == k_len else None
    if model_mask is None and q > 1:
        i = torch.arange(q, device=allowed.device)[:, None]
        causal = torch.arange(k_len, device=allowed.device)[None] <= k_len - q + i  # [q, K]
        allowed = allowed & causal
    heads = call.query.shape[1]
    low = torch.finfo(call.query.dtype).min
    extra = torch.zeros(allowed.shape, dtype=call.query.dtype, device=allowed.device).masked_fill(~allowed, low)
    extra = extra.repeat_interleave(heads // allowed.shape[1], dim=1)
    return extra if model_mask is None else torch.minimum(model_mask, extra)


class KeptKeys:
    def __init__(self, positions: list, start: int, valid: list | None = None):
        """positions: per layer torch int [B, KV, k0]; valid: per layer torch bool [B, KV, k0] (or None: all)."""
        self.positions, self.start, self.valid = positions, int(start), valid

    @classmethod
    def of_units(cls, positions: np.ndarray, start: int, kv_heads: int, model) -> "KeptKeys | None":
        """From [B, layers·KV, k0] original positions (the eviction deciders' units); None when no layer of
        the model has a sliding window (then the model's own mask is already exact: nothing to tap)."""
        import torch

        from .seam import sliding_windows

        if not any(sliding_windows(model)):
            return None
        pos = torch.from_numpy(np.ascontiguousarray(positions))
        pos = pos.view(pos.shape[0], -1, kv_heads, pos.shape[-1])
        return cls([pos[:, layer] for layer in range(pos.shape[1])], start)

    def allowed(self, call):
        """[B, KV, K] or [B, KV, q, K] bool, or None when every key may be read (the model's own mask suffices)."""
        import torch

        layer, k_len, q = call.layer, call.key.shape[2], call.query.shape[2]
        if not 0 <= layer < len(self.positions):
            return None
        pos = self.positions[layer].to(call.key.device)  # [B, KV, k0]
        k0 = pos.shape[-1]
        allowed = None
        if self.valid is not None and self.valid[layer] is not None:
            allowed = torch.nn.functional.pad(self.valid[layer], (0, k_len - k0), value=True)
        window = call.sliding_window
        if window:
            after = torch.arange(self.start, self.start + k_len - k0, device=pos.device).expand(*pos.shape[:2], -1)
            key_pos = torch.cat([pos, after], dim=-1)  # [B, KV, K]
            query_pos = self.start + (k_len - k0 - q) + torch.arange(q, device=pos.device)  # the forward's last q entries
            near = (query_pos[:, None] - key_pos[:, :, None, :]) < window  # [B, KV, q, K]
            allowed = near if allowed is None else near & allowed[:, :, None]
        return allowed

    def tap(self, call):
        allowed = self.allowed(call)
        return call.eager() if allowed is None else call.eager(mask=key_mask(call, allowed))

    def attending(self):
        """This tap on this thread's forwards inside the block."""
        from .seam import tapped

        return tapped(self.tap)


def attending(kept: "KeptKeys | None"):
    """kept's tap for the forwards inside the block, or nothing when there is no kept set to apply."""
    from contextlib import nullcontext

    return nullcontext() if kept is None else kept.attending()
