"""User eviction policies (issue #17): rule files equal their built-in twins bit for bit, agree
with the plain-Python reference, and every broken file gets its named error with file and line.

Numba compiles the loop once per rule and trace layout (~3 s each here), so the example
rules are loaded once per session (`examples`) and reused by every test.
"""
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_eviction as ref
from backend.api import Api
from backend.evaluate.deciders import registered_policies, unregister_policy
from backend.eviction.custom_policies import PolicyFileError, PolicyRegistry, load_source
from helpers import ROOT, wait_job
from kernels.eviction import ONE, Simulation, model_trace, synthetic_trace, to_fixed
from kernels.eviction.custom import RunSettings

EXAMPLES = ROOT / "examples" / "policies"
TWINS = ["sliding_window", "streaming_llm", "h2o", "lru", "tova"]  # examples/policies/<name>.py → <name>_rule


@pytest.fixture(scope="session")
def examples():
    registry = PolicyRegistry(EXAMPLES, publish=False)  # not offered by Evaluate to the other tests' runs
    listing = registry.reload()
    assert listing["errors"] == [], listing["errors"]
    return registry


@pytest.fixture
def api_with(examples, tmp_path, monkeypatch):
    """An Api whose policies folder is empty except for what a test writes; the examples preloaded."""
    monkeypatch.setenv("SINKVIS_POLICY_DIR", str(tmp_path / "policies"))
    instance = Api()
    yield instance
    instance._state.jobs.cancel_all(wait=30)
    if instance._state.policies is not None:
        instance._state.policies.unpublish()  # Evaluate's list is process-wide: leave it as it was


def same_run(builtin, user):
    got, want = user.counters(), builtin.counters()
    assert got == want
    assert user.kept().tolist() == builtin.kept().tolist()
    assert user.timeline().tolist() == builtin.timeline().tolist()
    assert user.evicted_at.tolist() == builtin.evicted_at.tolist()


SYNTHETIC = [dict(n=6000), dict(n=4000, heavy_hitters=40, heavy_life=300, seed=3),
             dict(n=3000, background=0.6, sink_mass=0.2, heavy_mass=0.1),   # every key reaches τ on background alone
             dict(n=3000, sink_count=0, sink_mass=0.0, locality=0.0, seed=7)]


@pytest.mark.parametrize("name", TWINS)
def test_each_example_equals_its_builtin_twin_on_synthetic_traces(examples, name):
    policy = examples.get(f"{name}_rule")
    for case in SYNTHETIC:
        trace = synthetic_trace(**case)
        for capacity, sinks, window in ((64, 4, 32), (17, 3, 5)):
            tau = to_fixed(0.01)
            builtin = Simulation(name, trace, capacity, sinks, window, tau, record_evictions=True)
            builtin.run(0, trace.n)
            user = policy.simulation(trace, capacity, sinks, window, tau, record_evictions=True)
            for t0 in range(0, trace.n, 1000):  # in chunks, as the app runs it
                user.run(t0, min(trace.n, t0 + 1000))
            policy.check(user)
            assert builtin.counters()["evictions"] > 0
            same_run(builtin, user)


def test_each_example_equals_its_builtin_twin_on_the_demo_models_trace(demo_api, examples):
    """Through the Api: the real model's attention, every result field (counters, kept, evicted_at, timeline)."""
    demo_api._state.policies, before = examples, demo_api._state.policies
    try:
        text = (ROOT / "assets" / "eval" / "jargon-heldout.txt").read_text(encoding="utf-8")[:650]  # ≈ 230 tokens, inside the 256 context
        for layer in (4, -1):  # layer 4 has the demo model's strongest sink
            job = demo_api.simulate({"trace": "model", "text": text, "cache_size": 48, "sinks": 4, "window": 16,
                                     "layer": layer, "policy": "all"})
            status = wait_job(demo_api, job["job_id"])
            assert status["state"] == "done", status.get("error")
            results = {r["policy"]: r for r in status["result"]["results"]}
            assert "failed" not in status["result"]
            for name in TWINS:
                want, got = dict(results[name]), dict(results[f"{name}_rule"])
                assert want["evictions"] > 0 and got["label"].endswith("(rule file)")
                for key in ("policy", "label", "seconds"):
                    want.pop(key), got.pop(key)
                assert got == want, name
            assert results["h2o_decay"]["evictions"] == results["h2o"]["evictions"]
    finally:
        demo_api._state.policies = before


