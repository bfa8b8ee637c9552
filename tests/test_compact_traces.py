"""Compact model traces (kernels/eviction/sparse.py): a row's largest weights explicit, the rest folded into
an even background, so a model trace at the whole context is O(n·keep), not n² (issue 32).

Exact where nothing is folded: keep ≥ n gives the dense trace's numbers bit for bit, on a real model's trace,
for every policy (the oracle's plan included) and a user rule; with rows folded, the kernels still agree with
the plain-Python reference (tests/reference_eviction.py reads the compact rows)."""
import numpy as np
import pytest

import reference_eviction as ref
from helpers import ROOT, wait_job
from kernels.eviction import ONE, POLICIES, KeyTotals, Simulation, model_trace, sparse_trace, to_fixed
from kernels.eviction.custom import RunSettings

EXAMPLES = ROOT / "examples" / "policies"


def run(policy, trace, capacity, sinks, window, tau, rule=None):
    if rule is None:
        sim = Simulation(policy, trace, capacity, sinks, window, tau, record_evictions=True)
    else:
        sim = rule.simulation(trace, capacity, sinks, window, tau, record_evictions=True)
    cut = trace.n // 3  # in two chunks, as the service runs them
    sim.run(0, cut)
    sim.run(cut, trace.n)
    return sim


def outcome(sim) -> dict:
    return {"counters": sim.counters(), "kept": sim.kept().tolist(), "timeline": sim.timeline().tolist(),
            "evicted_at": sim.evicted_at.tolist()}


@pytest.fixture(scope="module")
def demo_matrix(demo_api):
    from backend.attention.extract import attention_view
    from backend.defaults import bundled_text

    view = attention_view(demo_api._state.model, bundled_text("jargon")[:650], layer=-1)
    assert 150 < len(view["matrix"]) <= 256
    return view["matrix"]


@pytest.fixture(scope="module")
def h2o_decay():
    from backend.eviction.custom_policies import PolicyRegistry

    registry = PolicyRegistry(EXAMPLES, publish=False)
    assert registry.reload()["errors"] == []
    return registry.get("h2o_decay")


def test_keep_at_least_n_is_the_dense_trace_bit_for_bit(demo_matrix, h2o_decay):
    n = len(demo_matrix)
    dense, compact = model_trace(demo_matrix), sparse_trace(demo_matrix, keep=n)
    assert compact.kind != dense.kind and compact.weights.shape == (n, 2 + 2 * n)
    tau = to_fixed(0.01)
    for policy in POLICIES:  # the oracle included: its plan reads the compact rows
        want = run(policy, dense, 48, 4, 16, tau)
        got = run(policy, compact, 48, 4, 16, tau)
        assert outcome(got) == outcome(want), policy
        assert want.counters()["accesses"] > 0 and (want.counters()["evictions"] > 0 or policy == "full")
    assert outcome(run("", compact, 48, 4, 16, tau, h2o_decay)) == outcome(run("", dense, 48, 4, 16, tau, h2o_decay))
    a, b = KeyTotals(dense), KeyTotals(compact)
    for totals in (a, b):
        totals.run(0, 100)
        totals.run(100, n)
    assert b.after.tolist() == a.after.tolist() and b.self_w.tolist() == a.self_w.tolist()
    assert b.sinks(to_fixed(0.1)).tolist() == a.sinks(to_fixed(0.1)).tolist() and len(a.sinks(to_fixed(0.1))) >= 1
    assert b.heavy_hitters(32).tolist() == a.heavy_hitters(32).tolist()


def test_a_folded_row_keeps_its_largest_weights_and_spreads_the_rest():
    row = np.array([[0.5, 0.2, 0.1, 0.15, 0.05]])  # the last query of a 5-token trace
    a = np.zeros((5, 5))
    a[np.arange(4), np.arange(4)] = 1.0
    a[4] = row
    trace = sparse_trace(a, keep=2)
    bg, extras = ref.sparse_row(trace, 4)
    fixed = np.rint(row[0] * ONE).astype(np.int64)
    assert sorted(extras) == [0, 1]                                    # 0.5 and 0.2 listed, in position order
    assert bg == (fixed[2] + fixed[3] + fixed[4]) // 3                 # the folded 0.3 spread over 3 keys
    assert extras[0] + bg == fixed[0] and extras[1] + bg == fixed[1]  # a listed key weighs what it did
    assert ref.sparse_row(trace, 1) == (0, {1: ONE})                   # a row that fits is exact


