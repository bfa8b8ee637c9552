"""Benchmark: 1,000,000 synthetic steps at C = 256, every policy that runs on synthetic
traces (the oracle needs the future: model traces only).

Seconds are wall-clock after JIT warm-up (CPU seconds beside them, and ns/step from CPU time:
on a shared machine wall time counts the other processes' turns too; at load average 18 on 2
cores Full Cache read 407 ns/step by the wall clock and 120 by the CPU, issue #23), one policy after another and all six on two threads (the kernels
release the GIL; the app runs Compare All that way). The plain-Python reference (tests/reference_eviction.py) is timed
on the first 20,000 steps of the same trace and scaled to 1,000,000; both runs are
checked to agree on that slice (Full Cache's reference scans all t keys per step, so its
linear scaling is an underestimate; the headline ratio leaves it out). Then each user rule
file of examples/policies against its built-in twin (issue #17: within 2x), on this trace
and on one with the app's synthetic defaults (backend/eviction/params.py: 1,000 heavy
hitters, each heavy for 3,000 steps; issue #23). The last two lines are the ratio and the
seconds.

    python bench/eviction.py [--steps N] [--ref-steps N]
"""
import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from kernels.eviction import Simulation, synthetic_trace, to_fixed  # noqa: E402
import reference_eviction as ref  # noqa: E402

POLICIES = ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova"]
C, S, W, TAU = 256, 4, 128, to_fixed(0.01)


def cpu_seconds(sim, n: int) -> float:
    c0 = time.process_time()
    sim.run(0, n)
    return time.process_time() - c0


def user_policies_vs_builtins(traces: dict) -> None:
    """Each rule file of examples/policies (issue #17) against its built-in twin on the same
    trace: best of 3 CPU times each, alternating, after Numba compiled the rule's loop."""
    from backend.eviction.custom_policies import PolicyRegistry

    registry = PolicyRegistry(os.path.join(ROOT, "examples", "policies"), publish=False)
    registry.reload()
    worst = 0.0
    for (label, trace), policy in ((item, policy) for item in traces.items() for policy in POLICIES[1:]):
        rule = registry.get(f"{policy}_rule")
        rule.simulation(trace, C, S, W, TAU).run(0, 0)  # compile once (~3 s), like the app's first run
        best_builtin = best_user = float("inf")
        for _ in range(3):
            builtin, user = Simulation(policy, trace, C, S, W, TAU), rule.simulation(trace, C, S, W, TAU)
            best_builtin = min(best_builtin, cpu_seconds(builtin, trace.n))
            best_user = min(best_user, cpu_seconds(user, trace.n))
        same = user.counters() == builtin.counters() and (user.kept() == builtin.kept()).all()
        ratio = best_user / best_builtin
        worst = max(worst, ratio)
        print(f"user rule {policy + '_rule':20s} {best_user:6.3f} s cpu  built-in {best_builtin:6.3f} s  "
              f"{ratio:4.2f}x  {'identical' if same else 'DIFFERENT'}  ({label})")
    print(f"user policies vs their built-in twins at {trace.n:,} steps: worst {worst:.2f}x (target: within 2x; "
          f"load average {os.getloadavg()[0]:.1f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--ref-steps", type=int, default=20_000)
    args = ap.parse_args()
    trace = synthetic_trace(args.steps)

    started = time.perf_counter()
    for policy in POLICIES:  # loads the kernels from Numba's on-disk cache, or compiles them once
        Simulation(policy, synthetic_trace(1000), C, S, W, TAU).run(0, 1000)
    print(f"warm-up (JIT load or compile): {time.perf_counter() - started:.2f} s")

    kernel_s = kernel_cpu = ref_s = 0.0
    budget_kernel = budget_ref = 0.0  # the policies at budget C (Full Cache's reference grows with t)
    budget_kernel_cpu = budget_ref_cpu = 0.0
    for policy in POLICIES:
        sim = Simulation(policy, trace, C, S, W, TAU)
        t0, c0 = time.perf_counter(), time.process_time()
        sim.run(0, trace.n)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        kernel_s, kernel_cpu = kernel_s + wall, kernel_cpu + cpu

        t0, c0 = time.perf_counter(), time.process_time()
        expected = ref.simulate(policy, trace, C, S, W, TAU, steps=args.ref_steps)
        ref_scaled = (time.perf_counter() - t0) * trace.n / args.ref_steps
        ref_cpu_scaled = (time.process_time() - c0) * trace.n / args.ref_steps
        ref_s += ref_scaled
        if policy != "full":
            budget_kernel, budget_ref = budget_kernel + wall, budget_ref + ref_scaled
            budget_kernel_cpu, budget_ref_cpu = budget_kernel_cpu + cpu, budget_ref_cpu + ref_cpu_scaled
        check = Simulation(policy, trace, C, S, W, TAU)
        check.run(0, args.ref_steps)
        got = check.counters()
        agree = all(got[k] == expected[k] for k in ("accesses", "hits", "misses", "evictions", "recall_sum"))
        c = sim.counters()
        print(f"{policy:15s} {wall:6.3f} s (cpu {cpu:5.3f})  {cpu * 1e9 / trace.n:6.0f} ns/step cpu  "
              f"hit rate {c['hits'] / max(1, c['accesses']):.4f}  recall {c['recall_sum'] / trace.n:.4f}  "
              f"reference ~{ref_scaled:7.1f} s  {'agrees' if agree else 'DISAGREES'} on {args.ref_steps:,} steps")
    print(f"all policies one after another: {kernel_s:.3f} s wall, {kernel_cpu:.3f} s cpu for {trace.n:,} steps "
          f"each (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

    from backend.eviction.params import parse

    user_policies_vs_builtins({"this trace": trace,
                               "app defaults": synthetic_trace(args.steps, **parse({"length": args.steps}).synthetic)})

    # The kernels release the GIL: the app runs the policies side by side (backend/eviction/run.py).
    sims = [Simulation(policy, trace, C, S, W, TAU) for policy in POLICIES]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda sim: sim.run(0, trace.n), sims))
    parallel_s = time.perf_counter() - t0
    print(f"all policies on 2 threads: {parallel_s:.3f} s wall")
    print(f"ratio to reference: {budget_ref / budget_kernel:.0f}x wall, {budget_ref_cpu / budget_kernel_cpu:.0f}x cpu, "
          f"for the policies at budget C ({ref_s / kernel_s:.0f}x wall with Full Cache, whose reference is O(t) per step)")
    print(f"seconds: {parallel_s:.3f} on 2 threads ({kernel_s:.3f} one after another)")


if __name__ == "__main__":
    main()
