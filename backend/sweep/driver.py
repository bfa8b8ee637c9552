"""The driver: build the grid, skip the cells already in the results file, hand the rest
to a runner (local or Ray), write each finished cell once, report progress.
"""
import time
from datetime import datetime, timezone

from ..errors import UserError
from .grid import build_cells, group_tasks
from .results import ResultsWriter, read_rows
from .spec import QUEST, SweepSpec


def finish_row(key: str, raw: dict) -> dict:
    """A worker's row + what the frontier plots: KV tokens and bytes, the compression ratio."""
    cell, tokens = raw["cell"], raw["tokens"]  # tokens the cell ran on (prefill: the context's)
    kv_tokens = min(cell["cache_size"], tokens)  # Full Cache: the whole (evaluated) text
    extra = {}
    if cell["kind"] == "prefill":  # mean kept entries per (layer, KV head); x = the ratio asked, as kvpress plots
        kv_tokens = raw["metrics"]["memory_tokens"]
    elif cell["policy"] == QUEST:  # evicts nothing: it holds Full Cache's entries; plotted at what a step reads
        kv_tokens = raw["metrics"]["keys_read_per_step"]
        extra = {"memory_is": "read per step", "memory_held_tokens": raw["metrics"]["memory_tokens"]}
    per_token = raw.get("kv_bytes_per_token")
    ratio = cell["ratio"] if cell.get("ratio") is not None else round(1 - kv_tokens / tokens, 6) if tokens else None
    return {"key": key, **raw, "kv_tokens": kv_tokens,
            "kv_bytes": kv_tokens * per_token if per_token and kv_tokens is not None else None,
            "compression_ratio": ratio, **extra,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "written_at": time.time()}  # minus the worker's done_at: transport + driver time (bench/sweep.py)


class Progress:
    """Cells done, cells per minute and time left, for this run (cells found in the file are not counted)."""

    def __init__(self, total: int, skipped: int, report):
        self.total, self.skipped, self.done = total, skipped, 0
        self.started = time.time()
        self.report = report
        self.nodes: dict = {}

    def add(self, rows: list[dict]) -> None:
        self.done += len(rows)
        for r in rows:
            self.nodes[r["node"]] = self.nodes.get(r["node"], 0) + 1
        self.report(self.summary())

    def summary(self) -> dict:
        elapsed = time.time() - self.started
        todo = self.total - self.skipped
        rate = self.done / elapsed * 60 if elapsed > 0 and self.done else None
        left = (todo - self.done) / rate * 60 if rate else None
        return {"cells_total": self.total, "cells_skipped": self.skipped, "cells_done": self.done,
                "cells_todo": todo, "cells_per_minute": None if rate is None else round(rate, 2),
                "seconds_left": None if left is None else round(left, 1), "elapsed": round(elapsed, 2),
                "fraction": (self.done / todo) if todo else 1.0, "nodes": dict(self.nodes)}


def plan(spec: SweepSpec, out, facts_for=None) -> dict:
    """The cells, which are already in the file, and the tasks that remain."""
    cells, notes = build_cells(spec, facts_for)
    have = {r["key"] for r in read_rows(out)}
    todo = [c for c in cells if c.key not in have]
    tasks = group_tasks(todo, spec.texts)
    for task in tasks:  # a user policy's rule file travels with its cells (#17); workers compile it
        names = {c["policy"] for c in task["cells"]}
        task["user_policies"] = [f for f in spec.policy_files if f["name"] in names]
    return {"cells": cells, "notes": notes, "todo": todo, "tasks": tasks}


def run_sweep(spec: SweepSpec, out, runner, report=lambda summary: None, should_stop=lambda: False,
              on_rows=lambda rows: None, facts_for=None) -> dict:
    """Runs the missing cells; returns the run's summary (the rows are in the file)."""
    p = plan(spec, out, facts_for)
    progress = Progress(len(p["cells"]), len(p["cells"]) - len(p["todo"]), report)
    progress.report(progress.summary())
    written = 0
    with ResultsWriter(out) as writer:
        if p["tasks"]:
            for raw_rows in runner.run(p["tasks"], spec, should_stop):
                rows = [finish_row(_key(r), r) for r in raw_rows]
                fresh = [r for r in rows if writer.append(r)]
                written += len(fresh)
                progress.add(fresh)
                on_rows(fresh)
    summary = progress.summary()
    summary.update(out=str(out), written=written, notes=p["notes"], runner=runner.where,
                   cancelled=bool(should_stop()) and summary["cells_done"] < summary["cells_todo"])
    return summary


def task_failed(task: dict, detail: str) -> UserError:
    """A task that raised (not a bad setting) in a worker or a Ray actor: the error the UI and CLI show,
    naming the cells and the error's one line (its traceback is in the worker's log)."""
    first = task["cells"][0]
    size = f"ratio {first['ratio']}" if first.get("ratio") is not None else f"C = {first['cache_size']}"
    policies = ", ".join(c["policy"] for c in task["cells"])
    return UserError("sweep_task_failed", f"A sweep task ({first['kind']}, {first['model']}, {first['text']}, {size}; "
                     f"{policies}) failed: {detail[:400]}. The cells finished before it are in the results file; "
                     "rerun without the failing policy, or fix it, to resume.", "policies")


def _key(raw: dict) -> str:
    from .spec import Cell

    return Cell(**raw["cell"]).key
