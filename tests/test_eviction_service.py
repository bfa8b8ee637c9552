"""Eviction service and its Api methods: bad input names the field, jobs complete with
consistent metrics, model traces carry evicted_at, cancel works and the app stays usable."""
import argparse
import json
import time

import numpy as np
import pytest

from backend.cli import simulate as cli
from backend.eviction import parse, simulate, traces
from helpers import wait_job


@pytest.mark.parametrize("params, field", [
    ({"cache_size": 4, "sinks": 4}, "cache_size"),
    ({"cache_size": 0}, "cache_size"),
    ({"window": 256}, "window"),
    ({"cache_size": 64}, "window"),  # the default W = 128 no longer fits
    ({"length": -1}, "length"),
    ({"length": 10**9}, "length"),
    ({"length": "many"}, "length"),
    ({"length": True}, "length"),
    ({"policy": "fifo"}, "policy"),
    ({"policy": "oracle"}, "policy"),  # needs the future: model traces only
    ({"trace": "tape"}, "trace"),
    ({"access_threshold": 0}, "access_threshold"),
    ({"access_threshold": float("nan")}, "access_threshold"),
    ({"sink_mass": 0.6, "heavy_mass": 0.3, "background": 0.2}, "background"),
    ({"locality": 1.0}, "locality"),
    ({"trace": "model", "text": "   "}, "text"),
    ({"trace": "model", "text": "hi", "aggregate": "head"}, "head"),
])
def test_bad_input_names_the_field(api, params, field):
    out = api.simulate(params)
    assert out["ok"] is False and out["error"]["field"] == field, out
    assert field.split("_")[0] in out["error"]["message"]


def test_params_must_be_an_object(api):
    assert api.simulate([1, 2])["error"]["field"] == "params"


def test_model_trace_needs_a_model(api):
    out = api.simulate({"trace": "model", "text": "hello"})
    assert out["error"]["code"] == "no_model"


def test_policies_catalogue(api):
    out = api.eviction_policies()
    assert out["ok"]
    names = [p["name"] for p in out["policies"]]
    assert names == ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova", "oracle"]
    assert [p["name"] for p in out["policies"] if p["needs_future"]] == ["oracle"]
    assert out["defaults"]["cache_size"] == 256 and out["defaults"]["sinks"] == 4 and out["defaults"]["window"] == 128


def check_consistent(res, n, capacity):
    assert res["tokens_processed"] == n
    assert res["hits"] + res["misses"] == res["accesses"]
    assert res["hit_rate"] == pytest.approx(res["hits"] / res["accesses"])
    assert 0 <= res["attention_recall"] <= 1
    tl = res["timeline"]
    assert 1 <= len(tl["step"]) <= 2000 and tl["step"][-1] == n - 1
    assert tl["misses"][-1] == res["misses"] and tl["misses"] == sorted(tl["misses"])
    for key in ("retained_sinks", "retained_heavy_hitters"):
        assert 0 <= res[key]["kept"] <= res[key]["total"]
    if res["policy"] == "full":
        assert res["evictions"] == 0 and res["misses"] == 0 and res["attention_recall"] == 1.0
        assert res["kept_count"] == n
    else:
        assert res["evictions"] == max(0, n - capacity) and res["kept_count"] == min(n, capacity)
        assert max(tl["occupancy"]) <= capacity


def test_simulate_job_completes_with_consistent_metrics(api):
    job = api.simulate({"length": 30_000, "cache_size": 64, "window": 32, "seed": 5})
    assert job["ok"], job
    status = wait_job(api, job["job_id"])
    assert status["state"] == "done", status
    out = status["result"]
    assert out["trace"]["kind"] == "synthetic" and out["trace"]["length"] == 30_000
    assert out["trace"]["sink_positions"] == [0, 1, 2, 3]  # 0.5 / 4 = 0.125 ≥ 0.10 each
    names = [r["policy"] for r in out["results"]]
    assert names == ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova"]
    by = {r["policy"]: r for r in out["results"]}
    for res in out["results"]:
        check_consistent(res, 30_000, 64)
        assert "evicted_at" not in res
    assert by["streaming_llm"]["retained_sinks"] == {"kept": 4, "total": 4}
    assert by["sliding_window"]["retained_sinks"]["kept"] == 0
    assert by["streaming_llm"]["attention_recall"] > by["sliding_window"]["attention_recall"]
    json.dumps(status)  # all of it crosses the bridge


