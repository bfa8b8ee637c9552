"""Evaluate with a user rule (issue #25): examples/policies/h2o.py, whose decider lives in its
worker process (one round trip per token, rows through shared memory), against built-in
H2O in-process, on the demo model. Same numbers, and the time ratio (target ≤ 1.5x).
Interleaved rounds so background load hits both alike; medians printed. Then Cancel:
the endless rule from the issue, in Simulate and in Evaluate, cancelled mid-step, and
the time from Cancel to the job's end (target ≤ 1 s), then a plain simulation and the same
rule again right after a Cancel.

    python bench/evaluate_rule.py [--tokens 1024] [--cache-size 64] [--rounds 3]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

ENDLESS = ('NAME = "endless"\nPROTECT_FIRST = 0\nPROTECT_RECENT = 0\n\n\ndef on_enter(t, run):\n    s = 1.0\n'
           '    while s > 0.0:\n        s = s * 1.0000001 + 1.0\n    return s\n')


def wait(api, job_id) -> dict:
    while (status := api.job_status({"job_id": job_id}))["state"] == "running":
        time.sleep(0.01)
    return status


def cancel_latency(api, start, marker, ready=lambda: True) -> float:
    job = start()["job_id"]
    while marker not in api.job_status({"job_id": job})["stage"] or not ready():
        time.sleep(0.01)
    time.sleep(0.5)  # well inside the endless step
    started = time.perf_counter()
    api.cancel_job({"job_id": job})
    status = wait(api, job)
    assert status["state"] == "cancelled", status
    return time.perf_counter() - started


def decider_step_cost(api, units, C, n):
    """Seconds per step of the two deciders alone on the same random rows (median over the steps past C)."""
    import numpy as np

    from backend.evaluate.deciders import policy_entry

    rng = np.random.default_rng(0)
    out = []
    for name in ("h2o", "h2o_rule"):
        maker = policy_entry(name).make(units, n, C, 4, C // 4, 1677)
        kept = np.broadcast_to(np.arange(C + 1), (units, C + 1)).copy()
        times = []
        for t in range(n):
            k = min(t + 1, C + 1)
            pos = kept[:, :k] if t > C else np.broadcast_to(np.arange(t + 1), (units, t + 1))
            rows = rng.random((units, k))
            rows /= rows.sum(axis=1, keepdims=True)
            started = time.perf_counter()
            maker.step(t, pos, rows)
            keep = maker.cached(pos)
            times.append(time.perf_counter() - started)
            if t >= C:  # the C kept entries and the next token
                kept = np.concatenate([pos[keep].reshape(units, C), np.full((units, 1), t + 1)], axis=1)
        if hasattr(maker, "close"):
            maker.close()
        out.append(statistics.median(times[C + 1:]))
    return out


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--tokens", type=int, default=1024)
    args.add_argument("--cache-size", type=int, default=64)
    args.add_argument("--rounds", type=int, default=3)
    a = args.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sinkvis-bench-policies-"))
    (folder / "endless.py").write_text(ENDLESS)
    os.environ["SINKVIS_POLICY_DIR"] = str(folder)
    from backend.api import Api
    from backend.usercode import pool as rule_workers
    from helpers import load

    api = Api()
    assert load(api, "demo")["state"] == "done"
    assert api.load_policy_file({"path": str(ROOT / "examples" / "policies" / "h2o.py"), "trust": True})["ok"]
    run = {"max_tokens": a.tokens, "cache_size": a.cache_size, "window": a.cache_size // 4}
    seconds = {"h2o": [], "h2o_rule": []}
    numbers = {}
    for _ in range(a.rounds):
        for policy in seconds:
            status = wait(api, api.evaluate({**run, "policy": [policy]})["job_id"])
            assert status["state"] == "done", status
            result = {r["policy"]: r for r in status["result"]["results"]}[policy]
            seconds[policy].append(status["result"]["seconds"])
            numbers[policy] = (result["perplexity"], result["kl_vs_full"], result["evictions"])
    same = numbers["h2o"] == numbers["h2o_rule"]
    builtin, rule = statistics.median(seconds["h2o"]), statistics.median(seconds["h2o_rule"])
    tokens = status["result"]["tokens"]
    print(f"Evaluate, demo model, {tokens} tokens, C = {a.cache_size}, per KV head; median of {a.rounds} rounds")
    print(f"  built-in h2o (in-process)          {builtin:7.2f} s  {1e3 * builtin / tokens:6.2f} ms/token")
    print(f"  examples/policies/h2o.py (worker)  {rule:7.2f} s  {1e3 * rule / tokens:6.2f} ms/token")
    print(f"  same perplexity, KL, evictions: {same}  {numbers['h2o_rule']}")
    print(f"  rule / built-in: {rule / builtin:.2f}x  (target: within 1.5x)")

    units = api._state.model.spec["layers"] * api._state.model.spec["kv_heads"]
    step_builtin, step_rule = decider_step_cost(api, units, a.cache_size, tokens)
    print(f"  one decider step alone ({units} units, C = {a.cache_size}): built-in {1e6 * step_builtin:.0f} us, "
          f"rule in its worker {1e6 * step_rule:.0f} us (the round trip: {1e6 * (step_rule - step_builtin):.0f} us)")

    sim = lambda: api.simulate({"policy": "endless", "length": 10_000, "rule_step_limit": 600})  # noqa: E731
    ev = lambda: api.evaluate({**run, "max_tokens": 120, "policy": ["h2o", "endless"], "rule_step_limit": 600})  # noqa: E731
    simulate_cancel = [cancel_latency(api, sim, "endless: 0 / ") for _ in range(3)]
    evaluate_cancel = [cancel_latency(api, ev, "Full-cache pass") for _ in range(3)]
    while rule_workers.pids()["starting"]:
        time.sleep(0.1)
    cancel_latency(api, sim, "endless: 0 / ")
    started = time.perf_counter()  # right after a Cancel
    plain = wait(api, api.simulate({"policy": "h2o", "length": 10_000})["job_id"])
    plain_seconds = time.perf_counter() - started
    assert plain["state"] == "done", plain
    started = time.perf_counter()
    out = wait(api, api.simulate({"policy": "endless", "length": 10_000, "rule_step_limit": 0.2})["job_id"])
    again = time.perf_counter() - started
    assert out["state"] == "error" and out["error"]["code"] == "rule_timeout", out
    print("Cancel of the endless rule, seconds from cancel_job to the job's end (target: within 1 s)")
    print(f"  simulate: {', '.join(f'{x:.3f}' for x in simulate_cancel)}")
    print(f"  evaluate: {', '.join(f'{x:.3f}' for x in evaluate_cancel)}")
    print(f"  right after a Cancel: a plain H2O simulation (10,000 steps) {plain_seconds:.2f} s; the same rule again "
          f"(rule_timeout at 0.2 s) {again:.2f} s, most of it waiting for its replacement worker's compile")
    api._state.jobs.cancel_all()
    rule_workers.shutdown()


if __name__ == "__main__":
    main()
