"""The streaming protocol (decode-time eviction) on Evaluate's real caches and decision makers.

The context flows through every policy's cache (backend/evaluate/cache.py, one batch row per
policy) as in Evaluate: the first C + 1 tokens are Full Cache's (one shared prefill), then
chunks of k tokens are prefilled into every cache at once and each policy's decision maker
(backend/evaluate/decide.py) is stepped on every query of the chunk before the cache is cut
back to C. k = 1 is Evaluate's exact token-by-token mode; kvpress's decoding press works in
chunks. Keys keep their original positions. The question and the answer then go through the
same caches uncompressed (answer.py): the cache grows past C while they do.
"""
import numpy as np

from ..attention.kept_keys import KeptKeys, attending
from ..evaluate.cache import PolicyCaches
from ..evaluate.decide import PolicyDeciders
from ..evaluate.full import FullPass, kv_head_rows
from .answer import answer


def kept_needle(pos: np.ndarray, span: tuple[int, int], layers: int, kv_heads: int) -> np.ndarray:
    """[B, units, k] cached positions → [B, layers, KV heads]: how many needle positions are still cached."""
    inside = (pos >= span[0]) & (pos < span[1])
    return inside.sum(-1).reshape(pos.shape[0], layers, kv_heads)


def run_streaming(loaded, prompt, policies: list[str], cache_size: int, sinks: int, window: int, chunk: int = 1,
                  access_threshold: float = 0.01, report=lambda fraction: None, kv_format=None, intact_sinks=0) -> dict:
    """One cell: {policy: {generated, answer_logprob, needle_attention [layers], needle_kept [layers, KV], cached}}.
    report(fraction within the cell) is called often (it raises Cancelled). kv_format: every cache, Full's
    included, stores that format (backend/quantize), from the first token on."""
    from kernels.eviction import to_fixed

    ids, C = prompt.context_ids, cache_size
    n, units = len(ids), loaded.spec["layers"] * loaded.spec["kv_heads"]
    evicting = [p for p in policies if p != "full"]
    cache = None
    if kv_format is not None:
        from ..quantize.layer import QuantizedKVCache

        cache = QuantizedKVCache(kv_format, intact_sinks)
    full = FullPass(loaded, ids, attention_until=min(n, C + 1) if evicting else 0, logits=False,  # attention: deciders
                    cache=cache, split_at=None if cache is None else C + 1)  # the policies start from its state at C + 1
    deciders = PolicyDeciders(evicting, units, n, C, sinks, window, max(1, to_fixed(access_threshold))) if evicting else None
    try:
        return _run(loaded, prompt, policies, evicting, full, deciders, C, chunk, report)
    finally:
        if deciders is not None:
            deciders.close()  # user rules' workers go back to the idle ones (remote_decider.py)


def _run(loaded, prompt, policies, evicting, full, deciders, C, chunk, report) -> dict:
    ids, span = prompt.context_ids, prompt.needle_span
    n, layers, kv = len(ids), loaded.spec["layers"], loaded.spec["kv_heads"]
    units = layers * kv
    caches = None
    steps = max(1, n - C - 1)
    evicts = deciders is not None and n > C
    t, prefix = 0, min(n, C + 1)
    while t < prefix:  # the shared prefix, one Full Cache chunk at a time: every cache is still Full Cache's
        full.upto(t)
        end = min(full.end, prefix)
        report(0.0)
        if evicts:  # queries t .. end − 1 over keys 0 .. end − 1, the same for every policy
            rows = full.rows[:, t - full.start: end - full.start, :end]
            pos = np.broadcast_to(np.arange(end), (len(evicting), units, end))
            deciders.step_block(t, pos, np.broadcast_to(rows, (len(evicting),) + rows.shape))
        t = end
    if evicts and not hasattr(full.cache, "expanded"):
        caches = PolicyCaches(full.prefix_kv(C + 1), len(evicting))  # original positions: nothing moves
    elif evicts:  # a quantized cache: its state after C + 1 tokens, residual blocks and calibration included
        shared = full.cache.expanded(len(evicting))
        caches = PolicyCaches([(c.keys, c.values) for c in shared.layers], len(evicting), cache=shared)
    if evicts:
        caches.keep(deciders.cached(pos))
    if caches is not None:
        import torch

        for a in range(C + 1, n, chunk):  # chunks of k tokens: prefill all, step every query, cut back to C
            b = min(a + chunk, n)
            with torch.inference_mode(), attending(KeptKeys.of_units(caches.pos, a, kv, loaded.model)):
                out = loaded.model(input_ids=torch.tensor([ids[a:b]], device=loaded.device).expand(len(evicting), -1),
                                   position_ids=torch.arange(a, b, device=loaded.device).expand(len(evicting), -1),
                                   past_key_values=caches.cache, use_cache=True, output_attentions=True,
                                   logits_to_keep=1)  # the chunk's logits are never read: skip the lm_head on k−1 rows
            for t in range(a, b):
                caches.appended(t, t)
            report((a - C) / steps)  # once per chunk forward (< 1 s on 2 cores at k = 64): Cancel lands in time
            # query t saw the cache before the chunk and the chunk up to t: one kernel call per unit and chunk
            deciders.step_block(a, caches.pos, kv_head_rows(out.attentions, kv, double=False))
            caches.keep(deciders.cached(caches.pos))
            report((b - C) / steps)
    if "full" in policies or caches is None:  # Full Cache's own cache takes the rest of the context
        full.extend(lambda: report(1.0))
    results = {}
    full_pos = np.broadcast_to(np.arange(n), (1, units, n))
    if "full" in policies or caches is None:
        reference = answer(loaded, full.cache, 1, full_pos, n, prompt.question_ids, prompt.answer_ids, span)[0]
        reference.update(needle_kept=kept_needle(full_pos, span, layers, kv)[0], cached=n)
        for p in policies if caches is None else ["full"]:  # nothing evicted: every policy is Full Cache exactly
            results[p] = dict(reference)
    if caches is not None:
        kept = kept_needle(caches.pos, span, layers, kv)
        pos = caches.pos.copy()
        for b, row in enumerate(answer(loaded, caches.cache, len(evicting), pos, n, prompt.question_ids,
                                       prompt.answer_ids, span)):
            results[evicting[b]] = {**row, "needle_kept": kept[b], "cached": int(pos.shape[-1]), "positions": pos[b]}
    for p, error in deciders.failed.items() if deciders is not None else ():
        results[p]["failed"] = error  # a user rule stopped mid-run (#25): its numbers are the stand-in's
    return results
