"""The prefill protocol (kvpress's): one full prefill of the context, every method compresses its
own copy once (to C, or by a ratio), the question is appended uncompressed and answered greedily
at the original positions. The work is backend/compress's `prefill_answers`; this adapts its
per-method results to the cells' form."""
import numpy as np

from ..errors import UserError


def methods() -> list[str] | None:
    """The prefill methods backend/compress offers, or None while it is not there."""
    try:
        from ..compress import prefill_methods
    except ImportError:
        return None
    return list(prefill_methods())


def kept_needle(kept: list, span: tuple[int, int]) -> np.ndarray:
    """Per layer an int64 [KV heads, k] of kept positions (-1 pads) → [layers, KV heads] needle counts."""
    return np.stack([((k >= span[0]) & (k < span[1])).sum(-1) for k in kept])


def run_prefill(loaded, prompt, policies: list[str], cache_size: int | None, ratio: float | None, sinks: int,
                window: int, report=lambda fraction: None, kv_format=None, intact_sinks: int = 0) -> dict:
    try:
        from ..compress import prefill_answers
    except ImportError:
        raise UserError("prefill_unavailable", "The prefill protocol needs backend/compress, which this build lacks: "
                        "use protocol='streaming'.", "protocol") from None
    out = prefill_answers(loaded, prompt.context_ids, prompt.question_ids, prompt.answer_ids, policies,
                          cache_size=cache_size, ratio=ratio, sinks=sinks, window=window,
                          needle_span=prompt.needle_span, kv_format=kv_format, intact_sinks=intact_sinks,
                          report=lambda fraction, stage=None, **extra: report(fraction))
    results = {}
    for p in policies:
        r = out[p]
        attention = r.get("needle_attention")
        results[p] = {"generated": list(r["generated"]), "answer_logprob": float(r["answer_logprob"]),
                      "needle_attention": None if attention is None else np.asarray(attention, np.float64),
                      "needle_kept": kept_needle(r["kept"], prompt.needle_span), "cached": r.get("memory_tokens"),
                      "kept": r["kept"], "note": r.get("note")}
    return results
