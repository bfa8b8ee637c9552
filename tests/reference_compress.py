"""Plain numpy re-implementations of the prefill methods, written from kvpress's formulas.

Independent of backend/compress: queries are recomputed here from the recorded attention
input and the q_proj weights, RoPE is applied from the inverse frequencies, attention is
a float64 softmax, Expected Attention's averaged rotation is built by rotating the basis
vectors, and the budget rules are written out directly. Inputs are one recorded prefill
(`record`): per layer the attention input, cached keys/values, and the layer's weights.
"""
import math

import numpy as np


def record(loaded, ids):
    """One plain prefill: per layer {hidden [n, D], keys/values [KV, n, d], wq, bq}, float64."""
    import torch
    from transformers import DynamicCache

    layers, inputs = loaded.model.model.layers, {}
    hooks = [l.self_attn.register_forward_pre_hook(
        lambda m, a, k, i=i: inputs.__setitem__(i, k["hidden_states"][0].double().numpy()), with_kwargs=True)
        for i, l in enumerate(layers)]
    cache = DynamicCache(config=loaded.model.config)
    with torch.inference_mode():
        loaded.model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
    for h in hooks:
        h.remove()
    out = []
    for i, layer in enumerate(layers):
        attn = layer.self_attn
        bias = attn.q_proj.bias
        out.append({"hidden": inputs[i], "keys": cache.layers[i].keys[0].double().numpy(),
                    "values": cache.layers[i].values[0].double().numpy(),
                    "wq": attn.q_proj.weight.detach().double().numpy(),
                    "bq": None if bias is None else bias.detach().double().numpy()})
    config = loaded.model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    theta = config.rope_parameters["rope_theta"]
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)
    return {"layers": out, "heads": config.num_attention_heads, "inv_freq": inv_freq}


def rope(x, positions, inv_freq):
    """x [..., n, d] rotated to positions (Llama's pairing: dimension i with i + d/2)."""
    angle = np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None]
    cos, sin = np.cos(np.concatenate([angle, angle], -1)), np.sin(np.concatenate([angle, angle], -1))
    half = x.shape[-1] // 2
    turned = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * cos + turned * sin


def prerope_queries(rec, layer):
    L = rec["layers"][layer]
    q = L["hidden"] @ L["wq"].T + (0 if L["bq"] is None else L["bq"])
    n, d = q.shape[0], L["keys"].shape[-1]
    return q.reshape(n, rec["heads"], d).transpose(1, 0, 2)  # [H, n, d]


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def attention(rec, layer):
    """[H, n, n] causal attention of every context query."""
    k = rec["layers"][layer]["keys"]
    n, d = k.shape[1], k.shape[2]
    q = rope(prerope_queries(rec, layer), np.arange(n), rec["inv_freq"])
    group = rec["heads"] // k.shape[0]
    logits = q @ np.repeat(k, group, axis=0).transpose(0, 2, 1) / math.sqrt(d)
    logits[:, np.triu(np.ones((n, n), bool), 1)] = -np.inf
    return softmax(logits)


def group_mean(x, kv):
    return x.reshape(kv, -1, x.shape[-1]).mean(1)


