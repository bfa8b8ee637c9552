"""A user rule that never returns must not wedge the app (issue #25).

The endless rule from the issue in Simulate, Evaluate and a sweep cell: Cancel ends the job
within a second (asserted with a margin for this shared machine) and frees its heavy-job
slot; a plain simulation started right after finishes; a stuck step is stopped with
rule_timeout naming the file, the function and the step; the killed worker processes are
gone from the process table. Evaluate with examples/policies/h2o.py equals built-in H2O
through the worker (tests/test_custom_policies.py holds every twin, bit for bit).
"""
import os
import time

import psutil
import pytest

from backend.api import Api
from backend.api import app as app_module
from backend.usercode import pool as rule_workers
from backend.jobs import MAX_HEAVY
from helpers import ROOT, load, wait_job

ENDLESS = '''NAME = "endless"
PROTECT_FIRST = 0
PROTECT_RECENT = 0

def on_enter(t, run):
    s = 1.0
    while s > 0.0:
        s = s * 1.0000001 + 1.0
    return s
'''
STUCK_LATER = '''NAME = "stuck_later"
PROTECT_FIRST = 0
PROTECT_RECENT = "window"

def on_enter(t, run):
    return 0.0

def on_attention(score, attention, age, t, run):
    s = 1.0
    while t >= 100 and s > 0.0:
        s = s * 1.0000001 + 1.0
    return score + attention
'''
NO_LIMIT = 600  # seconds a step: these runs wait for Cancel, not for rule_timeout
CANCEL_BOUND = 2.0  # the issue asks for 1 s; this machine is shared by several test runs


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    folder = tmp_path_factory.mktemp("policies")
    (folder / "endless.py").write_text(ENDLESS)
    (folder / "stuck_later.py").write_text(STUCK_LATER)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SINKVIS_POLICY_DIR", str(folder))
        mp.setattr(app_module, "EXPORT_DIR", tmp_path_factory.mktemp("exports"))
        instance = Api()
        assert load(instance, "demo")["state"] == "done"
        assert {p["name"] for p in instance.user_policies()["policies"]} == {"endless", "stuck_later"}
        instance._folder = folder
        yield instance
        instance._state.jobs.cancel_all(wait=10)
        instance._state.policies.unpublish()
    rule_workers.shutdown()


def workers() -> set[int]:
    """This process's worker children (backend.worker_child processes; not multiprocessing's resource tracker)."""
    return {c.pid for c in psutil.Process().children(recursive=True)
            if any(tag in part for part in _cmdline(c) for tag in ("spawn_main", "backend.worker_child"))}


def rule_pids() -> set[int]:
    """The rule workers the app holds (warm spares, runs, warm-ups): not a sweep's."""
    return set().union(*rule_workers.pids().values())


