"""Perplexity under eviction: exact agreement with Full Cache, the kernels' kept sets, determinism."""
import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, load, wait_job

from backend.api.evaluate import bundled_eval_text
from backend.evaluate.run import evaluate
from kernels.eviction import Simulation, model_trace, to_fixed

POLICIES = ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova"]


@pytest.fixture(scope="module")
def demo(demo_api):
    return demo_api._state.model


@pytest.fixture(scope="module")
def ids(demo):
    return demo.tokenizer(bundled_eval_text())["input_ids"][:48]


def test_cache_as_long_as_the_text_gives_full_cache_numbers_exactly(demo, ids):
    result = evaluate(demo, ids, POLICIES, cache_size=64, sinks=4, window=16)
    full = result["results"][0]
    assert full["policy"] == "full" and full["tokens"] == len(ids) - 1
    for r in result["results"][1:]:
        assert r["perplexity"] == full["perplexity"], r["policy"]
        assert r["kl_vs_full"] == 0.0 and r["evictions"] == 0
        assert r["curve"] == full["curve"]


def test_kept_sets_are_the_simulation_kernels_choices(demo, ids):
    result = evaluate(demo, ids, POLICIES, cache_size=12, sinks=2, window=4, keep_trace=True)
    by_policy = {r["policy"]: r for r in result["results"]}
    for policy in POLICIES[1:]:
        r = by_policy[policy]
        assert r["evictions"] > 0 and len(r["final_kept"]) == 12
        trace = r["trace"]
        # rows hold the attention the model really paid: on kept keys only, summing to 1
        sums = trace[: len(ids) - 1].sum(axis=1)
        np.testing.assert_allclose(sums, 1.0, atol=1e-5)
        sim = Simulation(policy, model_trace(trace), 12, 2, 4, to_fixed(0.01))
        sim.run(0, len(ids) - 1)
        assert sim.kept().tolist() == r["final_kept"], policy
    # StreamingLLM keeps its sinks; sliding window only the most recent keys
    assert by_policy["streaming_llm"]["final_kept"][:2] == [0, 1]
    assert by_policy["sliding_window"]["final_kept"] == list(range(len(ids) - 1 - 12, len(ids) - 1))
    # evicting changes the predictions: a real, positive divergence from Full Cache
    assert by_policy["sliding_window"]["kl_vs_full"] > 0


def test_deterministic(demo, ids):
    one = evaluate(demo, ids[:32], ["full", "h2o", "tova"], cache_size=10, sinks=2, window=4)
    two = evaluate(demo, ids[:32], ["full", "h2o", "tova"], cache_size=10, sinks=2, window=4)
    for a, b in zip(one["results"], two["results"]):
        a.pop("seconds"), b.pop("seconds")
        assert a == b


def test_beyond_the_context_length(api, tiny_model_dir):
    assert load(api, tiny_model_dir)["state"] == "done"  # context 128
    loaded = api._state.model
    ids = loaded.tokenizer(bundled_eval_text())["input_ids"][:150]
    result = evaluate(loaded, ids, ["full", "streaming_llm"], cache_size=8, sinks=2, window=4)
    full, streaming = result["results"]
    assert full["tokens"] == 127 and "context length" in full["note"]
    assert streaming["tokens"] == 149 and np.isfinite(streaming["perplexity"])
    assert "inside the cache" in result["position_scheme"] and "learned_absolute" in result["position_scheme"]


def test_api_job_and_bad_input(demo_api):
    bad = [({"cache_size": 600}, "cache_size"), ({"policy": ["oracle"]}, "policy"), ({"max_tokens": -3}, "max_tokens"),
           ({"sinks": 300, "cache_size": 64}, "sinks"), ({"text": "\ud800"}, "text")]
    for params, field in bad:
        out = demo_api.evaluate(params)
        assert not out["ok"] and out["error"]["field"] == field, (params, out)
    job = demo_api.evaluate({"max_tokens": 24, "cache_size": 8, "sinks": 2, "window": 4, "policy": ["streaming_llm"]})
    status = wait_job(demo_api, job["job_id"])
    assert status["state"] == "done"
    assert [r["policy"] for r in status["result"]["results"]] == ["full", "streaming_llm"]


def test_cli_prints_the_documented_fields():
    out = subprocess.run([sys.executable, "main.py", "evaluate", "--max-tokens", "24", "--cache-size", "8", "--sinks", "2",
                          "--window", "4", "--policy", "all", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert [r["policy"] for r in doc["results"]] == POLICIES
    assert all(set(r) == {"policy", "perplexity", "kl_vs_full", "tokens", "seconds"} for r in doc["results"])
    bad = subprocess.run([sys.executable, "main.py", "evaluate", "--cache-size", "9999", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "cache_size" in bad.stderr
