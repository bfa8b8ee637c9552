"""Perplexity under eviction on the model's real KV cache: NLL, perplexity and KL per policy.

Every policy runs the model one token per step over its own KV cache (cache.py); after
the step the policy's decision maker (deciders.py: the eviction kernels, per layer and
KV head or one kept set for all) says which entries stay, and the others are dropped
from the cache tensors. Kept entries keep the K/V they were computed with. All policies
share one batched decode step per token (their caches have the same length).

Until the cache first overflows (steps t ≤ C) every cache is Full Cache's, so those
steps are taken from the Full pass (full.py) itself: with C ≥ the text every policy
gives Full Cache's numbers exactly.

With a KV format (backend/quantize) every cache stores its entries quantized, Full Cache's too: the Full
pass runs over a quantized cache (its state after C + 1 tokens is where the policies start), and a second,
plain Full pass is the reference that KL is measured against.

Positions: by default each key keeps its original position (as H2O evaluates); with
positions="in_cache" a rotary model's keys are re-rotated to their index in the cache
after each eviction (StreamingLLM). Past the context a rotary model continues with
in-cache positions; a model with learned absolute positions (GPT-2) stops there.
"""
import math
import time

import numpy as np

from ..attention.kept_keys import KeptKeys, attending
from ..attention.rotary import FixedPositions, layer_rotaries
from ..errors import Cancelled, UserError
from ..quantize.formats import kv_bytes
from .cache import PolicyCaches
from .decide import PolicyDeciders
from .deciders import policy_entry, registered_policies
from .full import FullPass, kv_head_rows
from .quest import NAME as QUEST
from .quest import Quest
from .recompute import NAME as RECOMPUTE
from .recompute import Recompute
from .time_left import TimeLeft

CURVE_POINTS = 400
POSITIONS = ("original", "in_cache")
GRANULARITIES = ("per_head", "shared")


def evaluate_policies() -> list[str]:
    """Every policy Evaluate accepts, Full Cache first."""
    return ["full"] + [p for p in registered_policies() if p != "full"] + [QUEST, RECOMPUTE]


def _curve(nll: np.ndarray, full_nll: np.ndarray | None = None) -> dict:
    """Running perplexity over position (StreamingLLM Fig. 3), downsampled; with Full Cache's NLL also
    vs_full, the running perplexity ÷ Full Cache's at each position (1 until the cache first fills): the
    first positions' running perplexity spans orders of magnitude, the ratio shows the divergence after C."""
    if len(nll) == 0:
        return {"position": [], "perplexity": []}
    count = np.arange(1, len(nll) + 1)
    running = np.exp(np.cumsum(nll) / count)
    idx = np.unique(np.linspace(0, len(nll) - 1, min(CURVE_POINTS, len(nll))).astype(int))
    out = {"position": (idx + 1).tolist(), "perplexity": running[idx].round(4).tolist()}
    if full_nll is not None:
        out["vs_full"] = np.exp((np.cumsum(nll) - np.cumsum(full_nll)) / count)[idx].round(5).tolist()
    return out


def _ppl(nll: np.ndarray):
    return float(math.exp(nll.mean())) if len(nll) else None


def _summary(policy, nll, kl, extra, context, full_nll=None) -> dict:
    out = {"policy": policy, "tokens": int(len(nll)), "perplexity": _ppl(nll),
           "kl_vs_full": float(np.mean(kl)) if len(kl) else None, "curve": _curve(nll, full_nll)}
    if len(nll) > context:  # queries at positions < context, and past it (StreamingLLM's headline)
        out.update(perplexity_within_context=_ppl(nll[:context]), perplexity_past_context=_ppl(nll[context:]))
    out.update(extra)
    return out


def _check(loaded, n, policies, cache_size, sinks, window, positions, granularity):
    known = evaluate_policies()
    bad = [p for p in policies if p not in known]
    if bad:
        raise UserError("bad_input", f"unknown policy {bad[0]!r}; choose from {', '.join(known)}.", "policy")
    if n < 2:
        raise UserError("bad_input", "text must be at least 2 tokens long.", "text")
    if positions not in POSITIONS:
        raise UserError("bad_input", f"positions must be one of {', '.join(POSITIONS)}.", "positions")
    if granularity not in GRANULARITIES:
        raise UserError("bad_input", f"granularity must be one of {', '.join(GRANULARITIES)}.", "granularity")
    context = loaded.context_length
    if not 2 <= cache_size < context:
        raise UserError("bad_input", f"cache_size must be 2..{context - 1}: below the model's context ({context}), "
                        "so the cache plus the new token fit.", "cache_size")
    if not 0 <= sinks < cache_size:
        raise UserError("bad_input", "sinks must be below cache_size.", "sinks")
    if not 1 <= window < cache_size:
        raise UserError("bad_input", "window must be 1..cache_size−1.", "window")


