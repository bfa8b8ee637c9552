"""Issue #33, item 1: every kind of sweep with a user's file, on local worker processes and on Ray.

Each sweep runs a rule file (examples/policies/h2o.py, which equals built-in H2O bit for bit) or a
prefill file (examples/policies/snapkv.py, which keeps what built-in SnapKV keeps) beside its built-in
twin: the file's text travels with the cells, the worker compiles it, and its cells equal the twin's.
An Evaluate sweep with a rule file used to die in the worker ('CustomSimulation' has no 'code').
A task that raises reaches the Api and the CLI as sweep_task_failed naming it, not as a traceback.
Ray: one node on 127.0.0.1 (`ray start --head`), started once for this module."""
import json

import pytest
from helpers import ROOT, wait_job

from backend.sweep import LocalRunner, parse_spec, read_rows, run_sweep
from backend.sweep.local_cluster import local_cluster

TEXT = (ROOT / "assets" / "eval" / "jargon-heldout.txt").read_text(encoding="utf-8")[:1500]  # ~250 demo tokens
RETRIEVAL = {"task": "pass_key", "lengths": [80], "depths": [0.5], "chunk": 16}
# kind → (sweep settings, the user's file, its built-in twin)
CASES = {
    "simulate": ({"kind": "simulate", "cache_sizes": [24], "max_tokens": 64}, "h2o_rule", "h2o"),
    "evaluate": ({"kind": "evaluate", "cache_sizes": [24], "max_tokens": 64}, "h2o_rule", "h2o"),
    "retrieval": ({"kind": "retrieval", "cache_sizes": [48], "retrieval": RETRIEVAL}, "h2o_rule", "h2o"),
    # a context of 180 (kvpress's split, backend/sweep/grid.py) keeps 90 a head, more than SnapKV's window of 64
    "prefill": ({"kind": "prefill", "ratios": [0.5], "max_tokens": 240}, "snapkv_file", "snapkv"),
    "retrieval_prefill": ({"kind": "retrieval", "cache_sizes": [48], "retrieval": {**RETRIEVAL, "protocol": "prefill"}},
                          "snapkv_file", "snapkv"),
}
BOOM = '''NAME = "boom_rule"
PROTECT_FIRST = "sinks"
PROTECT_RECENT = 0


def on_enter(t, run):
    if t == 20:
        raise ValueError("boom at step 20")
    return float(t)
'''
STUCK = '''NAME = "stuck_rule"
PROTECT_FIRST = "sinks"
PROTECT_RECENT = 0


def on_enter(t, run):
    s = 1.0
    while t == 20 and s > 0.0:  # never ends (inf > 0), and Numba cannot prove it
        s = s * 1.0000001 + 1.0
    return float(t)
'''


@pytest.fixture(scope="module")
def examples():
    from backend.eviction.custom_policies import PolicyRegistry

    registry = PolicyRegistry(ROOT / "examples" / "policies", publish=False)
    assert registry.reload()["errors"] == []
    return registry.snapshot(prefill=True)


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(nodes=1, cpus=1) as address:
        yield address


def runner_for(where, request):
    if where == "local":
        return LocalRunner(1)
    from backend.sweep.ray_runner import RayRunner

    return RayRunner(request.getfixturevalue("cluster"))


@pytest.mark.parametrize("where", ["local", "ray"])
@pytest.mark.parametrize("kind", list(CASES))
def test_a_user_file_runs_in_every_kind_of_sweep_and_equals_its_built_in_twin(kind, where, examples, request, tmp_path):
    import os

    settings, name, twin = CASES[kind]
    spec = parse_spec({**settings, "models": ["demo"], "texts": [{"name": "j", "text": TEXT}], "sinks": 4,
                       "policies": ["full", twin, name]}, examples)
    assert [f["name"] for f in spec.policy_files] == [name]  # the file's text goes with the cells
    summary = run_sweep(spec, tmp_path / "x.jsonl", runner_for(where, request))
    rows = read_rows(tmp_path / "x.jsonl")
    assert summary["cells_done"] == summary["cells_total"] == len(rows) == 3
    assert os.getpid() not in {r["pid"] for r in rows}  # a worker process or a Ray actor ran them
    by = {r["cell"]["policy"]: {k: v for k, v in r["metrics"].items() if k != "note"} for r in rows}  # a note names it
    assert by[name] == by[twin], (by[name], by[twin])
    headline = {"simulate": "hit_rate", "evaluate": "perplexity", "prefill": "perplexity"}.get(kind, "mean_logprob")
    assert by[name][headline] is not None
    if kind == "prefill":  # the budget is over SnapKV's window: its scores chose (no note says they could not)
        assert [r["metrics"]["note"] for r in rows if r["cell"]["policy"] == twin] == [None]
    if kind in ("evaluate", "prefill"):
        assert by[name]["kl_vs_full"] > 0  # it evicted something: not Full Cache's numbers by another name


