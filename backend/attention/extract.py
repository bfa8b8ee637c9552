"""One forward pass with attentions: the matrices behind the Quick Attention Test and model traces."""
import numpy as np

from ..errors import UserError


def encode(loaded, text: str, check_context: bool = True) -> list[int]:
    """Token ids as the model sees them (with BOS when the tokenizer adds one); checked against the context
    unless check_context is False (the stream takes what fits and says so)."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("bad_input", "text is empty; type some text.", "text")
    ids = loaded.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"]
    if check_context and len(ids) > loaded.context_length:
        raise UserError("too_long", f"text is {len(ids):,} tokens but the model's context is {loaded.context_length:,}; shorten it.", "text")
    if not ids:
        raise UserError("bad_input", "text produced no tokens.", "text")
    return list(ids)


def token_labels(tokenizer, ids) -> list[str]:
    """Each token as readable text (byte-level BPE pieces decode to their characters)."""
    return [tokenizer.decode([i]) for i in ids]


def forward_attentions(loaded, ids):
    """(attentions per layer, whether the model gave part of each row to learned sinks)."""
    import torch

    from .seam import tapped

    sinks = []

    def tap(call):  # the model passes its learned sink logits (gpt-oss's s_aux) to its attention function
        if call.sinks is not None:
            sinks.append(call.layer)
        return call.eager()

    with torch.inference_mode(), tapped(tap):
        input_ids = torch.tensor([ids], device=loaded.device)
        out = loaded.model(input_ids=input_ids, output_attentions=True, use_cache=False)
    if out.attentions is None or any(a is None for a in out.attentions):
        raise UserError("no_attentions", "This model did not return attention weights (it may not support eager attention).")
    return out.attentions, bool(sinks)


def learned_sink_share(matrix: np.ndarray) -> np.ndarray:
    """Each row's share on the model's learned sink: what its weights over the keys leave of 1."""
    return np.clip(1.0 - np.tril(matrix).sum(axis=-1, dtype=np.float64), 0.0, 1.0)


def _to_numpy(attn) -> np.ndarray:
    array = attn[0].float().cpu().numpy()
    if not np.isfinite(array).all():
        raise UserError("non_finite", "The attention weights contain inf/NaN (fp16 overflow?); reload the model in fp32 or bf16.", "precision")
    return array


def attention_matrices(loaded, text: str, layers=None) -> dict:
    """tokens + attentions as float32 [layers, heads, n, n] (only `layers` if given, in that order);
    learned_sinks: True when the model gives part of each row to learned sink logits (gpt-oss), so
    rows sum to less than 1 over the keys."""
    ids = encode(loaded, text)
    attentions, sinks = forward_attentions(loaded, ids)
    picked = range(len(attentions)) if layers is None else layers
    stacked = np.stack([_to_numpy(attentions[i]) for i in picked])
    return {"token_ids": ids, "tokens": token_labels(loaded.tokenizer, ids), "attentions": stacked,
            "learned_sinks": sinks}


def attention_view(loaded, text: str, layer: int = -1, head=None, aggregate: str = "layer") -> dict:
    """One n×n matrix: a layer's head, a layer's mean over heads, or the mean over all layers and heads;
    learned_sink: each row's share on the model's learned sinks ([n]), or None for a model without."""
    n_layers, n_heads = loaded.spec["layers"], loaded.spec["heads"]
    if aggregate == "all_layers":
        data = attention_matrices(loaded, text)
        matrix = data["attentions"].mean(axis=(0, 1))
        layer, head = None, None
    else:
        if isinstance(layer, bool) or not isinstance(layer, int) or not -n_layers <= layer < n_layers:
            raise UserError("bad_input", f"layer must be between {-n_layers} and {n_layers - 1} (−1 = last).", "layer")
        layer = layer % n_layers
        if head is not None and (isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < n_heads):
            raise UserError("bad_input", f"head must be blank (mean over heads) or between 0 and {n_heads - 1}.", "head")
        data = attention_matrices(loaded, text, layers=[layer])
        per_head = data["attentions"][0]
        matrix = per_head.mean(axis=0) if head is None else per_head[head]
    matrix = matrix.astype(np.float32)
    return {"token_ids": data["token_ids"], "tokens": data["tokens"], "layer": layer, "head": head, "matrix": matrix,
            "learned_sink": learned_sink_share(matrix) if data["learned_sinks"] else None}