def movable_positions(loaded):
    """(per layer its LayerRotary — None on a layer without rotary —, None) when cached keys can move to
    other positions, else (None, why not)."""
    try:
        return layer_rotaries(loaded.model), None
    except FixedPositions as exc:
        return None, str(exc)


def position_scheme(loaded, n: int, positions: str) -> tuple[str, int, str | None]:
    """(description, tokens evaluated, note). Decides how far the text can go."""
    context, kind = loaded.context_length, loaded.spec.get("position_scheme", "other")
    rotaries, why = movable_positions(loaded)
    rotary = rotaries is not None
    if positions == "in_cache" and not rotary:
        raise UserError("bad_input", f"in-cache positions need keys that can move to other positions, and {why}: "
                        "use positions='original'.", "positions")
    where = ("original positions (each key keeps the position it was computed at)" if positions == "original"
             else "in-cache positions (StreamingLLM: keys re-rotated to their index in the cache after each eviction)")
    if n <= context:
        return f"{where}; {kind} position embeddings", n, None
    if rotary:
        tail = "" if positions == "in_cache" else "; past the context, in-cache positions (keys re-rotated)"
        return (f"{where}{tail}; rotary position embeddings. Full Cache is dense attention at the original "
                f"positions, also past the context ({context})"), n, None
    note = (f"Stopped at the context length ({context} of {n} tokens): {kind} positions are baked into each "
            "cached K/V, so no cache can go further; a rotary model can.")
    return f"{where}; {kind} position embeddings", context, note


def _check_format(loaded, kv_format, policies, intact_sinks) -> None:
    if kv_format is None:
        if intact_sinks:
            raise UserError("bad_input", "intact_sinks keeps sink tokens out of a quantized cache: give a kv_format "
                            "too, or leave intact_sinks at 0.", "intact_sinks")
        return
    kv_format.check(loaded.spec["head_dim"])
    own = [p for p in policies if p in (QUEST, RECOMPUTE)]
    if own:
        raise UserError("bad_input", f"{own[0]} does not read a stored cache the way the others do, so a KV format "
                        "does not apply to it: leave it out of a quantized run.", "policy")


