"""Why a format hurts: the error it puts on each layer × KV head's K and V, per position, with the sinks
and the outlier channels marked (issue 34's picture).

The text runs once through the model with a plain cache (chunked, as Evaluate's Full pass: attention rows
one chunk at a time, never n × n); each layer's K and V are then stored in the format exactly as a quantized
cache would store them (layer.py: residual blocks, intact sinks) and compared with what went in. This is the
error of storing one layer's cache, not its effect carried through the later layers (Evaluate measures that).

Relative error = ‖stored − exact‖ / ‖exact‖ over the entries in question. Sinks: keys whose mean received
attention (mean over layers and heads, from the queries after them) is ≥ 0.10, as everywhere in SinkVis.
Outlier channels: per layer and KV head, the OUTLIERS channels of K with the largest mean |K|.
"""
import numpy as np

from ..attention.sinks import sink_mask

OUTLIERS = 4


def _relative(diff, exact, dims) -> np.ndarray:
    num = diff.pow(2).sum(dim=dims)
    den = exact.pow(2).sum(dim=dims).clamp(min=1e-30)
    return (num / den).sqrt().double().numpy()


def quantization_error(loaded, ids: list[int], kv_format, intact_sinks: int = 0, report=lambda *a, **k: None) -> dict:
    import torch

    from ..evaluate.full import FullPass
    from .formats import kv_bytes
    from .layer import QuantizedKVCache

    n = len(ids)
    full = FullPass(loaded, ids, attention_until=n, logits=False)
    after = np.zeros(n)  # attention each key received from the queries after it (mean over layers and heads)
    while full.end < n:
        full.advance()
        rows = full.rows.mean(axis=0)  # [q, k]: the chunk's queries, over keys 0..end−1
        q = np.arange(full.start, full.end)
        later = np.arange(rows.shape[1])[None, :] < q[:, None]  # the key before the query, not itself
        after[: rows.shape[1]] += np.where(later, rows, 0.0).sum(axis=0)
        report(0.8 * full.end / n, "Full pass (sinks from its attention)")
    sinks = np.flatnonzero(sink_mask(after, n - 1)).tolist()

    stored = QuantizedKVCache(kv_format, intact_sinks)
    key_err, value_err, key_pos, value_pos, channels, channel_share, sink_share = [], [], [], [], [], [], []
    for layer, exact in enumerate(full.cache.layers):
        k, v = exact.keys.float(), exact.values.float()
        stored.insert(layer, k, v)
        dk, dv = (stored.layers[layer].keys.float() - k)[0], (stored.layers[layer].values.float() - v)[0]
        k0, v0 = k[0], v[0]  # [KV, n, d]
        key_err.append(_relative(dk, k0, (1, 2)))
        value_err.append(_relative(dv, v0, (1, 2)))
        key_pos.append(_relative(dk, k0, (0, 2)))
        value_pos.append(_relative(dv, v0, (0, 2)))
        loud = k0.abs().mean(dim=1).topk(OUTLIERS, dim=-1).indices  # [KV, OUTLIERS]
        channels.append(loud.tolist())
        err2 = dk.pow(2)
        total = err2.sum(dim=(1, 2)).clamp(min=1e-30)
        channel_share.append((err2.sum(dim=1).gather(1, loud).sum(dim=1) / total).double().numpy())
        at_sinks = err2[:, sinks].sum(dim=(1, 2)) if sinks else torch.zeros(err2.shape[0])
        sink_share.append((at_sinks / total).double().numpy())
        report(0.8 + 0.2 * (layer + 1) / len(full.cache.layers), "Storing each layer in the format")

    def grid(x):
        return np.round(np.stack(x), 6).tolist()

    return {"tokens": n, "layers": len(key_err), "kv_heads": int(key_err[0].shape[0]), "sinks": sinks,
            "intact_sinks": intact_sinks, **kv_bytes(loaded, kv_format),
            "key_error": grid(key_err), "value_error": grid(value_err),  # [layers][KV heads]
            "key_error_by_position": np.round(np.mean(key_pos, axis=0), 6).tolist(),  # [n], mean over layers
            "value_error_by_position": np.round(np.mean(value_pos, axis=0), 6).tolist(),
            "outlier_channels": channels,  # [layers][KV heads][OUTLIERS]
            "outlier_channel_error_share": grid(channel_share),  # share of K's squared error in those channels
            "sink_error_share": grid(sink_share),  # share of K's squared error at the sink positions
            "definition": "relative error ‖stored − exact‖ / ‖exact‖ of each layer's K and V stored in the format "
                          "(not propagated through later layers)"}
