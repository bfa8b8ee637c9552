"""Run the chosen policies on one trace in chunks: progress between chunks, cancel there too."""
import time

import numpy as np

from kernels.eviction import MODEL, KeyTotals, Simulation, Trace, to_fixed
from .metrics import result
from .params import SimParams
from .policies import LABELS

CHUNK = 100_000  # steps between progress reports (≈ 0.02–0.2 s of kernel time)
MAX_LISTED = 4096


def _chunks(n):
    for t0 in range(0, n, CHUNK):
        yield t0, min(n, t0 + CHUNK)


def simulate(p: SimParams, trace: Trace, progress=lambda fraction, stage: None) -> dict:
    """Every policy of `p` on `trace`: {"trace": summary, "results": [per-policy dicts]}."""
    n = trace.n
    total_work = n * (len(p.policies) + 1)
    done = 0

    totals = KeyTotals(trace)  # sinks and heavy hitters do not depend on the policy
    for t0, t1 in _chunks(n):
        progress(done / total_work, f"Ranking keys: {t0:,} / {n:,} steps")
        totals.run(t0, t1)
        done += t1 - t0
    sinks = totals.sinks(to_fixed(p.sink_threshold))
    heavy = totals.heavy_hitters(p.heavy_k)

    results = []
    tau = max(1, to_fixed(p.access_threshold))
    for policy in p.policies:
        progress(done / total_work, f"{LABELS[policy]}: starting")
        started = time.perf_counter()
        sim = Simulation(policy, trace, p.cache_size, p.sinks, p.window, tau,
                         record_evictions=trace.kind == MODEL)
        for t0, t1 in _chunks(n):
            progress(done / total_work, f"{LABELS[policy]}: {t0:,} / {n:,} steps")
            sim.run(t0, t1)
            done += t1 - t0
        results.append(result(policy, LABELS[policy], sim, sinks, heavy, time.perf_counter() - started,
                              with_evictions=trace.kind == MODEL))
    progress(1.0, "Done")
    summary = {"kind": "model" if trace.kind == MODEL else "synthetic", "length": n,
               "cache_size": p.cache_size, "sinks": p.sinks, "window": p.window,
               "access_threshold": p.access_threshold, "sink_threshold": p.sink_threshold,
               "sink_positions": sinks[:MAX_LISTED].tolist(), "sink_count": int(len(sinks)),
               "heavy_hitter_positions": heavy.tolist(), "heavy_k": int(len(heavy))}
    if trace.kind != MODEL:
        summary["synthetic"] = dict(p.synthetic)
    return {"trace": summary, "results": results}

