"""Retrieval grids on the demo model (fast): k = 1 is Evaluate's exact mode, the kept-needle grid is
the caches' own positions, C ≥ context is Full Cache exactly in both protocols, determinism,
each named bad-input error, Cancel, the CLI. The retrieval phenomenon itself needs SmolLM2
(tests/test_retrieval_smollm2.py)."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import ROOT, wait_job

from backend.compress import prefill_answers
from backend.evaluate.run import evaluate
from backend.retrieval.grid import run_grid
from backend.retrieval.streaming import run_streaming
from backend.retrieval.tasks import TASKS

EVICTING = ["sliding_window", "streaming_llm", "h2o", "lru", "tova"]
SETTINGS = {"cache_size": 32, "ratio": None, "sinks": 4, "window": 8, "chunk": 1, "seed": 0, "chat_template": False}


@pytest.fixture(scope="module")
def demo(demo_api):
    return demo_api._state.model


@pytest.fixture(scope="module")
def prompt(demo):
    return TASKS["pass_key"](demo.tokenizer, 96, 0.5, 0, False)


def test_a_prompt_puts_the_needle_at_a_sentence_boundary_at_its_depth(demo):
    for depth in (0.0, 0.5, 1.0):
        p = TASKS["pass_key"](demo.tokenizer, 160, depth, 3, False)
        assert len(p.context_ids) <= 160
        a, b = p.needle_span
        assert demo.tokenizer.decode(p.context_ids[a:b]).strip() == p.needle
        assert p.expected in p.needle and p.correct(f" {p.expected}. Remember") and not p.correct(" 1" + p.expected)
    start = TASKS["pass_key"](demo.tokenizer, 160, 0.0, 3, False)
    assert demo.tokenizer.decode(start.context_ids[: start.needle_span[0]]).endswith("information there.")  # after the intro
    end = TASKS["pass_key"](demo.tokenizer, 160, 1.0, 3, False)
    assert end.needle_span[1] == len(end.context_ids)  # depth 1: the context's last sentence


def test_chunk_of_one_keeps_exactly_what_evaluate_keeps(demo, prompt):
    """k = 1 is Evaluate's token-by-token mode: after the context, each cache holds the same positions."""
    ids = prompt.context_ids
    out = run_streaming(demo, prompt, ["full"] + EVICTING, 32, 4, 8, chunk=1)
    ref = evaluate(demo, ids + prompt.question_ids[:1], ["full"] + EVICTING, 32, 4, 8, keep_trace=True)
    for r in ref["results"][1:]:
        kept = np.sort(out[r["policy"]]["positions"], axis=-1)
        want = np.sort(np.array(r["final_kept"]), axis=-1)
        assert np.array_equal(np.broadcast_to(want, kept.shape), kept), r["policy"]


def test_needle_grid_equals_the_kept_sets_recomputed_from_the_caches_positions(demo, prompt):
    a, b = prompt.needle_span
    n, layers, kv = len(prompt.context_ids), demo.spec["layers"], demo.spec["kv_heads"]
    out = run_streaming(demo, prompt, ["full"] + EVICTING, 32, 4, 8, chunk=8)
    for p in EVICTING:
        pos = out[p]["positions"]
        assert pos.shape == (layers * kv, 32)  # cut back to C after the last chunk
        counts = [[len(set(pos[layer * kv + h].tolist()) & set(range(a, b))) for h in range(kv)] for layer in range(layers)]
        assert out[p]["needle_kept"].tolist() == counts, p
    assert set(out["sliding_window"]["positions"][0].tolist()) == set(range(n - 32, n))
    assert set(out["streaming_llm"]["positions"][0].tolist()) == set(range(4)) | set(range(n - 28, n))
    assert out["full"]["needle_kept"].tolist() == [[b - a] * kv] * layers
    assert sum(map(sum, out["h2o"]["needle_kept"].tolist())) != sum(map(sum, out["sliding_window"]["needle_kept"].tolist()))
    # the prefill protocol's grid, from the kept positions backend/compress returns
    grid = run_grid(demo, "pass_key", "prefill", ["full", "h2o", "tova"], [96], [0.5], SETTINGS)
    pre = prefill_answers(demo, prompt.context_ids, prompt.question_ids, prompt.answer_ids, ["h2o", "tova"],
                          cache_size=32, sinks=4, window=8, needle_span=prompt.needle_span)
    for c in grid["cells"][1:]:
        kept = pre[c["policy"]]["kept"]
        assert c["needle_kept"] == [[int(((k[h] >= a) & (k[h] < b)).sum()) for h in range(kv)] for k in kept]


def test_cache_at_least_the_context_gives_full_cache_exactly_in_both_protocols(demo, prompt):
    n = len(prompt.context_ids)
    out = run_streaming(demo, prompt, ["full"] + EVICTING, n, 4, 8, chunk=4)
    pre = prefill_answers(demo, prompt.context_ids, prompt.question_ids, prompt.answer_ids, ["full"] + EVICTING[:2]
                          + ["h2o", "tova"], cache_size=n, sinks=4, window=8, needle_span=prompt.needle_span)
    for results in (out, pre):
        for p, r in results.items():
            assert r["generated"] == results["full"]["generated"], p
            assert r["answer_logprob"] == results["full"]["answer_logprob"], p


