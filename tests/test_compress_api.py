"""Evaluate's kvpress protocol through the Api and the CLI (protocol "prefill", backend/compress)."""
import json
import subprocess
import sys

import pytest

from helpers import ROOT, wait_job


def test_api_prefill_protocol_runs_as_a_job(demo_api):
    job = demo_api.evaluate({"protocol": "prefill", "max_tokens": 200, "context_tokens": 150,
                             "continuation_tokens": 40, "ratio": 0.5, "policy": ["h2o", "snapkv", "knorm"]})
    assert job["ok"], job
    assert job["policies"] == ["full", "h2o", "snapkv", "knorm"] and job["settings"]["ratio"] == 0.5
    status = wait_job(demo_api, job["job_id"])
    assert status["state"] == "done", status
    result = status["result"]
    assert result["protocol"] == "prefill"
    rows = {r["policy"]: r for r in result["results"]}
    assert rows["full"]["kl_vs_full"] == 0.0 and rows["full"]["memory_tokens"] == 150
    assert all(rows[m]["memory_tokens"] == 75 and rows[m]["kl_vs_full"] > 0 for m in ("h2o", "snapkv", "knorm"))
    info = demo_api.evaluate_info()
    assert "prefill" in info["protocols"] and "adakv_snapkv" in info["prefill_methods"]


@pytest.mark.parametrize("params, field", [({"ratio": 1.5}, "ratio"), ({"policy": ["lru"]}, "policy"),
                                           ({"context_tokens": 5000}, "context_tokens"), ({"protocol": "x"}, "protocol")])
def test_api_prefill_protocol_bad_input_names_the_field(demo_api, params, field):
    out = demo_api.evaluate({"protocol": "prefill", "max_tokens": 100, **params})
    assert not out["ok"] and out["error"]["field"] == field, out


def test_cli_prefill_protocol():
    out = subprocess.run([sys.executable, "main.py", "evaluate", "--protocol", "prefill", "--max-tokens", "160",
                          "--context-tokens", "120", "--ratio", "0.75", "--policy", "streaming_llm,tova", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert [r["policy"] for r in doc["results"]] == ["full", "streaming_llm", "tova"]
    assert doc["settings"]["continuation_tokens"] == 40 and doc["results"][1]["memory_tokens"] == 30


def test_cli_prefill_table(demo_api, capsys):
    """The text form, in-process on the loaded demo model (the JSON form above runs the real command)."""
    import argparse

    from backend.cli.evaluate import add_arguments, run_prefill

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--protocol", "prefill", "--max-tokens", "100", "--cache-size", "20", "--policy", "snapkv"])
    assert run_prefill(args, demo_api) == 0
    out = capsys.readouterr()
    assert "prefill protocol" in out.out and "snapkv" in out.out and "note: snapkv" in out.err
