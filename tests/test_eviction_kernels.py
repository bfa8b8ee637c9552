"""Eviction kernels against the plain-Python reference (exact agreement) and invariants."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_eviction as ref
from kernels.eviction import ONE, POLICIES, KeyTotals, Simulation, model_trace, synthetic_trace, to_fixed

SYNTHETIC_POLICIES = [p for p in POLICIES if p != "oracle"]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_attention(n, seed, coarse):
    """Causal rows that sum to 1; `coarse` rounds to eighths so ties are common."""
    rng = np.random.default_rng(seed)
    a = np.tril(rng.random((n, n)) ** 3)
    if coarse:
        a = np.tril(np.floor(rng.random((n, n)) * 4))
        a[np.arange(n), np.arange(n)] += 1
    return a / a.sum(axis=1, keepdims=True)


@st.composite
def budgets(draw, n):
    capacity = draw(st.integers(1, n + 3))
    sinks = draw(st.integers(0, capacity - 1))
    window = draw(st.integers(0, capacity - 1))
    tau = draw(st.sampled_from([1, to_fixed(0.01), to_fixed(0.05), to_fixed(0.2)]))
    return capacity, sinks, window, tau


@st.composite
def model_cases(draw):
    n = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32))
    a = random_attention(n, seed, draw(st.booleans()))
    if draw(st.booleans()):  # a learned sink (gpt-oss) takes part of every row: a key no policy evicts
        share = np.random.default_rng(seed + 1).random(n) * 0.6
        return model_trace(a * (1 - share)[:, None], share), draw(budgets(n))
    return model_trace(a), draw(budgets(n))


@st.composite
def synthetic_cases(draw):
    n = draw(st.integers(1, 260))
    sink_mass = draw(st.sampled_from([0.0, 0.2, 0.5]))
    heavy_mass = draw(st.sampled_from([0.0, 0.1, 0.3]))
    background = draw(st.sampled_from([0.0, 0.05, 0.2]))
    trace = synthetic_trace(n, sink_count=draw(st.integers(0, 5)), sink_mass=sink_mass,
                            locality=draw(st.sampled_from([0.0, 0.5, 0.8, 0.95])),
                            heavy_hitters=draw(st.integers(0, 30)), heavy_mass=heavy_mass,
                            background=background, seed=draw(st.integers(0, 1000)),
                            heavy_life=draw(st.sampled_from([0, 1, 5, 40])))
    return trace, draw(budgets(n))


def run_kernel(policy, trace, capacity, sinks, window, tau, chunks=(1.0,)):
    sim = Simulation(policy, trace, capacity, sinks, window, tau, record_evictions=True)
    t0 = 0
    for frac in chunks:
        t1 = max(t0, int(round(frac * trace.n)))
        sim.run(t0, t1)
        t0 = t1
    sim.run(t0, trace.n)
    return sim


def assert_same(sim, expected):
    got = sim.counters()
    for key in ("tokens_processed", "accesses", "hits", "misses", "evictions", "cached", "recall_sum"):
        assert got[key] == expected[key], key
    assert sim.kept().tolist() == expected["kept"]
    assert [tuple(r) for r in sim.timeline().tolist()] == [tuple(float(x) for x in r) for r in expected["timeline"]]
    assert sim.evicted_at.tolist() == expected["evicted_at"]


def plan_for(policy, trace, capacity, tau):
    if policy != "oracle" or trace.n <= capacity:
        return None
    return ref.oracle_plan(trace.weights.tolist(), capacity, tau)


@FAST
@given(model_cases(), st.lists(st.floats(0, 1), max_size=3).map(sorted))
def test_model_trace_kernels_match_reference(case, chunks):
    trace, (capacity, sinks, window, tau) = case
    for policy in POLICIES:
        sim = run_kernel(policy, trace, capacity, sinks, window, tau, chunks)
        plan = plan_for(policy, trace, capacity, tau)
        if plan is not None:
            assert sim.plan_end.tolist() == plan
        assert_same(sim, ref.simulate(policy, trace, capacity, sinks, window, tau, plan))


@FAST
@given(model_cases(), st.integers(1, 9), st.integers(0, 2**32))
def test_rows_given_over_the_cached_keys_step_as_the_trace_does(case, block, seed):
    """run_rows (Evaluate's chunks: rows over the cache's entries, one call per chunk) takes exactly
    the steps run() takes on the dense trace. The columns are, as a cache's entries are, some earlier
    keys (every one with weight, and some with none) and then the chunk's own; what a query did not
    see yet (its later chunk-mates) holds junk that must not be read."""
    trace, (capacity, sinks, window, tau) = case
    rng = np.random.default_rng(seed)
    for policy in SYNTHETIC_POLICIES:  # the oracle plans over the whole trace, not online
        want = run_kernel(policy, trace, capacity, sinks, window, tau)
        sim = Simulation(policy, trace, capacity, sinks, window, tau, record_evictions=True)
        for t0 in range(0, trace.n, block):
            t1 = min(t0 + block, trace.n)
            rows = trace.weights[t0:t1, :t1]
            earlier = np.nonzero((rows[:, :t0] > 0).any(axis=0) | (rng.random(t0) < 0.3))[0]
            cols = np.concatenate([earlier, np.arange(t0, t1)])
            given = rows[:, cols].copy()
            q = t1 - t0
            given[:, len(earlier):][np.triu(np.ones((q, q), bool), 1)] = ONE  # the future: never read
            sim.run_rows(t0, given, cols)
        assert_same(sim, {**want.counters(), "kept": want.kept().tolist(), "timeline": want.timeline().tolist(),
                          "evicted_at": want.evicted_at.tolist()})


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(100, 160), st.integers(2, 24), st.integers(0, 2**32), st.booleans())
def test_longer_model_traces_at_small_budgets_match_reference(n, capacity, seed, coarse):
    # Many evictions per key lifetime: LRU's queue squeezes, H2O's heap churns.
    trace = model_trace(random_attention(n, seed, coarse))
    sinks, window, tau = min(2, capacity - 1), capacity // 2, to_fixed(0.01)
    for policy in POLICIES:
        sim = run_kernel(policy, trace, capacity, sinks, window, tau, (0.3, 0.6))
        plan = plan_for(policy, trace, capacity, tau)
        assert_same(sim, ref.simulate(policy, trace, capacity, sinks, window, tau, plan))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(synthetic_cases(), st.lists(st.floats(0, 1), max_size=3).map(sorted))
def test_synthetic_kernels_match_reference(case, chunks):
    trace, (capacity, sinks, window, tau) = case
    for policy in SYNTHETIC_POLICIES:
        sim = run_kernel(policy, trace, capacity, sinks, window, tau, chunks)
        assert_same(sim, ref.simulate(policy, trace, capacity, sinks, window, tau))


@FAST
@given(st.one_of(model_cases(), synthetic_cases()))
def test_key_totals_match_reference(case):
    trace, (capacity, _, window, _) = case
    totals = KeyTotals(trace)
    totals.run(0, trace.n // 2)
    totals.run(trace.n // 2, trace.n)
    after, self_w = ref.key_totals(trace)
    assert totals.after.tolist() == after and totals.self_w.tolist() == self_w
    assert totals.sinks(to_fixed(0.1)).tolist() == ref.sinks(trace, to_fixed(0.1))
    assert totals.heavy_hitters(capacity - window).tolist() == ref.heavy_hitters(trace, capacity - window)


@FAST
@given(st.one_of(model_cases(), synthetic_cases()))
def test_invariants(case):
    trace, (capacity, sinks, window, tau) = case
    policies = POLICIES if trace.kind == 0 else SYNTHETIC_POLICIES
    hits = {}
    for policy in policies:
        sim = run_kernel(policy, trace, capacity, sinks, window, tau)
        c = sim.counters()
        hits[policy] = c["hits"]
        assert c["hits"] + c["misses"] == c["accesses"]
        occupancy = sim.timeline()[:, 1]
        if policy == "full":
            assert c["evictions"] == 0 and c["recall_sum"] == trace.n and c["misses"] == 0
        else:
            assert occupancy.max(initial=0) <= capacity and c["cached"] == min(trace.n, capacity)
            assert c["evictions"] == max(0, trace.n - capacity)
        if trace.n <= capacity:
            assert c["evictions"] == 0 and c["misses"] == 0
        if policy == "streaming_llm":
            kept = set(sim.kept().tolist())
            assert set(range(min(sinks, trace.n))) <= kept
            # the first S keys are never evicted at any step
            assert all(sim.evicted_at[j] == -1 for j in range(min(sinks, trace.n)))
    if "oracle" in hits:  # Full Cache ignores the budget, so it is not a rival
        assert all(hits["oracle"] >= h for p, h in hits.items() if p != "full")


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 8), st.integers(1, 4), st.integers(0, 2**32), st.booleans())
def test_oracle_is_optimal_on_tiny_traces(n, capacity, seed, coarse):
    trace = model_trace(random_attention(n, seed, coarse))
    tau = to_fixed(0.15)
    sim = run_kernel("oracle", trace, capacity, 0, 0, tau)
    assert sim.counters()["hits"] == ref.best_hits_brute_force(trace.weights.tolist(), capacity, tau)


def hand_trace(rows):
    """Rows given as lists of weights (fractions of 1), padded with zeros."""
    n = len(rows)
    a = np.zeros((n, n))
    for t, r in enumerate(rows):
        a[t, : len(r)] = r
    return model_trace(a)


def test_belady_would_lose_here_but_the_oracle_does_not():
    # C = 1. Key 0 is read once at step 2; key 1 at steps 3, 4, 5. At step 1 one must go:
    # Belady drops key 1 (next use later), losing 3 hits; the oracle drops key 0.
    rows = [[1], [0, 1], [0.5, 0, 0.5], [0, 0.5, 0, 0.5], [0, 0.5, 0, 0, 0.5], [0, 0.5, 0, 0, 0, 0.5]]
    sim = run_kernel("oracle", hand_trace(rows), 1, 0, 0, to_fixed(0.1))
    c = sim.counters()
    assert (c["accesses"], c["hits"], c["misses"]) == (4, 3, 1)


def test_known_answers_on_a_hand_made_trace():
    # Key 0 is a sink (half of every row); the rest is on the newest key. C = 2.
    rows = [[1.0]] + [[0.5] + [0.0] * (t - 1) + [0.5] for t in range(1, 6)]
    trace = hand_trace(rows)
    tau = to_fixed(0.01)
    window = run_kernel("sliding_window", trace, 2, 1, 1, tau).counters()
    stream = run_kernel("streaming_llm", trace, 2, 1, 1, tau).counters()
    # Step t ≥ 1 accesses only key 0. Sliding window (2 keys) drops key 0 at step 2.
    assert (window["accesses"], window["hits"], window["misses"], window["evictions"]) == (5, 2, 3, 4)
    assert (stream["accesses"], stream["hits"], stream["misses"]) == (5, 5, 0)
    # Recall: the sliding window loses the sink's half at steps 3, 4, 5.
    assert window["recall_sum"] == pytest.approx(6 - 3 * 0.5)
    assert stream["recall_sum"] == 6.0
    totals = KeyTotals(trace)
    totals.run(0, trace.n)
    assert totals.sinks(to_fixed(0.1)).tolist() == [0]
    assert totals.heavy_hitters(1).tolist() == [0]


def test_h2o_keeps_the_heavy_key_and_lru_the_recent_access():
    # C = 3, W = 1. Key 1 gets 0.4 of every later row; other old keys get crumbs.
    n = 8
    a = np.zeros((n, n))
    for t in range(n):
        a[t, t] = 1.0
        if t > 1:
            a[t, 1] = 0.4
            a[t, t] = 0.6
    trace = model_trace(a)
    sim = run_kernel("h2o", trace, 3, 0, 1, to_fixed(0.01))
    assert 1 in sim.kept().tolist() and sim.counters()["misses"] == 0
    assert run_kernel("lru", trace, 3, 0, 1, to_fixed(0.01)).counters()["misses"] == 0
    # The sliding window drops key 1 at step 4, then misses it at steps 5, 6, 7.
    assert run_kernel("sliding_window", trace, 3, 0, 1, to_fixed(0.01)).counters()["misses"] == 3


def test_synthetic_trace_is_bounded_in_memory_and_deterministic():
    trace = synthetic_trace(2_000_000, seed=3)
    assert trace.weights.size == 1 and trace.max_row < 200  # nothing O(n²) or O(n·C)
    again = synthetic_trace(2_000_000, seed=3)
    assert np.array_equal(trace.heavy, again.heavy)


def test_synthetic_rows_sum_to_about_one():
    trace = synthetic_trace(5000, background=0.1)
    for t in (2500, 4999):
        bg, extras = ref.synthetic_row(trace, t)
        assert abs((bg * (t + 1) + sum(extras.values())) / ONE - 1) < 0.1  # heavy hitters jitter ±50%


def test_a_second_launch_loads_the_kernels_from_numbas_disk_cache():
    import subprocess
    import sys
    from pathlib import Path

    run_kernel("h2o", synthetic_trace(500), 64, 4, 32, to_fixed(0.01))  # this process wrote the cache, if needed
    code = ("from kernels.eviction import Simulation, synthetic_trace, to_fixed\n"
            "from kernels.eviction.loop import run_steps\n"
            "Simulation('h2o', synthetic_trace(500), 64, 4, 32, to_fixed(0.01)).run(0, 500)\n"
            "print(sum(run_steps.stats.cache_hits.values()), sum(run_steps.stats.cache_misses.values()))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    hits, misses = out.stdout.split()[-2:]
    assert int(misses) == 0 and int(hits) >= 1, out.stdout + out.stderr


def test_a_learned_sink_is_a_key_no_policy_evicts():
    """gpt-oss's learned sink: its share of every row counts as kept (recall) whatever is evicted, and is
    never an access. Every row here puts 0.4 on the learned sink and 0.6 on key 0."""
    n = 30
    a = np.zeros((n, n))
    a[:, 0] = 0.6
    a[0, 0] = 0.6
    share = np.full(n, 0.4)
    trace = model_trace(a, share)
    tau = to_fixed(0.01)
    full = run_kernel("full", trace, 4, 0, 1, tau).counters()
    assert full["recall_sum"] == pytest.approx(n)  # nothing lost: sink + key 0 = the whole row
    window = run_kernel("sliding_window", trace, 1, 0, 0, tau)
    c = window.counters()
    # key 0 leaves after step 1; then every row keeps only the learned sink's 0.4
    assert c["recall_sum"] == pytest.approx(1.0 + 1.0 + 0.4 * (n - 2))
    assert c["accesses"] == n - 1  # key 0 from every later query; the learned sink is no access
    assert_same(window, ref.simulate("sliding_window", trace, 1, 0, 0, tau))
