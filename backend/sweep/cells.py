"""Running one task (the cells of one model × text × cache size) where the work happens:
in this process, a worker process, or a Ray actor. Pure functions of the task, so every
place gives the same numbers.

A worker keeps its models (one load per worker, not per cell) and its last traces.
Simulate cells go through the eviction service (backend/eviction) exactly as a
Simulate run does; Evaluate cells through backend.evaluate.run.evaluate, the entry
point the Evaluate tab uses. One call runs every policy of the task: they share the
trace, or the Full Cache reference pass.
"""
import math
import os
import socket
import time
from collections import OrderedDict

from .spec import QUEST, SYNTHETIC

_models: dict = {}
_traces: OrderedDict = OrderedDict()
_TRACES_KEPT = 4
SIM_METRICS = ("hit_rate", "attention_recall", "accesses", "hits", "misses", "evictions", "tokens_processed")
EVAL_METRICS = ("perplexity", "kl_vs_full", "tokens", "evictions")
RETRIEVAL_METRICS = ("accuracy", "mean_logprob", "cells")
PREFILL_METRICS = ("perplexity", "kl_vs_full", "memory_tokens", "note")
QUEST_METRICS = ("keys_read_per_step", "memory_tokens", "pages", "page_size")  # beside EVAL_METRICS


def init_worker(models=(), device="auto", precision="auto", threads: int | None = 1) -> None:
    """Process start-up (local pool initializer, Ray actor constructor): load the sweep's models once."""
    models = [m for m in models if m != SYNTHETIC]
    if not models:
        return  # a synthetic sweep needs numpy and numba only: no torch in the worker
    import torch

    if threads:
        torch.set_num_threads(threads)  # workers are the parallelism; one thread each avoids fighting over cores
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # N workers' "Loading weights" bars would drown the sweep's progress
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
    for source in models:
        model(source, device, precision)


def model(source: str, device: str, precision: str):
    key = (source, device, precision)
    if key not in _models:
        from ..models.load import load_model

        _models[key] = load_model(source, device, precision)
    return _models[key]