# ---------- the loop against the plain-Python reference, for rules that are not a built-in ----------

def weird_enter(t, run):  # static scores in no particular order: the heap path
    return float((t * 7919) % 13) - 6.0


def weird_attention(score, attention, age, t, run):  # uses every argument
    return 0.5 * score + attention * (1 + age % 3) - (0.25 if t % 2 else 0.0) + run.tau * run.window / run.capacity


RULES = {"decay": None, "weird": (weird_enter, weird_attention), "static": (weird_enter, None)}


@pytest.fixture(scope="module")
def compiled_rules(examples):
    from kernels.eviction.custom import compile_rule

    decay = examples.get("h2o_decay")
    module = {}
    exec((EXAMPLES / "h2o_decay.py").read_text(), module)
    return {"decay": (decay.on_enter, decay.on_attention, module["on_enter"], module["on_attention"]),
            "weird": (*compile_rule(weird_enter, weird_attention), weird_enter, weird_attention),
            "static": (*compile_rule(weird_enter), weird_enter, None)}


def random_attention(n, seed):
    rng = np.random.default_rng(seed)
    a = np.tril(rng.random((n, n)) ** 4)
    if seed % 2:  # coarse weights: ties everywhere
        a = np.tril(np.floor(rng.random((n, n)) * 3))
        a[np.arange(n), np.arange(n)] += 1
    return a / a.sum(axis=1, keepdims=True)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(rule=st.sampled_from(sorted(RULES)), n=st.integers(1, 70), seed=st.integers(0, 2**31),
       synthetic=st.booleans(), data=st.data())
