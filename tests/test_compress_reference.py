"""Each prefill method's kept set = a plain numpy reference (tests/reference_compress.py), per layer and head.

On the demo model (6 query heads over 2 KV heads) and a tiny Llama built from a real
config with other shapes (4 query heads over 1 KV head, biased q_proj, rope θ 100 000).
"""
import numpy as np
import pytest

import reference_compress as ref
from backend.compress import prefill_answers
from backend.compress.methods import METHODS

SCORED = ["sliding_window", "streaming_llm", "h2o", "tova", "observed_attention", "snapkv", "pyramidkv",
          "adakv_snapkv", "expected_attention", "adakv_expected_attention", "knorm", "keydiff", "random"]
SCORER = {"pyramidkv": "snapkv", "adakv_snapkv": "snapkv", "adakv_expected_attention": "expected_attention"}


def tiny_llama(folder):
    """A 3-layer Llama from a real LlamaConfig (SmolLM2's rope θ), random init, the demo tokenizer."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from helpers import DEMO_MODEL_DIR

    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (DEMO_MODEL_DIR / name).is_file():
            shutil.copy(DEMO_MODEL_DIR / name, folder / name)
    torch.manual_seed(1)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=1, head_dim=16, vocab_size=4096, max_position_embeddings=512,
                         rope_parameters={"rope_theta": 100000.0, "rope_type": "default"}, attention_bias=True,
                         bos_token_id=0, eos_token_id=1, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["demo", "tiny_llama"])
def model(request, tmp_path_factory):
    from backend.models.load import load_model

    source = "demo" if request.param == "demo" else str(tiny_llama(tmp_path_factory.mktemp("tiny-llama")))
    return load_model(source, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def ids(model):
    from backend.defaults import bundled_text as bundled_eval_text

    return model.tokenizer(bundled_eval_text("alice"), verbose=False)["input_ids"][:200]


def assert_same_selection(ours, expected, scores, name):
    """Equal sets; a position may differ only where two scores tie to float32 precision."""
    got = ours[ours >= 0]
    if np.array_equal(got, expected):
        return
    differ = np.setxor1d(got, expected)
    edge = np.sort(scores)[::-1][max(len(expected) - 1, 0)]
    assert np.allclose(scores[differ], edge, rtol=1e-5, atol=1e-7), (name, differ, scores[differ], edge)


@pytest.mark.parametrize("budget", [{"ratio": 0.5}, {"cache_size": 24}])
def test_every_methods_kept_set_matches_the_reference(model, ids, budget):
    ctx = ids[:160]
    n = len(ctx)
    out = prefill_answers(model, ctx, ids[160:170], ids[170:172], SCORED, max_new_tokens=1, window=16, **budget)
    rec = ref.record(model, ctx)
    layers = len(rec["layers"])
    kept = budget.get("cache_size") or int(n * (1 - budget["ratio"]))
    ratio = budget.get("ratio", 1 - kept / n)
    for name in SCORED:
        rule = METHODS[name].budget
        for layer in range(layers):
            s = ref.scores(SCORER.get(name, name), rec, layer, sinks=4, window=16, seed=0)
            expected = ref.select(s, rule, kept, ratio=ratio, layer=layer, layers=layers)
            mine = out[name]["kept"][layer]
            assert mine.shape[0] == s.shape[0]
            for head, row in enumerate(mine):
                assert_same_selection(row, expected[head], s[head], (name, layer, head))
