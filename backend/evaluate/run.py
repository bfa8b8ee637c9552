"""Run the model over a text with each policy's cache applied; NLL, perplexity and KL per policy.

At step t the cache holds the keys the policy kept; the model predicts token t+1
from them plus token t (backend/evaluate/forward.py). The attention of query t over
what it saw is appended to a recorded trace, and the eviction kernel — the same one
the simulation runs — decides the kept set on that trace. So the kept sets used
here are, by construction, the kernels' choices on this attention.
While nothing has been evicted the kept set is the whole prefix, and the step is
the Full Cache computation itself: with a cache as long as the text every policy
gives Full Cache's numbers exactly.
"""
import math
import time

import numpy as np

from ..errors import UserError
from .forward import full_prefix, over_kept
from .policy_step import OnlinePolicy

CURVE_POINTS = 400


def _curve(nll: np.ndarray) -> dict:
    """Running perplexity over position (StreamingLLM Fig. 3), downsampled."""
    if len(nll) == 0:
        return {"position": [], "perplexity": []}
    running = np.exp(np.cumsum(nll) / np.arange(1, len(nll) + 1))
    idx = np.unique(np.linspace(0, len(nll) - 1, min(CURVE_POINTS, len(nll))).astype(int))
    return {"position": (idx + 1).tolist(), "perplexity": running[idx].round(4).tolist()}


def _summary(policy, nll, kl, started, extra=None) -> dict:
    out = {"policy": policy, "tokens": int(len(nll)),
           "perplexity": float(math.exp(nll.mean())) if len(nll) else None,
           "kl_vs_full": float(np.mean(kl)) if len(kl) else None,
           "seconds": round(time.perf_counter() - started, 3), "curve": _curve(nll)}
    out.update(extra or {})
    return out


def evaluate(loaded, ids: list[int], policies: list[str], cache_size: int, sinks: int, window: int,
             access_threshold: float = 0.01, report=lambda *a, **k: None, keep_trace: bool = False) -> dict:
    n, context = len(ids), loaded.context_length
    if n < 2:
        raise UserError("bad_input", "text must be at least 2 tokens long.", "text")
    if cache_size + 1 > context:
        raise UserError("bad_input", f"cache_size must be below the model's context ({context}): the cache plus the new token must fit.", "cache_size")
    full_n = min(n, context)
    report(0.0, "Full-cache pass")
    full_lp, full_attn = full_prefix(loaded, ids[:full_n])
    target = np.asarray(ids)
    results = []
    for k, policy in enumerate(policies):
        started = time.perf_counter()
        if policy == "full":
            nll = -full_lp[np.arange(full_n - 1), target[1:full_n]].numpy().astype(np.float64)
            note = None if n <= context else f"Full Cache stops at the context length ({context} tokens); the text has {n}."
            results.append(_summary("full", nll, np.zeros(len(nll)), started, {"note": note, "evictions": 0}))
            continue
        online = OnlinePolicy(policy, n, cache_size, sinks, window, access_threshold)
        kept = np.zeros(0, dtype=np.int64)
        nll, kl = np.zeros(n - 1), []
        evictions = 0
        for t in range(n - 1):
            if len(kept) == t and t < full_n:  # nothing evicted yet: this is the Full Cache step
                lp, row = full_lp[t], full_attn[t, : t + 1]
            else:
                lp, seen = over_kept(loaded, ids, kept, t)
                row = np.zeros(t + 1)
                row[kept], row[t] = seen[:-1], seen[-1]
            nll[t] = -float(lp[ids[t + 1]])
            if t + 1 < full_n:
                p_full = full_lp[t]
                kl.append(float((p_full.exp() * (p_full - lp)).sum()))
            new_kept = online.step(t, row)
            evictions += len(kept) + 1 - len(new_kept)
            kept = new_kept
            if t % 16 == 0:
                report((k + (t + 1) / (n - 1)) / len(policies), f"Evaluating {policy}", position=t + 1, tokens=n)
        extra = {"evictions": int(evictions), "final_kept": kept.tolist()}
        if keep_trace:
            extra["trace"] = online.recorded()
        results.append(_summary(policy, nll, np.array(kl), started, extra))
    return {"results": results, "tokens": n, "context_length": context,
            "position_scheme": f"positions assigned inside the cache (0..k), over {loaded.spec.get('position_scheme', 'unknown')} position embeddings",
            "eviction_mode": "removed: each step recomputes the kept tokens with in-cache positions"}
