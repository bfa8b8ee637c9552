"""Run the chosen policies on one trace in chunks: progress between chunks, cancel there too.

The kernels release the GIL, so the policies run side by side on a few threads (Compare
All on two cores takes about half as long); progress is reported under a lock so the
fraction only grows, and a cancel stops every thread at its next chunk. A user's rule
runs in a worker process instead (backend/usercode/pool.py), which Cancel or a stuck step kills
(issue #25); the thread that waits for it looks at Cancel every 50 ms.
"""
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext


from kernels.eviction import KeyTotals, Simulation, Trace, count_accesses, to_fixed
from ..errors import UserError
from ..workers import in_worker
from .metrics import result
from .params import SimParams
from .policies import LABELS
from ..usercode import pool
from ..usercode.watch import current_step, step_limit, watching
from ..workers import report

CHUNK = 100_000  # steps between progress reports (≈ 0.02–0.2 s of kernel time)
MAX_LISTED = 4096
MAX_THREADS = 4  # each policy's state is O(n) (positions → slots): bound the memory
MAX_ORACLE_ACCESSES = 500_000  # the oracle's plan (one uninterruptible call) takes ~8 s there


def chunks(n):
    for t0 in range(0, n, CHUNK):
        yield t0, min(n, t0 + CHUNK)


class _Progress:
    """Work done across threads → progress(fraction, stage), serialised."""

    def __init__(self, progress, total: int):
        self.progress, self.total, self.done = progress, total, 0
        self.lock = threading.Lock()

    def report(self, stage: str | None, advance: int = 0) -> None:
        with self.lock:
            self.done += advance
            self.progress(self.done / self.total, stage)  # raises Cancelled once the user cancelled


def simulate(p: SimParams, trace: Trace, progress=lambda fraction, stage: None) -> dict:
    """Every policy of `p` on `trace`: {"trace": summary, "results": [per-policy dicts]}."""
    n = trace.n
    tracker = _Progress(progress, n * (len(p.policies) + 1))

    totals = KeyTotals(trace)  # sinks and heavy hitters do not depend on the policy
    for t0, t1 in chunks(n):
        tracker.report(f"Ranking keys: {t0:,} / {n:,} steps")
        totals.run(t0, t1)
        tracker.report(f"Ranking keys: {t1:,} / {n:,} steps", t1 - t0)
    sinks = totals.sinks(to_fixed(p.sink_threshold))
    heavy = totals.heavy_hitters(p.heavy_k)
    tau = max(1, to_fixed(p.access_threshold))
    record = trace.is_model
    if "oracle" in p.policies:
        accesses = count_accesses(trace, tau)
        if accesses > MAX_ORACLE_ACCESSES:
            raise UserError("too_big", f"The oracle would plan {accesses:,} accesses (at most "
                            f"{MAX_ORACLE_ACCESSES:,}); raise access_threshold or shorten the text.",
                            "access_threshold")

    def run_rule_in_worker(user) -> dict:
        """A user's rule runs in a worker process (backend/usercode/pool.py): Cancel kills it, whatever the rule does."""
        tracker.report(f"{user.label}: starting its worker (the first run compiles the rule)")
        done = [0]

        def on_steps(steps):
            done[0] += steps
            tracker.report(f"{user.label}: {done[0]:,} / {n:,} steps", steps)

        return simulate_rule(user, trace, p.cache_size, p.sinks, p.window, tau, record, sinks, heavy,
                             p.rule_step_limit, on_steps, should_stop=lambda: tracker.report(None))

    def run_policy(policy: str) -> dict:
        user = p.user_policies.get(policy)  # a user's rule file (custom_policies.py) or a built-in
        if user and not in_worker():
            return run_rule_in_worker(user)
        label = user.label if user else LABELS[policy]
        tracker.report(f"{label}: starting")
        if user:  # already in a worker (a sweep's): run here, watched for a stuck step
            sim = user.simulation(trace, p.cache_size, p.sinks, p.window, tau, record_evictions=record)
            tracker.report(f"{label}: compiling the rule into the loop")
            sim.run(0, 0)  # Numba compiles the loop for this rule once per session: not part of its time
        started = time.perf_counter()
        if not user:
            sim = Simulation(policy, trace, p.cache_size, p.sinks, p.window, tau, record_evictions=record)
        with watching(user, lambda: current_step(sim), getattr(sim, "settings", None), step_limit(p.rule_step_limit)) \
                if user else nullcontext():
            for t0, t1 in chunks(n):
                sim.run(t0, t1)
                if user:
                    user.check(sim)  # a NaN score stops the rule: a named error, not a wrong result
                tracker.report(f"{label}: {t1:,} / {n:,} steps", t1 - t0)
        return result(policy, label, sim, sinks, heavy, time.perf_counter() - started, with_evictions=record)

    def run_or_fail(policy: str) -> dict:
        """A failing user policy leaves the others' results standing (it is listed under "failed")."""
        try:
            return run_policy(policy)
        except UserError as exc:
            if policy not in p.user_policies or len(p.policies) == 1:
                raise
            return {"policy": policy, "label": p.user_policies[policy].label, "failed": True,
                    "error": {"code": exc.code, "message": exc.message, "field": exc.field}}

    threads = max(1, min(MAX_THREADS, os.cpu_count() or 1, len(p.policies)))
    with ThreadPoolExecutor(threads, thread_name_prefix="eviction") as pool:
        results = [f.result() for f in [pool.submit(run_or_fail, policy) for policy in p.policies]]
    failed = [r for r in results if r.get("failed")]
    results = [r for r in results if not r.get("failed")]
    progress(1.0, "Done")
    summary = {"kind": "model" if trace.is_model else "synthetic", "length": n,
               "cache_size": p.cache_size, "sinks": p.sinks, "window": p.window,
               "access_threshold": p.access_threshold, "sink_threshold": p.sink_threshold,
               "sink_positions": sinks[:MAX_LISTED].tolist(), "sink_count": int(len(sinks)),
               "heavy_hitter_positions": heavy.tolist(), "heavy_k": int(len(heavy))}
    if not trace.is_model:
        summary["synthetic"] = dict(p.synthetic)
    out = {"trace": summary, "results": results}
    if failed:
        out["failed"] = failed
    return out


def simulate_rule(user, trace, capacity, sinks, window, tau, record, sink_keys, heavy, limit, on_steps,
                  should_stop) -> dict:
    """One user policy's whole Simulate run, in its worker: its result dict (metrics.result).
    on_steps(steps) as chunks finish; should_stop() raises Cancelled to stop (the worker is killed)."""
    worker = pool.take(user, "simulate", should_stop)
    try:
        return worker.call(_simulate_child, user.shipment(), trace, capacity, sinks, window, tau, record, sink_keys,
                           heavy, step_limit(limit), on_progress=on_steps, should_stop=should_stop)
    finally:
        pool.give_back(worker, user)


def _simulate_child(shipment, trace, capacity, sinks, window, tau, record, sink_keys, heavy, limit) -> dict:
    user = pool.loaded(shipment)
    sim = user.simulation(trace, capacity, sinks, window, tau, record_evictions=record)
    sim.run(0, 0)  # compiles the loop if this worker has not yet (prepare_rule): not part of the time
    report(0)  # compiled: the run starts
    started = time.perf_counter()
    with watching(user, lambda: current_step(sim), sim.settings, limit):
        for t0, t1 in chunks(trace.n):
            sim.run(t0, t1)
            user.check(sim)  # a NaN score: rule_nan, the run stops
            report(t1 - t0)
    return result(user.name, user.label, sim, sink_keys, heavy, time.perf_counter() - started, with_evictions=record)