def test_user_rules_match_the_plain_python_reference(compiled_rules, rule, n, seed, synthetic, data):
    from kernels.eviction.custom import CustomSimulation

    enter, attention, py_enter, py_attention = compiled_rules[rule]
    trace = synthetic_trace(n * 4, heavy_hitters=8, heavy_life=data.draw(st.sampled_from([0, 9])), seed=seed % 100,
                            background=data.draw(st.sampled_from([0.0, 0.1]))) if synthetic \
        else model_trace(random_attention(n, seed))
    capacity = data.draw(st.integers(1, n + 3))
    first = data.draw(st.integers(0, capacity // 2))
    recent = data.draw(st.integers(0, capacity - first))
    sinks, window = data.draw(st.integers(0, 6)), data.draw(st.integers(0, 9))
    tau = data.draw(st.sampled_from([1, to_fixed(0.01), to_fixed(0.1)]))
    sim = CustomSimulation(enter, attention, first, recent, trace, capacity, sinks, window, tau, record_evictions=True)
    cut = data.draw(st.integers(0, trace.n))
    sim.run(0, cut)
    sim.run(cut, trace.n)
    assert sim.fault.tolist() == [0, 0, 0]
    run = RunSettings(capacity, sinks, window, tau / ONE)
    want = ref.simulate("rule", trace, capacity, sinks, window, tau, rule=(py_enter, py_attention, first, recent, run))
    got = sim.counters()
    for key in ("tokens_processed", "accesses", "hits", "misses", "evictions", "cached", "recall_sum"):
        assert got[key] == want[key], key
    assert sim.kept().tolist() == want["kept"]
    assert sim.evicted_at.tolist() == want["evicted_at"]
    assert [tuple(r) for r in sim.timeline().tolist()] == [tuple(float(x) for x in r) for r in want["timeline"]]


# ---------- mistakes: a named error with the file and the line; the others unaffected ----------

GOOD = """
NAME = "{name}"
PROTECT_FIRST = 0
PROTECT_RECENT = 0

def on_enter(t, run):
    return 0.0

def on_attention(score, attention, age, t, run):
    return score + attention
"""

BROKEN = {  # file body → (code, line of the mistake or None)
    "syntax": ("NAME = 'x'\ndef on_enter(t, run)\n    return 0.0\n", "syntax_error", 2),
    "raises": ("NAME = 'x'\nimport math\nLIMIT = math.sqrt(-1)\n", "import_error", 3),
    "missing": ("NAME = 'x'\nPROTECT_FIRST = 0\n", "missing_function", None),
    "signature": ("NAME = 'x'\n\ndef on_enter(t):\n    return 0.0\n", "bad_signature", 3),
    "uncompilable": ("NAME = 'x'\n\ndef on_enter(t, run):\n    return 0.0\n\n"
                     "def on_attention(score, attention, age, t, run):\n    return score + 'heavy'\n",
                     "compile_error", 7),
    "declaration": ("NAME = 'x'\nPROTECT_RECENT = 'recent'\ndef on_enter(t, run):\n    return 0.0\n",
                    "bad_declaration", None),
    "reserved": ("NAME = 'h2o'\ndef on_enter(t, run):\n    return 0.0\n", "name_taken", None),
    "no_name": ("def on_enter(t, run):\n    return 0.0\n", "bad_declaration", None),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_broken_file_gets_its_named_error_with_file_and_line(case, tmp_path):
    body, code, line = BROKEN[case]
    path = tmp_path / f"{case}.py"
    path.write_text(body)
    with pytest.raises(PolicyFileError) as info:
        load_source(body, str(path))
    err = info.value
    assert (err.code, err.line, err.file) == (code, line, str(path))
    assert str(path) in err.message and (line is None or f"line {line}" in err.message)
    if code == "compile_error":  # Numba's reason, in one line
        assert "cannot compile the rule: No implementation of function" in err.message and "add(float64" in err.message


NAN_RULE = """
NAME = "nan_late"
PROTECT_FIRST = 0
PROTECT_RECENT = 0

def on_enter(t, run):
    return 0.0

def on_attention(score, attention, age, t, run):
    return score + attention if t < 200 else (score - score) / (age - age)
"""


def test_a_folder_with_broken_files_loads_the_good_ones_and_names_the_rest(api_with, tmp_path):
    api = api_with
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "good.py").write_text(GOOD.format(name="good_rule"))
    (folder / "nan_late.py").write_text(NAN_RULE)
    for case in ("syntax", "missing", "uncompilable"):
        (folder / f"{case}.py").write_text(BROKEN[case][0])
    (folder / "twin.py").write_text(GOOD.format(name="good_rule"))  # the same NAME twice
    listing = api.reload_policies()
    assert listing["ok"], listing
    assert sorted(p["name"] for p in listing["policies"]) == ["good_rule", "nan_late"]
    errors = {Path(e["file"]).name: e for e in listing["errors"]}
    assert {k: e["code"] for k, e in errors.items()} == {
        "syntax.py": "syntax_error", "missing.py": "missing_function", "uncompilable.py": "compile_error",
        "twin.py": "name_taken"}
    assert errors["syntax.py"]["line"] == 2 and errors["uncompilable.py"]["line"] == 7
    names = [p["name"] for p in api.eviction_policies()["policies"]]
    assert names[:7] == ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova", "oracle"]
    assert {"good_rule", "nan_late"} <= set(names)

    # A rule returning NaN: alone, the job fails with the named error (file, line, step, key) ...
    params = {"length": 1000, "cache_size": 32, "sinks": 2, "window": 8}
    status = wait_job(api, api.simulate({**params, "policy": "nan_late"})["job_id"])
    assert status["state"] == "error" and status["error"]["code"] == "rule_nan"
    assert f"{folder / 'nan_late.py'}, line 9" in status["error"]["message"] and "step 200" in status["error"]["message"]
    # ... beside others, it is listed as failed and every other policy's result stands.
    status = wait_job(api, api.simulate({**params, "policy": "all"})["job_id"])
    assert status["state"] == "done", status
    out = status["result"]
    assert [f["policy"] for f in out["failed"]] == ["nan_late"] and out["failed"][0]["error"]["code"] == "rule_nan"
    assert [r["policy"] for r in out["results"]] == ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova",
                                                     "good_rule"]
    # The app stays usable, and fixing the file is one Reload away.
    (folder / "nan_late.py").write_text(NAN_RULE.replace("if t < 200 else", "if t < 10**9 else"))
    (folder / "syntax.py").unlink()
    listing = api.reload_policies()
    assert "syntax.py" not in {Path(e["file"]).name for e in listing["errors"]}
    status = wait_job(api, api.simulate({**params, "policy": "nan_late"})["job_id"])
    assert status["state"] == "done" and status["result"]["results"][0]["evictions"] == 1000 - 32


def test_protecting_more_than_the_cache_is_refused_by_name(api_with, tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "greedy.py").write_text(GOOD.format(name="greedy").replace("PROTECT_RECENT = 0", "PROTECT_RECENT = 40"))
    assert api_with.reload_policies()["ok"]
    status = wait_job(api_with, api_with.simulate({"length": 500, "cache_size": 32, "window": 8,
                                                   "policy": "greedy"})["job_id"])
    assert status["error"]["code"] == "protects_too_much" and status["error"]["field"] == "cache_size"


def test_only_the_policies_folder_loads_without_asking(api_with, tmp_path):
    api = api_with
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "mine.py").write_text(GOOD.format(name="mine"))
    for call, params in ((api.load_policy_file, {"path": str(outside / "mine.py")}),
                         (api.reload_policies, {"folder": str(outside)})):
        refused = call(params)
        assert refused["error"]["code"] == "needs_trust" and "runs its Python code" in refused["error"]["message"]
        assert "mine" not in [p["name"] for p in api.user_policies()["policies"]]
    loaded = api.load_policy_file({"path": str(outside / "mine.py"), "trust": True})
    assert loaded["ok"] and loaded["policy"]["name"] == "mine" and loaded["files"] == [str(outside / "mine.py")]
    assert "mine" in [p["name"] for p in api.reload_policies()["policies"]]  # a trusted file stays across reloads
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "local.py").write_text(GOOD.format(name="local"))
    assert api.load_policy_file({"path": str(folder / "local.py")})["ok"]  # the folder's own: no question
    assert api.load_policy_file({"path": str(tmp_path / "none.py"), "trust": True})["error"]["code"] == "not_found"


