"""The one place SinkVis meets a model's attention.

transformers 5 calls one attention function per layer through `AttentionInterface` with the
layer's final queries and keys (after q/k norms and rotary), its values, the mask (causal,
sliding window), the scaling and, where the model has them, the soft-cap and learned sinks.
`install(model)` registers SinkVis's function under NAME once, when the model loads. With
nothing attached it *is* the model's own eager attention: the function the model's modeling
file defines (Gemma 2's applies its soft-cap, gpt-oss's its sinks, GPT-2's its own scaling),
so every output is the model's.

A job attaches a tap with `tapped(tap)` for the forwards of its own thread only. Nothing is
set on the shared model while a job runs, so another job's forward meanwhile (another
thread) runs the plain model and can never pick up this job's masks or captures.
"""
import sys
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass

NAME = "sinkvis"
_local = threading.local()


def own_eager(module):
    """The eager attention of the module's own modeling file (Llama's if the file has none)."""
    fn = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if fn is None:
        from transformers.models.llama.modeling_llama import eager_attention_forward as fn
    return fn


@dataclass
class Call:
    """One layer's call of its attention function, as the model made it."""
    module: object
    query: object   # [B, H, q, d], after norms and rotary
    key: object     # [B, KV, k, d]: every key this forward attends over (the layer's cache included)
    value: object   # [B, KV, k, d]
    mask: object    # additive [B, 1, q, k] (causal, sliding window, padding) or None
    kwargs: dict    # scaling, dropout, sliding_window, softcap, s_aux, … as the layer passed them

    @property
    def layer(self) -> int:
        return int(getattr(self.module, "layer_idx", -1))

    @property
    def sinks(self):
        """The learned sink logit per query head (gpt-oss), or None."""
        return self.kwargs.get("s_aux")

    @property
    def sliding_window(self):
        return self.kwargs.get("sliding_window")

    def eager(self, query=None, mask="same"):
        """(output, weights) of the model's own eager attention, for these queries (default: all) and
        this additive mask (default: the model's). Weights leave out a learned sink's share."""
        query = self.query if query is None else query
        mask = self.mask if isinstance(mask, str) else mask
        return own_eager(self.module)(self.module, query, self.key, self.value, mask, **self.kwargs)


def _attention(module, query, key, value, attention_mask, **kwargs):
    call = Call(module, query, key, value, attention_mask, kwargs)
    tap = getattr(_local, "tap", None)
    return call.eager() if tap is None else tap(call)


def _mask(*args, **kwargs):
    """The mask eager gets (additive [B, 1, q, k]), or for a thread whose tap asked for sdpa's masks
    (`tapped(tap, masks="sdpa")`) sdpa's: None where the mask is plain causal, else boolean. A long prefill
    then never holds an n × n float mask; its tap reads the mask's rows block by block."""
    from transformers.masking_utils import eager_mask, sdpa_mask

    return (sdpa_mask if getattr(_local, "masks", "eager") == "sdpa" else eager_mask)(*args, **kwargs)


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, _attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, _mask)  # eager's 4-D mask unless the thread's tap asks for sdpa's


def install(model) -> None:
    """Route the model's attention through SinkVis's function (once, at load; exact: it is the model's
    own eager attention until a job taps it)."""
    _register()
    model.set_attn_implementation(NAME)


def attention_layers(model) -> list:
    """The decoder's attention modules in layer order (every module that calls an attention function with a
    layer index: LlamaAttention, GPTNeoXAttention, GPT2Attention, …)."""
    found = {}
    for m in model.modules():
        if type(m).__name__.endswith("Attention") and isinstance(getattr(m, "layer_idx", None), int):
            found.setdefault(m.layer_idx, m)
    return [found[i] for i in sorted(found)]


def through_interface(model) -> bool:
    """Whether the model's attention layers call transformers' attention interface (and so SinkVis's
    function): their modeling files dispatch through ALL_ATTENTION_FUNCTIONS. Falcon, for one, computes
    attention inline and never reaches the seam."""
    layers = attention_layers(model)
    return bool(layers) and installed(model) and all(
        hasattr(sys.modules.get(type(m).__module__), "ALL_ATTENTION_FUNCTIONS") for m in layers)


def outside_interface_message(model, what: str) -> str:
    kind = getattr(model.config, "model_type", "this model")
    return (f"{what} needs each layer's queries and keys, taken where the model calls transformers' attention "
            f"interface; {kind} computes its attention its own way and never calls it. Load a model that does "
            "(Llama, Qwen, Gemma, Mistral, gpt-oss, OLMo, Phi-3, Pythia, GPT-2, …).")


_windows = weakref.WeakKeyDictionary()  # model → per layer its sliding window, as its attention calls say


def sliding_windows(model) -> list:
    """Per attention layer the sliding window it passes to its attention function (tokens), or None for a
    full-attention layer: read off one 2-token forward (models name it differently: Mistral passes its
    config's, Gemma each layer's), once per model."""
    if model not in _windows:
        import torch

        seen = {}

        def tap(call):
            seen[call.layer] = call.sliding_window or None
            return call.eager()

        device = next(model.parameters()).device
        with torch.inference_mode(), tapped(tap):
            model(input_ids=torch.zeros((1, 2), dtype=torch.long, device=device), use_cache=False, logits_to_keep=1)
        _windows[model] = [seen.get(i) for i in range(len(attention_layers(model)))]
    return _windows[model]


def sliding_note(model) -> str | None:
    """What an eviction budget means on a model with sliding-window layers (None: it has none)."""
    windows = sliding_windows(model)
    sliding = [w for w in windows if w]
    if not sliding:
        return None
    return (f"{len(sliding)} of {len(windows)} layers attend within a sliding window of {max(sliding):,} tokens. A "
            "policy keeps the same entries in every layer; a sliding layer reads only the kept entries within its "
            "window of each query (by original position), so it never needs more than its window, whatever C is.")


def installed(model) -> bool:
    return getattr(model.config, "_attn_implementation", None) == NAME


@contextmanager
def tapped(tap, masks: str = "eager"):
    """tap(call) → (output, weights) answers every attention call of this thread's forwards inside the
    block; other threads' forwards are untouched. Taps nest: the inner one wins until it exits.
    masks="sdpa": call.mask is None (plain causal) or boolean, as sdpa gets it, instead of eager's additive
    n × n floats; call.eager() then needs an additive mask passed in (backend/compress/blocks.py builds rows)."""
    if masks not in ("eager", "sdpa"):
        raise ValueError(f"masks must be 'eager' or 'sdpa', not {masks!r}")
    before = getattr(_local, "tap", None), getattr(_local, "masks", "eager")
    _local.tap, _local.masks = tap, masks
    try:
        yield
    finally:
        _local.tap, _local.masks = before
