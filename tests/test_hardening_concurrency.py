"""Concurrency: a second load while one runs, a stream during a load, a simulation cancelled and
restarted, two simulations at once, and the window's close handler (jobs.cancel_all) during long
jobs: no deadlock, no crash, no half-loaded model in use, no stray thread left behind."""
import threading
import time

import pytest
from helpers import load, wait_job

import backend.models.load as load_module
from backend.api import Api

PROMPT = "The quick brown fox jumps over the lazy dog. " * 3


def _without_seconds(results):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in results]


@pytest.fixture
def gated_load(monkeypatch):
    """Once armed (gate.clear()), load_model stops mid-way (after 'Reading config') until the test opens the gate."""
    gate, reached = threading.Event(), threading.Event()
    gate.set()  # open until a test clears it: a load the test needs first goes straight through
    real = load_module.load_model

    def slow(source, device, precision, trust, token, report):
        if gate.is_set():
            return real(source, device, precision, trust, token, report)
        report(0.55, "Reading config")
        reached.set()
        while not gate.wait(0.02):
            report(0.55, "Reading config")  # cancellable while waiting, like a real load between stages
        return real(source, device, precision, trust, token, report)

    monkeypatch.setattr(load_module, "load_model", slow)
    yield gate, reached
    gate.set()


def test_second_load_while_one_runs_is_busy(api, tiny_model_dir, gated_load):
    gate, reached = gated_load
    gate.clear()
    first = api.load_model({"source": str(tiny_model_dir), "device": "cpu"})
    assert first["ok"] and reached.wait(60)
    second = api.load_model({"source": "demo"})
    assert not second["ok"] and second["error"]["code"] == "busy" and "cancel" in second["error"]["message"]
    running = api.running_jobs()["jobs"]
    assert [j["job_id"] for j in running] == [first["job_id"]]
    gate.set()
    assert wait_job(api, first["job_id"])["state"] == "done"
    third = load(api, "demo")  # once finished, a new load is accepted
    assert third["state"] == "done" and api.model_info()["source"] == "demo"


def test_stream_during_a_load_works_on_the_old_model_then_resets(api, tiny_model_dir, gated_load):
    gate, reached = gated_load
    assert load(api, tiny_model_dir, device="cpu")["state"] == "done"
    old = api._state.model
    gate.clear()
    started = api.load_model({"source": "demo"})
    assert started["ok"] and reached.wait(60)
    # The load is half-way: the old model is the one in use, whole.
    assert api._state.model is old and api.model_info()["source"] == str(tiny_model_dir)
    begun = api.stream_start({"prompt": PROMPT})
    assert begun["ok"] and begun["n_layers"] == old.spec["layers"]
    step = api.stream_step({"steps": 3})
    assert step["ok"] and [len(s["row"]) for s in step["steps"]] == [1, 2, 3]
    gate.set()
    assert wait_job(api, started["job_id"])["state"] == "done"
    assert api._state.model is not old and api.model_info()["source"] == "demo"
    after = api.stream_step()
    assert not after["ok"] and after["error"]["code"] == "no_stream" and "model changed" in after["error"]["message"]
    again = api.stream_start({"prompt": PROMPT})
    assert again["ok"] and again["n_layers"] == api._state.model.spec["layers"]


def test_stream_calls_hammered_during_a_real_load(api, tiny_model_dir):
    """Real loads (no gate) swap the model while another thread streams: every answer is a whole
    step on one model, or a clear error; never an exception, never a row from a half-swapped model."""
    assert load(api, tiny_model_dir, device="cpu")["state"] == "done"
    answers, stop = [], threading.Event()

    def streamer():
        while not stop.is_set():
            start = api.stream_start({"prompt": PROMPT})
            answers.append(("start", start))
            for _ in range(5):
                out = api.stream_step({"steps": 2})
                answers.append(("step", out))
                if out["ok"]:
                    session = api._state.stream
                    for s in out["steps"]:
                        assert len(s["row"]) == s["position"] + 1
                    assert session is None or session.loaded.spec["layers"] == len(out["sink_mass_by_layer"])

    thread = threading.Thread(target=streamer, daemon=True)
    thread.start()
    for source in ("demo", str(tiny_model_dir), "demo"):
        assert load(api, source, device="cpu")["state"] == "done"
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    codes = {out["error"]["code"] for _, out in answers if not out["ok"]}
    assert codes <= {"no_stream", "busy"}, codes
    assert sum(out["ok"] for _, out in answers) > 5


