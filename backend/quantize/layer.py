"""The seam: a transformers cache layer that quantizes K and V as they enter and hands back what a read
of the stored format gives (quantize-on-insert, dequantize-on-read).

It holds the dequantized values: the same numbers a read of the stored codes produces, so attention, eviction
(a gather on `keys`/`values`, backend/evaluate/cache.py) and everything else that reads a DynamicCache work
unchanged; the format's real size is counted by formats.KVFormat.bytes_per_token.

A side with a residual R (KIVI, per-channel int) keeps its newest entries in full precision: `pending` marks
them, and each time R more tokens have entered, the pending block is quantized together (per channel over the
block) — whatever eviction left of it. Inserts are split at those boundaries, so a chunked prefill stores
exactly what token-by-token decoding would. IntactKV: entries at positions below `intact` are never quantized.
"""
from functools import partial

from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class QuantizingLayer(DynamicLayer):
    def __init__(self, kv_format, intact: int = 0):
        super().__init__()
        self.format, self.intact = kv_format, intact
        self.inserted = 0  # entries that have entered (residual blocks count them)
        self.next_position = 0  # the position the model's next token takes
        self.pending = {"k": None, "v": None}  # bool [B, KV, k]: full precision, waiting for its block
        self.state = {"k": {}, "v": {}}  # a codec's calibration (fp8 scales), frozen after the first insert

    def update(self, key_states, value_states, *args, **kwargs):
        import torch

        n = key_states.shape[-2]
        positions = torch.arange(self.next_position, self.next_position + n, device=key_states.device)
        self.insert(key_states, value_states, positions)
        return self.keys, self.values

    def insert(self, keys, values, positions, exact=None) -> None:
        """Append entries at `positions` (long [n], or [B, KV, n] when rows differ, as compressed caches do);
        exact: bool [B, KV, n], entries stored as they are (a compressed cache's padding, never read)."""
        if not self.is_initialized:
            self.lazy_initialization(keys, values)
        n, start = keys.shape[-2], 0
        while start < n:  # pieces that end where a residual block completes
            stop = min([n] + [start + side.residual - (self.inserted % side.residual)
                              for side in (self.format.key, self.format.value) if side.residual])
            self._append(keys[:, :, start:stop], values[:, :, start:stop], positions[..., start:stop],
                         None if exact is None else exact[..., start:stop])
            start = stop
        if n:
            self.next_position = max(self.next_position, int(positions.max()) + 1)

    def _append(self, keys, values, positions, exact=None) -> None:
        import torch

        intact = (positions < self.intact).expand(keys.shape[:-1])
        if exact is not None:
            intact = intact | exact
        self.inserted += keys.shape[-2]
        key, value = self.format.key, self.format.value
        if not key.residual and not value.residual and key.codec == value.codec and not bool(intact.any()) and \
                getattr(key.codec, "stateless", False):  # one call for K and V: a decode step's cost is per call
            both = key.codec.roundtrip(torch.cat([keys, values]), {})
            self.keys = torch.cat([self.keys, both[: keys.shape[0]]], dim=-2)
            self.values = torch.cat([self.values, both[keys.shape[0]:]], dim=-2)
            return
        stored = []
        for kind, x, side, old in (("k", keys, self.format.key, self.keys), ("v", values, self.format.value, self.values)):
            if side.residual:  # full precision until its block is complete
                wait = ~intact
                self.pending[kind] = wait if self.pending[kind] is None else torch.cat([self.pending[kind], wait], -1)
                full = torch.cat([old, x], dim=-2)
                if self.inserted % side.residual == 0:
                    full = torch.where(self.pending[kind][..., None],
                                       side.codec.roundtrip(full, self.state[kind], self.pending[kind]), full)
                    self.pending[kind] = torch.zeros_like(self.pending[kind])
                stored.append(full)
            else:
                q = x if bool(intact.all()) else side.codec.roundtrip(x, self.state[kind])
                stored.append(torch.cat([old, torch.where(intact[..., None], x, q)], dim=-2))
        self.keys, self.values = stored

    def cut(self, length: int) -> None:
        """Keep the first `length` entries (answers are teacher-forced, then cut back to the question). A block
        quantized meanwhile keeps the values it got."""
        removed = self.keys.shape[-2] - length
        self.keys, self.values = self.keys[:, :, :length], self.values[:, :, :length]
        self.pending = {kind: None if m is None else m[..., :length] for kind, m in self.pending.items()}
        self.inserted -= removed
        self.next_position -= removed

    def gathered(self, index) -> None:
        """Eviction kept entries `index` [B, KV, k] of every row (the caller gathered keys and values)."""
        import torch

        for kind, mask in self.pending.items():
            if mask is not None:
                self.pending[kind] = torch.gather(mask, -1, index)


class QuantizedKVCache(DynamicCache):
    """A DynamicCache whose layers are QuantizingLayers."""

    def __init__(self, kv_format, intact: int = 0):
        super().__init__()
        self.layer_class_to_replicate = partial(QuantizingLayer, kv_format, intact)
        self.kv_format, self.intact = kv_format, intact

    def expanded(self, batch: int) -> "QuantizedKVCache":
        """A copy with every row repeated `batch` times (each policy's cache starts from this one's entries)."""
        out = QuantizedKVCache(self.kv_format, self.intact)
        for layer in self.layers:
            copy = out.layer_class_to_replicate()
            copy.lazy_initialization(layer.keys, layer.values)
            copy.keys = layer.keys.expand(batch, -1, -1, -1).contiguous()
            copy.values = layer.values.expand(batch, -1, -1, -1).contiguous()
            copy.pending = {kind: None if m is None else m.expand(batch, -1, -1).contiguous()
                            for kind, m in layer.pending.items()}
            copy.inserted, copy.next_position = layer.inserted, layer.next_position
            copy.state = {kind: dict(s) for kind, s in layer.state.items()}  # the same calibration (fp8 scales)
            out.layers.append(copy)
        return out

    def insert(self, layer: int, keys, values, positions=None, exact=None) -> None:
        """Entries into `layer` at `positions` (default the next ones; [B, KV, k] when rows differ);
        exact: bool [B, KV, k], entries stored unquantized (a compressed cache's padding, never read)."""
        import torch

        while len(self.layers) <= layer:
            self.layers.append(self.layer_class_to_replicate())
        target = self.layers[layer]
        if positions is None:
            positions = torch.arange(target.next_position, target.next_position + keys.shape[-2], device=keys.device)
        target.insert(keys, values, positions, exact)

    def fill(self, layers_kv) -> None:
        """Per layer (keys, values) inserted at positions 0..k−1."""
        for layer, (k, v) in enumerate(layers_kv):
            self.insert(layer, k, v)