def test_progress_reports_rise_to_one():
    p = parse({"length": 200_000, "policy": "all"})  # policies on several threads, one progress
    seen = []
    simulate(p, traces.synthetic(p), lambda fraction, stage: seen.append(fraction))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 5


def causal_attention(n, seed=0):
    rng = np.random.default_rng(seed)
    a = np.tril(rng.random((n, n)) ** 4)
    a[:, 0] += 2.0  # a sink at position 0
    a = np.tril(a)
    return a / a.sum(axis=1, keepdims=True)


def test_model_trace_results_have_evicted_at_and_the_oracle_wins():
    n, capacity = 120, 24
    p = parse({"trace": "model", "text": "x", "cache_size": capacity, "sinks": 2, "window": 8})
    out = simulate(p, traces.from_attention(causal_attention(n)))
    by = {r["policy"]: r for r in out["results"]}
    assert list(by) == ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova", "oracle"]
    assert out["trace"]["sink_positions"][:1] == [0]
    for res in out["results"]:
        check_consistent(res, n, capacity)
        evicted_at = np.array(res["evicted_at"])
        assert len(evicted_at) == n
        kept = set(res["kept"])
        assert all((evicted_at[j] == -1) == (j in kept) for j in range(n))
        assert all(evicted_at[j] == -1 or evicted_at[j] >= j for j in range(n))
    assert all(by["oracle"]["hits"] >= r["hits"] for name, r in by.items() if name != "full")


def test_oracle_refuses_a_trace_too_big_to_plan(monkeypatch):
    from backend.eviction import run

    monkeypatch.setattr(run, "MAX_ORACLE_ACCESSES", 10)
    p = parse({"trace": "model", "text": "x", "cache_size": 8, "sinks": 2, "window": 4, "policy": "oracle"})
    with pytest.raises(Exception) as exc:
        simulate(p, traces.from_attention(causal_attention(40)))
    assert exc.value.field == "access_threshold"


def test_attention_trace_is_checked():
    with pytest.raises(Exception) as exc:
        traces.from_attention(np.ones((3, 4)))
    assert exc.value.field == "trace"
    bad = causal_attention(5)
    bad[2, 1] = np.nan
    with pytest.raises(Exception) as exc:
        traces.from_attention(bad)
    assert exc.value.code == "non_finite"


def test_cancel_stops_a_long_run_and_the_app_stays_usable(api):
    job = api.simulate({"length": 20_000_000, "policy": "all"})
    assert job["ok"], job
    time.sleep(0.3)
    assert api.cancel_job({"job_id": job["job_id"]})["ok"]
    status = wait_job(api, job["job_id"], timeout=30)
    assert status["state"] == "cancelled" and status["error"]["code"] == "cancelled"
    assert api.ping()["ok"]
    again = wait_job(api, api.simulate({"length": 1000, "policy": "h2o"})["job_id"])
    assert again["state"] == "done" and again["result"]["results"][0]["tokens_processed"] == 1000


def test_model_trace_through_the_api_with_the_demo_model(demo_api):
    text = "The quick brown fox jumps over the lazy dog. " * 6
    job = demo_api.simulate({"trace": "model", "text": text, "cache_size": 16, "sinks": 2, "window": 4})
    assert job["ok"], job
    status = wait_job(demo_api, job["job_id"])
    assert status["state"] == "done", status
    out = status["result"]
    n = out["trace"]["length"]
    assert out["trace"]["kind"] == "model" and len(out["trace"]["tokens"]) == n > 16
    for res in out["results"]:
        check_consistent(res, n, 16)
        assert len(res["evicted_at"]) == n


@pytest.mark.parametrize("params, field", [({"layer": 99}, "layer"), ({"aggregate": "head", "head": 99}, "head")])
def test_model_trace_layer_and_head_are_checked_at_once(demo_api, params, field):
    out = demo_api.simulate({"trace": "model", "text": "Hello there.", **params})
    assert out["ok"] is False and out["error"]["field"] == field, out


def cli_args(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_json_fields(api, capsys):
    assert cli.run(cli_args("--length", "5000", "--cache-size", "64", "--window", "16", "--json"), api) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["policy"] for r in out["results"]][:2] == ["full", "sliding_window"]
    assert {"hit_rate", "attention_recall", "timeline", "kept_count"} <= set(out["results"][0])  # the Api's result
    assert out["trace"]["length"] == 5000


def test_cli_error_names_the_field(api):
    from backend.cli.common import CliError

    with pytest.raises(CliError, match=r"\[window\]"):
        cli.run(cli_args("--cache-size", "16", "--window", "16"), api)