def test_simulation_cancelled_and_restarted(api):
    long = api.simulate({"length": 20_000_000, "policy": "all"})
    assert long["ok"]
    time.sleep(0.3)
    assert api.cancel_job({"job_id": long["job_id"]})["ok"]
    status = wait_job(api, long["job_id"], timeout=30)
    assert status["state"] == "cancelled" and status["error"]["code"] == "cancelled"
    params = {"length": 50_000, "cache_size": 64, "window": 16, "policy": "all", "seed": 3}
    restarted = wait_job(api, api.simulate(params)["job_id"])
    other = Api()
    reference = wait_job(other, other.simulate(params)["job_id"])
    assert restarted["state"] == reference["state"] == "done"
    assert _without_seconds(restarted["result"]["results"]) == _without_seconds(reference["result"]["results"])


def test_two_simulations_at_once_both_correct(api):
    a = {"length": 200_000, "cache_size": 128, "window": 32, "policy": "all", "seed": 1}
    b = {"length": 150_000, "cache_size": 64, "window": 16, "policy": "all", "seed": 2, "sink_mass": 0.3}
    ja, jb = api.simulate(a), api.simulate(b)
    assert ja["ok"] and jb["ok"]
    assert len(api.running_jobs()["jobs"]) >= 1
    ra, rb = wait_job(api, ja["job_id"]), wait_job(api, jb["job_id"])
    assert ra["state"] == rb["state"] == "done"
    for params, got in ((a, ra), (b, rb)):
        solo = Api()
        expected = wait_job(solo, solo.simulate(params)["job_id"])
        assert _without_seconds(got["result"]["results"]) == _without_seconds(expected["result"]["results"])
        assert got["result"]["trace"] == expected["result"]["trace"]


def _job_threads():
    return [t for t in threading.enumerate() if t.is_alive() and (t.name.startswith("job ") or t.name.startswith("eviction"))]


def test_close_during_long_jobs_leaves_no_thread(tiny_model_dir):
    """main.py's window closing handler is jobs.cancel_all(wait=2.0): every job thread ends within it."""
    api = Api()
    assert load(api, tiny_model_dir, device="cpu")["state"] == "done"
    # Warm the Numba kernels first: a first call compiles for seconds and cannot be interrupted.
    for warm in (api.simulate({"length": 1000, "policy": "all"}), api.profile({"length": 1000})):
        assert wait_job(api, warm["job_id"])["state"] == "done"
    before = set(_job_threads())
    jobs = [api.simulate({"length": 20_000_000, "policy": "all"}),
            api.simulate({"length": 20_000_000, "policy": "h2o", "seed": 9}),
            api.profile({"length": 20_000_000, "block_size": 16}),
            api.evaluate({"max_tokens": 120, "cache_size": 16, "sinks": 2, "window": 4})]
    assert all(j["ok"] for j in jobs), jobs
    time.sleep(0.5)
    assert len(api.running_jobs()["jobs"]) >= 3  # they are really running when the window closes
    started = time.perf_counter()
    api._state.jobs.cancel_all(wait=2.0)
    took = time.perf_counter() - started
    deadline = time.time() + 1.0  # pool threads exit just after the job thread joins them
    while set(_job_threads()) - before and time.time() < deadline:
        time.sleep(0.02)
    stray = [t.name for t in set(_job_threads()) - before]
    assert not stray, f"threads still running after cancel_all: {stray}"
    states = [api.job_status({"job_id": j["job_id"]})["state"] for j in jobs]
    assert all(s in ("cancelled", "done") for s in states), states
    assert took < 2.5
    assert api.ping()["ok"] and api.attention({"text": "after the close"})["ok"]
