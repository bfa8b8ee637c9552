"""Sweeps on this machine: the grid, the results file, resume, and each cell against a single
Simulate / Evaluate run with the same settings (the Api's own jobs). Ray: tests/test_sweep_ray.py."""
import json

import pytest
from helpers import ROOT, wait_job

from backend.errors import UserError
from backend.sweep import LocalRunner, parse_spec, plan, read_rows, run_sweep
from backend.sweep.grid import auto_sizes
from backend.sweep.results import ResultsWriter

TEXT = (ROOT / "assets" / "eval" / "jargon-heldout.txt").read_text(encoding="utf-8")[:420]  # ~70 demo tokens


def synthetic_spec(**extra):
    return parse_spec({"kind": "simulate", "models": ["synthetic"], "cache_sizes": [16, 64, 256], "sinks": 4,
                       "texts": [{"name": "syn", "synthetic": {"length": 3000, "seed": 3}}], **extra})


def metrics(path):
    return {r["key"]: r["metrics"] for r in read_rows(path)}


def test_auto_grid_is_log_spaced_from_a_32nd_of_the_text_and_keys_are_stable():
    sizes = auto_sizes(1024)
    assert len(sizes) == 8 and sizes[0] == 32 and sizes[-1] == 1024
    assert all(abs(b / a - 32 ** (1 / 7)) < 0.03 for a, b in zip(sizes, sizes[1:]))  # log-spaced
    spec = parse_spec({"kind": "simulate", "models": ["synthetic"], "sinks": 4,
                       "texts": [{"name": "syn", "synthetic": {"length": 4096}}]})
    cells = plan(spec, "/nonexistent/results.jsonl")["cells"]
    full = [c for c in cells if c.policy == "full"]
    assert len(full) == 1 and full[0].cache_size == 4096  # Full Cache keeps everything: one cell per text
    others = [c for c in cells if c.policy != "full"]
    assert sorted({c.cache_size for c in others}) == auto_sizes(4096)
    assert all(c.window == c.cache_size // 2 for c in others)  # window = C/2 unless set
    assert len(others) == 5 * 8  # the oracle needs a model trace
    assert len({c.key for c in cells}) == len(cells)
    again = plan(parse_spec({"kind": "simulate", "models": ["synthetic"], "sinks": 4,
                             "texts": [{"name": "syn", "synthetic": {"length": 4096}}]}), "/nonexistent")["cells"]
    assert [c.key for c in again] == [c.key for c in cells]
    with pytest.raises(UserError) as err:
        parse_spec({"kind": "evaluate", "models": ["demo"], "policies": ["oracle"], "texts": [{"text": "x"}]})
    assert err.value.field == "policies"


def test_an_edited_user_rule_is_a_new_cell_and_built_in_keys_stay_as_before(tmp_path):
    """A cell of a user policy carries its rule text's hash, so editing the rule (same NAME) re-runs its cells;
    built-in cells keep the keys of results files written before that field existed."""
    import shutil

    from backend.eviction.custom_policies import PolicyRegistry
    from backend.sweep.spec import Cell

    assert Cell("evaluate", "demo", "jargon-heldout.txt", "da9ca31ecceebd48", "h2o", 64, 4, 32, "{}").key \
        == "6a9ced31215f88f7b55f"  # the key an earlier SinkVis wrote for this cell
    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / "policies" / "h2o_decay.py", folder)
    registry = PolicyRegistry(folder, publish=False)

    def keys():
        registry.reload()
        spec = parse_spec({"kind": "simulate", "models": ["synthetic"], "cache_sizes": [16, 64], "sinks": 4,
                           "policies": ["h2o", "h2o_decay"], "texts": [{"name": "syn", "synthetic": {"length": 3000}}]},
                          registry.snapshot())
        cells = plan(spec, "/nonexistent")["cells"]
        return {(c.policy, c.cache_size): c for c in cells}

    before = keys()
    assert before["h2o_decay", 16].rule_sha and not before["h2o", 16].rule_sha
    rule = folder / "h2o_decay.py"
    rule.write_text(rule.read_text() + "\n# edited: same NAME, another rule\n")
    after = keys()
    for size in (16, 64):
        assert after["h2o", size].key == before["h2o", size].key
        assert after["h2o_decay", size].key != before["h2o_decay", size].key


def test_results_file_keeps_the_first_row_per_key_ignores_a_torn_line_and_has_one_writer(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"key": "a", "v": 1}) + "\n" + json.dumps({"key": "a", "v": 2}) + "\n" + '{"key": "b", "v"')
    assert read_rows(path) == [{"key": "a", "v": 1}]
    with ResultsWriter(path) as w:
        assert not w.append({"key": "a", "v": 3})
        assert w.append({"key": "b", "v": 4})
        with pytest.raises(UserError) as err, ResultsWriter(path):
            pass
        assert err.value.code == "busy"
    assert read_rows(path) == [{"key": "a", "v": 1}, {"key": "b", "v": 4}]