def test_runs_are_deterministic_and_say_which_chunk_ran(demo):
    a = run_grid(demo, "needle", "streaming", ["full", "h2o", "streaming_llm"], [96, 128], [0.0, 1.0], {**SETTINGS, "chunk": 16})
    b = run_grid(demo, "needle", "streaming", ["full", "h2o", "streaming_llm"], [96, 128], [0.0, 1.0], {**SETTINGS, "chunk": 16})
    assert a["cells"] == b["cells"] and a["chunk"] == 16 and len(a["cells"]) == 12
    assert {s["policy"] for s in a["summary"]} == {"full", "h2o", "streaming_llm"}
    c = a["cells"][0]
    assert len(c["needle_kept"]) == 6 and len(c["needle_attention"]) == 6 and c["needle_tokens"] > 0


@pytest.mark.parametrize("params, code", [
    ({"depths": [0.5, 1.5]}, "retrieval_depth_out_of_range"),
    ({"depths": [-0.1]}, "retrieval_depth_out_of_range"),
    ({"lengths": [96], "cache_size": 96}, "retrieval_budget_not_below_context"),
    ({"lengths": [128, 96], "cache_size": 100}, "retrieval_budget_not_below_context"),
    ({"lengths": [250]}, "retrieval_context_too_long"),
    ({"task": "custom", "haystack": "Some text. More text.", "needle": "", "question": "What?", "answer": "x"},
     "retrieval_missing_needle"),
    ({"task": "custom", "haystack": "Some text. More text.", "needle": "The code is 42.", "question": "What is the code?",
      "answer": ""}, "retrieval_missing_answer"),
    ({"task": "custom", "haystack": "Some text. More text.", "needle": "The code is 42.", "question": "What is the code?",
      "answer": "43"}, "retrieval_answer_not_in_needle"),
    ({"task": "custom", "haystack": "", "needle": "The code is 42.", "question": "Code?", "answer": "42"},
     "retrieval_missing_haystack"),
])
def test_each_bad_input_is_a_named_error(demo_api, params, code):
    out = demo_api.retrieval(params)
    assert not out["ok"] and out["error"]["code"] == code, out
    assert out["error"]["message"] and out["error"].get("field")


def test_info_lists_the_contract(demo_api):
    info = demo_api.retrieval_info({})
    assert info["ok"] and info["tasks"] == ["pass_key", "needle", "multi_key", "custom"]
    assert info["protocols"] == ["streaming", "prefill"] and info["policies"][0] == "full"
    assert "SmolLM2" in info["demo_note"] and info["defaults"]["lengths"][-1] < 256


def test_custom_task_through_the_api(demo_api):
    job = demo_api.retrieval({"task": "custom", "haystack": "The cat sat on the mat. The dog ran far away.",
                              "needle": "The secret code is 4711.", "question": "What is the secret code?",
                              "answer": "4711", "lengths": [64], "depths": [0.5], "cache_size": 16, "policy": ["h2o"]})
    status = wait_job(demo_api, job["job_id"])
    assert status["state"] == "done", status
    r = status["result"]
    assert [c["policy"] for c in r["cells"]] == ["full", "h2o"] and r["cells"][0]["expected"] == "4711"
    assert r["model"]["source"] == "demo" and r["chunk"] == 64


def test_cancel_stops_a_grid_within_a_second(demo_api):
    job = demo_api.retrieval({"lengths": [192], "depths": [0, 0.25, 0.5, 0.75, 1], "cache_size": 16, "chunk": 1})
    deadline = time.time() + 60
    while demo_api.job_status({"job_id": job["job_id"]})["fraction"] <= 0.02 and time.time() < deadline:
        time.sleep(0.05)
    asked = time.time()
    demo_api.cancel_job({"job_id": job["job_id"]})
    status = wait_job(demo_api, job["job_id"], timeout=10)
    assert status["state"] == "cancelled" and time.time() - asked < 1.5, status


def test_cli_json_has_the_api_keys():
    out = subprocess.run([sys.executable, "main.py", "retrieval", "--model", "demo", "--lengths", "96", "--depths",
                          "0,1", "--cache-size", "16", "--policy", "streaming_llm", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert {"task", "protocol", "lengths", "depths", "settings", "model", "seconds", "cells", "summary", "chunk"} <= set(r)
    assert len(r["cells"]) == 4 and {"needle_kept", "needle_attention", "answer", "expected", "correct"} <= set(r["cells"][0])
    bad = subprocess.run([sys.executable, "main.py", "retrieval", "--model", "demo", "--depths", "2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "depths" in bad.stderr


def test_sweep_kind_retrieval_gives_accuracy_against_kv_memory(tmp_path):
    from backend.sweep import LocalRunner, parse_spec, read_rows, run_sweep

    spec = parse_spec({"kind": "retrieval", "models": ["demo"], "policies": ["full", "streaming_llm", "h2o"],
                       "cache_sizes": [16, 32], "sinks": 4,
                       "retrieval": {"task": "pass_key", "lengths": [64, 96], "depths": [0, 1], "chunk": 16}})
    summary = run_sweep(spec, tmp_path / "r.jsonl", LocalRunner(0))
    rows = read_rows(tmp_path / "r.jsonl")
    assert summary["cells_done"] == len(rows) == 1 + 2 * 2
    for r in rows:
        assert r["metrics"]["cells"] == 4 and 0.0 <= r["metrics"]["accuracy"] <= 1.0 and r["tokens"] == 80
        assert r["kv_tokens"] == (80 if r["cell"]["policy"] == "full" else r["cell"]["cache_size"])
    assert run_sweep(spec, tmp_path / "r.jsonl", LocalRunner(0))["written"] == 0  # resumed: nothing twice
    bad = parse_spec({"kind": "retrieval", "models": ["demo"], "cache_sizes": [64, 128],
                      "retrieval": {"lengths": [64, 96], "depths": [0]}})
    assert summary and run_sweep(bad, tmp_path / "b.jsonl", LocalRunner(0))["notes"]  # C ≥ the shortest: left out