def scores(method, rec, layer, sinks=4, window=32, seed=0):
    """[KV, n] float64: higher is kept first."""
    L = rec["layers"][layer]
    k, v = L["keys"], L["values"]
    kv, n, d = k.shape
    if method == "sliding_window":
        return np.tile(np.arange(n, dtype=np.float64), (kv, 1))
    if method == "streaming_llm":
        s = np.tile(np.arange(n, dtype=np.float64), (kv, 1))
        s[:, :sinks] = n + 1
        return s
    if method in ("h2o", "observed_attention"):
        a = attention(rec, layer)
        if method == "observed_attention":
            return group_mean(a.sum(1) / np.arange(n, 0, -1), kv)
        s = group_mean(a.sum(1), kv)
        s[:, n - window:] = s.max() + 1
        return s
    if method == "tova":
        last = attention(rec, layer)[:, -1, : n - 1].mean(0)
        return np.tile(np.r_[last, last.max() + 1], (kv, 1))
    if method == "snapkv":
        w = min(64, n - 1)
        obs = attention(rec, layer)[:, n - w:, : n - w].mean(1)  # [H, n − w]
        padded = np.pad(obs, ((0, 0), (2, 2)))
        pooled = sum(padded[:, i:i + n - w] for i in range(5)) / 5  # avg pool, zero padding counted
        s = group_mean(pooled, kv)
        return np.concatenate([s, np.full((kv, w), s.max() + 1)], 1)
    if method == "expected_attention":
        q = prerope_queries(rec, layer)[:, 4:]
        mu = q.mean(1)
        cov = np.einsum("hsi,hsj->hij", q - mu[:, None], q - mu[:, None]) / q.shape[1]
        basis = np.eye(d)
        R = np.mean([rope(basis, np.full(d, p), rec["inv_freq"]).T for p in range(n, n + 512)], axis=0)
        mu, cov = mu @ R.T, R @ cov @ R.T
        keys = np.repeat(k[:, 4:], rec["heads"] // kv, axis=0)
        logits = np.einsum("hnd,hd->hn", keys, mu) / math.sqrt(d) + np.einsum("hni,hij,hnj->hn", keys, cov, keys) / d / 2
        s = group_mean(softmax(logits), kv) * np.linalg.norm(v[:, 4:], axis=-1)
        return np.concatenate([np.full((kv, 4), s.max() + 1), s], 1)
    if method == "knorm":
        return -np.linalg.norm(k, axis=-1)
    if method == "keydiff":
        unit = k / np.linalg.norm(k, axis=-1, keepdims=True)
        anchor = unit.mean(1, keepdims=True)
        return -(unit * anchor).sum(-1) / np.linalg.norm(anchor, axis=-1)
    if method == "random":
        import torch

        return torch.rand(kv, n, generator=torch.Generator().manual_seed(seed)).double().numpy()
    raise ValueError(method)


def pyramid_budget(n, ratio, layer, layers, window=64, beta=20):
    """PyramidKV's linear layer budgets (KVCache-Factory's formula, kvpress's fallback)."""
    average = n * (1 - ratio)  # per layer, beyond the window
    low, high = average / beta, 2 * average - average / beta
    if high >= n - window:
        high = n - window
        low = 2 * average - high
    if not (n >= high >= low >= window):
        return round(n * (1 - ratio))
    return round(high - layer * (high - low) / (layers - 1))


def select(s, rule, kept, ratio=None, layer=0, layers=1):
    """Per head the sorted kept positions."""
    kv, n = s.shape
    if rule == "uniform":
        return [np.sort(np.argsort(-row, kind="stable")[:kept]) for row in s]
    if rule == "pyramid":
        k = min(n, pyramid_budget(n, ratio, layer, layers))
        return [np.sort(np.argsort(-row, kind="stable")[:k]) for row in s]
    if rule == "adaptive":  # each head's top 20 % first, then the layer's best kv·kept overall
        safe = int(kept * 0.2)
        protected = np.zeros_like(s, dtype=bool)
        for h in range(kv):
            protected[h, np.argsort(-s[h], kind="stable")[:safe]] = True
        flat = np.where(protected, np.inf, s).reshape(-1)
        chosen = np.argsort(-flat, kind="stable")[: kv * kept]
        return [np.sort(chosen[chosen // n == h] % n) for h in range(kv)]
    raise ValueError(rule)


def eager_prefill_scores(loaded, ids, scorers, settings):
    """The prefill as SinkVis ran it before blockwise attention (kept as the reference the blockwise one must
    equal): one eager forward holding each layer's whole [H, n, n] weights, window rows and column sums read
    off them. Returns name → per layer scores [KV, n]."""
    import torch
    from transformers import DynamicCache

    from backend.attention.rotary import layer_rotaries
    from backend.attention.seam import tapped
    from backend.compress.layer import LayerInputs

    class WholeWeights(LayerInputs):
        def __init__(self, call, weights, rotary, layer, layers):
            super().__init__(call, rotary, layer, layers)
            self.attention = weights[0]

        def window_attention(self, w):
            return self.attention[:, self.n - w:].float()

        @property
        def attention_sums(self):
            return self.attention.float().sum(dim=1)

    model = loaded.model
    rotaries = layer_rotaries(model)
    layers = model.config.num_hidden_layers
    scores = {name: [None] * layers for name in scorers}

    def tap(call):
        out, weights = call.eager()
        view = WholeWeights(call, weights, rotaries[call.layer], call.layer, layers)
        for name, method in scorers.items():
            scores[name][call.layer] = method.scorer.score(view, settings).float()
        return out, weights

    with torch.inference_mode(), tapped(tap):
        model(input_ids=torch.tensor([ids]), position_ids=torch.arange(len(ids))[None],
              past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
    return scores
