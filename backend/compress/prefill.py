"""One full prefill of the context; every method scores each layer as it passes.

A tap on SinkVis's attention function (backend/attention/seam.py; kvpress uses a forward hook
per attention module the same way) sees each layer's final queries, keys and values; each
method's scorer runs there and only its scores [KV, n] are kept, so one layer's data lives at
a time. After the forward the budget rule turns scores into kept positions per (layer, KV head).
Every architecture that calls its attention through transformers' AttentionInterface works the
same way.

No n × n tensor exists (backend/compress/blocks.py): the forward asks for sdpa's masks (None when
plain causal) and each layer's output is sdpa's, unless a method needs every query's attention
(H2O, ObservedAttention) or the layer has a soft-cap or learned sinks: then the model's own eager
attention runs in query blocks, giving the output and the column sums in one pass. SnapKV's and
TOVA's window rows are computed from the window's queries only, when the scorer asks.
"""
import time
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
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


def _give_back_freed_memory() -> None:
    """Return the heap's free pages to the system (glibc's malloc_trim) after a layer's scoring. Its
    temporaries come in many sizes, so glibc keeps what they freed on its heap instead of unmapping it
    and the process's resident memory creeps up layer by layer (measured, SmolLM2 at 7,800 tokens with
    SnapKV + Knorm + Expected Attention: peak RSS 1.19–1.46x a plain forward's without this, 1.01x with
    it; bench/long_context.py). Elsewhere: nothing."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        pass


def attention_modules(model):
    """The decoder's attention modules, for models that call transformers' attention interface."""
    from ..attention.seam import attention_layers, outside_interface_message, through_interface

    if not through_interface(model):
        raise UserError("unsupported_model", outside_interface_message(model, "Compression at prefill"), "model")
    return attention_layers(model)


def _rotaries(model, layers: int) -> list:
    """Each layer's rotary (to undo it on queries), None where there is none."""
    from ..attention.rotary import FixedPositions, layer_rotaries

    try:
        return layer_rotaries(model)
    except FixedPositions:  # learned or no positions: the captured queries carry no rotation
        return [None] * layers


class Prefill:
    """The context's full cache, last logits, and each method's kept positions per layer."""

    def __init__(self, loaded, context_ids: list[int], scorers: dict, settings: Settings, report=None):
        """scorers: name → methods.Method; only their scores are computed. report(fraction, stage) after
        each layer (the job's progress; Cancel raises from it, out of the forward)."""
        import torch
        from transformers import DynamicCache

        from ..attention.seam import tapped
        from .blocks import eager_blocks, exact_with_sdpa, fast_output

        model = loaded.model
        modules = attention_modules(model)
        rotaries = _rotaries(model, len(modules))
        self.n, self.layers, self.settings = len(context_ids), len(modules), settings
        self.scores = {name: [None] * self.layers for name in scorers}
        self.seconds = {"forward": 0.0, "scoring": 0.0, "selection": 0.0}
        by_scorer = {}  # methods sharing a scorer (snapkv, pyramidkv, adakv_snapkv) score once
        for name, method in scorers.items():
            by_scorer.setdefault(method.scorer.__name__, (method.scorer, []))[1].append(name)
        want_sums = any(getattr(m.scorer, "ATTENTION", None) == "every query" for m in scorers.values())

        def tap(call):
            if want_sums or not exact_with_sdpa(call, model):
                out, sums = eager_blocks(call, sums=want_sums)  # the model's own attention, block by block
            else:
                out, sums = fast_output(call), None
            tick = time.perf_counter()
            layer = call.layer
            view = LayerInputs(call, rotaries[layer], layer, self.layers, sums=sums)
            for scorer, names in by_scorer.values():
                s = checked_scores(scorer.score(view, settings), view, names[0]).float()
                for name in names:
                    self.scores[name][layer] = s
            del view
            _give_back_freed_memory()
            self.seconds["scoring"] += time.perf_counter() - tick
            if report is not None:
                report(0.5 * (layer + 1) / self.layers, "Prefill (full attention, methods scoring each layer)",
                       layer=layer + 1, layers=self.layers)
            return out, None

        self.cache = DynamicCache()  # every layer keeps all n entries (sliding ones too; their mask still slides)
        started = time.perf_counter()
        with torch.inference_mode(), tapped(tap, masks="sdpa"):
            out = model(input_ids=torch.tensor([context_ids], device=loaded.device),
                        position_ids=torch.arange(self.n, device=loaded.device)[None],
                        past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        self.seconds["forward"] = time.perf_counter() - started - self.seconds["scoring"]
        self.last_logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1).cpu()

    def kept(self, name: str, rule: str, budget: Budget) -> list[np.ndarray]:
        """Per layer int64 [KV, k_layer] sorted kept positions (−1 pads)."""
        tick = time.perf_counter()
        out = [kept_positions(s, rule, budget, layer, self.layers) for layer, s in enumerate(self.scores[name])]
        self.seconds["selection"] += time.perf_counter() - tick
        return out
