"""Results that arrive as they are computed (issue 33, items 2 and 3), on the demo model through the Api:
Evaluate's time left counted from the steps that remain, its partial result while running and on Cancel,
Retrieval's estimate before Run and its cells while running and on Cancel."""
import time

import numpy as np
import pytest
from helpers import wait_job

from backend.defaults import bundled_text as bundled_eval_text
from backend.evaluate.estimate import estimate
from backend.evaluate.run import evaluate
from backend.evaluate.time_left import TimeLeft

POLICIES = ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova"]


@pytest.fixture(scope="module")
def demo(demo_api):
    return demo_api._state.model


def poll(api, job_id, until, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = api.job_status({"job_id": job_id})
        if until(status) or status["state"] != "running":
            return status
        time.sleep(0.02)
    raise AssertionError(f"job {job_id}: condition not met in {timeout} s")


def test_time_left_from_real_step_timings_matches_what_remains(demo):
    """A real run's step timings, fed step by step to a fresh estimator: at every point (in the fast prefix before
    the cache fills, and after) its time left is within a factor of 2 of the seconds the remaining steps took.
    Before any evicting step has run, the estimator counts them at the probe's guess; the probe (a separate
    measurement, noisy on a busy machine) is not what this test holds, so the replay's guesses are the run's own
    mean evicting step and chunk: what it checks is the counting of the steps that remain, each at its kind's cost."""
    ids = demo.tokenizer(bundled_eval_text())["input_ids"][:400]
    steps, C = len(ids) - 1, 128
    probe = estimate(demo, steps, C, len(POLICIES) - 1, False)
    recorded = TimeLeft(steps, C, probe["evicting_step_seconds"], probe["chunk_seconds"])
    evaluate(demo, ids, POLICIES, C, 4, 32, time_left=recorded)
    seconds = recorded.seconds
    assert (seconds > 0).all()
    assert probe["evicting_step_seconds"] > 0 and probe["chunk_seconds"] > 0
    t = np.arange(C + 2, steps)
    evicting_guess = float(seconds[t[t % 64 != 0]].mean())
    chunk_guess = float(np.mean([seconds[u] - evicting_guess for u in t[t % 64 == 0]]))
    for k in (C // 2, C, C + 2, C + 40, 250, 350):
        replay = TimeLeft(steps, C, evicting_guess, chunk_guess)
        for t in range(k):
            replay.step_done(t, seconds[t])
        remains = seconds[k:].sum()
        assert 0.5 < replay.left() / remains < 2.0, (k, replay.left(), remains)
    done = TimeLeft(steps, C, 1.0, 1.0)
    for t in range(steps):
        done.step_done(t, seconds[t])
    assert done.left() == 0.0


def test_time_left_waits_for_a_cost_it_has_not_measured():
    clock = TimeLeft(steps=300, cache_size=100)  # no probe: the evicting steps' cost is unknown until one has run
    for t in range(50):
        clock.step_done(t, 0.01)
    assert clock.left() is None
    for t in range(50, 110):
        clock.step_done(t, 0.01 if t <= 100 else 0.5)
    # 190 evicting steps left at 0.5 s; the chunks still to come (128, 192, 256) add what the one at 64 added: 0
    assert clock.left() == pytest.approx(190 * 0.5, rel=1e-9)


def test_evaluate_streams_a_partial_result_and_cancel_keeps_it(demo_api):
    job = demo_api.evaluate({"max_tokens": 1024, "cache_size": 64, "window": 32, "sinks": 4})
    assert job["ok"], job
    status = poll(demo_api, job["job_id"], lambda s: (s.get("partial") or {}).get("positions_done", 0) > 100)
    assert status["state"] == "running", status
    streamed = status["partial"]
    assert streamed["partial"] is True and streamed["positions_total"] == 1023
    assert streamed["model"]["source"] == "demo"
    assert [r["policy"] for r in streamed["results"]] == ["full", "sliding_window", "streaming_llm", "h2o", "lru",
                                                          "tova", "quest"]
    assert all(r["tokens"] == streamed["positions_done"] for r in streamed["results"])
    assert status["seconds_left"] is not None and status["seconds_left"] > 0
    demo_api.cancel_job({"job_id": job["job_id"]})
    status = wait_job(demo_api, job["job_id"], timeout=30)
    assert status["state"] == "cancelled" and status["error"]["code"] == "cancelled", status
    kept = status["result"]
    assert kept["partial"] is True and streamed["positions_done"] <= kept["positions_done"] < 1023
    assert "partial" not in status  # the streamed copy is gone once the job ended
    # The positions kept are exactly what a run of that length gives (the same steps, the same decisions).
    d = kept["positions_done"]
    again = demo_api.evaluate({"max_tokens": d + 1, "cache_size": 64, "window": 32, "sinks": 4})
    whole = wait_job(demo_api, again["job_id"])["result"]
    assert "partial" not in whole
    for part, full in zip(kept["results"], whole["results"]):
        assert part["policy"] == full["policy"] and part["tokens"] == full["tokens"] == d
        assert part["perplexity"] == pytest.approx(full["perplexity"], rel=1e-9), part["policy"]


def test_curve_against_full_cache_is_one_until_the_cache_fills(demo):
    ids = demo.tokenizer(bundled_eval_text())["input_ids"][:200]
    C = 64
    result = evaluate(demo, ids, POLICIES, C, 4, 32)
    by = {r["policy"]: r["curve"] for r in result["results"]}
    assert by["full"]["vs_full"] == [1.0] * len(by["full"]["position"])
    for policy in POLICIES[1:]:
        curve = by[policy]
        pos, ratio = np.array(curve["position"]), np.array(curve["vs_full"])
        assert np.all(ratio[pos <= C + 1] == 1.0), policy  # positions 1..C+1: every cache is still Full Cache's
        # the ratio is the policy's running perplexity over Full Cache's at the same position
        assert ratio == pytest.approx(np.array(curve["perplexity"]) / np.array(by["full"]["perplexity"]), rel=2e-4)
    assert by["sliding_window"]["vs_full"][-1] != 1.0


def test_retrieval_estimate_before_run_and_the_grid_it_predicts(demo_api):
    params = {"lengths": [96, 144], "depths": [0, 1], "cache_size": 32, "chunk": 8}
    est = demo_api.retrieval_estimate(params)
    assert est["ok"] and est["cells"] == 4, est
    per = est["seconds_per_cell"]
    assert per["144"] > per["96"] > 0 and est["seconds"] == pytest.approx(2 * (per["96"] + per["144"]), abs=0.11)
    bad = demo_api.retrieval_estimate({**params, "depths": [2]})
    assert bad["error"]["code"] == "retrieval_depth_out_of_range"
    job = demo_api.retrieval(params)
    status = wait_job(demo_api, job["job_id"])
    assert status["state"] == "done"
    ran = status["result"]["seconds"]
    # Measured here, so the same order as the run; it counts the model's forwards, not the cache bookkeeping around
    # them, so it runs low (up to ~4× at k = 1 on the tiny demo): the time left corrects it from the first cell on.
    assert 0.2 < est["seconds"] / ran < 5.0, (est, ran)


def test_retrieval_streams_cells_and_cancel_keeps_them(demo_api):
    job = demo_api.retrieval({"lengths": [96, 144, 192], "depths": [0, 0.5, 1], "cache_size": 16, "chunk": 1})
    status = poll(demo_api, job["job_id"], lambda s: (s.get("partial") or {}).get("cells_done", 0) >= 1)
    assert status["state"] == "running", status
    grid = status["partial"]
    assert grid["partial"] is True and grid["cells_total"] == 9 and grid["model"]["source"] == "demo"
    first = {(c["length"], c["depth"]) for c in grid["cells"]}
    assert (96, 0) in first and len(grid["cells"]) == grid["cells_done"] * len(grid["policies"])
    assert status["seconds_left"] > 0
    demo_api.cancel_job({"job_id": job["job_id"]})
    status = wait_job(demo_api, job["job_id"], timeout=10)
    assert status["state"] == "cancelled"
    kept = status["result"]
    assert kept["partial"] is True and grid["cells_done"] <= kept["cells_done"] < 9
    assert len(kept["cells"]) == kept["cells_done"] * len(kept["policies"])
    assert [s["cells"] for s in kept["summary"]] == [kept["cells_done"]] * len(kept["policies"])
