"""Helpers the test modules share (import as `from helpers import ...`; conftest is ambiguous with tests/e2e)."""
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wait_job(api, job_id, timeout=300.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = api.job_status({"job_id": job_id})
        assert status["ok"], status
        if status["state"] != "running":
            return status
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def load(api, source="demo", **params) -> dict:
    started = api.load_model({"source": str(source), **params})
    assert started["ok"], started
    return wait_job(api, started["job_id"])
