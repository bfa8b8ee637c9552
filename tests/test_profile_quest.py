"""The Cache Profile's top-k fetch with Quest's own page choice (fetch_rule "quest_bound"):
the choice equals a plain reference of Quest's bound on the demo model's keys and queries, the
kernel fed it equals tests/reference_tiers.py fed the same, and k covering every page is fetching everything."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_tiers
from backend.attention.extract import encode
from backend.evaluate.quest import PAGE
from backend.profile import quest_fetch, service
from helpers import wait_job
from kernels import tiers
from test_tiers import _assert_invariants, _assert_same, trace_case

TEXT = "The quick brown fox jumps over the lazy dog while the hacker reads the jargon file. " * 8
K = 3


@pytest.fixture(scope="module")
def demo(demo_api):
    loaded = demo_api._state.model
    ids = encode(loaded, TEXT)
    return loaded, ids, quest_fetch.queries_and_keys(loaded, ids)


def plain_choice(q, keys, t, k, kv_head, group):
    """Quest by hand at step t: U per finished page (mean over the group's query heads), top-k, ties → earlier."""
    finished = t // PAGE
    u = []
    for p in range(finished):
        block = keys[kv_head, p * PAGE:(p + 1) * PAGE].astype(np.float64)
        lo, hi = block.min(axis=0), block.max(axis=0)
        per_head = [sum(max(qc * a, qc * b) for qc, a, b in zip(q[h, t].astype(np.float64), lo, hi))
                    for h in range(kv_head * group, (kv_head + 1) * group)]
        u.append(sum(per_head) / group)
    return sorted(sorted(range(finished), key=lambda p: (-u[p], p))[:k])


def test_page_choice_equals_the_plain_bound_on_the_demo_models_keys_and_queries(demo):
    loaded, ids, layers = demo
    n = len(ids)
    assert n > 10 * PAGE
    for layer in (0, len(layers) - 1):
        q, keys = (x.numpy() for x in layers[layer])
        group = q.shape[0] // keys.shape[0]
        got = quest_fetch.page_choices(*layers[layer], K).numpy()
        for t in (PAGE * 2 + 5, PAGE * 4, 131, n - 1):  # every finished page read, then a real choice
            for g in range(keys.shape[0]):
                want = plain_choice(q, keys, t, K, g, group)
                assert [p for p in got[g, t] if p >= 0] == want, (layer, t, g)
        assert (got[:, :PAGE] == -1).all()  # the first page is the current page: nothing finished to fetch


def test_one_head_fetches_its_kv_heads_choice_and_a_mean_takes_the_most_chosen(demo):
    loaded, ids, layers = demo
    q, keys = layers[2]
    per_head = quest_fetch.page_choices(q, keys, K).numpy()
    one = quest_fetch.fetch_sets(loaded, ids, K, PAGE, 2, 5, "layer")  # query head 5 reads KV head 5 // 3 = 1
    assert np.array_equal(one, per_head[1])
    mean = quest_fetch.fetch_sets(loaded, ids, K, PAGE, 2, None, "layer")
    t = len(ids) - 1
    votes = np.bincount(per_head[:, t][per_head[:, t] >= 0], minlength=t // PAGE)
    assert sorted(mean[t].tolist()) == sorted(sorted(range(len(votes)), key=lambda p: (-votes[p], p))[:K])


def _profile_inputs(demo, k):
    loaded, ids, _ = demo
    n = len(ids)
    n_blocks = -(-n // PAGE)
    pinned = np.arange(n_blocks) == 0
    fetch = quest_fetch.fetch_sets(loaded, ids, k, PAGE, None, None, "all_layers")
    from backend.attention.extract import attention_view

    matrix = attention_view(loaded, TEXT, aggregate="all_layers")["matrix"]
    cap = [tiers.room_needed("topk", 1, n_blocks, 2, k) + 1, 0, 3, n_blocks]
    kw = dict(policy="topk", trace=matrix, window=2, k=k, tau=0.01, snap_steps=np.arange(n, dtype=np.int64), buckets=16)
    return n, pinned, cap, fetch, kw


def test_kernel_fed_quests_choice_equals_the_reference_fed_the_same(demo):
    n, pinned, cap, fetch, kw = _profile_inputs(demo, K)
    out = tiers.simulate(n, PAGE, cap, pinned, fetch=fetch, chunk_steps=41, **kw)
    ref = reference_tiers.simulate(n, PAGE, cap, pinned, fetch=fetch, **kw)
    for name in ("tier", "acc", "access", "hits", "tokens", "read_tokens", "moved_tokens", "fetched_tokens",
                 "timeline_read", "snap_read"):
        assert np.array_equal(np.asarray(out[name]), np.asarray(ref[name]).reshape(np.shape(out[name]))), name
    by_attention = tiers.simulate(n, PAGE, cap, pinned, chunk_steps=41, **kw)
    assert out["fetched_tokens"] != by_attention["fetched_tokens"]  # Quest's pages are not the attention's
    assert out["fetched_tokens"] > 0


def test_k_covering_every_page_fetches_everything(demo):
    n, pinned, cap, fetch, kw = _profile_inputs(demo, 64)
    out = tiers.simulate(n, PAGE, cap, pinned, fetch=fetch, **kw)
    assert np.array_equal(out["timeline_read"].sum(axis=1).cumsum()[-1:], [sum(range(1, n + 1))])  # dense reads
    everything = tiers.simulate(n, PAGE, cap, pinned, **kw)  # the attention rule fills in every offloaded block
    for name in ("tier", "read_tokens", "fetched_tokens", "moved_tokens", "timeline_read"):
        assert np.array_equal(out[name], everything[name]), name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace_case(), st.integers(0, 2**32 - 1))
def test_kernel_fed_any_fetch_set_equals_the_reference(case, seed):
    """Random given sets (any blocks, opened or not, in HBM or below, −1 pads) on random traces."""
    n, B, cap, pinned, kw, chunk = case
    kw = {**kw, "policy": "topk"}
    cap = [max(cap[0], tiers.room_needed("topk", int(pinned.sum()), len(pinned), kw["window"], kw["k"])), 0,
           cap[2], len(pinned)]
    rng = np.random.default_rng(seed)
    width = int(rng.integers(0, kw["k"] + 1))
    fetch = np.full((n, width), -1, np.int64)
    for t in range(n):
        m = int(rng.integers(0, min(width, len(pinned)) + 1))
        fetch[t, :m] = rng.choice(len(pinned), m, replace=False)
    out = tiers.simulate(n, B, cap, pinned, fetch=fetch, chunk_steps=chunk, **kw)
    _assert_same(out, reference_tiers.simulate(n, B, cap, pinned, fetch=fetch, **kw))
    _assert_invariants(out, n, B, cap, pinned)


def test_kernel_refuses_a_malformed_fetch_set():
    pinned = np.zeros(4, bool)
    with pytest.raises(ValueError, match="distinct"):
        tiers.simulate(8, 2, [3, 0, 4, 4], pinned, policy="topk", window=1, k=2, fetch=np.ones((8, 2), np.int64))
    with pytest.raises(ValueError, match="topk"):
        tiers.simulate(8, 2, [3, 0, 4, 4], pinned, policy="lru", fetch=np.full((8, 1), -1, np.int64))


def test_the_api_runs_quests_choice_and_names_what_to_change(demo_api):
    started = demo_api.profile({"trace": "model", "text": TEXT, "policy": "topk", "window": 2, "k": K,
                                "fetch_rule": "quest_bound"})
    status = wait_job(demo_api, started["job_id"], timeout=120)
    assert status["state"] == "done", status
    summary = status["result"]["summary"]
    assert summary["policy_settings"]["fetch_rule"] == "quest_bound" and "upper bound" in summary["fetch_rule_is"]
    for params, code, field in [({"block_size": 8}, "page_size_mismatch", "block_size"),
                                ({"policy": "lru"}, "bad_input", "fetch_rule"),
                                ({"trace": "synthetic"}, "bad_input", "fetch_rule")]:
        got = demo_api.profile({"trace": "model", "text": TEXT, "policy": "topk", "fetch_rule": "quest_bound", **params})
        assert not got["ok"] and got["error"]["code"] == code and got["error"]["field"] == field, got
    with pytest.raises(Exception, match="fetch_rule"):
        service.parse({"fetch_rule": "oracle"}, 1, "x")


def test_cli_fetch_rule_quest_bound_on_the_demo_model(capsys):
    import json

    import main

    assert main.main(["profile", "--trace", "model", "--model", "demo", "--text", TEXT, "--all-layers",
                      "--placement", "topk", "--window", "2", "--k", "3", "--fetch-rule", "quest_bound", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["policy_settings"] == {"window": 2, "k": 3, "fetch_rule": "quest_bound"}
    assert summary["bytes_fetched"] > 0
