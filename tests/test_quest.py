"""Quest at decode time (backend/evaluate/quest.py): page choice and attention equal a plain reference,
k covering every page is Full Cache exactly, the bound is an upper bound, runs are deterministic."""
import numpy as np
import pytest
import torch
from test_evaluate import tiny_llama

from backend.defaults import bundled_text as bundled_eval_text
from backend.attention.seam import Call
from backend.evaluate.quest import PAGE, QuestState, attend_quest, quest_tap
from backend.evaluate.run import evaluate


@pytest.fixture(scope="module")
def llama():
    return tiny_llama(context=256)


def decode_logits(model, ids, state):
    """Token-by-token cached decode; state None → the model's own eager attention."""
    from transformers import DynamicCache

    cache, rows = DynamicCache(config=model.config), []
    with torch.inference_mode():
        for t, token in enumerate(ids):
            kwargs = dict(input_ids=torch.tensor([[token]]), position_ids=torch.tensor([[t]]),
                          past_key_values=cache, use_cache=True)
            if state is None:
                rows.append(model(**kwargs).logits[0, -1])
            else:
                with attend_quest(state):
                    rows.append(model(**kwargs).logits[0, -1])
    return torch.stack(rows)


def test_k_covering_every_page_is_eager_decode_bit_for_bit(llama):
    ids = np.random.default_rng(3).integers(0, 128, 90).tolist()
    assert torch.equal(decode_logits(llama.model, ids, None), decode_logits(llama.model, ids, QuestState(90 // PAGE)))
    sparse = decode_logits(llama.model, ids, QuestState(2))
    assert not torch.allclose(sparse, decode_logits(llama.model, ids, None))  # a real choice happened
    assert llama.model.config._attn_implementation == "sinkvis"  # nothing on the model changed


def reference(query, key, value, k, groups, scaling):
    """Plain loops: U per page, top-k (ties → earlier page) + the current page, softmax over those keys."""
    heads, d = query.shape[1], query.shape[-1]
    n = key.shape[2]
    finished = (n - 1) // PAGE
    out = np.zeros((heads, d))
    chosen = []
    for g in range(key.shape[1]):
        u = []
        for p in range(finished):
            block = key[0, g, p * PAGE:(p + 1) * PAGE]
            lo, hi = block.min(axis=0), block.max(axis=0)
            u.append(np.mean([sum(max(q * a, q * b) for q, a, b in zip(query[0, h, 0], lo, hi))
                              for h in range(g * groups, (g + 1) * groups)]))
        ranked = sorted(range(finished), key=lambda p: (-u[p], p))[:k]
        chosen.append(sorted(ranked))
        rows = [p * PAGE + i for p in sorted(ranked) for i in range(PAGE)] + list(range(finished * PAGE, n))
        for h in range(g * groups, (g + 1) * groups):
            s = key[0, g, rows] @ query[0, h, 0] * scaling
            w = np.exp(s - s.max())
            out[h] = (w / w.sum()) @ value[0, g, rows]
    return chosen, out


@pytest.mark.parametrize("n", [16 * 9, 16 * 9 + 1, 16 * 11 + 7])
def test_page_choice_and_attention_equal_the_plain_reference(llama, n):
    gen = torch.Generator().manual_seed(n)
    module = llama.model.model.layers[1].self_attn  # 4 query heads on 2 KV heads
    query = torch.randn(1, 4, 1, 16, generator=gen, dtype=torch.float64)
    key = torch.randn(1, 2, n, 16, generator=gen, dtype=torch.float64)
    value = torch.randn(1, 2, n, 16, generator=gen, dtype=torch.float64)
    state = QuestState(3)
    out, _ = quest_tap(state)(Call(module, query, key, value, None, {"scaling": 0.25}))
    chosen, expected = reference(query.numpy(), key.numpy(), value.numpy(), 3, 2, 0.25)
    assert state.chosen[1][0].tolist() == chosen
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=1e-6)  # softmax in float32, as eager


def test_the_bound_is_an_upper_bound_of_every_key_in_the_page():
    gen = torch.Generator().manual_seed(0)
    query, key = torch.randn(1, 2, 1, 8, generator=gen), torch.randn(1, 2, 64, 8, generator=gen)
    blocks = key.unflatten(2, (4, PAGE))
    from backend.evaluate.quest import upper_bounds

    u = upper_bounds(query, blocks.amin(3), blocks.amax(3), groups=1)  # [1, 2, 4]
    scores = torch.einsum("bhd,bhpsd->bhps", query[:, :, 0], blocks)
    assert bool((u[..., None] >= scores - 1e-5).all())


def test_pages_fill_incrementally_like_a_fresh_reduction():
    gen = torch.Generator().manual_seed(1)
    key = torch.randn(1, 2, 100, 8, generator=gen)
    state = QuestState(1)
    for n in range(1, 101):
        mins, maxs = state.page_bounds(0, key[:, :, :n])
    finished = 99 // PAGE
    assert torch.equal(mins, key[:, :, :finished * PAGE].unflatten(2, (finished, PAGE)).amin(3))
    assert torch.equal(maxs, key[:, :, :finished * PAGE].unflatten(2, (finished, PAGE)).amax(3))


@pytest.fixture(scope="module")
def demo(demo_api):
    return demo_api._state.model


def test_evaluate_quest_with_every_page_read_is_full_cache_and_runs_repeat(demo):
    ids = demo.tokenizer(bundled_eval_text())["input_ids"][:120]
    covered = evaluate(demo, ids, ["full", "quest"], cache_size=128, sinks=4, window=16)["results"]
    assert covered[1]["perplexity"] == covered[0]["perplexity"] and covered[1]["kl_vs_full"] == 0.0
    assert covered[1]["curve"] == covered[0]["curve"]
    first = evaluate(demo, ids, ["full", "quest"], cache_size=32, sinks=4, window=16)["results"]
    again = evaluate(demo, ids, ["full", "quest"], cache_size=32, sinks=4, window=16)["results"]
    assert first[1]["curve"] == again[1]["curve"] and first[1]["kl_vs_full"] == again[1]["kl_vs_full"]
    quest = first[1]
    assert quest["kl_vs_full"] > 0 and quest["pages"] == 2 and quest["evictions"] == 0
    assert quest["memory_tokens"] == len(ids)  # nothing evicted: Full Cache's memory
    assert 2 * PAGE < quest["keys_read_per_step"] <= 3 * PAGE