def _finite(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run_task(task: dict, settings: dict, report=None) -> list[dict]:
    """task: {"cells": [cell dicts sharing all but the policy], "source": the text or synthetic settings}.
    settings: device, precision. Returns one row per cell (without the driver's bookkeeping).
    report(fraction, stage, **extra): the run's progress, called often; in this process (workers: 0) it raises
    Cancelled once the sweep is cancelled, so Cancel stops a cell within a report, not at its end."""
    from ..eviction.custom_policies import load_shipped

    cells = task["cells"]
    first = cells[0]
    started = time.perf_counter()
    user = load_shipped(task.get("user_policies"))  # user rule files (#17), also registered with Evaluate here
    report = report or (lambda *a, **k: None)
    if first["kind"] == "evaluate":
        rows, facts = _evaluate(cells, task["source"], settings, report)
    elif first["kind"] == "retrieval":
        rows, facts = _retrieval(cells, task["source"], settings, report)
    elif first["kind"] == "prefill":
        rows, facts = _prefill(cells, task["source"], settings, report)
    else:
        rows, facts = _simulate(cells, task["source"], settings, user, report)
    elapsed = time.perf_counter() - started
    out = []
    for cell, metrics in zip(cells, rows):
        seconds = metrics.pop("seconds", None)
        out.append({"cell": cell, "metrics": {k: _finite(v) for k, v in metrics.items()}, "seconds": seconds,
                    "task_seconds": round(elapsed, 4), "task_cells": len(cells), "done_at": time.time(),
                    "host": socket.gethostname(), "pid": os.getpid(), **facts})
    return out


def _eval_ids(loaded, text: str, max_tokens: int) -> list[int]:
    return loaded.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"][:max_tokens]  # as the Evaluate Api does


def _evaluate(cells, source, settings, report):
    import json

    from ..evaluate.run import evaluate

    first = cells[0]
    s = json.loads(first["settings"])
    loaded = model(first["model"], settings["device"], s["precision"])
    ids = _eval_ids(loaded, source["text"], s["max_tokens"])
    policies = [c["policy"] for c in cells]
    context = loaded.context_length
    # Full Cache ignores C; its cell's C is the whole text, which may not fit the context: any C does for it.
    cache_size = first["cache_size"] if policies != ["full"] else min(first["cache_size"], context - 1)
    window = first["window"] if policies != ["full"] else cache_size // 2
    # One call for every policy of this cache size: they share the Full Cache reference pass and,
    # on the real KV cache, one batched decode step per token.
    fmt = _kv_format(s)
    out = evaluate(loaded, ids, policies, cache_size, first["sinks"], window, access_threshold=s["access_threshold"],
                   positions=s.get("positions", "original"), granularity=s.get("granularity", "per_head"), report=report,
                   kv_format=fmt, intact_sinks=s.get("intact_sinks", 0))
    by_policy = {r["policy"]: r for r in out["results"]}
    rows = [{k: by_policy[p].get(k) for k in EVAL_METRICS + (QUEST_METRICS if p == QUEST else ())}
            | {"seconds": by_policy[p].get("seconds")} for p in policies]
    return rows, _facts(loaded, int(out.get("tokens", len(ids))), fmt)  # tokens evaluated (learned positions stop at the context)


def _prefill(cells, source, settings, report):
    """kvpress's protocol, as Evaluate's `protocol: "prefill"` runs it: the first cache_size tokens (the context)
    compressed once at this ratio by every method, the rest of the usable text scored after it."""
    import json

    from ..compress import prefill_perplexity

    first = cells[0]
    s = json.loads(first["settings"])
    loaded = model(first["model"], settings["device"], s["precision"])
    ids = _eval_ids(loaded, source["text"], s["max_tokens"])[: loaded.context_length]  # grid.usable_tokens
    n = first["cache_size"]
    started = time.perf_counter()
    fmt = _kv_format(s)
    out = prefill_perplexity(loaded, ids, n, len(ids) - n, [c["policy"] for c in cells], ratio=first["ratio"],
                             sinks=first["sinks"], window=first["window"], report=report, kv_format=fmt,
                             intact_sinks=s.get("intact_sinks", 0))
    share = round((time.perf_counter() - started) / len(cells), 3)  # one compressing prefill for all methods
    rows = [{k: out[c["policy"]][k] for k in PREFILL_METRICS} | {"tokens": len(ids) - n, "seconds": share}
            for c in cells]
    return rows, _facts(loaded, n, fmt) | {"continuation_tokens": len(ids) - n}


def _retrieval(cells, source, settings, report):
    """One retrieval grid (backend/retrieval) for every policy of this cache size; per policy its accuracy
    and mean answer log-probability over the grid. `tokens` is the grid's mean context length."""
    import json

    from ..retrieval.grid import run_grid
    from ..retrieval.request import check_fits

    first, r = cells[0], source["retrieval"]
    s = json.loads(first["settings"])
    loaded = model(first["model"], settings["device"], s["precision"])
    check_fits(loaded, r["task"], r["lengths"], r["seed"], r["chat_template"], None)
    policies = [c["policy"] for c in cells]
    grid = {"cache_size": first["cache_size"], "ratio": None, "sinks": first["sinks"], "window": first["window"],
            "chunk": r["chunk"], "seed": r["seed"], "chat_template": r["chat_template"],
            "access_threshold": s["access_threshold"], "kv_format_k": s.get("kv_format_k"),
            "kv_format_v": s.get("kv_format_v"), "intact_sinks": s.get("intact_sinks", 0)}
    out = run_grid(loaded, r["task"], r["protocol"], policies, r["lengths"], r["depths"], grid, None, report)
    by_policy = {x["policy"]: x for x in out["summary"]}
    rows = [{k: by_policy[p][k] for k in RETRIEVAL_METRICS} | {"seconds": round(out["seconds"] / len(policies), 3)}
            for p in policies]
    return rows, _facts(loaded, round(sum(r["lengths"]) / len(r["lengths"])), _kv_format(s))


def _kv_format(settings: dict):
    """A cell's KV format (backend/quantize), None when unquantized."""
    from ..quantize import kv_format

    return kv_format(None, settings.get("kv_format_k"), settings.get("kv_format_v"))


def _facts(loaded, n: int, fmt=None) -> dict:
    """The format's bytes per token make the frontier's x (kv_bytes) for a quantized cell."""
    per_token = loaded.spec.get("kv_bytes_per_token")
    if fmt is not None:
        from ..quantize import kv_bytes

        per_token = kv_bytes(loaded, fmt)["bytes_per_token"]
    return {"tokens": n, "kv_bytes_per_token": per_token, "kv_format": None if fmt is None else fmt.name,
            "context_length": loaded.context_length, "device": loaded.device, "dtype": loaded.dtype}


def _trace(cells, source, settings):
    """The trace of a task, cached: every cache size of a text reuses it."""
    import json

    first = cells[0]
    key = (first["model"], first["text_sha"], first["settings"])
    if key in _traces:
        _traces.move_to_end(key)
        return _traces[key]
    from ..eviction import traces

    if first["model"] == SYNTHETIC:
        from ..eviction import parse

        p = parse({"trace": "synthetic", **source["synthetic"]})
        made = (traces.synthetic(p), {"tokens": p.length})
    else:
        s = json.loads(first["settings"])
        loaded = model(first["model"], settings["device"], s["precision"])
        trace, folded = model_trace(loaded, source["text"], s["max_tokens"], s["layer"])
        made = (trace, {**_facts(loaded, 0), "tokens": trace.n, **folded})
    _traces[key] = made
    while len(_traces) > _TRACES_KEPT:
        _traces.popitem(last=False)
    return made


def model_trace(loaded, text: str, max_tokens: int, layer: int):
    """The model's attention on the first tokens of the text (one layer, mean over heads) as a trace, and what a
    compact one folded (each row's `trace_*` facts; {} for a dense trace: nothing folded)."""
    import numpy as np

    from ..attention.extract import forward_attentions, learned_sink_share, rows_of
    from ..errors import UserError
    from ..eviction import DENSE_TRACE_TOKENS, traces

    layers = loaded.spec["layers"]
    if not -layers <= layer < layers:
        raise UserError("bad_input", f"layer must be between {-layers} and {layers - 1} (−1 = last).", "layer")

    ids = loaded.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"][: min(max_tokens, loaded.context_length)]
    if len(ids) > DENSE_TRACE_TOKENS:  # compact, from the model's rows block by block (never n × n)
        trace, facts = traces.from_rows(rows_of(loaded, ids, [layer % layers], None))
        kept = ("keys_per_row", "folded_mass_mean", "folded_mass_max", "largest_folded_weight")
        return trace, {f"trace_{k}": facts[k] for k in kept}  # flat: a sweep's rows become CSV columns
    attentions, sinks = forward_attentions(loaded, ids)
    # The same arithmetic as the Simulate tab's trace (attention_view): float32 per head, mean in NumPy.
    matrix = attentions[layer][0].float().cpu().numpy().mean(axis=0).astype(np.float32)
    return traces.from_attention(matrix, learned_sink_share(matrix) if sinks else None), {}


def _simulate(cells, source, settings, user_policies=None, report=lambda *a, **k: None):
    from ..eviction import parse, simulate

    trace, facts = _trace(cells, source, settings)
    first = cells[0]
    import json

    s = json.loads(first["settings"])
    params = {"trace": "synthetic" if first["model"] == SYNTHETIC else "model", "text": "x",
              "cache_size": first["cache_size"], "sinks": first["sinks"], "window": first["window"],
              "access_threshold": s["access_threshold"], "length": max(1, trace.n)}
    if first["model"] == SYNTHETIC:
        params.update(source["synthetic"])
    p = parse(params)
    p.policies = [c["policy"] for c in cells]
    p.user_policies = {name: rule for name, rule in (user_policies or {}).items() if name in p.policies}
    out = simulate(p, trace, report)
    by_policy = {r["policy"]: r for r in out["results"]}
    rows = []
    for c in cells:
        r = by_policy[c["policy"]]
        rows.append({k: r.get(k) for k in SIM_METRICS} | {
            "retained_sinks": r["retained_sinks"], "retained_heavy_hitters": r["retained_heavy_hitters"],
            "seconds": r.get("seconds")})
    return rows, facts
