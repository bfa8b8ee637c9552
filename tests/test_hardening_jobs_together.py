"""Jobs that run together give the results each gives alone (issue 31, item 1; issue 30: nothing a job sets
on the shared model is seen by another job's forward). Before the seam, a prefill Evaluate run beside a
prefill Retrieval came back "done" with SnapKV at 79.8 where it is 13.9 alone, the Retrieval failed, Quick
Attention and the Live Stream failed meanwhile, and the model kept the switched attention afterwards."""
import threading

import numpy as np
from helpers import wait_job

EVALUATE = {"protocol": "prefill", "policy": ["full", "snapkv", "knorm", "h2o", "expected_attention"], "max_tokens": 220,
            "context_tokens": 160, "continuation_tokens": 60, "cache_size": 48}
STREAMING = {"policy": ["full", "streaming_llm", "h2o", "quest"], "max_tokens": 120, "cache_size": 32}
RETRIEVAL = {"task": "pass_key", "protocol": "prefill", "policy": ["full", "snapkv", "streaming_llm"],
             "lengths": [180], "depths": [0.2, 0.8], "cache_size": 40}
STREAMING_RETRIEVAL = {**RETRIEVAL, "protocol": "streaming", "policy": ["full", "streaming_llm", "h2o"], "chunk": 16}
TEXT = "The quick brown fox jumps over the lazy dog while the hacker reads the jargon file. " * 4


def _numbers(kind: str, status: dict):
    assert status["state"] == "done", status
    result = status["result"]
    if kind == "retrieval":
        return [(c["policy"], c["length"], c["depth"], c["correct"], round(c["answer_logprob"], 9))
                for c in result["cells"]]
    return [(r["policy"], r["perplexity"], r["kl_vs_full"]) for r in result["results"]]


def _start(api, kind: str, params: dict) -> str:
    started = getattr(api, "evaluate" if kind != "retrieval" else "retrieval")(dict(params))
    assert started["ok"], started
    return started["job_id"]


def test_every_pair_of_jobs_run_together_gives_what_each_gives_alone(demo_api):
    api = demo_api
    jobs = {"prefill evaluate": ("evaluate", EVALUATE), "streaming evaluate": ("evaluate", STREAMING),
            "prefill retrieval": ("retrieval", RETRIEVAL), "streaming retrieval": ("retrieval", STREAMING_RETRIEVAL)}
    alone = {name: _numbers(kind, wait_job(api, _start(api, kind, params))) for name, (kind, params) in jobs.items()}
    attention_alone = api.attention({"text": TEXT})
    names = list(jobs)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if jobs[a][0] != jobs[b][0]]
    assert len(pairs) == 4  # two of a kind the app refuses ('busy'): every pair it lets run together is here
    for a, b in pairs:
        ids = {name: _start(api, *jobs[name]) for name in (a, b)}
        views, stream_rows, together = [], [], False
        while any(api.job_status({"job_id": j})["state"] == "running" for j in ids.values()):
            together |= all(api.job_status({"job_id": j})["state"] == "running" for j in ids.values())
            views.append(api.attention({"text": TEXT}))  # Quick Attention meanwhile, on this thread
            if not stream_rows:
                assert api.stream_start({"prompt": TEXT, "generate": 0})["ok"]
            out = api.stream_step({"steps": 1})
            assert out["ok"], out
            stream_rows.extend(s["row"] for s in out["steps"])
        assert together, (a, b)  # they did overlap
        for name, job in ids.items():
            assert _numbers(jobs[name][0], wait_job(api, job)) == alone[name], (a, b, name)
        assert views and all(v["ok"] and v["matrix"] == attention_alone["matrix"] for v in views)
        full_rows = np.asarray(attention_alone["matrix"])
        for t, row in enumerate(stream_rows[: len(full_rows)]):  # the stream's rows are the model's own
            np.testing.assert_allclose(row, full_rows[t, : t + 1], atol=1e-5)
    assert api._state.model.model.config._attn_implementation == "sinkvis"  # nothing left switched


def test_a_tapped_forward_never_leaks_into_a_thread_started_inside_it(demo_api):
    """A job's worker thread (a sweep's, a decider's) does not inherit the job's tap."""
    import torch

    from backend.attention.seam import tapped

    model = demo_api._state.model.model
    x = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.inference_mode():
        plain = model(input_ids=x).logits
    seen, other = [], {}

    def tap(call):
        seen.append(call.layer)
        return call.eager()

    with tapped(tap), torch.inference_mode():
        worker = threading.Thread(target=lambda: other.update(logits=model(input_ids=x).logits))
        worker.start()
        worker.join()
    assert seen == [] and torch.equal(other["logits"], plain)