def test_cli_simulate_with_a_policy_file(monkeypatch, tmp_path, capsys):
    import main

    monkeypatch.setenv("SINKVIS_POLICY_DIR", str(tmp_path / "policies"))
    code = main.main(["simulate", "--length", "3000", "--cache-size", "64", "--window", "32", "--policy", "all",
                      "--policy-file", str(EXAMPLES / "h2o_decay.py"), "--json"])
    assert code == 0
    rows = {r["policy"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert set(rows) == {"full", "sliding_window", "streaming_llm", "h2o", "lru", "tova", "h2o_decay"}
    assert rows["h2o_decay"]["evictions"] == 3000 - 64 and rows["h2o_decay"]["retained_sinks"]["kept"] == 4
    assert main.main(["simulate", "--policy-file", str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    unregister_policy("h2o_decay")  # the CLI's Api offered it to Evaluate (process-wide): not to later tests


def test_the_docs_example_is_the_shipped_h2o_decay_file():
    readme = (ROOT / "docs" / "write-your-own-policy.md").read_text(encoding="utf-8")
    example = (EXAMPLES / "h2o_decay.py").read_text(encoding="utf-8")
    assert textwrap.dedent(example).strip() in readme


# ---------- Evaluate: the rules decide per layer and KV head on the model's real cache ----------

def test_each_example_equals_its_builtin_twin_in_evaluate(demo_api, examples):
    """The demo model over a real KV cache: each rule file beside its built-in twin in one batched run
    gives the same perplexity, KL and kept entries (per layer and KV head) at every step."""
    from backend.evaluate.run import evaluate

    loaded = demo_api._state.model
    text = (ROOT / "assets" / "eval" / "jargon-heldout.txt").read_text(encoding="utf-8")
    ids = loaded.tokenizer(text)["input_ids"][:120]
    registry = PolicyRegistry(EXAMPLES)  # published: Evaluate offers the examples while this test runs
    registry._compiled = examples._compiled  # the compiled rules, not a second compile
    registry.reload()
    assert {"h2o_rule", "h2o_decay"} <= set(registered_policies())
    try:
        policies = [p for name in TWINS for p in (name, f"{name}_rule")]
        out = evaluate(loaded, ids, policies, cache_size=24, sinks=2, window=8, keep_trace=True)
    finally:
        registry.unpublish()
    assert "h2o_rule" not in registered_policies()
    results = {r["policy"]: r for r in out["results"]}
    for name in TWINS:
        want, got = results[name], results[f"{name}_rule"]
        assert want["evictions"] == len(ids) - 1 - 24 > 0
        for key in ("perplexity", "kl_vs_full", "curve", "evictions", "granularity", "final_kept"):
            assert got[key] == want[key], (name, key)
        assert np.array_equal(got["trace"], want["trace"]), name  # every row each unit was shown
    assert results["h2o_rule"]["granularity"] == "per KV head"
    assert results["streaming_llm_rule"]["granularity"] == "same positions in every head"


# The sweep test (rule files sent to Ray workers) is in tests/test_sweep_ray.py: it shares that module's cluster.
