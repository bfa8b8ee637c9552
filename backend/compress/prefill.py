"""One full prefill of the context; every method scores each layer as it passes.

A forward hook on every attention module (kvpress's BasePress.forward_hook does the
same) sees the layer's input, its rotary embedding, the keys/values just cached and the
eager attention weights; each method's scorer runs there and only its scores [KV, n]
are kept, so one layer's data lives at a time. After the forward the budget rule turns
scores into kept positions per (layer, KV head).
"""
import time
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..models.own_hooks import add_own_forward_hooks
from .budgets import Budget, kept_positions
from .layer import LayerInputs


@dataclass(frozen=True)
class Settings:
    sinks: int = 4
    window: int = 32
    seed: int = 0


def checked_scores(scores, view: LayerInputs, name: str):
    """A method's scores as the budget rules need them: a real-valued torch tensor [KV heads, n] on the layer's
    device. Anything else (a meta tensor, a list, complex numbers, another shape) would fail deep inside
    top-k or .item() with a message about torch, not about the method: it is named here."""
    import torch

    want = f"[{view.kv_heads}, {view.n}] (KV heads, positions) on {view.keys.device}"
    if not isinstance(scores, torch.Tensor):
        got = type(scores).__name__
    elif scores.device != view.keys.device:
        got = f"a tensor on {scores.device}"
    elif scores.dtype.is_complex or scores.dtype == torch.bool:
        got = f"a {str(scores.dtype).replace('torch.', '')} tensor"
    elif tuple(scores.shape) != (view.kv_heads, view.n):
        got = f"shape {list(scores.shape)}"
    else:
        return scores
    raise UserError("bad_score", f"Prefill method {name!r} returned {got} in layer {view.layer}; its scores must be "
                    f"a real-valued torch tensor of shape {want}: compute them from the layer's keys and queries, "
                    "or pick another method.", "policy")


def attention_modules(model):
    """The decoder layers' attention modules, for Llama-family models (q_proj + rotary)."""
    inner = getattr(model, "model", None)
    inner = getattr(inner, "language_model", inner)
    layers = getattr(inner, "layers", None)
    rotary = getattr(inner, "rotary_emb", None)
    if layers is None or rotary is None or not all(hasattr(l.self_attn, "q_proj") for l in layers):
        raise UserError("unsupported_model", "Compression at prefill needs a Llama-family model (q_proj and a rotary "
                        "embedding, as kvpress supports); this one has another attention. Load e.g. SmolLM2 or the "
                        "demo model.", "model")
    return [l.self_attn for l in layers], rotary


class Prefill:
    """The context's full cache, last logits, and each method's kept positions per layer."""

    def __init__(self, loaded, context_ids: list[int], scorers: dict, settings: Settings, report=None):
        """scorers: name → methods.Method; only their scores are computed. report(fraction, stage) after
        each layer (the job's progress; Cancel raises from it, out of the forward)."""
        import torch
        from transformers import DynamicCache

        model = loaded.model
        modules, rotary = attention_modules(model)
        self.n, self.layers, self.settings = len(context_ids), len(modules), settings
        self.scores = {name: [None] * self.layers for name in scorers}
        self.seconds = {"forward": 0.0, "scoring": 0.0, "selection": 0.0}
        by_scorer = {}  # methods sharing a scorer (snapkv, pyramidkv, adakv_snapkv) score once
        for name, method in scorers.items():
            by_scorer.setdefault(method.scorer.__name__, (method.scorer, []))[1].append(name)

        def hook(module, args, kwargs, output):
            tick = time.perf_counter()
            layer = module.layer_idx
            cached = kwargs["past_key_values"].layers[layer]
            view = LayerInputs(module, kwargs["hidden_states"][0], kwargs["position_embeddings"], cached.keys[0],
                               cached.values[0], output[1][0] if output[1] is not None else None, rotary,
                               layer, self.layers)
            for scorer, names in by_scorer.values():
                s = checked_scores(scorer.score(view, settings), view, names[0]).float()
                for name in names:
                    self.scores[name][layer] = s
            self.seconds["scoring"] += time.perf_counter() - tick
            if report is not None:
                report(0.5 * (layer + 1) / self.layers, "Prefill (full attention, methods scoring each layer)",
                       layer=layer + 1, layers=self.layers)

        self.cache = DynamicCache(config=model.config)
        handles = add_own_forward_hooks(modules, hook) if by_scorer or report else []
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                out = model(input_ids=torch.tensor([context_ids], device=loaded.device),
                            position_ids=torch.arange(self.n, device=loaded.device)[None],
                            past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        finally:
            for h in handles:
                h.remove()
        self.seconds["forward"] = time.perf_counter() - started - self.seconds["scoring"]
        self.last_logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1).cpu()

    def kept(self, name: str, rule: str, budget: Budget) -> list[np.ndarray]:
        """Per layer int64 [KV, k_layer] sorted kept positions (−1 pads)."""
        tick = time.perf_counter()
        out = [kept_positions(s, rule, budget, layer, self.layers) for layer, s in enumerate(self.scores[name])]
        self.seconds["selection"] += time.perf_counter() - tick
        return out
