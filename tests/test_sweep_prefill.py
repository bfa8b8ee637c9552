"""Sweeps over kvpress's protocol (kind prefill: each prefill method at each compression ratio) and
Quest in evaluate sweeps, each cell against the direct call with the same settings (demo model)."""
import json

import pytest
from helpers import ROOT, wait_job

from backend.errors import UserError
from backend.sweep import LocalRunner, parse_spec, plan, read_rows, run_sweep
from backend.sweep.cells import _eval_ids, model

TEXT = (ROOT / "assets" / "eval" / "jargon-heldout.txt").read_text(encoding="utf-8")[:420]  # ~70 demo tokens
METHODS = ["full", "streaming_llm", "snapkv", "knorm"]
RATIOS = [0.25, 0.5, 0.75]


def prefill_spec(**extra):
    return parse_spec({"kind": "prefill", "models": ["demo"], "texts": [{"name": "j", "text": TEXT}],
                       "policies": METHODS, "ratios": RATIOS, **extra})


def test_prefill_cells_equal_direct_prefill_perplexity_and_resume_skips_finished_cells(tmp_path):
    from backend.compress import prefill_perplexity

    spec = prefill_spec()
    cells = plan(spec, tmp_path / "none.jsonl")["cells"]
    assert len(cells) == 1 + 3 * len(RATIOS)  # Full Cache once (ratio 0), every other method at every ratio
    path = tmp_path / "p.jsonl"
    seen = []
    first = run_sweep(spec, path, LocalRunner(0), on_rows=seen.extend, should_stop=lambda: bool(seen))
    assert 0 < first["written"] < len(cells)  # stopped after the first task
    rerun = []
    second = run_sweep(spec, path, LocalRunner(0), on_rows=rerun.extend)
    assert second["cells_skipped"] == first["written"] and second["written"] == len(cells) - first["written"]
    assert not {r["key"] for r in seen} & {r["key"] for r in rerun}  # nothing ran twice
    rows = read_rows(path)
    assert len(rows) == len(cells) and len({r["key"] for r in rows}) == len(cells)
    assert run_sweep(spec, path, LocalRunner(0))["written"] == 0

    loaded = model("demo", "auto", "auto")
    ids = _eval_ids(loaded, TEXT, spec.max_tokens)[: loaded.context_length]
    n = rows[0]["cell"]["cache_size"]
    assert n == len(ids) * 3 // 4 and rows[0]["continuation_tokens"] == len(ids) - n  # Evaluate's default split
    per_token = loaded.spec["kv_bytes_per_token"]
    for r in RATIOS:
        direct = prefill_perplexity(loaded, ids, n, len(ids) - n, METHODS, ratio=r, sinks=4, window=32)
        for row in [x for x in rows if x["cell"]["ratio"] == r]:
            want = direct[row["cell"]["policy"]]
            assert row["metrics"]["perplexity"] == pytest.approx(want["perplexity"], rel=1e-9), (r, row["cell"]["policy"])
            assert row["metrics"]["kl_vs_full"] == pytest.approx(want["kl_vs_full"], rel=1e-9, abs=1e-12)
            assert row["kv_tokens"] == want["memory_tokens"] and row["kv_bytes"] == want["memory_tokens"] * per_token
            assert row["compression_ratio"] == r and row["metrics"]["note"] == want["note"]
    full = next(x for x in rows if x["cell"]["policy"] == "full")
    assert full["cell"]["ratio"] == 0 and full["kv_tokens"] == n and full["metrics"]["kl_vs_full"] == 0
    # a finished results file is plain JSON Lines
    assert all(json.loads(line)["key"] for line in path.read_text(encoding="utf-8").splitlines())


def test_prefill_policy_all_is_every_prefill_method_and_bad_kind_or_ratio_is_named():
    from backend.compress.plan import METHODS as BUILT_IN

    spec = prefill_spec(policies="all")
    assert set(spec.policies) == set(BUILT_IN) and spec.policies[0] == "full"
    with pytest.raises(UserError) as err:
        prefill_spec(ratios=[0.5, 1.0])
    assert err.value.code == "ratio_out_of_range" and err.value.field == "ratios"
    with pytest.raises(UserError) as err:
        prefill_spec(ratios="half")
    assert err.value.field == "ratios"
    with pytest.raises(UserError) as err:
        prefill_spec(cache_sizes=[16])
    assert err.value.field == "cache_sizes"
    with pytest.raises(UserError) as err:
        prefill_spec(policies=["lru"])  # a decode-time policy has no prefill form
    assert err.value.field == "policies"
    with pytest.raises(UserError) as err:
        parse_spec({"kind": "kvpress", "models": ["demo"], "texts": [{"text": TEXT}]})
    assert err.value.field == "kind"


def test_quest_is_in_evaluate_sweeps_and_equals_a_direct_evaluate_run(demo_api, tmp_path):
    spec = parse_spec({"kind": "evaluate", "models": ["demo"], "texts": [{"name": "j", "text": TEXT}], "policies": "all",
                       "cache_sizes": [8, 32], "sinks": 4, "max_tokens": 512})
    assert "quest" in spec.policies
    spec = parse_spec({"kind": "evaluate", "models": ["demo"], "texts": [{"name": "j", "text": TEXT}],
                       "policies": ["full", "quest"], "cache_sizes": [8, 32], "sinks": 4, "max_tokens": 512})
    p = plan(spec, tmp_path / "none.jsonl")
    assert [c.cache_size for c in p["cells"] if c.policy == "quest"] == [32]  # C = 8 is below one page of 16
    assert any("Quest page" in note["why"] for note in p["notes"])
    run_sweep(spec, tmp_path / "q.jsonl", LocalRunner(0))
    row = next(r for r in read_rows(tmp_path / "q.jsonl") if r["cell"]["policy"] == "quest")
    job = demo_api.evaluate({"text": TEXT, "max_tokens": 512, "cache_size": 32, "sinks": 4, "window": 16, "policy": ["quest"]})
    single = {r["policy"]: r for r in wait_job(demo_api, job["job_id"])["result"]["results"]}["quest"]
    assert row["metrics"]["perplexity"] == pytest.approx(single["perplexity"], rel=1e-9)
    assert row["metrics"]["kl_vs_full"] == pytest.approx(single["kl_vs_full"], rel=1e-9, abs=1e-12)
    # plotted at what a step reads, not at what it holds (all of Full Cache's entries)
    assert row["memory_is"] == "read per step" and row["kv_tokens"] == single["keys_read_per_step"]
    assert row["memory_held_tokens"] == single["memory_tokens"] > row["kv_tokens"]
    assert row["kv_bytes"] == row["kv_tokens"] * row["kv_bytes_per_token"]


def test_cli_prefill_sweep_prints_ratios(tmp_path, capsys):
    import main

    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    argv = ["sweep", "--kind", "prefill", "--model", "demo", "--text-file", str(text), "--policy", "full,knorm",
            "--ratios", "0.25,0.5", "--out", str(tmp_path / "cli.jsonl"), "--workers", "0"]
    assert main.main(argv) == 0
    printed = capsys.readouterr().out
    assert "r=0.25" in printed and "r=0.5" in printed and "knorm" in printed
    assert main.main(argv[:-6] + ["--ratios", "0,2", "--out", str(tmp_path / "bad.jsonl")]) != 0
    assert "ratio" in capsys.readouterr().err
