"""A retrieval grid: context lengths × needle depths, every policy per cell, as one job.

Each cell builds its prompt (tasks.py) and runs the protocol once for all policies (streaming:
one batched forward for all evicting policies; prefill: one full prefill for all methods).
Progress goes through report(fraction, stage, **extra), often enough that Cancel stops a
grid within about a second (a report raises Cancelled); the time left is each remaining cell's
measured prediction (estimate.py).
"""
import time

import numpy as np

from ..errors import Cancelled
from .estimate import GridTimeLeft, cell_seconds, probe
from .prefill import run_prefill
from .streaming import run_streaming
from .tasks import TASKS


def _cell(loaded, prompt, length, depth, policy, r) -> dict:
    text = loaded.tokenizer.decode(r["generated"], skip_special_tokens=True)
    attention = r.get("needle_attention")
    return {"length": length, "depth": depth, "policy": policy, "correct": bool(prompt.correct(text)),
            "answer_logprob": round(float(r["answer_logprob"]), 6), "answer": text, "expected": prompt.expected,
            "needle": prompt.needle, "needle_kept": np.asarray(r["needle_kept"]).astype(int).tolist(),
            "needle_tokens": prompt.needle_span[1] - prompt.needle_span[0],
            "needle_attention": None if attention is None else [round(float(x), 6) for x in attention],
            "note": r.get("note"), "context_tokens": len(prompt.context_ids)}


def summary(cells: list[dict], policies: list[str]) -> list[dict]:
    out = []
    for p in policies:
        mine = [c for c in cells if c["policy"] == p]
        out.append({"policy": p, "accuracy": float(np.mean([c["correct"] for c in mine])) if mine else None,
                    "mean_logprob": float(np.mean([c["answer_logprob"] for c in mine])) if mine else None,
                    "cells": len(mine)})
    return out


def run_grid(loaded, task: str, protocol: str, policies: list[str], lengths: list[int], depths: list[float],
             settings: dict, custom: dict | None = None, report=lambda *a, **k: None) -> dict:
    """settings: cache_size, ratio, sinks, window, chunk, seed, chat_template, access_threshold; kv_format_k,
    kv_format_v and intact_sinks (a quantized cache, backend/quantize) where given.
    Each report after a cell carries the grid so far (`partial`: the cells done, marked partial: true), so the
    heatmaps fill in as cells finish; Cancel raises Cancelled with that partial grid."""
    from ..quantize import kv_bytes, kv_format

    fmt = kv_format(None, settings.get("kv_format_k"), settings.get("kv_format_v"))
    intact = settings.get("intact_sinks", 0)
    started = time.perf_counter()
    pairs = [(L, d) for L in lengths for d in depths]
    cells, failed, built = [], {}, {}
    report(0.0, "Measuring a cell's forwards", cells_done=0, cells=len(pairs))
    measured = probe(loaded, protocol, policies, settings)
    clock = GridTimeLeft([cell_seconds(measured, protocol, L, settings) for L, _ in pairs])

    def result(done: int) -> dict:
        out = {"task": task, "protocol": protocol, "lengths": list(lengths), "depths": list(depths),
               "settings": dict(settings), "seconds": round(time.perf_counter() - started, 3), "cells": list(cells),
               "summary": summary(cells, policies), "chunk": settings["chunk"] if protocol == "streaming" else None,
               "policies": list(policies), **kv_bytes(loaded, fmt),
               # The contexts really built (whole sentences up to each length), per length: what C is compared with.
               "context_tokens": [built.get(L) for L in lengths],
               **({"failed": [{"policy": p, "failed": True, "error": e} for p, e in failed.items()]} if failed else {})}
        if done < len(pairs):  # a running or cancelled grid: the first `done` cells (lengths outer, depths inner)
            out.update(partial=True, cells_done=done, cells_total=len(pairs))
        return out

    done = 0
    try:
        for i, (length, depth) in enumerate(pairs):
            cell_started = time.perf_counter()

            def inner(fraction, i=i, length=length, depth=depth):
                fraction = max(0.0, min(1.0, fraction))
                report((i + fraction) / len(pairs), f"Cell {i + 1} of {len(pairs)}: {length} tokens, depth {depth:g}",
                       cells_done=i, cells=len(pairs), seconds_left=round(clock.left(fraction), 1))

            inner(0.0)
            prompt = TASKS[task](loaded.tokenizer, length, depth, settings["seed"], settings["chat_template"], **(custom or {}))
            built[length] = max(built.get(length, 0), len(prompt.context_ids))
            if protocol == "streaming":
                results = run_streaming(loaded, prompt, policies, settings["cache_size"], settings["sinks"],
                                        settings["window"], settings["chunk"], settings.get("access_threshold", 0.01), inner,
                                        fmt, intact)
            else:
                results = run_prefill(loaded, prompt, policies, settings.get("cache_size"), settings.get("ratio"),
                                      settings["sinks"], settings["window"], inner, fmt, intact)
            failed.update({p: results[p]["failed"] for p in policies if results[p].get("failed")})
            policies = [p for p in policies if p not in failed]  # a user rule that failed (#25) leaves the grid
            cells.extend(_cell(loaded, prompt, length, depth, p, results[p]) for p in policies)
            done = i + 1
            clock.cell_done(time.perf_counter() - cell_started)
            report(done / len(pairs), f"Cell {done} of {len(pairs)} done", cells_done=done, cells=len(pairs),
                   seconds_left=round(clock.left(), 1), partial=result(done) if done < len(pairs) else None)
    except Cancelled:  # keep the cells finished so far
        raise Cancelled(result(done)) from None
    return result(len(pairs))
