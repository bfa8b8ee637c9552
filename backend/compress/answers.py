"""kvpress's protocol for questions: compress the context once, then answer the question uncompressed.

The context is prefilled with full attention once (prefill.py); every method keeps its
own positions of that cache (compressed.py); the question is appended uncompressed at
the original positions n, n+1, … and answered greedily. All distinct kept sets run in
one batched forward per step. The answer's log-probability is teacher-forced in the
same forward as the question; the cache is then cut back to the question for greedy
decoding.
"""
import numpy as np

from ..errors import UserError
from .compressed import CompressedCaches
from .masked_attention import compressed_attention
from .plan import check, compress, groups, rows_of
from .prefill import Settings


def _eos_ids(loaded) -> set:
    ids = set()
    for source in (getattr(loaded.tokenizer, "eos_token_id", None),
                   getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(x) for x in source)
    return ids


def _answer_rows(loaded, prefill, rows, question_ids, answer_ids, max_new_tokens, needle_span, eos, kv_format=None,
                 intact=0):
    import torch

    n, q, device = prefill.n, len(question_ids), loaded.device
    caches = CompressedCaches(prefill, rows, needle_span, kv_format, intact)
    tokens = list(question_ids) + list(answer_ids)
    caches.set_probe(q - 1 if needle_span is not None else None)
    with compressed_attention(caches.masks, caches.positions, n), torch.inference_mode():
        out = loaded.model(input_ids=torch.tensor([tokens] * caches.rows, device=device),
                           position_ids=torch.arange(n, n + len(tokens), device=device)[None].expand(caches.rows, -1),
                           past_key_values=caches.cache, use_cache=True)
        lp = torch.log_softmax(out.logits[:, q - 1:].float(), dim=-1).cpu()  # [R, 1 + a, V]
        answer_lp = [float(sum(lp[r, j, t] for j, t in enumerate(answer_ids))) for r in range(caches.rows)]
        needle = caches.needle_shares() if needle_span is not None else None
        caches.set_probe(None)
        caches.crop(q)
        nxt = lp[:, 0].argmax(dim=-1)
        generated, done = [[] for _ in range(caches.rows)], [False] * caches.rows
        for step in range(max_new_tokens):
            for r in range(caches.rows):
                if not done[r]:
                    if int(nxt[r]) in eos:
                        done[r] = True
                    else:
                        generated[r].append(int(nxt[r]))
            if all(done) or step == max_new_tokens - 1:
                break
            out = loaded.model(input_ids=nxt[:, None].to(device),
                               position_ids=torch.full((caches.rows, 1), n + q + step, device=device),
                               past_key_values=caches.cache, use_cache=True)
            nxt = out.logits[:, -1].float().argmax(dim=-1).cpu()
    return generated, answer_lp, needle


def prefill_answers(loaded, context_ids, question_ids, answer_ids, methods, *, cache_size=None, ratio=None,
                    sinks=4, window=32, max_new_tokens=10, needle_span=None, report=None, kv_format=None,
                    intact_sinks=0) -> dict:
    """See BRIEF's contract (backend/compress/__init__.py): one entry per method. kv_format: every compressed
    cache stores that format (backend/quantize), the question and answer too, as they enter."""
    report = report or (lambda *a, **k: None)
    if not question_ids:
        raise UserError("bad_input", "the question must be at least one token.", "question")
    if max_new_tokens < 1:
        raise UserError("bad_input", "max_new_tokens must be ≥ 1.", "max_new_tokens")
    n = len(context_ids)
    if needle_span is not None and not 0 <= needle_span[0] < needle_span[1] <= n:
        raise UserError("bad_input", f"needle_span must lie inside the context [0, {n}).", "needle_span")
    methods = list(dict.fromkeys(methods))
    budget = check(loaded, n, methods, cache_size, ratio, sinks, window,
                   len(question_ids) + max(len(answer_ids), max_new_tokens))
    prefill, per_method = compress(loaded, context_ids, methods, budget, Settings(sinks=sinks, window=window), report)
    rows, row_of = rows_of({m: v["kept"] for m, v in per_method.items()})
    eos = _eos_ids(loaded)
    generated, answer_lp, needle = [None] * len(rows), [None] * len(rows), [None] * len(rows)
    for g, members in enumerate(groups(rows, n)):
        report(0.5 + 0.5 * g / 2, "Answering", methods=len(methods), batch=len(members))
        gen, alp, ndl = _answer_rows(loaded, prefill, [rows[r] for r in members], question_ids, answer_ids,
                                     max_new_tokens, needle_span, eos, kv_format, intact_sinks)
        for i, r in enumerate(members):
            generated[r], answer_lp[r] = gen[i], alp[i]
            needle[r] = None if ndl is None else ndl[i]
    report(1.0, "Done")
    out = {}
    for m in methods:
        r = row_of[m]
        out[m] = {"generated": generated[r], "answer_logprob": answer_lp[r], "kept": per_method[m]["kept"],
                  "needle_attention": None if needle[r] is None else np.asarray(needle[r], dtype=np.float64),
                  "memory_tokens": per_method[m]["memory_tokens"], "note": per_method[m]["note"]}
    return out
