"""Benchmark: a sweep of 6 policies × 8 cache sizes (32 … 4096; Full Cache once, it ignores C)
on a 1,000,000-step synthetic trace, run four ways side by side:

    sequential   the cells' own function in a plain loop (no driver, no file): the baseline
    driver       the same through the sweep driver in this process (grid, file, progress)
    local        2 local worker processes (spawned; each builds the trace once)
    ray          a 2-node Ray cluster on 127.0.0.1 (one CPU per node; cluster start not counted)

For each: wall seconds, speed-up over sequential, and the overhead per cell:
(wall × slots − Σ the tasks' own compute seconds) / cells — start-up, transport, the file,
idle workers. Then the time of one Evaluate cell on the demo model, the overhead's share of it
(target ≤ 10%), and the numbers of every run checked equal.

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
from backend.sweep.cells import run_task  # noqa: E402

SIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096]


def spec_for(steps: int):
    return parse_spec({"kind": "simulate", "models": ["synthetic"], "cache_sizes": SIZES, "sinks": 4,
                       "texts": [{"name": "bench", "synthetic": {"length": steps, "seed": 0}}]})


def compute_seconds(rows) -> float:
    """Σ over tasks of the task's own time (each row carries its task's seconds and cell count)."""
    return sum(r["task_seconds"] / r["task_cells"] for r in rows)


def timed(label, spec, runner, folder, slots, sequential_s, cells):
    out = os.path.join(folder, f"{label}.jsonl")
    started = time.perf_counter()
    summary = run_sweep(spec, out, runner)
    wall = time.perf_counter() - started
    rows = read_rows(out)
    assert len(rows) == cells == summary["cells_done"], summary
    overhead = (wall * slots - compute_seconds(rows)) / cells
    print(f"{label:11} {wall:8.2f} s   speed-up {sequential_s / wall:5.2f}×   overhead/cell {overhead * 1000:8.1f} ms "
          f"({slots} slot{'s' if slots > 1 else ''}; nodes: {len(summary['nodes'])})")
    return {r["key"]: r["metrics"] for r in rows}, overhead


def demo_cell_seconds() -> float:
    """One Evaluate cell on the demo model (StreamingLLM, C = 64, 512 tokens of the bundled text)."""
    from backend.api.evaluate import EVAL_TEXT

    spec = parse_spec({"kind": "evaluate", "models": ["demo"], "policies": ["streaming_llm"], "cache_sizes": [64],
                       "sinks": 4, "max_tokens": 512, "texts": [{"name": "j", "text": EVAL_TEXT.read_text()}]})
    with tempfile.TemporaryDirectory() as folder:
        run_sweep(spec, os.path.join(folder, "demo.jsonl"), LocalRunner(0))
        return read_rows(os.path.join(folder, "demo.jsonl"))[0]["seconds"]


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
    started = time.perf_counter()
    for task in tasks:
        run_task(task, {"device": "cpu", "precision": "auto"})
    sequential = time.perf_counter() - started
    print(f"{'sequential':11} {sequential:8.2f} s   ({sequential / cells * 1000:.0f} ms a cell)")

    with tempfile.TemporaryDirectory() as folder:
        results = {}
        results["driver"], _ = timed("driver", spec, LocalRunner(0), folder, 1, sequential, cells)
        results["local"], local_overhead = timed("local ×2", spec, LocalRunner(2), folder, 2, sequential, cells)
        ray_overhead = None
        if not args.skip_ray:
            from backend.sweep.local_cluster import local_cluster
            from backend.sweep.ray_runner import RayRunner

            with local_cluster(nodes=2, cpus=1) as address:
                results["ray"], ray_overhead = timed("ray 2 nodes", spec, RayRunner(address), folder, 2, sequential, cells)
        first = next(iter(results.values()))
        assert all(r == first for r in results.values()), "runs disagree"
        print("every run gave the same numbers for every cell")

    cell = demo_cell_seconds()
    print(f"one Evaluate cell on the demo model (C = 64, 512 tokens): {cell:.2f} s")
    for label, overhead in (("local ×2", local_overhead), ("ray 2 nodes", ray_overhead)):
        if overhead is not None:
            print(f"overhead per cell, {label}: {overhead * 1000:.0f} ms = {overhead / cell * 100:.1f}% of a demo-model cell")


if __name__ == "__main__":
    main()
