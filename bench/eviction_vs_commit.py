"""Benchmark: today's eviction kernels against those of an earlier commit, side by side in one run.

The earlier commit is checked out in a temporary `git worktree` (removed at the end) and its
kernels/eviction package imported beside today's under another name, so both run in this one
process on the same traces, alternating, best of --repeats CPU times each (a shared machine's
load shifts both alike; the ratio is what to read, and the load average is printed with it).
Two traces of --steps steps at C = 256, S = 4, W = 128, τ = 0.01, as bench/eviction.py:
  kernel defaults   synthetic_trace(n): 16 heavy hitters that stay heavy (bench/eviction.py's trace,
                    and the app's synthetic default before issue #14)
  app defaults      the app's synthetic defaults today (backend/eviction/params.py: 1,000 heavy
                    hitters, each heavy for 3,000 steps)
Both versions must give the same counters on each trace (they are the same definitions).
The default commit is 23509c8, the last before the shared accounting (accounting.py) moved out
of the built-in loop.

    python bench/eviction_vs_commit.py [--commit REV] [--steps N] [--repeats N]
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

POLICIES = ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova"]
C, S, W = 256, 4, 128


def import_kernels_at(worktree: str, alias: str):
    """That checkout's kernels.eviction as module `alias` (its imports are relative, so they stay inside it)."""
    folder = os.path.join(worktree, "kernels", "eviction")
    spec = importlib.util.spec_from_file_location(alias, os.path.join(folder, "__init__.py"),
                                                  submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def cpu_seconds(sim, n: int) -> float:
    c0 = time.process_time()
    sim.run(0, n)
    return time.process_time() - c0


def compare(old, new, label: str, kwargs: dict, n: int, repeats: int) -> tuple[float, float]:
    tau = new.to_fixed(0.01)
    traces = {"old": old.synthetic_trace(n, **kwargs), "new": new.synthetic_trace(n, **kwargs)}
    a, b = traces["old"], traces["new"]
    assert (a.sp == b.sp).all() and (a.loc == b.loc).all() and (a.heavy == b.heavy).all(), "the traces differ"
    print(f"\n{label}: {n:,} steps, {len(b.heavy)} heavy hitters, heavy_life {int(b.sp[-1])}  "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"{'policy':16}{'old ns/step':>12}{'new ns/step':>12}{'new/old':>9}  counters")
    total_old = total_new = 0.0
    for policy in POLICIES:
        best = {"old": float("inf"), "new": float("inf")}
        sims = {}
        for _ in range(repeats):
            for version, module in (("old", old), ("new", new)):
                sims[version] = module.Simulation(policy, traces[version], C, S, W, tau)
                best[version] = min(best[version], cpu_seconds(sims[version], n))
        same = sims["old"].counters() == sims["new"].counters() and (sims["old"].kept() == sims["new"].kept()).all()
        total_old, total_new = total_old + best["old"], total_new + best["new"]
        print(f"{policy:16}{best['old'] * 1e9 / n:12.0f}{best['new'] * 1e9 / n:12.0f}{best['new'] / best['old']:8.2f}x"
              f"  {'identical' if same else 'DIFFERENT'}")
    print(f"{'all six':16}{total_old:11.3f}s{total_new:11.3f}s{total_new / total_old:8.2f}x  (seconds, one after another)")
    return total_old, total_new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commit", default="23509c8", help="the earlier commit (default: the last before accounting.py)")
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from backend.eviction.params import parse
    import kernels.eviction as new

    sha = subprocess.run(["git", "rev-parse", "--short", args.commit], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    worktree = tempfile.mkdtemp(prefix=f"sinkvis-kernels-{sha}-")
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", worktree, sha], cwd=ROOT, check=True)
    try:
        old = import_kernels_at(worktree, f"eviction_at_{sha}")
        head = subprocess.run(["git", "log", "-1", "--format=%h %s", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
        edited = subprocess.run(["git", "status", "--porcelain", "kernels"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        print(f"old: {sha} ({worktree}); new: this checkout, {head[:70]}"
              + (" + uncommitted kernel edits" if edited else ""))
        started = time.perf_counter()
        for module in (old, new):  # compile (or load from Numba's cache) outside the timings
            for policy in POLICIES:
                module.Simulation(policy, module.synthetic_trace(1000), C, S, W, module.to_fixed(0.01)).run(0, 1000)
        print(f"warm-up (JIT load or compile, both versions): {time.perf_counter() - started:.1f} s")
        app = parse({"length": args.steps}).synthetic
        results = [compare(old, new, "kernel defaults", {}, args.steps, args.repeats),
                   compare(old, new, "app defaults", app, args.steps, args.repeats)]
        print("\nall six policies, new / old: " + ", ".join(
            f"{label} {n / o:.2f}x" for label, (o, n) in zip(("kernel defaults", "app defaults"), results))
              + f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", worktree], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