def _cmdline(process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def wait_until(condition, timeout=120.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def cancel_and_time(api, job_id) -> float:
    started = time.perf_counter()
    assert api.cancel_job({"job_id": job_id})["ok"]
    wait_until(lambda: api.job_status({"job_id": job_id})["state"] != "running", 10, "the cancel")
    took = time.perf_counter() - started
    assert api.job_status({"job_id": job_id})["state"] == "cancelled"
    return took


def rule_running(api, job_id, marker) -> bool:
    status = api.job_status({"job_id": job_id})
    assert status["state"] == "running", status
    return marker in status["stage"]


def plain_simulation_finishes(api):
    started = time.perf_counter()
    status = wait_job(api, api.simulate({"policy": "h2o", "length": 10_000})["job_id"], timeout=30)
    assert status["state"] == "done", status
    return time.perf_counter() - started


def test_cancel_stops_an_endless_rule_in_simulate_and_frees_both_slots(api):
    jobs = [api.simulate({"policy": "endless", "length": 10_000, "rule_step_limit": NO_LIMIT})["job_id"]
            for _ in range(MAX_HEAVY + 1)]
    for job in jobs[:MAX_HEAVY]:  # both slots held by the rule, stuck at its first step
        wait_until(lambda: rule_running(api, job, "endless: 0 / 10,000 steps"), what="the rule to start")
    assert api.job_status({"job_id": jobs[-1]})["queued"]
    stuck = rule_workers.pids()["busy"]
    assert len(stuck) == MAX_HEAVY and stuck <= workers()
    time.sleep(0.5)
    took = [cancel_and_time(api, job) for job in jobs]
    assert max(took) <= CANCEL_BOUND, took
    assert not any(psutil.pid_exists(pid) for pid in stuck), "a killed worker outlived its job"
    held = rule_workers.pids()
    assert workers() <= held["idle"] | held["starting"] and not held["busy"]  # only warm spares remain
    assert plain_simulation_finishes(api) < 30
    assert api.model_info()["loaded"] is True  # the model stayed loaded
    assert {p["name"] for p in api.reload_policies()["policies"]} == {"endless", "stuck_later"}


def test_a_stuck_step_is_stopped_by_name_and_the_other_results_stand(api):
    out = wait_job(api, api.simulate({"policy": "all", "length": 2000, "cache_size": 64, "window": 16,
                                      "rule_step_limit": 0.5})["job_id"])
    assert out["state"] == "done", out
    failed = {f["policy"]: f["error"] for f in out["result"]["failed"]}
    assert set(failed) == {"endless", "stuck_later"} and {e["code"] for e in failed.values()} == {"rule_timeout"}
    endless = failed["endless"]["message"]
    assert f"{api._folder / 'endless.py'}, line 5" in endless and "on_enter" in endless and "step 0" in endless
    assert "limit of 0.5 s" in endless
    later = failed["stuck_later"]["message"]
    assert "on_attention" in later and "step 100:" in later and "line 8" in later
    assert [r["policy"] for r in out["result"]["results"]] == ["full", "sliding_window", "streaming_llm", "h2o",
                                                               "lru", "tova"]


def test_cancel_stops_an_endless_rule_in_evaluate(api):
    job = api.evaluate({"policy": ["h2o", "endless"], "max_tokens": 120, "cache_size": 24, "window": 8,
                        "rule_step_limit": NO_LIMIT})["job_id"]
    wait_until(lambda: api.job_status({"job_id": job})["stage"] == "Full-cache pass", what="the run to start")
    time.sleep(1.0)  # the rule's first step is under way (its worker was warm)
    took = cancel_and_time(api, job)
    assert took <= CANCEL_BOUND, took
    assert plain_simulation_finishes(api) < 30
    # A stuck step is named there too, and the built-in's result stands.
    out = wait_job(api, api.evaluate({"policy": ["h2o", "endless"], "max_tokens": 60, "cache_size": 24,
                                      "window": 8, "rule_step_limit": 0.5})["job_id"])
    assert out["state"] == "done", out
    assert [r["policy"] for r in out["result"]["results"]] == ["full", "h2o"]
    assert out["result"]["failed"][0]["error"]["code"] == "rule_timeout"
    assert "step 0" in out["result"]["failed"][0]["error"]["message"]


def test_evaluate_with_the_h2o_rule_file_equals_built_in_h2o(api):
    assert api.load_policy_file({"path": str(ROOT / "examples" / "policies" / "h2o.py"), "trust": True})["ok"]
    runs = {}
    for policy in ("h2o", "h2o_rule"):
        status = wait_job(api, api.evaluate({"policy": [policy], "max_tokens": 120, "cache_size": 24,
                                             "window": 8})["job_id"])
        assert status["state"] == "done", status
        runs[policy] = {r["policy"]: r for r in status["result"]["results"]}[policy]
    for key in ("perplexity", "kl_vs_full", "curve", "evictions"):
        assert runs["h2o_rule"][key] == runs["h2o"][key], key


def test_cancel_stops_an_endless_rule_in_a_sweep_cell(api):
    before = workers()
    started = api.sweep_start({"out": "endless.jsonl", "kind": "simulate", "models": ["synthetic"], "workers": 0,
                               "cache_sizes": "16", "texts": [{"name": "syn", "synthetic": {"length": 2000}}],
                               "policies": ["endless"]})
    assert started["ok"], started
    wait_until(lambda: len(workers() - before - rule_pids()) >= 1, what="the sweep's worker")  # even with workers: 0
    sweep_workers = workers() - before - rule_pids()
    time.sleep(3.0)  # the worker compiles the rule and gets stuck in its first step
    took = cancel_and_time(api, started["job_id"])
    assert took <= CANCEL_BOUND, took
    assert not any(psutil.pid_exists(pid) and pid in workers() for pid in sweep_workers)
    assert plain_simulation_finishes(api) < 30


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform (Windows); runs on Linux and macOS")
def test_a_fifo_given_as_a_policy_file_is_not_a_regular_file(api, tmp_path):
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    error = api.load_policy_file({"path": str(fifo), "trust": True})["error"]
    assert error["code"] == "bad_file" and "not a regular file" in error["message"]
    assert api.load_policy_file({"path": "/dev/null", "trust": True})["error"]["message"].endswith(
        "not a regular file (a policy file is a plain .py file).")


def test_a_stuck_rule_in_a_sweep_cell_is_named(api, monkeypatch):
    monkeypatch.setenv("SINKVIS_RULE_STEP_LIMIT", "0.5")  # the workers read it when they start
    before = workers()
    started = api.sweep_start({"out": "stuck.jsonl", "kind": "simulate", "models": ["synthetic"], "workers": 0,
                               "cache_sizes": "16", "texts": [{"name": "syn", "synthetic": {"length": 2000}}],
                               "policies": ["endless"]})
    status = wait_job(api, started["job_id"], timeout=120)
    assert status["state"] == "error" and status["error"]["code"] == "rule_timeout", status
    assert "endless.py, line 5" in status["error"]["message"] and "step 0" in status["error"]["message"]
    assert workers() <= before | rule_pids()


def test_local_worker_processes_give_this_process_s_cells_and_end_with_the_sweep(tmp_path):
    from backend.sweep import LocalRunner, parse_spec, read_rows, run_sweep

    spec = parse_spec({"kind": "simulate", "models": ["synthetic"], "policies": ["streaming_llm", "h2o", "tova"],
                       "cache_sizes": [16, 64], "texts": [{"name": "syn", "synthetic": {"length": 3000}}]})
    before = workers()
    run_sweep(spec, tmp_path / "two.jsonl", LocalRunner(2))
    run_sweep(spec, tmp_path / "here.jsonl", LocalRunner(0))
    two, here = read_rows(tmp_path / "two.jsonl"), read_rows(tmp_path / "here.jsonl")
    assert len(two) == len(here) == 6 and len({r["pid"] for r in two}) == 2 and os.getpid() not in {r["pid"] for r in two}
    assert {r["key"]: r["metrics"] for r in two} == {r["key"]: r["metrics"] for r in here}
    assert workers() <= before  # the sweep's workers ended with it
