"""Every CLI subcommand's --json beside the Api result it comes from (issue #23): the same keys
at every level and the same values, timings aside; a subcommand leaves out only what it names
as UI-only (profile's per-block arrays, unless --blocks). Cheap settings: the demo model,
short texts, small simulations, one Api for the CLI and the direct calls."""
import importlib
import json

import pytest
from helpers import wait_job

import main
from backend.cli import SUBCOMMANDS
from backend.cli.profile import BLOCK_ARRAYS

TEXT = "The quick brown fox jumps over the lazy dog. Sinks hold attention."
# Wall-clock fields: two runs differ in them (a sweep row's `finished` is a timestamp to the second).
TIMING = {"seconds", "step_seconds", "tokens_per_second", "seconds_per_batched_step", "cells_per_minute",
          "seconds_left", "elapsed", "task_seconds", "done_at", "written_at", "finished"}


def scrub(obj, vary=frozenset()):
    """The result with every timing (and `vary`) value replaced by None: keys stay, so they are compared too."""
    if isinstance(obj, dict):
        return {k: None if k in TIMING or k in vary else scrub(v, vary) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v, vary) for v in obj]
    return obj


def api_result(envelope: dict) -> dict:
    assert envelope["ok"], envelope
    return {k: v for k, v in envelope.items() if k != "ok"}


def job_result(api, envelope: dict) -> dict:
    status = wait_job(api, api_result(envelope)["job_id"])
    assert status["state"] == "done", status
    return status["result"]


@pytest.fixture(scope="module")
def api():
    from backend.api import Api

    instance = Api()
    yield instance
    instance._state.jobs.cancel_all()


def cli(api, capsys, *argv) -> list:
    """Run `main.py ARGV --json` on this Api; every JSON document it printed (JSON Lines: several)."""
    args = main._parser().parse_args([*argv, "--json"])
    capsys.readouterr()
    assert importlib.import_module(f"backend.cli.{args.command}").run(args, api) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def attention(api, capsys, tmp_path):
    [printed] = cli(api, capsys, "attention", "--model", "demo", "--text", TEXT)
    return printed, api_result(api.attention({"text": TEXT, "layer": -1, "head": None, "sink_threshold": 0.10}))


def evaluate(api, capsys, tmp_path):
    """Past the demo model's 256-token context, so the within/past-context perplexities are there."""
    [printed] = cli(api, capsys, "evaluate", "--model", "demo", "--max-tokens", "270", "--cache-size", "16",
                    "--sinks", "2", "--window", "8", "--policy", "full,streaming_llm,h2o", "--granularity", "shared")
    direct = job_result(api, api.evaluate({"text": None, "policy": ["full", "streaming_llm", "h2o"],
                                           "positions": "original", "granularity": "shared", "max_tokens": 270,
                                           "cache_size": 16, "sinks": 2, "window": 8}))
    assert all("perplexity_past_context" in r and "perplexity_within_context" in r for r in printed["results"])
    assert "timing" in printed and "curve" in printed["results"][0]
    return printed, direct


def evaluate_prefill(api, capsys, tmp_path):
    """kvpress's protocol: the context compressed once, the continuation scored."""
    [printed] = cli(api, capsys, "evaluate", "--model", "demo", "--protocol", "prefill", "--max-tokens", "120",
                    "--ratio", "0.5", "--policy", "full,snapkv,knorm")
    direct = job_result(api, api.evaluate({"protocol": "prefill", "text": None, "policy": ["full", "snapkv", "knorm"],
                                           "max_tokens": 120, "ratio": 0.5}))
    assert [r["policy"] for r in printed["results"]] == ["full", "snapkv", "knorm"]
    return printed, direct


def retrieval(api, capsys, tmp_path):
    [printed] = cli(api, capsys, "retrieval", "--model", "demo", "--lengths", "96", "--depths", "0,0.5",
                    "--cache-size", "32", "--chunk", "8", "--policy", "full,streaming_llm")
    direct = job_result(api, api.retrieval({"task": "pass_key", "protocol": "streaming", "seed": 0,
                                            "chat_template": False, "policy": ["full", "streaming_llm"],
                                            "lengths": [96], "depths": [0, 0.5], "cache_size": 32, "chunk": 8}))
    assert len(printed["cells"]) == 4 and "needle_kept" in printed["cells"][0]
    return printed, direct


