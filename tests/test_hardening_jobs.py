"""Heavy jobs are bounded (issue #13, item 9): at most MAX_HEAVY simulations / profiles / evaluations /
sweeps run at once; the next ones wait in line (state "running", stage "Queued…", queue_position) and
start when a slot frees; a queued job can be cancelled; a full line is refused with `busy`. Before, three
20M-step simulations ran at once (833 MB each). Real simulations through the Api, no stand-ins."""
import time

import pytest
from helpers import wait_job

from backend.jobs import MAX_HEAVY, MAX_WAITING

LONG = {"length": 20_000_000, "policy": "sliding_window", "cache_size": 64, "window": 32, "sinks": 4}


def _status(api, job_id):
    return api.job_status({"job_id": job_id})


def _wait_until(predicate, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def warm_api(api):
    # Numba compiles the kernel on the first call (seconds, not cancellable): do it before timing anything.
    assert wait_job(api, api.simulate({"length": 1000, "policy": "sliding_window"})["job_id"])["state"] == "done"
    yield api
    api._state.jobs.cancel_all(wait=10)


def test_a_third_heavy_job_waits_for_a_slot_and_can_be_cancelled(warm_api):
    api = warm_api
    assert MAX_HEAVY == 2
    running = [api.simulate({**LONG, "seed": i})["job_id"] for i in range(MAX_HEAVY)]
    third = api.simulate({**LONG, "seed": 7})
    fourth = api.simulate({**LONG, "seed": 8})
    assert third["ok"] and fourth["ok"]
    assert _wait_until(lambda: all(_status(api, j)["fraction"] > 0 for j in running)), "the first two never started"
    waiting = _status(api, third["job_id"])
    assert waiting["state"] == "running" and waiting["queued"] is True and waiting["queue_position"] == 1
    assert waiting["stage"].startswith("Queued") and waiting["fraction"] == 0
    assert _status(api, fourth["job_id"])["queue_position"] == 2
    time.sleep(0.5)
    assert _status(api, third["job_id"])["fraction"] == 0  # still waiting: never three at once

    # A queued job cancelled leaves the line at once, without running.
    cancelled_at = time.perf_counter()
    api.cancel_job({"job_id": fourth["job_id"]})
    assert wait_job(api, fourth["job_id"], timeout=5)["state"] == "cancelled"
    assert time.perf_counter() - cancelled_at < 1.0

    # A slot frees: the first in line starts.
    api.cancel_job({"job_id": running[0]})
    assert wait_job(api, running[0], timeout=30)["state"] == "cancelled"
    assert _wait_until(lambda: _status(api, third["job_id"])["fraction"] > 0, timeout=20)
    started = _status(api, third["job_id"])
    assert "queued" not in started and not started["stage"].startswith("Queued")
    for job_id in (running[1], third["job_id"]):
        api.cancel_job({"job_id": job_id})
        assert wait_job(api, job_id, timeout=30)["state"] == "cancelled"


def test_a_full_line_is_refused_with_a_clear_message(warm_api):
    api = warm_api
    started = [api.simulate({**LONG, "seed": i})["job_id"] for i in range(MAX_HEAVY + MAX_WAITING)]
    refused = api.simulate(LONG)
    assert not refused["ok"] and refused["error"]["code"] == "busy"
    assert "waiting" in refused["error"]["message"] and "cancel" in refused["error"]["message"]
    assert api.ping()["ok"]  # light calls are never queued
    for job_id in started:
        api.cancel_job({"job_id": job_id})
    for job_id in started:
        assert wait_job(api, job_id, timeout=30)["state"] == "cancelled"
    again = api.simulate({"length": 2000, "policy": "lru"})  # the line is empty again
    assert again["ok"] and wait_job(api, again["job_id"])["state"] == "done"
