"""Retrieval on the real SmolLM2-135M (the demo model does not retrieve at all): Full Cache finds
the pass key; StreamingLLM at C = 128 loses it outside its recent window and keeps it inside."""
import pytest
from helpers import wait_job


def grid(api, **params):
    job = api.retrieval(params)
    assert job["ok"], job
    status = wait_job(api, job["job_id"], timeout=600)
    assert status["state"] == "done", status
    return status["result"]


def test_full_cache_finds_the_pass_key_at_512_and_1024_tokens_at_three_depths(smollm2_api):
    r = grid(smollm2_api, task="pass_key", policy=["full"], lengths=[512, 1024], depths=[0.1, 0.5, 0.9],
             cache_size=128)
    assert len(r["cells"]) == 6 and all(c["correct"] for c in r["cells"]), [(c["answer"], c["expected"]) for c in r["cells"]]
    assert all(c["answer_logprob"] > -3 for c in r["cells"])


@pytest.mark.parametrize("chunk", [64])
def test_streaming_llm_misses_the_key_outside_its_window_and_finds_it_inside(smollm2_api, chunk):
    r = grid(smollm2_api, task="pass_key", protocol="streaming", policy=["streaming_llm"], lengths=[512],
             depths=[0.1, 0.9], cache_size=128, sinks=4, chunk=chunk)
    cell = {(c["policy"], c["depth"]): c for c in r["cells"]}
    outside, inside = cell[("streaming_llm", 0.1)], cell[("streaming_llm", 0.9)]
    assert cell[("full", 0.1)]["correct"] and cell[("full", 0.9)]["correct"]
    assert not outside["correct"] and sum(map(sum, outside["needle_kept"])) == 0
    assert inside["correct"] and all(k == inside["needle_tokens"] for row in inside["needle_kept"] for k in row)
    assert outside["answer_logprob"] < cell[("full", 0.1)]["answer_logprob"] - 5
    assert r["chunk"] == chunk


def test_full_cache_answers_as_transformers_generate_does_also_where_the_model_misses(smollm2_api):
    """Depth 1.0 puts the needle's last sentence ("K is the pass key.") right before the question:
    SmolLM2-135M then copies " the pass key" instead of K, with its whole context. The miss is the
    model's, not SinkVis's: Full Cache's answer in both protocols is transformers' own greedy
    generate() on the uncompressed prompt, token for token (and the key is found at depth 0.9)."""
    import torch

    from backend.retrieval.tasks import TASKS

    loaded = smollm2_api._state.model
    for depth, found in ((0.9, True), (1.0, False)):
        p = TASKS["pass_key"](loaded.tokenizer, 512, depth, 0, False)
        ids = torch.tensor([p.context_ids + p.question_ids])
        with torch.inference_mode():
            out = loaded.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False)
        expected = loaded.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        for protocol in ("streaming", "prefill"):
            cell = grid(smollm2_api, task="pass_key", protocol=protocol, policy=["full"], lengths=[512],
                        depths=[depth], cache_size=128)["cells"][0]
            assert cell["answer"] == expected, (protocol, depth, cell["answer"], expected)
            assert cell["correct"] is found, (protocol, depth, cell["answer"])
