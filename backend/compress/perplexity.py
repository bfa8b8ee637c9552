"""kvpress's protocol for text: compress a context of n tokens once, score the next m at their positions.

The first context_tokens are prefilled with full attention and compressed by each
method (as in answers.py); the next continuation_tokens are fed teacher-forced,
uncompressed, at their original positions, over each method's compressed cache. Token
c (the first continuation token) is predicted by the prefill's own last logits — the
same for every method, since the prefill is uncompressed — and each later token by the
one before it, so all m continuation tokens are scored. KL is KL(Full ‖ method) per
token, averaged.
"""
import math

import numpy as np

from ..errors import UserError
from .compressed import CompressedCaches
from .masked_attention import compressed_attention
from .plan import check, compress, groups, rows_of
from .prefill import Settings

CHUNK = 128  # continuation tokens per forward (logits for rows × CHUNK × vocabulary)


def _score_rows(loaded, prefill, rows, targets, report, done_before, total, kv_format=None, intact=0):
    """Per row: log-probs [m − 1, V] of targets[1:] (float32, CPU); kv_format: the caches store that format."""
    import torch

    n, device = prefill.n, loaded.device
    caches = CompressedCaches(prefill, rows, kv_format=kv_format, intact=intact)
    feed = targets[:-1]
    out_lp = [[] for _ in rows]
    with compressed_attention(caches.masks, caches.positions, n), torch.inference_mode():
        for a in range(0, len(feed), CHUNK):
            b = min(a + CHUNK, len(feed))
            out = loaded.model(input_ids=torch.tensor([feed[a:b]] * len(rows), device=device),
                               position_ids=torch.arange(n + a, n + b, device=device)[None].expand(len(rows), -1),
                               past_key_values=caches.cache, use_cache=True)
            lp = torch.log_softmax(out.logits.float(), dim=-1).cpu()
            for r in range(len(rows)):
                out_lp[r].append(lp[r])
            report(0.5 + 0.5 * (done_before + b) / total, "Scoring the continuation")
    return [torch.cat(x) if x else torch.zeros(0) for x in out_lp]


def prefill_perplexity(loaded, ids, context_tokens, continuation_tokens, methods, *, cache_size=None, ratio=None,
                       sinks=4, window=32, report=None, kv_format=None, intact_sinks=0) -> dict:
    """Per method {"perplexity", "kl_vs_full", "memory_tokens", "note"} (BRIEF's contract). kv_format
    (backend/quantize): every method's compressed cache, Full's included, stores that format, and KL is measured
    against the unquantized Full Cache (scored once more, as "full_unquantized")."""
    import torch

    report = report or (lambda *a, **k: None)
    c, m = int(context_tokens), int(continuation_tokens)
    if m < 1 or c + m > len(ids):
        raise UserError("bad_input", f"context_tokens + continuation_tokens ({c} + {m}) must fit in the text "
                        f"({len(ids)} tokens), with at least 1 continuation token.", "continuation_tokens")
    methods = list(dict.fromkeys(methods))
    asked = ["full"] + [x for x in methods if x != "full"]  # Full Cache is the reference for KL
    budget = check(loaded, c, asked, cache_size, ratio, sinks, window, m)
    prefill, per_method = compress(loaded, ids[:c], asked, budget, Settings(sinks=sinks, window=window), report)
    rows, row_of = rows_of({x: v["kept"] for x, v in per_method.items()})
    targets = list(ids[c:c + m])
    lps = [None] * len(rows)
    done = 0
    for members in groups(rows, c):
        scored = _score_rows(loaded, prefill, [rows[r] for r in members], targets, report, done, len(targets) * 2,
                             kv_format, intact_sinks)
        done += len(targets)
        for i, r in enumerate(members):
            lps[r] = scored[i]
    first = prefill.last_logprobs
    full_lp = lps[row_of["full"]]
    if kv_format is not None:
        full_lp = _score_rows(loaded, prefill, [rows[row_of["full"]]], targets, report, 0, len(targets) * 2)[0]
    tgt = torch.tensor(targets[1:], dtype=torch.long)
    out = {}
    for x in methods + (["full_unquantized"] if kv_format is not None else []):
        lp = full_lp if x == "full_unquantized" else lps[row_of[x]]
        later = (-lp.gather(1, tgt[:, None])[:, 0]).tolist() if len(tgt) else []  # m = 1: only the prefill's token
        nll = [-float(first[targets[0]])] + later
        kl = (full_lp.exp() * (full_lp - lp)).sum(dim=-1).tolist() if len(tgt) else []
        out[x] = {"perplexity": float(math.exp(np.mean(nll))), "kl_vs_full": float(np.mean([0.0] + kl)),
                  "memory_tokens": per_method[x if x in per_method else "full"]["memory_tokens"],
                  "note": per_method[x]["note"] if x in per_method else "Full Cache, not quantized: the reference"}
    report(1.0, "Done")
    return out