def evaluate(loaded, ids: list[int], policies: list[str], cache_size: int, sinks: int, window: int,
             access_threshold: float = 0.01, report=lambda *a, **k: None, keep_trace: bool = False,
             positions: str = "original", granularity: str = "per_head", text_info: dict | None = None,
             time_left: TimeLeft | None = None, kv_format=None, intact_sinks: int = 0) -> dict:
    """Every policy's perplexity, KL and running curve. Reports carry the time left (time_left.py) and the
    result so far (`partial`); Cancel raises Cancelled with that partial result. kv_format (backend/quantize): every policy's cache, Full Cache's
    included, stores its entries in that format; KL is then measured against the unquantized Full Cache (a second,
    plain pass). intact_sinks: positions below it stay in full precision (IntactKV)."""
    import torch

    from kernels.eviction import to_fixed

    _check(loaded, len(ids), policies, cache_size, sinks, window, positions, granularity)
    _check_format(loaded, kv_format, policies, intact_sinks)
    text_tokens = len(ids)
    scheme, n, note = position_scheme(loaded, text_tokens, positions)
    ids = list(ids[:n])
    context, steps, C = loaded.context_length, n - 1, cache_size
    kv_heads, units = loaded.spec["kv_heads"], loaded.spec["layers"] * loaded.spec["kv_heads"]
    tau = max(1, to_fixed(access_threshold))
    evicting = [p for p in policies if p in registered_policies()]
    deciders = PolicyDeciders(evicting, units, n, C, sinks, window, tau, granularity)
    if keep_trace:
        for maker, _ in deciders.makers.values():
            if hasattr(maker, "record"):
                maker.record()
    if kv_format is None:
        full = reference = FullPass(loaded, ids, attention_until=min(steps, C + 1))
    else:  # Full Cache in the format (and the policies' shared prefix, exactly C + 1 entries at t = C)
        from ..quantize.layer import QuantizedKVCache

        full = FullPass(loaded, ids, attention_until=min(steps, C + 1), split_at=C + 1,
                        cache=QuantizedKVCache(kv_format, intact_sinks))
        reference = FullPass(loaded, ids, attention_until=0)  # the unquantized Full Cache, for KL
    nll_reference = np.zeros(steps)
    recompute = Recompute(loaded, ids, n, C, sinks, window, access_threshold, keep_trace) if RECOMPUTE in policies else None
    quest = Quest(loaded, ids, C) if QUEST in policies else None  # its own path: all of Full's cache, k pages read
    rotaries = movable_positions(loaded)[0]
    nll = {p: np.zeros(steps) for p in policies}
    kl = {p: [] for p in policies}
    caches, started, last_report = None, time.perf_counter(), 0.0
    spent = {"full": 0.0, "batch": 0.0, RECOMPUTE: 0.0, QUEST: 0.0, "decode": 0.0}  # seconds, for each result's share
    decode_steps, done = 0, 0  # done: steps finished for every policy (what a partial result covers)
    report(0.0, "Full-cache pass", position=0, tokens=steps)
    if time_left is None:
        probe = {}
        if steps > C + 1:  # a measured evicting step and chunk, for the time left until the run has timed its own
            from .estimate import estimate

            probe = estimate(loaded, steps, C, len(evicting), recompute is not None)
        time_left = TimeLeft(steps, C, probe.get("evicting_step_seconds"), probe.get("chunk_seconds"))

    kv = kv_bytes(loaded, kv_format)

    def results_upto(done: int) -> list[dict]:
        """Each policy's summary over its first `done` steps (all of them once the run ends)."""
        final = done == steps
        out = []
        for p in [p for p in policies if p not in deciders.failed]:
            extra = {"evictions": 0, "granularity": "—", **kv}
            if p == "full":
                extra.update(evictions=0, note=None if steps < context else
                             f"Dense attention past the context ({context} tokens): positions the model never saw.")
            elif p == RECOMPUTE:
                extra.update(evictions=int(recompute.evictions), granularity="one window for all heads (recomputed)")
                if keep_trace and final:
                    extra.update(trace=recompute.online.trace, final_kept=recompute.kept.tolist())
            elif p == QUEST:
                extra.update(quest.summary())
            else:
                maker, per_head = deciders.makers[p]
                extra.update(evictions=max(0, done - C), granularity="per KV head" if per_head else
                             ("same positions in every head" if not policy_entry(p).per_head else "one kept set for all heads"))
                if keep_trace and final:  # per unit: [units][C] positions (one unit unless decided per head)
                    kept = caches.pos[evicting.index(p)] if caches is not None else None
                    extra.update(trace=getattr(maker, "recorded", None),
                                 final_kept=None if kept is None else (kept if per_head else kept[:1]).tolist())
            share = spent["full"] if p == "full" else spent[p] if p in (RECOMPUTE, QUEST) else spent["batch"] / len(evicting)
            extra["seconds"] = round(share, 3)  # batched policies: an equal share of the shared decode steps
            out.append(_summary(p, nll[p][:done], np.array(kl[p][:min(done, context)]), extra, context,
                                nll["full"][:done] if "full" in nll else None))
        return out

    def result(done: int) -> dict:
        seconds = round(time.perf_counter() - started, 3)
        failed = deciders.failed
        out = {"results": results_upto(done), "tokens": n, "text_tokens": text_tokens,
               "context_length": context, "position_scheme": scheme, "positions": positions,
               "granularity": granularity, "kv_aggregation": "mean over the query heads of each KV head",
               "seconds": seconds, "timing": {"batched_decode_steps": decode_steps, "batch": len(evicting),
                                              "seconds_per_batched_step": spent["decode"] / max(1, decode_steps)},
               "tokens_per_second": round(done / max(seconds, 1e-9), 2), "note": note,
               "settings": {"cache_size": C, "sinks": sinks, "window": window, "access_threshold": access_threshold},
               "text": text_info, "kv_format": kv["kv_format"], "intact_sinks": intact_sinks,
               "unquantized_full_perplexity": None if reference is full else _ppl(nll_reference[:done]),
               "eviction_mode": "real KV cache: evicted entries dropped, kept K/V never recomputed"
               + (f" (except {RECOMPUTE})" if recompute else ""),
               **({"failed": [{"policy": p, "failed": True, "error": e} for p, e in failed.items()]} if failed else {})}
        if done < steps:  # what a cancelled or still running job has: the first `done` of `steps` positions
            out.update(partial=True, positions_done=done, positions_total=steps)
        return out

    decide = deciders.decide

    def evaluate_step(t: int) -> None:
        """Position t for every policy: Full Cache's log-probs, then each cache's (batched) and own-path step."""
        nonlocal caches, decode_steps
        tick = time.perf_counter()
        lp_quantized = full.logprobs(t)
        lp_full = lp_quantized if reference is full else reference.logprobs(t)
        spent["full"] += time.perf_counter() - tick
        tick = time.perf_counter()
        target = ids[t + 1]
        in_context = t < context
        nll_reference[t] = -float(lp_full[target])
        if "full" in nll:
            nll["full"][t] = -float(lp_quantized[target])
        if t <= C:  # the prefix: every cache is still Full Cache's
            if evicting:
                rows = full.attention(t)
                pos = np.broadcast_to(np.arange(t + 1), (len(evicting), units, t + 1))
                masks = decide(t, pos, np.broadcast_to(rows, (len(evicting),) + rows.shape))
                if t == C and steps > C + 1:
                    if kv_format is None:
                        caches = PolicyCaches(full.prefix_kv(C + 1), len(evicting), rotaries)
                    else:
                        shared = full.cache.expanded(len(evicting))
                        caches = PolicyCaches([(c.keys, c.values) for c in shared.layers], len(evicting), rotaries,
                                              cache=shared)
                    caches.keep(masks)
            same_kl = 0.0 if reference is full else float((lp_full.exp() * (lp_full - lp_quantized)).sum())
            for p in evicting:
                nll[p][t] = -float(lp_quantized[target])
                kl[p].append(same_kl)
        elif evicting:  # one batched cached decode step for every real-cache policy
            in_cache = positions == "in_cache" or not in_context
            if in_cache and rotaries is not None:
                caches.move_keys(caches.in_cache_targets())
            q_pos = caches.length if in_cache else t
            with torch.inference_mode(), attending(KeptKeys.of_units(caches.pos, t, kv_heads, loaded.model)):
                out = loaded.model(input_ids=torch.full((len(evicting), 1), ids[t], device=loaded.device),
                                   position_ids=torch.full((len(evicting), 1), q_pos, device=loaded.device),
                                   past_key_values=caches.cache, use_cache=True, output_attentions=True)
            caches.appended(t, q_pos)
            lps = torch.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()
            caches.keep(decide(t, caches.pos, kv_head_rows(out.attentions, kv_heads)[:, :, 0, :]))
            for b, p in enumerate(evicting):
                nll[p][t] = -float(lps[b, target])
                if in_context:
                    kl[p].append(float((lp_full.exp() * (lp_full - lps[b])).sum()))
            spent["decode"] += time.perf_counter() - tick
            decode_steps += 1
        spent["batch"] += time.perf_counter() - tick
        for name, own_path in ((RECOMPUTE, recompute), (QUEST, quest)):  # policies with a model pass of their own
            if own_path is None:
                continue
            tick = time.perf_counter()
            lp = own_path.step(t, full)
            spent[name] += time.perf_counter() - tick
            nll[name][t] = -float(lp[target])
            if in_context:
                kl[name].append(float((lp_full.exp() * (lp_full - lp)).sum()))
        if in_context and "full" in kl:
            kl["full"].append(0.0 if reference is full else float((lp_full.exp() * (lp_full - lp_quantized)).sum()))

    try:
        for t in range(steps):
            step_started = time.perf_counter()
            evaluate_step(t)
            done = t + 1
            now = time.perf_counter()
            time_left.step_done(t, now - step_started)
            if now - last_report > 0.2 or t == steps - 1:
                last_report, rate, left = now, done / max(now - started, 1e-9), time_left.left()
                report(done / steps, "Evaluating", position=done, tokens=steps, tokens_per_second=round(rate, 2),
                       seconds_left=None if left is None else round(left, 1),
                       partial=result(done) if done < steps else None)
    except Cancelled:  # keep what was computed: every policy's first `done` positions
        raise Cancelled(result(done)) from None
    deciders.close()  # a failed or cancelled run's are closed when collected (remote_decider.py)
    return result(steps)
