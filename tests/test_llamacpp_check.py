"""tools/llamacpp_check.py without llama.cpp: the scoring of llamacpp_side.py, the GGUF key order against
transformers' own un-permute, the reordered codec, the comparison and its table, SinkVis's side on the demo."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from llamacpp_check import (InOrder, compare, gguf_key_order, increases, run_llamacpp,  # noqa: E402
                            sinkvis_perplexities, table)
from llamacpp_side import nll  # noqa: E402


@pytest.fixture(scope="module")
def demo(demo_api):
    return demo_api._state.model


def test_side_scores_token_t_by_the_logits_at_t_minus_1():
    rng = np.random.default_rng(0)
    logits, ids = rng.normal(size=(6, 11)).astype(np.float32), [3, 1, 4, 1, 5, 9]
    lp = torch.log_softmax(torch.tensor(logits, dtype=torch.float64), dim=-1)
    assert nll(logits, ids) == pytest.approx([-float(lp[t - 1, ids[t]]) for t in range(1, 6)], rel=1e-12)


def test_gguf_key_order_is_the_inverse_of_transformers_unpermute():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    heads, head_dim = 3, 64
    gguf_rows = np.arange(heads * head_dim)[:, None]  # each row labelled by its place in the GGUF file
    hf_rows = LlamaTensorProcessor(config={})._reverse_permute_weights(gguf_rows, heads, heads)[:, 0]
    order = gguf_key_order(head_dim)
    for h in range(heads):  # GGUF position p of head h holds Hugging Face channel order[p]
        head = hf_rows[h * head_dim:(h + 1) * head_dim] - h * head_dim
        assert [int(head[order[p]]) for p in range(head_dim)] == list(range(head_dim))


def test_in_order_quantizes_the_reordered_channels_and_puts_them_back():
    from backend.quantize import kv_format

    codec = kv_format("q4_0").key.codec
    x = torch.randn(1, 2, 5, 64)
    order = gguf_key_order(64)
    got = InOrder(codec, order).roundtrip(x, {})
    expected = torch.empty_like(x)
    expected[..., order] = codec.roundtrip(x[..., order].contiguous(), {})
    assert torch.equal(got, expected)
    assert not torch.equal(got, codec.roundtrip(x, {}))  # the blocks hold other channels: other rounding
    assert InOrder(codec, order).bits == codec.bits


def test_compare_and_table_flag_a_gap_past_the_threshold():
    llama = {"f16": 10.0, "q8_0": 10.01, "q4_0": 12.0}
    mine = {"f16": 9.0, "q8_0": 9.0, "q4_0": 11.1}
    assert increases(llama) == pytest.approx({"q8_0": 0.1, "q4_0": 20.0})
    rows = compare(llama, mine, threshold=2.0)
    assert [(r["cache_type"], r["flag"]) for r in rows] == [("q8_0", False), ("q4_0", True)]
    assert rows[1]["gap"] == pytest.approx(3.333333, rel=1e-5)
    lines = table(llama, mine, rows, {"q8_0": 0.1, "q4_0": 13.0}).splitlines()
    assert "> 2" in lines[4] and "> 2" not in lines[3] and "+13.00%" in lines[4]


def test_sinkvis_side_is_one_quantizing_forward(demo):
    ids = demo.tokenizer("The cat sat on the mat and looked at the dog for a long while.")["input_ids"]
    with torch.inference_mode():
        lp = torch.log_softmax(demo.model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
    plain = math.exp(sum(-float(lp[t - 1, ids[t]]) for t in range(1, len(ids))) / (len(ids) - 1))
    out = sinkvis_perplexities(demo, ids, ["q8_0", "q4_0"])
    head_dim = demo.spec["head_dim"]
    reordered = sinkvis_perplexities(demo, ids, ["q4_0"], gguf_key_order(head_dim))
    assert out["f16"] == pytest.approx(plain, rel=1e-3)  # an fp16 cache of an fp32 model: rounding only
    assert abs(out["q4_0"] - plain) > abs(out["q8_0"] - plain)
    assert reordered["f16"] == pytest.approx(out["f16"], rel=1e-6)
    # One block of 32 holds a whole head of 32 channels in any order; wider heads split it differently.
    assert (reordered["q4_0"] == out["q4_0"]) == (head_dim <= 32)


def test_a_failing_llamacpp_side_fails_the_check(tmp_path):
    with pytest.raises(subprocess.CalledProcessError):  # no llama_cpp in this environment
        run_llamacpp(sys.executable, {"gguf": str(tmp_path / "none.gguf"), "ids": [1, 2], "cache_types": ["f16"]})
