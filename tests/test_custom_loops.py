"""What keeps a user rule within 2x of its built-in twin (issue #23), checked as structure, not
time (bench/eviction.py prints the ratios): a rule whose entering scores come in order keeps
its candidates in a FIFO, as the built-in window keeps its list, and never sifts a heap; the
rescoring pass of a rule that reads attention vectorises (a lookup of the locality weight by
age inside it kept it scalar: TOVA's rule took 2.5x the built-in's time)."""
import re

import pytest
from helpers import ROOT

from backend.eviction.custom_policies import PolicyRegistry
from kernels.eviction import synthetic_trace, to_fixed
from kernels.eviction.custom import CustomSimulation, compile_rule, run_dynamic
from kernels.eviction.state import HEAP_N

TAU = to_fixed(0.01)


@pytest.fixture(scope="module")
def examples():
    registry = PolicyRegistry(ROOT / "examples" / "policies", publish=False)
    assert registry.reload()["errors"] == []
    return registry


def descending_enter(t, run):  # each key scores below the one before: only a heap can order them
    return -float(t)


@pytest.mark.parametrize("name", ["sliding_window_rule", "streaming_llm_rule"])
def test_rules_whose_entering_scores_come_in_order_never_use_the_heap(examples, name):
    trace = synthetic_trace(5000, heavy_hitters=40, heavy_life=300)
    sim = examples.get(name).simulation(trace, 64, 4, 32, TAU)
    sim.run(0, trace.n)
    assert sim.counters()["evictions"] == 5000 - 64
    assert sim.state.ctr[HEAP_N] == 0  # O(1) a step: a FIFO, not O(log C) sifts


def test_a_rule_whose_scores_come_lower_switches_to_the_heap_and_keeps_it():
    enter, _ = compile_rule(descending_enter)
    trace = synthetic_trace(3000)
    sim = CustomSimulation(enter, None, 0, 0, trace, 64, 4, 32, TAU)
    sim.run(0, trace.n)
    assert sim.state.ctr[HEAP_N] == 64  # every cached key is a candidate, in the heap
    assert sim.kept().tolist() == list(range(64))  # the lowest score goes: each new key as it enters


def test_the_rescoring_pass_vectorises(examples):
    trace = synthetic_trace(2000)
    for name in ("tova_rule", "lru_rule", "h2o_rule", "h2o_decay"):
        before = set(run_dynamic.inspect_llvm())
        examples.get(name).simulation(trace, 64, 4, 32, TAU).run(0, 0)  # compiles the loop for this rule
        [ir] = [ir for signature, ir in run_dynamic.inspect_llvm().items() if signature not in before]
        # the per-slot weight bg + extra (and the rule's own sums) as vector adds of doubles
        assert re.search(r"fadd (?:fast )?<\d+ x double>", ir), f"{name}: the rescoring pass is scalar"


def test_a_rule_takes_rows_given_over_the_cached_keys_as_it_takes_the_trace(examples):
    """Evaluate's and Retrieval's chunks hand a rule the rows over the cache's entries (Simulation.run_rows);
    its steps are the ones run() takes on the dense trace (a sweep's Evaluate cell used to die here:
    the rule's Simulation ran the built-ins' loop, which it has no policy code for)."""
    import numpy as np

    from kernels.eviction import ONE, model_trace

    rng = np.random.default_rng(3)
    n = 70
    a = np.tril(rng.random((n, n)) ** 3)
    trace = model_trace(a / a.sum(axis=1, keepdims=True))
    for name in ("sliding_window_rule", "streaming_llm_rule", "h2o_rule", "lru_rule", "tova_rule", "h2o_decay"):
        want = examples.get(name).simulation(trace, 16, 4, 8, TAU, record_evictions=True)
        want.run(0, n)
        for block in (1, 5):
            sim = examples.get(name).simulation(trace, 16, 4, 8, TAU, record_evictions=True)
            for t0 in range(0, n, block):
                t1 = min(t0 + block, n)
                rows = trace.weights[t0:t1, :t1]
                earlier = np.nonzero((rows[:, :t0] > 0).any(axis=0))[0]
                cols = np.concatenate([earlier, np.arange(t0, t1)])
                given = rows[:, cols].copy()
                q = t1 - t0
                given[:, len(earlier):][np.triu(np.ones((q, q), bool), 1)] = ONE  # the future: never read
                sim.run_rows(t0, given, cols)
            assert sim.counters() == want.counters(), (name, block)
            assert sim.kept().tolist() == want.kept().tolist(), (name, block)
            assert sim.evicted_at.tolist() == want.evicted_at.tolist(), (name, block)
            assert sim.timeline().tolist() == want.timeline().tolist(), (name, block)
        assert want.counters()["evictions"] == n - 16