def test_a_file_of_the_other_kind_is_refused_naming_where_it_runs(examples):
    base = {"models": ["demo"], "texts": [{"name": "j", "text": TEXT}]}
    with pytest.raises(Exception) as refused:
        parse_spec({**base, "kind": "evaluate", "policies": ["snapkv_file"]}, examples)
    assert refused.value.field == "policies" and "prefill method" in refused.value.message
    with pytest.raises(Exception) as refused:
        parse_spec({**base, "kind": "prefill", "policies": ["h2o_decay"]}, examples)
    assert refused.value.field == "policies" and "eviction rule" in refused.value.message


def boom_spec(tmp_path):
    from backend.eviction.custom_policies import PolicyRegistry

    (tmp_path / "boom.py").write_text(BOOM)
    registry = PolicyRegistry(tmp_path / "none", publish=False)
    registry.trust_file(tmp_path / "boom.py")
    return parse_spec({"kind": "evaluate", "models": ["demo"], "texts": [{"name": "j", "text": TEXT}], "sinks": 4,
                       "cache_sizes": [16], "max_tokens": 40, "policies": ["boom_rule"]}, registry.snapshot())


@pytest.mark.parametrize("where", ["local", "ray"])
def test_a_task_that_raises_is_a_named_error_with_its_message(where, request, tmp_path):
    from backend.errors import UserError

    with pytest.raises(UserError) as failed:
        run_sweep(boom_spec(tmp_path), tmp_path / "x.jsonl", runner_for(where, request))
    assert failed.value.code == "sweep_task_failed" and failed.value.field == "policies"
    assert "ValueError: boom at step 20" in failed.value.message and "boom_rule" in failed.value.message
    assert "Traceback" not in failed.value.message


def test_the_api_job_and_the_cli_show_the_named_error(api, tmp_path, monkeypatch, capsys):
    import backend.api.app as app_module
    from main import main

    monkeypatch.setattr(app_module, "EXPORT_DIR", tmp_path)
    (tmp_path / "boom.py").write_text(BOOM)
    assert api.load_policy_file({"path": str(tmp_path / "boom.py"), "trust": True})["ok"]
    started = api.sweep_start({"out": "x.jsonl", "kind": "evaluate", "models": ["demo"], "workers": 1,
                               "cache_sizes": [16], "max_tokens": 40, "policies": ["boom_rule"]})
    assert started["ok"], started
    status = wait_job(api, started["job_id"], timeout=300)
    assert status["state"] == "error" and status["error"]["code"] == "sweep_task_failed", status
    assert "ValueError: boom at step 20" in status["error"]["message"]
    assert "Traceback" not in json.dumps(status)
    code = main(["sweep", "--model", "demo", "--kind", "evaluate", "--policy", "boom_rule", "--policy-file",
                 str(tmp_path / "boom.py"), "--cache-sizes", "16", "--max-tokens", "40", "--workers", "1",
                 "--out", str(tmp_path / "cli.jsonl")])
    err = capsys.readouterr().err
    assert code != 0 and "ValueError: boom at step 20" in err and "Traceback" not in err


@pytest.mark.parametrize("where", ["local", "ray"])
def test_a_rule_stuck_in_a_step_is_stopped_with_rule_timeout(where, request, tmp_path):
    """The step watch (backend/eviction/rule_watch.py) in a local worker and, since issue #33, in a Ray actor."""
    import time

    from backend.errors import UserError
    from backend.eviction.custom_policies import PolicyRegistry

    (tmp_path / "stuck.py").write_text(STUCK)
    registry = PolicyRegistry(tmp_path / "none", publish=False)
    registry.trust_file(tmp_path / "stuck.py")
    spec = parse_spec({"kind": "evaluate", "models": ["demo"], "texts": [{"name": "j", "text": TEXT}], "sinks": 4,
                       "cache_sizes": [16], "max_tokens": 40, "policies": ["stuck_rule"]}, registry.snapshot())
    started = time.monotonic()
    with pytest.raises(UserError) as stopped:
        run_sweep(spec, tmp_path / "x.jsonl", runner_for(where, request))
    assert stopped.value.code == "rule_timeout" and "stuck_rule was stopped at step 20" in stopped.value.message
    assert time.monotonic() - started < 120  # the default limit is 2 s a step: not a hang
