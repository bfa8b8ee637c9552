"""Compression at prefill (backend/compress): the contract Retrieval and Evaluate call, on real models.

The demo model (a 3M Llama with grouped-query attention, 6 query heads over 2 KV heads)
and a tiny Llama built from a real config. The per-method kept sets are checked against
independent re-implementations in test_compress_reference.py.
"""
import math

import numpy as np
import pytest

from backend.compress import prefill_answers, prefill_methods, prefill_perplexity
from backend.errors import UserError

MILESTONE_ONE = ("full", "sliding_window", "streaming_llm", "h2o", "tova")


@pytest.fixture(scope="module")
def demo():
    from backend.models.load import load_model

    return load_model("demo", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def text_ids(demo):
    from backend.defaults import bundled_text as bundled_eval_text

    return demo.tokenizer(bundled_eval_text("jargon"), verbose=False)["input_ids"]


def split(ids, n=160):
    return ids[:n], ids[n:n + 12], ids[n + 12:n + 17]


def test_methods_name_the_contract_and_kvpress():
    names = prefill_methods()
    assert names[0] == "full" and set(MILESTONE_ONE) <= set(names)
    assert {"snapkv", "pyramidkv", "adakv_snapkv", "expected_attention", "adakv_expected_attention", "knorm",
            "keydiff", "random", "observed_attention"} <= set(names)


@pytest.mark.parametrize("budget", [{"cache_size": 160}, {"cache_size": 500}, {"ratio": 0.0}])
def test_cache_at_least_the_context_equals_full_cache_exactly(demo, text_ids, budget):
    ctx, q, a = split(text_ids)
    out = prefill_answers(demo, ctx, q, a, prefill_methods(), **budget)
    full = out["full"]
    for m, r in out.items():
        assert r["generated"] == full["generated"] and r["answer_logprob"] == full["answer_logprob"], m
        assert r["memory_tokens"] == len(ctx) and r["note"] is None
        assert all((k == np.arange(len(ctx))).all() for k in r["kept"])


def test_full_cache_is_the_plain_model(demo, text_ids):
    """Full Cache through SinkVis's masked attention = transformers' own eager forward and greedy decode."""
    import torch

    ctx, q, a = split(text_ids)
    out = prefill_answers(demo, ctx, q, a, ["full"], cache_size=8, max_new_tokens=6)["full"]
    with torch.inference_mode():
        lp = torch.log_softmax(demo.model(input_ids=torch.tensor([ctx + q + a])).logits[0].float(), -1)
        plain = sum(float(lp[len(ctx) + len(q) - 1 + j, t]) for j, t in enumerate(a))
        greedy = demo.model.generate(torch.tensor([ctx + q]), max_new_tokens=6, do_sample=False,
                                     eos_token_id=None, pad_token_id=0)[0, len(ctx) + len(q):].tolist()
    assert out["answer_logprob"] == pytest.approx(plain, abs=1e-4)
    assert out["generated"] == greedy


def _plain_compressed_answer(loaded, ctx, q, a, kept):
    """An independent answer: each layer's kept K/V gathered into an ordinary DynamicCache, eager attention."""
    import torch
    from transformers import DynamicCache

    full = DynamicCache(config=loaded.model.config)
    with torch.inference_mode():
        loaded.model(input_ids=torch.tensor([ctx]), past_key_values=full, use_cache=True)
        cache = DynamicCache(config=loaded.model.config)
        for layer, (cached, k) in enumerate(zip(full.layers, kept)):
            i = torch.from_numpy(k)[None, :, :, None].expand(-1, -1, -1, cached.keys.shape[-1])
            cache.update(cached.keys.gather(2, i), cached.values.gather(2, i), layer)
        n = len(ctx)
        out = loaded.model(input_ids=torch.tensor([q + a]), position_ids=torch.arange(n, n + len(q) + len(a))[None],
                           past_key_values=cache, use_cache=True)
    lp = torch.log_softmax(out.logits[0].float(), -1)
    return sum(float(lp[len(q) - 1 + j, t]) for j, t in enumerate(a))


@pytest.mark.parametrize("method", ["sliding_window", "streaming_llm", "h2o", "tova", "snapkv", "knorm"])
def test_compressed_answer_equals_a_plain_cache_holding_the_kept_entries(demo, text_ids, method):
    ctx, q, a = split(text_ids)
    batch = prefill_answers(demo, ctx, q, a, list(MILESTONE_ONE) + ["snapkv", "knorm"], cache_size=40)
    r = batch[method]
    assert all(k.shape == (2, 40) for k in r["kept"]) and r["memory_tokens"] == 40
    assert r["answer_logprob"] == pytest.approx(_plain_compressed_answer(demo, ctx, q, a, r["kept"]), abs=1e-4)
    alone = prefill_answers(demo, ctx, q, a, [method], cache_size=40)[method]
    assert alone["generated"] == r["generated"]
    assert alone["answer_logprob"] == pytest.approx(r["answer_logprob"], abs=1e-5)


def test_prefill_forms_of_the_2023_policies_keep_what_they_say(demo, text_ids):
    ctx, q, a = split(text_ids)
    n, C, S, W = len(ctx), 40, 4, 16
    out = prefill_answers(demo, ctx, q, a, list(MILESTONE_ONE), cache_size=C, sinks=S, window=W)
    for k in out["sliding_window"]["kept"]:
        assert (k == np.arange(n - C, n)).all()
    for k in out["streaming_llm"]["kept"]:
        assert (k == np.r_[np.arange(S), np.arange(n - C + S, n)]).all()
    for k in out["h2o"]["kept"]:
        assert np.isin(np.arange(n - W, n), k).all(axis=None)
    for k in out["tova"]["kept"]:
        assert (k[:, -1] == n - 1).all() and (k[0] == k[1]).all()  # TOVA: one score for all heads (kvpress)


def test_needle_attention_and_determinism(demo, text_ids):
    ctx, q, a = split(text_ids)
    kwargs = dict(cache_size=32, needle_span=(50, 60), max_new_tokens=4)
    one = prefill_answers(demo, ctx, q, a, prefill_methods(), **kwargs)
    two = prefill_answers(demo, ctx, q, a, prefill_methods(), **kwargs)
    layers = demo.spec["layers"]
    for m in one:
        assert one[m]["generated"] == two[m]["generated"] and one[m]["answer_logprob"] == two[m]["answer_logprob"]
        assert all((x == y).all() for x, y in zip(one[m]["kept"], two[m]["kept"]))
        share = one[m]["needle_attention"]
        assert share.shape == (layers,) and share.dtype == np.float64 and ((share >= 0) & (share <= 1)).all()
    assert (one["sliding_window"]["needle_attention"] == 0).all()  # the needle is not in the last 32
    assert (one["full"]["needle_attention"] > 0).all()


def test_budgets_add_up_per_layer_and_head(demo, text_ids):
    ctx, q, a = split(text_ids)
    n, kv, layers = len(ctx), demo.spec["kv_heads"], demo.spec["layers"]
    out = prefill_answers(demo, ctx, q, a, ["adakv_snapkv", "adakv_expected_attention", "pyramidkv", "snapkv"],
                          ratio=0.5, max_new_tokens=1)
    kept = int(n * 0.5)
    for m in ("adakv_snapkv", "adakv_expected_attention"):
        for k in out[m]["kept"]:
            counts = (k >= 0).sum(axis=1)
            assert counts.sum() == kv * kept and counts.min() >= int(kept * 0.2)
            for row in k:  # sorted, distinct, −1 only as trailing padding
                real = row[row >= 0]
                assert (np.diff(real) > 0).all() and (row[len(real):] == -1).all()
        assert out[m]["memory_tokens"] == kept and "mean kept" in out[m]["note"]
    pyramid = [int((k >= 0).sum(axis=1)[0]) for k in out["pyramidkv"]["kept"]]
    assert pyramid == sorted(pyramid, reverse=True) and pyramid[0] > pyramid[-1]
    assert abs(sum(pyramid) - layers * kept) <= layers  # kvpress's rounding, per layer
    assert all(k.shape == (kv, kept) for k in out["snapkv"]["kept"])


def test_a_window_larger_than_the_budget_is_said(demo, text_ids):
    ctx, q, a = split(text_ids)
    out = prefill_answers(demo, ctx, q, a, ["snapkv", "h2o", "knorm"], ratio=0.9, window=32, max_new_tokens=1)
    assert "keeps 64 positions" in out["snapkv"]["note"] and "budget is 15" in out["snapkv"]["note"]  # int(160·0.1)
    assert "32" in out["h2o"]["note"] and out["knorm"]["note"] is None


def test_bad_requests_say_what_to_change(demo, text_ids):
    ctx, q, a = split(text_ids)
    for kwargs, field in (({"cache_size": 8, "ratio": 0.5}, "cache_size"), ({}, "cache_size"),
                          ({"ratio": 1.0}, "ratio"), ({"cache_size": 0}, "cache_size")):
        with pytest.raises(UserError) as e:
            prefill_answers(demo, ctx, q, a, ["full"], **kwargs)
        assert e.value.field == field
    with pytest.raises(UserError, match="unknown prefill method"):
        prefill_answers(demo, ctx, q, a, ["nope"], cache_size=8)
    with pytest.raises(UserError, match="longer than the model's context"):
        prefill_answers(demo, text_ids[:250], q, a, ["full"], cache_size=8)


def test_prefill_perplexity(demo, text_ids):
    import torch

    c, m = 150, 60
    out = prefill_perplexity(demo, text_ids, c, m, list(MILESTONE_ONE) + ["snapkv"], ratio=0.5)
    with torch.inference_mode():
        lp = torch.log_softmax(demo.model(input_ids=torch.tensor([text_ids[:c + m]])).logits[0].float(), -1)
    nll = [-float(lp[t - 1, text_ids[t]]) for t in range(c, c + m)]
    assert out["full"]["perplexity"] == pytest.approx(math.exp(np.mean(nll)), rel=1e-5)
    assert out["full"]["kl_vs_full"] == 0.0
    for name, r in out.items():
        if name != "full":
            assert r["kl_vs_full"] > 0 and r["memory_tokens"] == 75
    same = prefill_perplexity(demo, text_ids, c, m, ["full", "h2o", "snapkv"], cache_size=c)
    assert {r["perplexity"] for r in same.values()} == {same["full"]["perplexity"]}
    assert all(r["kl_vs_full"] == 0.0 for r in same.values())


def test_other_forwards_while_compressed_attention_is_on_are_the_plain_model(demo, text_ids):
    """Another thread's forward during a compressed run gets the model's own attention (same logits and
    weights), while this thread's forward is masked; nothing on the model changes."""
    import threading

    import torch

    from backend.compress.masked_attention import ContextMask, compressed_attention

    x = torch.tensor([text_ids[:40]])
    kv = demo.spec["kv_heads"]
    drop_half = torch.arange(20)[None, None].expand(1, kv, -1) % 2 == 0  # every other of the first 20 keys
    masks = [ContextMask(valid=drop_half) for _ in range(demo.spec["layers"])]
    other = {}
    with torch.inference_mode():
        plain = demo.model(input_ids=x, output_attentions=True)
        with compressed_attention(masks, [torch.arange(20).expand(1, kv, -1)] * len(masks), 20):
            mine = demo.model(input_ids=x)
            worker = threading.Thread(target=lambda: other.update(out=demo.model(input_ids=x, output_attentions=True)))
            worker.start()
            worker.join()
    assert demo.model.config._attn_implementation == "sinkvis"
    assert not torch.allclose(plain.logits, mine.logits)  # the tap acted in this thread
    assert torch.equal(plain.logits, other["out"].logits)
    assert all(torch.equal(a, b) for a, b in zip(plain.attentions, other["out"].attentions))


def test_attention_sums_on_demand_equal_the_eager_ones(demo, text_ids):
    """LayerInputs sums every query's attention block by block (the model's own eager attention on the
    captured queries) when the forward did not: equal to the whole eager weights' column sums."""
    import torch

    from backend.attention.seam import tapped
    from backend.compress import blocks
    from backend.compress.layer import LayerInputs

    seen = {}

    def tap(call):
        out, weights = call.eager()
        if call.layer == 2:
            seen["eager"] = weights[0].float().sum(dim=1)
            seen["recomputed"] = LayerInputs(call, None, 2, 3).attention_sums
        return out, weights

    n = 200
    with torch.inference_mode(), tapped(tap):
        # blocks of 48 queries: the later ones see keys the first block's did not
        old, blocks.BLOCK_FLOATS = blocks.BLOCK_FLOATS, demo.spec["heads"] * n * 48
        try:
            demo.model(input_ids=torch.tensor([text_ids[:n]]), use_cache=False)
        finally:
            blocks.BLOCK_FLOATS = old
    assert torch.allclose(seen["eager"], seen["recomputed"], atol=1e-5)
    assert abs(float(seen["eager"].sum()) - demo.spec["heads"] * n) < 1e-2  # every row's mass, once


def test_progress_per_layer_and_cancel_stops_the_prefill(demo, text_ids):
    from backend.jobs import Cancelled

    ctx, q, a = split(text_ids)
    seen = []
    prefill_answers(demo, ctx, q, a, ["full", "snapkv"], cache_size=20, max_new_tokens=1,
                    report=lambda f, stage, **k: seen.append((f, stage)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert sum(s.startswith("Prefill") for _, s in seen) >= demo.spec["layers"]

    def cancel(fraction, stage, **extra):
        if extra.get("layer") == 2:
            raise Cancelled()

    from backend.attention import seam

    with pytest.raises(Cancelled):
        prefill_answers(demo, ctx, q, a, ["snapkv"], cache_size=20, report=cancel)
    assert getattr(seam._local, "tap", None) is None  # the prefill's tap is gone with the cancelled job


def test_prerope_queries_are_the_projection_before_the_rotary(demo, text_ids):
    """Expected Attention's pre-rotary queries: the captured queries rotated back by the layer's own rotary
    equal q_proj's output (taken by a hook on q_proj), to float precision."""
    import torch

    from backend.attention.rotary import layer_rotaries
    from backend.attention.seam import attention_layers, tapped
    from backend.compress.layer import LayerInputs

    module = attention_layers(demo.model)[1]
    heads, d = demo.spec["heads"], demo.spec["head_dim"]
    projected, got = {}, {}
    handle = module.q_proj.register_forward_hook(lambda m, args, out: projected.update(q=out[0]))

    def tap(call):
        out, weights = call.eager()
        if call.layer == 1:
            view = LayerInputs(call, layer_rotaries(demo.model)[1], 1, 3)
            got["all"], got["tail"] = view.prerope_queries(), view.prerope_queries(40)
            got["rotated"] = view.rotated_queries()
        return out, weights

    try:
        with torch.inference_mode(), tapped(tap):
            demo.model(input_ids=torch.tensor([text_ids[:120]]), use_cache=False)
    finally:
        handle.remove()
    want = projected["q"].view(120, heads, d).transpose(0, 1).float()
    torch.testing.assert_close(got["all"], want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["tail"], want[:, 40:], atol=1e-5, rtol=1e-5)
    assert (got["rotated"] - want).abs().max() > 1e-2  # the rotation was there to undo


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_compressed_caches_score_as_the_full_cache_with_the_dropped_keys_masked(demo, text_ids, ratio):
    """The continuation over each method's compacted cache (rows of different widths per layer: PyramidKV's
    budgets, Ada-KV's heads, other methods' rows) equals a plain forward over the whole text in which every
    query after the context is kept from the keys the method dropped (index = position there, nothing
    compacted). Found by tools/kvpress_check.py: the model's mask, built for one layer's width, was cut
    to another layer's."""
    import torch

    from backend.attention.seam import tapped
    from backend.compress.plan import check, compress
    from backend.compress.prefill import Settings

    ids, c, m = text_ids[:250], 200, 50
    methods = ["full", "pyramidkv", "snapkv", "adakv_snapkv", "knorm"]
    got = prefill_perplexity(demo, ids, c, m, methods, ratio=ratio, sinks=4, window=32)
    budget = check(demo, c, methods, None, ratio, 4, 32, m)
    _, per_method = compress(demo, ids[:c], methods, budget, Settings(sinks=4, window=32))
    layers = range(len(per_method["full"]["kept"]))
    widths = [max(int((per_method[x]["kept"][i] >= 0).sum(-1).max()) for x in methods[1:]) for i in layers]
    assert len(set(widths)) > 1  # the batch's compacted layers hold different counts
    total = c + m - 1
    for method in methods:
        kept = per_method[method]["kept"]  # per layer [KV, k] positions, −1 pads

        def tap(call, kept=kept):
            heads, kv = call.query.shape[1], call.key.shape[1]
            keep = torch.zeros(kv, total, dtype=torch.bool)
            for h in range(kv):
                row = kept[call.layer][h]
                keep[h, row[row >= 0]] = True
            keep[:, c:] = True  # the continuation is never compressed
            i, j = torch.arange(total)[:, None], torch.arange(total)[None]
            allowed = (j <= i) & ((i < c) | keep[:, None, :])  # [KV, T, T]: the context's own prefill is full
            allowed = allowed.repeat_interleave(heads // kv, dim=0)[None]
            mask = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
            return call.eager(mask=mask)

        with torch.inference_mode(), tapped(tap):
            logits = demo.model(input_ids=torch.tensor([ids[:total]]), use_cache=False).logits[0]
        lp = torch.log_softmax(logits[c - 1:].double(), dim=-1)
        nll = -lp.gather(1, torch.tensor(ids[c:c + m])[:, None])[:, 0]
        assert got[method]["perplexity"] == pytest.approx(math.exp(float(nll.mean())), rel=1e-5), method


def test_a_score_files_copy_carries_window_rows_and_sums_past_the_whole_rows(demo, text_ids, monkeypatch):
    """A user score() file's CPU copy (LayerCopy) holds every row up to WHOLE_ROWS tokens; past that only the
    last WINDOW_ROWS rows and the column sums: the same numbers as the live layer's, and a clear error for a
    window it does not carry (never [H, n, n] at 8k tokens)."""
    import torch

    from backend.attention.seam import tapped
    from backend.compress.layer import LayerCopy, LayerInputs

    monkeypatch.setattr(LayerCopy, "WHOLE_ROWS", 150)
    monkeypatch.setattr(LayerCopy, "WINDOW_ROWS", 40)
    seen = {}

    def tap(call):
        out, weights = call.eager()
        if call.layer == 1:
            live = LayerInputs(call, None, 1, 3)
            seen.update(live=live, copy=LayerCopy(live), full=weights[0].float())
        return out, weights

    n = 200
    with torch.inference_mode(), tapped(tap):
        demo.model(input_ids=torch.tensor([text_ids[:n]]), use_cache=False)
    live, copy = seen["live"], seen["copy"]
    assert tuple(copy.rows.shape) == (demo.spec["heads"], 40, n)  # not [H, n, n]
    assert torch.equal(copy.window_attention(32), live.window_attention(32))
    assert torch.allclose(copy.window_attention(40), seen["full"][:, n - 40:], atol=1e-6)
    assert torch.allclose(copy.attention_sums, seen["full"].sum(dim=1), atol=1e-5)
    with pytest.raises(ValueError, match="at most the last 40 queries"):
        copy.window_attention(41)