@pytest.mark.parametrize("keep", [1, 3, 8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_folded_rows_match_the_reference(keep, seed, h2o_decay):
    rng = np.random.default_rng(seed)
    n = 60
    a = np.tril(rng.random((n, n)) ** 4)
    if seed == 2:  # coarse weights: ties at the cut between listed and folded
        a = np.tril(np.floor(rng.random((n, n)) * 3))
        a[np.arange(n), np.arange(n)] += 1
    a /= a.sum(axis=1, keepdims=True)
    share = rng.random(n) * 0.4 if seed == 1 else None  # a learned sink (gpt-oss) takes part of every row
    trace = sparse_trace(a * (1 - share)[:, None] if share is not None else a, keep, share)
    assert any(ref.sparse_row(trace, t)[0] > 0 for t in range(n))  # rows were folded
    capacity, sinks, window = 12, 2, 4
    for tau in (to_fixed(0.01), to_fixed(0.05), 1):
        for policy in POLICIES:
            plan = ref.oracle_plan(ref.row_weights(trace), capacity, tau) if policy == "oracle" else None
            sim = run(policy, trace, capacity, sinks, window, tau)
            if plan is not None:
                assert sim.plan_end.tolist() == plan
            want = ref.simulate(policy, trace, capacity, sinks, window, tau, plan)
            got = outcome(sim)
            assert got["counters"] == {k: want[k] for k in got["counters"]}, policy
            assert got["kept"] == want["kept"] and got["evicted_at"] == want["evicted_at"]
            assert got["timeline"] == [list(map(float, r)) for r in want["timeline"]]
        rule = h2o_decay
        settings = RunSettings(capacity, sinks, window, tau / ONE)
        py = {}
        exec((EXAMPLES / "h2o_decay.py").read_text(), py)
        first, recent = rule.protections(capacity, sinks, window)
        want = ref.simulate("rule", trace, capacity, sinks, window, tau,
                            rule=(py["on_enter"], py["on_attention"], first, recent, settings))
        got = run("", trace, capacity, sinks, window, tau, rule)
        assert got.kept().tolist() == want["kept"] and got.counters()["hits"] == want["hits"]
    totals = KeyTotals(trace)
    totals.run(0, n)
    after, self_w = ref.key_totals(trace)
    assert totals.after.tolist() == after and totals.self_w.tolist() == self_w


def alice_tokens(loaded, n: int) -> str:
    """The first n tokens of the bundled English text (BOS included), as text."""
    from backend.defaults import bundled_text

    ids = loaded.tokenizer(bundled_text("alice"), add_special_tokens=False)["input_ids"]
    assert len(ids) >= n
    return loaded.tokenizer.decode(ids[: n - 1])


def test_smollm2_simulates_past_2048_tokens_on_a_compact_trace(smollm2_api):
    """Simulate on SmolLM2's attention at 2,900 tokens (past the dense limit) through the Api: every policy runs,
    the trace summary says what was folded, and the trace holds O(n·keep) numbers, not n²."""
    from backend.eviction.params import TRACE_KEYS

    loaded = smollm2_api._state.model
    text = alice_tokens(loaded, 2900)
    job = smollm2_api.simulate({"trace": "model", "text": text, "cache_size": 256, "sinks": 4, "window": 64,
                                "layer": 20, "policy": "all"})
    out = wait_job(smollm2_api, job["job_id"], timeout=600)
    assert out["state"] == "done", out
    trace, results = out["result"]["trace"], {r["policy"]: r for r in out["result"]["results"]}
    n = trace["length"]
    assert 2800 < n <= 2910 and trace["kind"] == "model"
    folded = trace["approximation"]
    assert folded["compact"] and folded["keys_per_row"] == TRACE_KEYS and folded["folded_rows"] > 0
    assert 0 < folded["folded_mass_mean"] <= folded["folded_mass_max"] < 1
    assert 0 < folded["largest_folded_weight"] <= 1 / (TRACE_KEYS + 1)  # under τ = 0.01: no access missed
    assert "warning" not in folded
    assert folded["bytes"] <= n * (2 + 2 * TRACE_KEYS) * 8 < n * n * 8 / 4  # O(n·keep), not the 8n² of dense
    assert set(results) >= {"full", "sliding_window", "streaming_llm", "h2o", "lru", "tova", "oracle"}
    assert results["full"]["hit_rate"] == 1.0
    assert results["oracle"]["hits"] >= max(r["hits"] for r in results.values() if r["policy"] != "full")
    assert results["streaming_llm"]["hit_rate"] > results["sliding_window"]["hit_rate"]  # the sink matters


def test_an_access_threshold_under_the_largest_folded_weight_is_flagged(smollm2_api):
    loaded = smollm2_api._state.model
    job = smollm2_api.simulate({"trace": "model", "text": alice_tokens(loaded, 2100), "cache_size": 64, "sinks": 4,
                                "window": 16, "access_threshold": 1e-5, "policy": "streaming_llm"})
    out = wait_job(smollm2_api, job["job_id"], timeout=600)
    assert out["state"] == "done", out
    assert "access_threshold" in out["result"]["trace"]["approximation"]["warning"]


# ---------- the Cache Profile's model trace: each row's mass per block, pooled block by block ----------

def test_the_profile_pools_rows_as_the_simulator_summed_them(demo_api):
    """Pooled in blocks of queries, the per-block masses equal the per-step block sums the simulator made from
    the whole matrix (reference_tiers), each key's received attention equals received_after's, and every
    placement policy gives the reference's numbers on the pooled trace."""
    import reference_tiers
    from backend.attention.extract import attention_view, view_rows
    from backend.attention.sinks import received_after
    from backend.defaults import bundled_text
    from backend.profile.block_trace import Pooler, from_rows
    from kernels import tiers

    loaded, text, B = demo_api._state.model, bundled_text("jargon")[:650], 16
    matrix = attention_view(loaded, text, aggregate="all_layers")["matrix"]
    n = len(matrix)
    pooled = Pooler(n, B)
    for t0 in range(0, n, 37):  # blocks of queries that do not line up with the blocks of keys
        pooled.add(t0, matrix[t0:t0 + 37])
    mass = pooled.trace.mass
    for t in range(n):
        assert mass[t, : t // B + 1].tolist() == list(reference_tiers.trace_row(t, B, matrix).values())
        assert not mass[t, t // B + 1:].any()
    assert pooled.trace.received.tolist() == received_after(matrix).tolist()
    _, rows = view_rows(loaded, text, aggregate="all_layers")
    assert from_rows(rows, B).mass.tolist() == mass.tolist()
    n_blocks = mass.shape[1]
    pinned = np.arange(n_blocks) == 0
    for policy in tiers.POLICIES:
        kw = dict(policy=policy, tau=0.02, half_life=8, margin=0.1, patience=2, reuse=8, window=2, k=2,
                  snap_steps=np.array([n // 2, n - 1]))
        cap = [6, 2, 4, n_blocks]
        got = tiers.simulate(n, B, cap, pinned, mass=mass, chunk_steps=50, **kw)
        want = reference_tiers.simulate(n, B, cap, pinned, trace=matrix, **kw)
        for key in ("tier", "acc", "access", "hits", "read_tokens", "moved_tokens", "timeline_read"):
            assert np.asarray(got[key]).tolist() == np.asarray(want[key]).tolist(), (policy, key)
        assert got["hits"].sum() > 0


def test_smollm2_profile_on_a_model_trace_past_2048_tokens(smollm2_api):
    loaded = smollm2_api._state.model
    job = smollm2_api.profile({"trace": "model", "text": alice_tokens(loaded, 2100), "aggregate": "layer", "layer": 20,
                               "block_size": 16, "policy": "lru"})
    out = wait_job(smollm2_api, job["job_id"], timeout=600)
    assert out["state"] == "done", out
    summary = out["result"]["summary"]
    assert summary["n_tokens"] > 2048 and summary["n_blocks"] == -(-summary["n_tokens"] // 16)
    assert summary["sink_blocks"] >= 1 and summary["accesses"] > summary["n_tokens"]  # position 0 is read every step


def test_a_sweeps_model_trace_past_2048_tokens_is_the_simulate_tabs_compact_trace(smollm2_api):
    from backend.eviction import parse, traces
    from backend.eviction.params import TRACE_KEYS
    from backend.sweep.cells import model_trace
    from kernels.eviction import SPARSE

    loaded = smollm2_api._state.model
    text = alice_tokens(loaded, 2100)
    swept, folded = model_trace(loaded, text, 10_000, 20)
    simulated, info = traces.from_model(loaded, parse({"trace": "model", "text": text, "layer": 20}))
    assert swept.kind == simulated.kind == SPARSE and swept.n > 2048
    assert np.array_equal(swept.weights, simulated.weights)
    # the sweep's rows say what was folded, as the Simulate tab's summary does
    assert folded == {f"trace_{k}": info["approximation"][k] for k in
                      ("keys_per_row", "folded_mass_mean", "folded_mass_max", "largest_folded_weight")}
    assert folded["trace_folded_mass_max"] > 0
    assert swept.weights.nbytes == swept.n * (2 + 2 * TRACE_KEYS) * 8  # O(n·keep): 8.6 MB here, dense 35 MB


@pytest.fixture(scope="module")
def long_gpt_oss(tmp_path_factory):
    """A tiny gpt-oss (learned sink logits: part of every row goes to no key) from its real config, random init,
    with a 4,096-token context so its traces can pass 2,048 tokens."""
    import json

    from architectures import save
    from backend.api import Api
    from helpers import load

    folder = save("gpt_oss", tmp_path_factory.mktemp("gpt-oss-long"))
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = 4096
    (folder / "config.json").write_text(json.dumps(config))
    api = Api()
    assert load(api, str(folder))["state"] == "done"
    yield api
    api._state.jobs.cancel_all()


def test_a_learned_sinks_share_survives_the_compact_trace(long_gpt_oss):
    """Built block by block from the model's rows, the compact trace is the one built from the whole matrix,
    and it carries each row's learned-sink share exactly as the dense trace does."""
    from backend.attention.extract import attention_view
    from backend.defaults import bundled_text
    from backend.eviction import parse, traces
    from backend.eviction.params import TRACE_KEYS

    loaded = long_gpt_oss._state.model
    ids = loaded.tokenizer(bundled_text("jargon"), add_special_tokens=False)["input_ids"][:2300]
    text = loaded.tokenizer.decode(ids)
    trace, info = traces.from_model(loaded, parse({"trace": "model", "text": text, "layer": 1}))
    view = attention_view(loaded, text, layer=1)
    assert view["learned_sink"] is not None and trace.n == len(view["matrix"]) > 2048
    whole = sparse_trace(view["matrix"], TRACE_KEYS, view["learned_sink"])
    assert np.array_equal(trace.weights, whole.weights) and np.array_equal(trace.fixed, whole.fixed)
    assert np.array_equal(trace.fixed, model_trace(view["matrix"], view["learned_sink"]).fixed) and trace.fixed.any()
    assert info["learned_sink_share"] > 0 and info["approximation"]["folded_rows"] > 0
    sim = run("streaming_llm", trace, 64, 4, 16, to_fixed(0.01))
    full = run("full", trace, 64, 4, 16, to_fixed(0.01))
    assert full.counters()["recall_sum"] == trace.n  # the sink's share counts as kept: every row whole
    assert sim.counters()["recall_sum"] < trace.n and sim.counters()["evictions"] == trace.n - 64