def simulate(api, capsys, tmp_path):
    [printed] = cli(api, capsys, "simulate", "--length", "3000", "--cache-size", "64", "--window", "16")
    direct = job_result(api, api.simulate({"trace": "synthetic", "length": 3000, "cache_size": 64, "sinks": 4,
                                           "window": 16, "access_threshold": 0.01, "policy": "all", "seed": 0}))
    assert "timeline" in printed["results"][0] and "synthetic" in printed["trace"]
    return printed, direct


PROFILE = {"trace": "synthetic", "length": 3000, "block_size": 16, "preset": "constrained", "seed": 0,
           "policy": "lru", "reuse": 16, "window": 16, "k": 16, "margin": 0.5, "patience": 32}


def profile(api, capsys, tmp_path):
    [printed] = cli(api, capsys, "profile", "--length", "3000")
    direct = job_result(api, api.profile(PROFILE))
    assert not set(BLOCK_ARRAYS) & set(printed)
    [with_blocks] = cli(api, capsys, "profile", "--length", "3000", "--blocks")
    assert scrub(with_blocks) == scrub(direct)
    return printed, {k: v for k, v in direct.items() if k not in BLOCK_ARRAYS}


def profile_scenario(api, capsys, tmp_path):
    [printed] = cli(api, capsys, "profile", "--scenario", "SmolLM2-135M", "--context", "4096")
    direct = job_result(api, api.profile_scenario({"model": "SmolLM2-135M", "context": 4096, "gpu": "H100",
                                                   "dtype": "fp16", "block_size": 16, "fetch_config": False,
                                                   **{k: PROFILE[k] for k in ("policy", "reuse", "window", "k",
                                                                             "margin", "patience")}}))
    assert not set(BLOCK_ARRAYS) & set(printed)  # as for a profile: the block map's arrays only with --blocks
    return printed, {k: v for k, v in direct.items() if k not in BLOCK_ARRAYS}


def stream(api, capsys, tmp_path):
    """JSON Lines: stream_start's result, one stream_step result per step, stream_state's."""
    printed = cli(api, capsys, "stream", "--model", "demo", "--text", TEXT, "--steps", "6", "--generate", "2")
    start = api_result(api.stream_start({"prompt": TEXT, "generate": 2, "temperature": 0.0, "seed": 0,
                                         "sink_threshold": 0.10, "heavy_fraction": 0.10,
                                         "view": {"layer": -1, "head": None}}))
    direct = [{"type": "start", **start}]
    direct += [{"type": "step", **api_result(api.stream_step({"steps": 1}))} for _ in range(6)]
    direct.append({"type": "summary", **api_result(api.stream_state())})
    assert [r["type"] for r in printed] == ["start"] + ["step"] * 6 + ["summary"]
    assert "row" in printed[1]["steps"][0] and "sink_grid" in printed[-1]
    return printed, direct


def sweep(api, capsys, tmp_path, monkeypatch=None):
    import backend.api.app as app_module

    app_module_dir = app_module.EXPORT_DIR
    app_module.EXPORT_DIR = tmp_path / "exports"
    try:
        settings = ["--model", "synthetic", "--synthetic-length", "2000", "--kind", "simulate", "--cache-sizes",
                    "32,128", "--policy", "full,streaming_llm"]
        [printed] = cli(api, capsys, "sweep", *settings, "--out", str(tmp_path / "cli.jsonl"), "--workers", "0")
        direct = job_result(api, api.sweep_start({"out": "api.jsonl", "kind": "simulate", "models": ["synthetic"],
                                                  "texts": [{"name": "synthetic-2000", "synthetic": {"length": 2000}}],
                                                  "cache_sizes": "32,128", "policies": ["full", "streaming_llm"],
                                                  "sinks": 4, "max_tokens": 1024, "access_threshold": 0.01,
                                                  "layer": -1, "workers": 0}))
        rows = api_result(api.sweep_results({"file": "api.jsonl"}))["rows"]
    finally:
        app_module.EXPORT_DIR = app_module_dir
    # The CLI prints the job's result (the run's summary) and the rows of its file; the Api has them in
    # sweep_start's job and sweep_results. Only the file's path and the runner's name may differ.
    return scrub(printed, {"out", "runner"}), scrub({"summary": direct, "rows": rows}, {"out", "runner"})


CASES = {f.__name__: f for f in (attention, evaluate, evaluate_prefill, retrieval, simulate, profile, profile_scenario,
                                  stream, sweep)}


def test_every_subcommand_has_a_case():
    assert set(SUBCOMMANDS) <= set(CASES)


@pytest.mark.parametrize("case", list(CASES))
def test_cli_json_is_the_api_result(case, api, capsys, tmp_path):
    printed, direct = CASES[case](api, capsys, tmp_path)
    assert scrub(printed) == scrub(direct)
