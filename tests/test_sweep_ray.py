"""Sweeps on a real Ray cluster: two nodes on 127.0.0.1 (`ray start --head` + `ray start --address`,
one CPU each), started once for this module and stopped at its end. Cells land on both nodes,
a node's worker killed mid-sweep is retried by Ray and the file still has every cell once, and
local worker processes, Ray and this process give the same numbers."""
import os
import signal
import time

import pytest
from helpers import ROOT, wait_job

from backend.sweep import LocalRunner, parse_spec, read_rows, run_sweep
from backend.sweep.local_cluster import local_cluster

TEXT = (ROOT / "assets" / "eval" / "jargon-heldout.txt").read_text(encoding="utf-8")[:600]  # ~100 demo tokens


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(nodes=2, cpus=1) as address:
        yield address


SIM = {"kind": "simulate", "models": ["synthetic"], "sinks": 4,
       "texts": [{"name": "syn", "synthetic": {"length": 20_000, "seed": 5}}]}  # no torch in the workers: quick to start


def metrics(path):
    return {r["key"]: r["metrics"] for r in read_rows(path)}


def test_cells_land_on_both_nodes_and_ray_local_workers_and_this_process_agree(cluster, api, tmp_path, monkeypatch):
    import backend.api.app as app_module

    monkeypatch.setattr(app_module, "EXPORT_DIR", tmp_path)
    started = api.sweep_start({**SIM, "out": "ray.jsonl", "ray": cluster})  # the Api's path: Ray from a job thread
    assert started["ok"], started
    status = wait_job(api, started["job_id"], timeout=600)
    assert status["state"] == "done", status
    summary, ray_file = status["result"], tmp_path / "sweeps" / "ray.jsonl"
    rows = read_rows(ray_file)
    assert summary["cells_done"] == len(rows) == summary["cells_total"] == 1 + 5 * 8
    assert "2 nodes" in summary["runner"] and len({r["node"] for r in rows}) == 2  # node ids recorded, both used
    spec = parse_spec(SIM)
    run_sweep(spec, tmp_path / "local.jsonl", LocalRunner(2))
    assert len({r["pid"] for r in read_rows(tmp_path / "local.jsonl")}) == 2  # two worker processes did the work
    run_sweep(spec, tmp_path / "here.jsonl", LocalRunner(0))
    assert metrics(ray_file) == metrics(tmp_path / "local.jsonl") == metrics(tmp_path / "here.jsonl")


def test_a_killed_worker_is_retried_by_ray_and_every_cell_is_written_once(cluster, tmp_path):
    from backend.sweep.ray_runner import RayRunner

    spec = parse_spec({"kind": "evaluate", "models": ["demo"], "texts": [{"name": "j", "text": TEXT}], "sinks": 4,
                       "max_tokens": 60, "cache_sizes": [8, 16, 24, 32], "policies": ["full", "streaming_llm", "h2o"]})
    runner = RayRunner(cluster)
    head = __import__("ray").get_runtime_context().get_node_id()  # the driver's node: the head
    killed = []

    def kill_second_node_worker(rows):
        if not killed:
            pids = runner.worker_pids()
            victim = next(pid for node, p in pids.items() if node != head for pid in p)
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    started = time.time()
    summary = run_sweep(spec, tmp_path / "ray.jsonl", runner, on_rows=kill_second_node_worker)
    rows = read_rows(tmp_path / "ray.jsonl")
    lines = (tmp_path / "ray.jsonl").read_text().splitlines()
    assert killed and summary["cells_done"] == summary["cells_total"] == 1 + 2 * 4
    assert len(lines) == len(rows) == len({r["key"] for r in rows}) == 9  # every cell exactly once
    assert len({r["node"] for r in rows}) == 2  # the demo model ran on both nodes (node ids recorded)
    run_sweep(spec, tmp_path / "here.jsonl", LocalRunner(0))
    assert metrics(tmp_path / "ray.jsonl") == metrics(tmp_path / "here.jsonl")
    print(f"\nkilled worker {killed[0]}; sweep finished in {time.time() - started:.1f} s on nodes {summary['nodes']}")


def test_user_policy_files_travel_to_ray_workers_and_give_the_same_cells_as_here(cluster, tmp_path):
    """Issue #17: a sweep with user rule files (examples/policies) — their text goes with the cells, the
    Ray workers compile them, and the cells equal this process's; the H2O rule equals built-in H2O."""
    from pathlib import Path

    from backend.evaluate.deciders import unregister_policy
    from backend.eviction.custom_policies import PolicyRegistry
    from backend.sweep.ray_runner import RayRunner

    examples = PolicyRegistry(ROOT / "examples" / "policies", publish=False)
    examples.reload()
    spec = parse_spec({"kind": "simulate", "models": ["synthetic"], "policies": ["h2o", "h2o_rule", "h2o_decay"],
                       "cache_sizes": [64, 256], "sinks": 4, "texts": [{"name": "syn", "synthetic": {"length": 20_000}}]},
                      examples.snapshot())
    assert [f["name"] for f in spec.policy_files] == ["h2o_rule", "h2o_decay"]
    assert all(f["source"] == Path(f["file"]).read_text() for f in spec.policy_files)  # the text goes, not a path
    try:
        run_sweep(spec, tmp_path / "ray.jsonl", RayRunner(cluster))
        run_sweep(spec, tmp_path / "here.jsonl", LocalRunner(0))
    finally:
        for name in ("h2o_rule", "h2o_decay"):  # this process loaded them for LocalRunner(0)
            unregister_policy(name)
    ray_rows, here_rows = read_rows(tmp_path / "ray.jsonl"), read_rows(tmp_path / "here.jsonl")
    assert len(ray_rows) == len(here_rows) == 6
    assert {r["pid"] for r in ray_rows}.isdisjoint({r["pid"] for r in here_rows})  # Ray's worker, not this process
    ray_cells = {r["key"]: r["metrics"] for r in ray_rows}
    assert ray_cells == {r["key"]: r["metrics"] for r in here_rows}
    by = {(r["cell"]["policy"], r["cell"]["cache_size"]): r["metrics"] for r in ray_rows}
    for size in (64, 256):
        assert by["h2o_rule", size] == by["h2o", size]
        assert by["h2o_decay", size]["evictions"] == 20_000 - size
