"""Cache profile: the service (backend/profile) and its Api methods, CLI included."""
import argparse
import json
import time

import numpy as np
import pytest

from backend.profile import presets, service
from backend.profile.kv_bytes import DEFAULT_SOURCE, GPT2_SMALL, bytes_per_token
from helpers import load, wait_job


def _profile(api, **params):
    started = api.profile(params)
    assert started["ok"], started
    status = wait_job(api, started["job_id"], timeout=120)
    assert status["state"] == "done", status
    return status["result"]


def test_presets_describe_this_machine_and_fill_for_the_length(api):
    out = api.profile_presets({"length": 50_000, "block_size": 16})
    assert out["ok"], out
    assert out["bytes_per_token"] == bytes_per_token(GPT2_SMALL, "float16") == 36_864
    assert out["bytes_per_token_source"] == DEFAULT_SOURCE
    by_name = {p["name"]: p for p in out["presets"]}
    assert set(by_name) == {"detected", "constrained"}
    for p in by_name.values():
        assert [t["id"] for t in p["tiers"]] == ["hbm", "l2", "ram", "disk"]
        assert all(t["capacity_bytes"] >= 0 and t["bandwidth_bps"] > 0 for t in p["tiers"])
        assert p["tiers"][1]["modelled"] is True  # L2 is always a modelled tier
    import psutil

    assert by_name["detected"]["tiers"][2]["capacity_bytes"] <= psutil.virtual_memory().total
    if presets.gpu()["modelled"]:  # no GPU here: the GPU tiers are modelled, and the preset says so
        assert out["gpu_modelled"] and "modelled" in by_name["detected"]["description"]
    else:
        assert not out["gpu_modelled"] and by_name["detected"]["tiers"][0]["capacity_bytes"] > 0
    block = 16 * 36_864
    caps = [t["capacity_bytes"] // block for t in by_name["constrained"]["tiers"]]
    assert sum(caps[:3]) < 50_000 // 16 <= sum(caps)  # the fast tiers cannot hold it all; disk can


def test_profile_job_result_is_consistent(api):
    n, B = 30_000, 16
    result = _profile(api, length=n, block_size=B, preset="constrained")
    s = result["summary"]
    n_blocks = -(-n // B)
    assert s["n_blocks"] == n_blocks == len(result["tier"]) == len(result["access_count"]) == len(result["status"])
    assert [t["blocks"] for t in s["tiers"]] == np.bincount(result["tier"], minlength=4).tolist()
    assert all(t["blocks"] > 0 for t in s["tiers"])                      # constrained: all four tiers fill
    assert all(t["blocks"] <= t["capacity_blocks"] for t in s["tiers"])
    assert sum(t["bytes"] for t in s["tiers"]) == n * s["bytes_per_token"]
    assert sum(t["hits"] for t in s["tiers"]) == s["accesses"] == sum(result["access_count"])
    assert result["status"][0] == service.STATUS_SINK and result["tier"][0] == 0
    assert s["heavy_hitter_blocks"] == result["status"].count(service.STATUS_HEAVY) > 0
    assert s["read_seconds_per_step"] > s["read_seconds_all_hbm"] > 0
    assert s["read_time_ratio"] == pytest.approx(s["read_seconds_per_step"] / s["read_seconds_all_hbm"])
    assert s["bytes_moved"] > 0 and s["promotions"] > 0 and s["demotions"] > 0
    assert "modelled" in s["l2_note"]
    assert result["snapshot_steps"][-1] == n - 1 and len(result["snapshot_steps"]) == 64
    json.dumps(result)  # crosses the bridge as JSON


def test_detected_preset_keeps_a_short_sequence_in_hbm(api):
    s = _profile(api, length=4_000, preset="detected")["summary"]
    assert s["tiers"][0]["blocks"] == s["n_blocks"] and s["read_time_ratio"] == pytest.approx(1.0)


def test_snapshots_of_the_last_profile(api):
    assert api.profile_snapshot({"index": 0})["error"]["code"] == "no_profile"
    result = _profile(api, length=20_000)
    last = api.profile_snapshot({})
    assert last["ok"] and last["tiers"] == result["tier"] and last["step"] == 19_999
    first = api.profile_snapshot({"index": 0})
    assert first["step"] == 0 and first["tiers"][0] == 0 and set(first["tiers"][1:]) == {-1}
    mid = api.profile_snapshot({"step": 10_000})
    steps = result["snapshot_steps"]
    assert mid["step"] == max(s for s in steps if s <= 10_000)
    assert sum(mid["blocks_per_tier"]) == mid["step"] // 16 + 1
    assert api.profile_snapshot({"index": 64})["error"]["field"] == "index"


@pytest.mark.parametrize("params, field", [
    ({"block_size": 0}, "block_size"),
    ({"block_size": 4097}, "block_size"),
    ({"length": 20_000_001}, "length"),
    ({"length": "lots"}, "length"),
    ({"length": 20_000_000, "block_size": 1}, "block_size"),     # too many blocks
    ({"trace": "magic"}, "trace"),
    ({"trace": "model", "text": "hello"}, "trace"),               # no model loaded
    ({"preset": "fast"}, "preset"),
    ({"tiers": [{"capacity_bytes": -1}]}, "tiers.0.capacity_bytes"),
    ({"tiers": [{"capacity_bytes": 1000}]}, "tiers.0.capacity_bytes"),  # HBM below sinks + 1 block
    ({"tiers": [None, None, None, {"capacity_bytes": 0}]}, "tiers.3.capacity_bytes"),
    ({"tiers": [None, {"bandwidth_bps": 0}]}, "tiers.1.bandwidth_bps"),
    ({"tiers": "big"}, "tiers"),
    ({"access_threshold": 0}, "access_threshold"),
    ({"local_mass": 0}, "local_mass"),
    ({"local_decay": float("nan")}, "local_decay"),
])
def test_bad_input_names_the_field(api, params, field):
    out = api.profile({"length": 10_000, **params})
    assert out["ok"] is False and out["error"]["field"] == field, out


def test_cancel_leaves_the_app_usable(api):
    kept = _profile(api, length=5_000)
    started = api.profile({"length": 20_000_000, "block_size": 16})
    assert started["ok"]
    time.sleep(0.3)
    assert api.cancel_job({"job_id": started["job_id"]})["ok"]
    assert wait_job(api, started["job_id"], timeout=60)["state"] == "cancelled"
    assert api.profile_snapshot({})["tiers"] == kept["tier"]  # the cancelled run left the last layout alone
    assert _profile(api, length=3_000)["summary"]["n_tokens"] == 3_000


def test_model_trace_from_an_array_pins_its_sink():
    n = 200
    rng = np.random.default_rng(0)
    att = rng.random((n, n)) * np.tril(np.ones((n, n)))
    att[:, 0] += att.sum(axis=1)  # token 0 takes half of every row: a sink
    att /= att.sum(axis=1, keepdims=True)
    req = service.parse({"trace": "model", "text": "x", "block_size": 8,
                         "tiers": [{"capacity_bytes": 5 * 8 * 100}, {"capacity_bytes": 0}, None, None]}, 100, "test")
    calls = []
    result, kept = service.run(req, lambda f, stage: calls.append(f), att.astype(np.float32))
    assert result["n_tokens"] == n and result["status"][0] == service.STATUS_SINK
    assert (kept["snapshots"][:, 0] == 0).all()                 # pinned to HBM at every snapshot
    assert result["summary"]["tiers"][1]["blocks"] == 0          # an L2 of capacity 0 is skipped
    assert calls == sorted(calls) and calls[-1] < 1


def test_model_trace_through_the_api(api, tiny_model_dir):
    assert load(api, tiny_model_dir)["state"] == "done"
    result = _profile(api, trace="model", text="The quick brown fox jumps over the lazy dog. " * 6, block_size=4,
                      preset="constrained")
    n = result["n_tokens"]
    assert n > 40 and len(result["tier"]) == -(-n // 4)
    assert result["bytes_per_token"] == 2 * 2 * 4 * 16 * 4  # 2 layers, 4 heads of 16, fp32 on CPU


def test_cli_prints_the_summary_and_exits_2_naming_the_field(api, capsys):
    import main
    from backend.cli import profile as cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(["--length", "3000", "--json"]), api) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_tokens"] == 3000 and "tier" not in summary
    assert main.main(["profile", "--length", "100", "--block-size", "0"]) == 2
    assert "block_size" in capsys.readouterr().err


def test_detected_preset_reads_a_cuda_gpu(monkeypatch):
    """No GPU on CI: stand in for torch.cuda and check an H200 gets its spec bandwidth and real sizes."""
    from types import SimpleNamespace

    import torch

    props = SimpleNamespace(name="NVIDIA H200", total_memory=141 * 10**9, L2_cache_size=60 * 2**20)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    presets.gpu.cache_clear()
    try:
        hbm, l2 = presets.detected()["tiers"][:2]
    finally:
        presets.gpu.cache_clear()
    assert hbm["capacity_bytes"] == 141 * 10**9 and hbm["bandwidth_bps"] == 4.8e12 and hbm["modelled"] is False
    assert l2["capacity_bytes"] == 60 * 2**20 and l2["modelled"] is True


def test_detected_hbm_leaves_room_for_the_weights():
    full = presets.detected()["tiers"][0]["capacity_bytes"]
    with_model = presets.detected(weights_bytes=10**9)
    assert with_model["tiers"][0]["capacity_bytes"] == full - 10**9 and "weights" in with_model["description"]
