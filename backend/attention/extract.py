"""Tokens, and the attention views behind the Quick Attention Test and model traces (rows on demand: view_rows.py)."""
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


def learned_sink_share(matrix: np.ndarray, first_row: int = 0) -> np.ndarray:
    """Each row's share on the model's learned sink: what its weights over the keys leave of 1
    (matrix: the rows of queries first_row.. over every key)."""
    return np.clip(1.0 - np.tril(matrix, first_row).sum(axis=-1, dtype=np.float64), 0.0, 1.0)


def view_layers(loaded, layer: int = -1, head=None, aggregate: str = "layer") -> tuple[list[int], int | None]:
    """(layers, head) of a view, checked: a layer's head, a layer's mean over heads (head None), or every layer."""
    n_layers, n_heads = loaded.spec["layers"], loaded.spec["heads"]
    if aggregate == "all_layers":
        return list(range(n_layers)), None
    if isinstance(layer, bool) or not isinstance(layer, int) or not -n_layers <= layer < n_layers:
        raise UserError("bad_input", f"layer must be between {-n_layers} and {n_layers - 1} (−1 = last).", "layer")
    if head is not None and (isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < n_heads):
        raise UserError("bad_input", f"head must be blank (mean over heads) or between 0 and {n_heads - 1}.", "head")
    return [layer % n_layers], head


def view_rows(loaded, text: str, layer: int = -1, head=None, aggregate: str = "layer"):
    """(token ids, ViewRows): one forward, then any rows of the view on demand (view_rows.py)."""
    layers, head = view_layers(loaded, layer, head, aggregate)
    ids = encode(loaded, text)
    return ids, rows_of(loaded, ids, layers, head)


def rows_of(loaded, ids: list[int], layers: list[int], head=None):
    """The ViewRows of token ids already encoded (view_layers checked the layers and head)."""
    from .seam import through_interface
    from .view_rows import DenseRows, ViewRows

    if through_interface(loaded.model):
        return ViewRows(loaded, ids, layers, head)
    return DenseRows(loaded, ids, layers, head, forward_attentions)  # Falcon: its own attention, output_attentions


def attention_view(loaded, text: str, layer: int = -1, head=None, aggregate: str = "layer") -> dict:
    """One dense n×n matrix (small n: model traces, tests): a layer's head, a layer's mean over heads, or the mean
    over all layers and heads; learned_sink: each row's share on the model's learned sinks ([n]), or None."""
    ids, rows = view_rows(loaded, text, layer, head, aggregate)
    matrix = np.concatenate([block for _, block in rows.blocks()]).astype(np.float32)
    one = aggregate != "all_layers"
    return {"token_ids": ids, "tokens": token_labels(loaded.tokenizer, ids), "layer": rows.layers[0] if one else None,
            "head": rows.head if one else None, "matrix": matrix,
            "learned_sink": learned_sink_share(matrix) if rows.learned_sinks else None}