def test_simulate_cells_equal_single_simulate_runs_and_resume_runs_only_the_missing_cells(api, tmp_path):
    spec = synthetic_spec()
    full_path, part_path = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    run_sweep(spec, full_path, LocalRunner(0))
    rows = read_rows(full_path)
    assert len(rows) == 1 + 5 * 3
    for r in rows:
        c = r["cell"]
        if c["policy"] == "full":
            continue
        job = api.simulate({"trace": "synthetic", "length": 3000, "seed": 3, "cache_size": c["cache_size"], "sinks": 4,
                            "window": c["window"], "policy": c["policy"]})
        single = wait_job(api, job["job_id"])["result"]["results"][0]
        for k in ("hit_rate", "attention_recall", "hits", "accesses", "evictions"):
            assert r["metrics"][k] == single[k], (c, k)
    # Stop after the first task, rerun: only the missing cells run, and the file ends equal to the full run.
    seen = []
    first = run_sweep(spec, part_path, LocalRunner(0), on_rows=seen.extend, should_stop=lambda: bool(seen))
    assert first["cancelled"] and 0 < len(read_rows(part_path)) < len(rows)
    have = {r["key"] for r in read_rows(part_path)}
    rerun = []
    second = run_sweep(spec, part_path, LocalRunner(0), on_rows=rerun.extend)
    assert second["cells_skipped"] == len(have) and {r["key"] for r in rerun}.isdisjoint(have)
    assert len(read_rows(part_path)) == len(rows) == len(part_path.read_text().splitlines())
    assert metrics(part_path) == metrics(full_path)
    third = run_sweep(spec, part_path, LocalRunner(0))
    assert third["written"] == 0 and third["cells_todo"] == 0


def test_model_cells_equal_single_simulate_and_evaluate_runs(demo_api, tmp_path):
    common = {"models": ["demo"], "texts": [{"name": "j", "text": TEXT}], "cache_sizes": [16], "sinks": 4, "max_tokens": 512}
    sim = parse_spec({"kind": "simulate", "policies": ["streaming_llm", "h2o", "oracle"], **common})
    ev = parse_spec({"kind": "evaluate", "policies": ["full", "streaming_llm", "h2o"], **common})
    run_sweep(sim, tmp_path / "s.jsonl", LocalRunner(0))
    run_sweep(ev, tmp_path / "e.jsonl", LocalRunner(0))
    job = demo_api.simulate({"trace": "model", "text": TEXT, "cache_size": 16, "sinks": 4, "window": 8, "policy": "all"})
    single = {r["policy"]: r for r in wait_job(demo_api, job["job_id"])["result"]["results"]}
    for r in read_rows(tmp_path / "s.jsonl"):
        for k in ("hit_rate", "attention_recall", "hits", "evictions"):
            assert r["metrics"][k] == single[r["cell"]["policy"]][k], (r["cell"]["policy"], k)
        assert r["kv_bytes_per_token"] == demo_api.model_info()["spec"]["kv_bytes_per_token"]
    job = demo_api.evaluate({"text": TEXT, "max_tokens": 512, "cache_size": 16, "sinks": 4, "window": 8,
                             "policy": ["streaming_llm", "h2o"]})
    single = {r["policy"]: r for r in wait_job(demo_api, job["job_id"])["result"]["results"]}
    rows = read_rows(tmp_path / "e.jsonl")
    assert {r["cell"]["policy"] for r in rows} == {"full", "streaming_llm", "h2o"}
    for r in rows:
        assert r["metrics"]["perplexity"] == pytest.approx(single[r["cell"]["policy"]]["perplexity"], rel=1e-9)
        assert r["metrics"]["kl_vs_full"] == pytest.approx(single[r["cell"]["policy"]]["kl_vs_full"], rel=1e-9, abs=1e-12)
        if r["cell"]["policy"] == "full":
            assert r["kv_tokens"] == r["tokens"] and r["compression_ratio"] == 0
        else:
            assert r["kv_bytes"] == 16 * r["kv_bytes_per_token"] and r["compression_ratio"] == pytest.approx(1 - 16 / r["tokens"])


def test_api_sweep_job_progress_rows_and_errors(api, tmp_path, monkeypatch):
    import backend.api.app as app_module

    monkeypatch.setattr(app_module, "EXPORT_DIR", tmp_path)
    assert api.sweep_start({"kind": "simulate"})["error"]["field"] == "out"  # nothing starts without a file name
    assert api.sweep_start({"out": "x.jsonl", "ray": "not an address"})["error"]["field"] == "ray"
    params = {"out": "s.jsonl", "kind": "simulate", "models": ["synthetic"], "workers": 0, "cache_sizes": "16,64",
              "texts": [{"name": "syn", "synthetic": {"length": 2000}}], "policies": ["streaming_llm", "h2o"]}
    started = api.sweep_start(params)
    assert started["ok"], started
    status = wait_job(api, started["job_id"])
    assert status["state"] == "done" and status["result"]["written"] == 4
    progress = api.sweep_progress({"job_id": started["job_id"], "since": 1})
    assert progress["rows_total"] == 4 and len(progress["rows"]) == 3
    assert progress["sweep"]["cells_done"] == 4 and progress["sweep"]["cells_per_minute"] > 0
    assert api.sweep_results({})["files"] == ["s.jsonl"]
    assert len(api.sweep_results({"file": "s.jsonl"})["rows"]) == 4
    again = wait_job(api, api.sweep_start(params)["job_id"])  # resumed: nothing left to run
    assert again["result"]["written"] == 0 and again["result"]["cells_skipped"] == 4


def test_cli_prints_the_frontier(tmp_path, capsys):
    import main

    out = tmp_path / "cli.jsonl"
    argv = ["sweep", "--model", "synthetic", "--synthetic-length", "2000", "--kind", "simulate", "--cache-sizes",
            "32,128", "--policy", "full,sliding_window,streaming_llm", "--out", str(out), "--workers", "0"]
    assert main.main(argv) == 0
    printed = capsys.readouterr().out
    assert "C=32" in printed and "C=128" in printed and "streaming_llm" in printed
    assert main.main(argv + ["--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["written"] == 0 and len(doc["rows"]) == 5
