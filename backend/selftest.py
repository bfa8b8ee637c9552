"""The feature checks `main.py --self-test` (and the frozen binary's) runs after the attention pass.

Each check takes the Api with the demo model loaded and returns a piece of the JSON
summary; a failing Api call raises CliError, which fails the self-test.
"""
import time

from .cli.common import check, wait_job

PROMPT = "In the beginning the Jargon File was a collection of hacker slang. " * 3


def stream_check(api) -> dict:
    started = time.perf_counter()
    check(api.stream_start({"prompt": PROMPT, "generate": 0}))
    steps = check(api.stream_step({"steps": 32}))
    taken = len(steps["steps"])
    return {"stream": {"steps": taken, "sinks": [s["position"] for s in steps["sinks"]],
                       "seconds": round(time.perf_counter() - started, 3)}}


def eviction_check(api) -> dict:
    job = check(api.simulate({"trace": "synthetic", "length": 100_000, "policy": "all"}))
    result = wait_job(api, job["job_id"], quiet=True)
    return {"eviction": {r["policy"]: {"hit_rate": r["hit_rate"], "seconds": r["seconds"]} for r in result["results"]}}


def profile_check(api) -> dict:
    job = check(api.profile({"trace": "synthetic", "length": 100_000, "preset": "constrained"}))
    result = wait_job(api, job["job_id"], quiet=True)
    summary = result.get("summary", result)
    keys = ("n_blocks", "promotions", "demotions", "bytes_moved")
    return {"profile": {k: summary[k] for k in keys if k in summary}}


CHECKS = [stream_check, eviction_check, profile_check]
