"""Benchmark: a sweep of 6 policies × 8 cache sizes (32 … 4096; Full Cache once, it ignores C)
on a 1,000,000-step synthetic trace, run four ways side by side:

    sequential   the cells' own function in a plain loop (no driver, no file): the baseline
    driver       the same through the sweep driver in this process (grid, file, progress)
    local        2 local worker processes (spawned; each builds the trace once)
    ray          a 2-node Ray cluster on 127.0.0.1 (one CPU per node; cluster start not counted)

For each: wall seconds and speed-up over sequential (on a shared machine the load moves
between runs: read these with care), the start-up (time to the first result minus that
task's own compute: spawning workers / starting actors), and the overhead per cell: from a
task's end in its worker to its rows written by the driver (transport, the file), per cell,
measured on each row's timestamps so other load on the machine does not count. Then the
time of one Evaluate cell on the demo model and the overhead's share of it (target ≤ 10%),
and the numbers of every run checked equal.

    python bench/sweep.py [--steps N] [--skip-ray]
"""
import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from backend.sweep import LocalRunner, parse_spec, plan, read_rows, run_sweep  # noqa: E402
from backend.sweep.cells import _traces, run_task  # noqa: E402

SIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096]


def spec_for(steps: int):
    return parse_spec({"kind": "simulate", "models": ["synthetic"], "cache_sizes": SIZES, "sinks": 4,
                       "texts": [{"name": "bench", "synthetic": {"length": steps, "seed": 0}}]})


def per_cell_overhead(rows) -> float:
    """Mean over tasks of (rows written − task done) / cells of the task."""
    tasks = {}
    for r in rows:
        tasks.setdefault((r["pid"], r["done_at"]), []).append(r)
    return sum(max(r["written_at"] for r in t) - t[0]["done_at"] for t in tasks.values()) / len(rows)


def timed(label, spec, runner, folder, sequential_s, cells):
    out = os.path.join(folder, f"{label.split()[0]}.jsonl")
    started = time.time()
    summary = run_sweep(spec, out, runner)
    wall = time.time() - started
    rows = read_rows(out)
    assert len(rows) == cells == summary["cells_done"], summary
    first = min(rows, key=lambda r: r["written_at"])
    startup = first["written_at"] - started - first["task_seconds"]
    overhead = per_cell_overhead(rows)
    print(f"{label:11} {wall:8.2f} s   speed-up {sequential_s / wall:5.2f}×   start-up {startup:6.2f} s   "
          f"overhead/cell {overhead * 1000:7.2f} ms   (nodes: {len(summary['nodes'])})")
    return {r["key"]: r["metrics"] for r in rows}, overhead


def demo_cell_seconds() -> float:
    """A demo-model Evaluate cell: one task of the five evicting policies at C = 64 over 256 tokens of the
    bundled text (they run batched, as in a sweep), divided by five."""
    from backend.defaults import bundled_text

    spec = parse_spec({"kind": "evaluate", "models": ["demo"], "cache_sizes": [64], "sinks": 4, "max_tokens": 256,
                       "policies": ["sliding_window", "streaming_llm", "h2o", "lru", "tova"],
                       "texts": [{"name": "j", "text": bundled_text("jargon")}]})
    with tempfile.TemporaryDirectory() as folder:
        run_sweep(spec, os.path.join(folder, "demo.jsonl"), LocalRunner(0))
        row = read_rows(os.path.join(folder, "demo.jsonl"))[0]
        return row["task_seconds"] / row["task_cells"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    spec = spec_for(args.steps)
    tasks = plan(spec, "/nonexistent")["tasks"]
    cells = sum(len(t["cells"]) for t in tasks)
    print(f"{cells} cells in {len(tasks)} tasks on a {args.steps:,}-step synthetic trace; {os.cpu_count()} cores")

    run_task(plan(spec_for(1000), "/nonexistent")["tasks"][1], {"device": "cpu", "precision": "auto"})  # JIT warm-up
    _traces.clear()  # every run builds the trace once, as each worker does
    started = time.perf_counter()
    for task in tasks:
        run_task(task, {"device": "cpu", "precision": "auto"})
    sequential = time.perf_counter() - started
    print(f"{'sequential':11} {sequential:8.2f} s   ({sequential / cells * 1000:.0f} ms a cell)")

    with tempfile.TemporaryDirectory() as folder:
        results = {}
        _traces.clear()
        results["driver"], _ = timed("driver", spec, LocalRunner(0), folder, sequential, cells)
        results["local"], local_overhead = timed("local ×2", spec, LocalRunner(2), folder, sequential, cells)
        ray_overhead = None
        if not args.skip_ray:
            from backend.sweep.local_cluster import local_cluster
            from backend.sweep.ray_runner import RayRunner

            with local_cluster(nodes=2, cpus=1) as address:
                results["ray"], ray_overhead = timed("ray 2 nodes", spec, RayRunner(address), folder, sequential, cells)
        first = next(iter(results.values()))
        assert all(r == first for r in results.values()), "runs disagree"
        print("every run gave the same numbers for every cell")

    cell = demo_cell_seconds()
    print(f"one Evaluate cell on the demo model (C = 64, 256 tokens, 5 policies batched): {cell:.2f} s")
    for label, overhead in (("local ×2", local_overhead), ("ray 2 nodes", ray_overhead)):
        if overhead is not None:
            print(f"overhead per cell, {label}: {overhead * 1000:.0f} ms = {overhead / cell * 100:.1f}% of a demo-model cell")


if __name__ == "__main__":
    main()
