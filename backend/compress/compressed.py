"""Compressed copies of the prefill's cache, one batch row per distinct kept set.

Methods that keep the same positions (every method once C ≥ n) share one row, so they
get the same numbers exactly. Each layer's tensor is [rows, KV, L_layer, d]: L is the
most any row's head keeps in that layer; shorter heads are padded and masked
(masked_attention.py). Questions and answers are appended after the L entries.
"""
import numpy as np

from .masked_attention import ContextMask


class CompressedCaches:
    def __init__(self, prefill, kept_sets: list[list[np.ndarray]], needle_span=None, kv_format=None, intact=0):
        """kept_sets: per row, per layer int64 [KV, k] sorted positions (−1 pads). kv_format: the kept entries
        (and what is appended) are stored in it (backend/quantize); positions below `intact` stay unquantized."""
        import torch
        from transformers import DynamicCache

        from ..quantize.layer import QuantizedKVCache

        self.rows = len(kept_sets)
        self.cache = DynamicCache() if kv_format is None else QuantizedKVCache(kv_format, intact)
        self.masks, self.lengths, self.positions = [], [], []  # positions: the kept entries' original ones
        for layer, full in enumerate(prefill.cache.layers):
            width = max(k[layer].shape[1] for k in kept_sets)
            index = np.full((self.rows, full.keys.shape[1], width), -1, dtype=np.int64)
            for r, k in enumerate(kept_sets):
                index[r, :, : k[layer].shape[1]] = k[layer]
            idx = torch.from_numpy(index).to(full.keys.device)
            valid = idx >= 0
            kv, n, d = full.keys.shape[1:]
            flat = (torch.arange(kv, device=idx.device)[None, :, None] * n + idx.clamp(min=0)).reshape(-1)
            # index_select on the flattened [KV·n, d] rows: several times faster than gather on CPU
            keys = full.keys[0].reshape(kv * n, d).index_select(0, flat).view(self.rows, kv, width, d)
            values = full.values[0].reshape(kv * n, d).index_select(0, flat).view(self.rows, kv, width, d)
            if kv_format is None:
                self.cache.update(keys, values, layer)
            else:  # quantized as they enter, at their original positions (IntactKV); padding stays as it is
                self.cache.insert(layer, keys, values, idx.clamp(min=0), ~valid)
            needle = None
            if needle_span is not None:
                needle = valid & (idx >= needle_span[0]) & (idx < needle_span[1])
            self.masks.append(ContextMask(valid=valid, needle=needle))
            self.positions.append(idx.clamp(min=0))
            self.lengths.append(width)

    def set_probe(self, probe: int | None) -> None:
        for m in self.masks:
            m.probe, m.needle_share = probe, None

    def needle_shares(self) -> np.ndarray:
        """[rows, layers] share of attention on the needle recorded at the probe query."""
        return np.stack([m.needle_share.double().cpu().numpy() for m in self.masks], axis=1)

    def crop(self, appended: int) -> None:
        """Keep only the first `appended` tokens added after the compressed context."""
        for layer, cached in enumerate(self.cache.layers):
            end = self.lengths[layer] + appended
            if hasattr(cached, "cut"):  # a quantized layer also forgets the removed entries' bookkeeping
                cached.cut(end)
            else:
                cached.keys, cached.values = cached.keys[:, :, :end], cached.values[:, :, :end]
