"""Sweeps: policies × cache sizes × texts × models, each cell one Simulate or Evaluate run.

    spec = parse_spec(params)                       # UserError naming the field on bad input
    summary = run_sweep(spec, "results.jsonl", LocalRunner(workers=2), report)
    summary = run_sweep(spec, "results.jsonl", RayRunner("auto"), report)   # an existing Ray cluster
    rows = read_rows("results.jsonl")               # one row per cell, first per key

spec.py (settings, cells, keys) · grid.py (the cells) · results.py (the JSON Lines file) ·
cells.py (one task, where it runs) · local.py / ray_runner.py (where tasks run) · driver.py.
"""
from .driver import plan, run_sweep
from .local import LocalRunner
from .results import read_rows
from .spec import Cell, SweepSpec, parse_spec


def make_runner(ray: str | None = None, workers: int | None = None):
    """Local worker processes unless a Ray address ('auto' or HOST:PORT) is given."""
    if ray:
        from .ray_runner import RayRunner

        return RayRunner(ray)
    return LocalRunner(workers)


__all__ = ["Cell", "SweepSpec", "parse_spec", "plan", "run_sweep", "read_rows", "LocalRunner", "make_runner"]
