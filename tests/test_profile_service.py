"""Cache profile: the service (backend/profile) and its Api methods, CLI included."""
import argparse
import json
import math
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


def test_constrained_ratio_is_the_same_for_every_model(api):
    """What the Cache Profile's headline says beside its "N× slower": the Constrained tiers are shares of
    the sequence's KV, so a model's bytes per token cancel out of the ratio (GPT-2 small's 36 KiB and
    Llama-3.1-8B's 128 KiB per token give one ratio), while the times themselves scale with them."""
    runs = [_profile(api, trace="synthetic", length=8_000, preset="constrained", policy="lru", bytes_per_token=bpt)["summary"]
            for bpt in (36 * 1024, 128 * 1024)]
    assert runs[0]["read_time_ratio"] == pytest.approx(runs[1]["read_time_ratio"], rel=1e-12)
    assert runs[1]["read_seconds_per_step"] == pytest.approx(runs[0]["read_seconds_per_step"] * 128 / 36, rel=1e-9)


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


@pytest.mark.parametrize("policy", ["heat", "lru"])
def test_profile_job_result_is_consistent(api, policy):
    n, B = 30_000, 16
    result = _profile(api, length=n, block_size=B, preset="constrained", policy=policy, margin=0.05, patience=4)
    s = result["summary"]
    n_blocks = -(-n // B)
    assert s["n_blocks"] == n_blocks == len(result["tier"]) == len(result["access_count"]) == len(result["status"])
    assert [t["blocks"] for t in s["tiers"]] == np.bincount(result["tier"], minlength=4).tolist()
    if policy == "heat":
        assert all(t["blocks"] > 0 for t in s["tiers"])                  # constrained: all four tiers fill
    else:  # LRU offload leaves the modelled L2 empty, as real systems do
        assert s["tiers"][1]["capacity_blocks"] == s["tiers"][1]["blocks"] == 0 and "L2" in s["tiers"][1]["unused"]
        assert all(s["tiers"][i]["blocks"] > 0 for i in (0, 2, 3))
    tl = result["timeline"]  # per-step cost over the run: buckets cover every step once
    assert tl["first_step"][0] == 0 and tl["last_step"][-1] == n - 1 and len(tl["read_seconds"]) == 512
    steps = np.array(tl["last_step"]) - np.array(tl["first_step"]) + 1
    assert np.dot(tl["read_seconds"], steps) / n == pytest.approx(s["read_seconds_per_step"])
    assert np.dot(tl["moved_bytes"], steps) == pytest.approx(s["bytes_moved"])
    assert tl["all_hbm_seconds"][-1] > tl["all_hbm_seconds"][0] and "mean" in s["read_time_is"]
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
    # The cost at the scrubbed step, from the tiers at that step (dense attention reads every block where it lives)
    tiers = result["summary"]["tiers"]
    placed = np.array(mid["tiers"])
    tokens = np.bincount(placed[placed >= 0], minlength=4) * 16
    tokens[placed[mid["step"] // 16]] -= 16 - (mid["step"] % 16 + 1)  # the block being written
    expected = sum(tok * 36_864 / t["bandwidth_bps"] for tok, t in zip(tokens, tiers) if tok)
    assert mid["read_seconds"] == pytest.approx(expected) and mid["all_hbm_seconds"] > 0
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
    ({"policy": "fifo"}, "policy"),
    ({"policy": "topk", "window": 0}, "window"),
    ({"policy": "topk", "k": 100, "tiers": [{"capacity_bytes": 50 * 16 * 36_864}]}, "tiers.0.capacity_bytes"),
    ({"policy": "heat", "margin": -1}, "margin"),
    ({"policy": "lru", "reuse": -1}, "reuse"),
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
                      preset="constrained", length=100_000)
    n = result["n_tokens"]
    assert n > 40 and len(result["tier"]) == -(-n // 4)
    assert result["bytes_per_token"] == 2 * 2 * 4 * 16 * 4  # 2 layers, 4 heads of 16, fp32 on CPU
    # The tiers are sized from the profiled sequence, not from the synthetic length (100,000) it ignores.
    hbm = result["summary"]["tiers"][0]
    assert hbm["capacity_blocks"] == max(math.ceil(0.2 * len(result["tier"])), result["summary"]["sink_blocks"] + 1)
    assert hbm["blocks"] < len(result["tier"]) and result["summary"]["read_time_ratio"] > 1


def test_model_trace_on_the_demo_model_mean_over_layers_and_one_layer(demo_api):
    text = "The quick brown fox jumps over the lazy dog while the hacker reads the jargon file. " * 8
    mean = _profile(demo_api, trace="model", text=text, aggregate="all_layers", policy="topk", window=4, k=3)
    one = _profile(demo_api, trace="model", text=text, aggregate="layer", layer=1, policy="topk", window=4, k=3)
    assert mean["n_tokens"] == one["n_tokens"] > 100
    assert mean["access_count"] != one["access_count"]  # the layer's own attention, not the mean
    s = mean["summary"]
    # top-k reads the sinks + window + k blocks per step once enough blocks are offloaded
    assert s["read_bytes_per_step"] < 0.5 * s["kv_bytes"]


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


# ---- "What would it cost at scale?" ----

def test_scenario_llama_3_1_8b_sizes_and_hbm_exhaustion(api):
    """32 layers × 8 KV heads × 128 × fp16 × 2 = 128 KiB per token; 128k tokens = 16 GiB; HBM runs out
    on an 80 GB GPU after 16 GB of weights at 64e9 / 131,072 = 488,281 tokens (whole blocks of 16: 488,272)."""
    started = api.profile_scenario({"model": "Llama-3.1-8B", "context": 131_072, "gpu": "H100",
                                    "weights_bytes": 16e9, "gpu_memory_bytes": 80e9, "policy": "lru"})
    assert started["ok"], started
    status = wait_job(api, started["job_id"], timeout=120)
    assert status["state"] == "done", status
    s = status["result"]["scenario"]
    assert s["bytes_per_token"] == 128 * 1024 and s["kv_bytes"] == 16 * 2**30
    assert abs(s["hbm_runs_out_at_tokens"] - (80e9 - 16e9) / (128 * 1024)) < 16
    assert s["hbm_runs_out_at_tokens"] % 16 == 0 and s["fits_in_hbm"] is True
    replay = status["result"]["replay"]
    assert replay["n_tokens"] == 131_072 and replay["tiers"][0]["blocks"] == replay["n_blocks"]  # it all fits
    assert "default synthetic shape" in s["shape_source"]  # no model loaded: said so


def test_scenario_carries_its_block_map_and_the_scrubber_walks_it(api):
    """The Cache Profile draws the replay like a profile (issue 33, item 8): one tier, status and access
    count per block, the snapshot steps, and profile_snapshot answering for the replay's blocks."""
    started = api.profile_scenario({"model": "SmolLM2-135M", "context": 40_000, "gpu": "L4", "policy": "lru"})
    out = wait_job(api, started["job_id"], timeout=120)["result"]
    replay = out["replay"]
    assert out["n_tokens"] == replay["n_tokens"] == 40_000 and out["block_size"] == 16
    assert len(out["tier"]) == len(out["status"]) == len(out["access_count"]) == replay["n_blocks"] == 2_500
    assert [out["tier"].count(i) for i in range(4)] == [t["blocks"] for t in replay["tiers"]]
    last = api.profile_snapshot({"index": len(out["snapshot_steps"]) - 1})
    assert last["step"] == out["snapshot_steps"][-1] and last["tiers"] == out["tier"]
    first = api.profile_snapshot({"index": 0})
    assert len(first["tiers"]) == replay["n_blocks"] and first["step"] == 0


def test_scenario_says_quests_fetch_rule_is_not_replayed(api):
    """The replay is a synthetic trace: no keys or queries to rank Quest's pages by. The result says so
    (issue 33, item 11) instead of silently fetching by attention mass."""
    results = {}
    for rule in ("attention", "quest_bound"):
        started = api.profile_scenario({"model": "Llama-3.1-8B", "context": 16_384, "gpu": "H100", "policy": "topk",
                                        "k": 4, "window": 4, "fetch_rule": rule})
        assert started["ok"], started
        results[rule] = wait_job(api, started["job_id"], timeout=120)["result"]
    assert "note" not in results["attention"]
    assert "not Quest's page choice" in results["quest_bound"]["note"]
    same = [{k: v for k, v in results[r]["replay"].items() if k != "seconds"} for r in ("quest_bound", "attention")]
    assert same[0] == same[1]  # what ran is the attention rule


def test_scenario_at_a_million_tokens_spills_and_says_where(demo_api):
    """The demo model's measured attention shape replayed at 1M tokens of Llama-3.1-8B on an L4."""
    started = demo_api.profile_scenario({"model": "Llama-3.1-8B", "context": 1_000_000, "gpu": "L4", "policy": "lru"})
    status = wait_job(demo_api, started["job_id"], timeout=300)
    assert status["state"] == "done", status
    s, replay = status["result"]["scenario"], status["result"]["replay"]
    assert not s["fits_in_hbm"] and s["hbm_runs_out_at_tokens"] == s["hbm_blocks"] * 16
    shape = s["shape"]
    assert "measured from" in s["shape_source"] and shape["rows"] > 100 and shape["local_mass"] > 0.2
    assert shape["sink_mass"] + shape["local_mass"] + shape["heavy_mass"] + shape["background_mass"] == \
        pytest.approx(1, abs=2e-3)
    assert replay["tiers"][0]["blocks"] == s["hbm_blocks"] and replay["tiers"][2]["blocks"] > 0
    assert replay["read_seconds_per_step"] > replay["read_seconds_all_hbm"]
    assert len(status["result"]["timeline"]["read_seconds"]) == 512


def test_scenario_models_from_the_table_and_a_gguf_header():
    from backend.models.bundled import smollm2_path
    from backend.profile import scenario

    assert scenario.architecture({"model": "Qwen2.5-7B"})["kv_heads"] == 4
    gguf = scenario.architecture({"model": str(smollm2_path())})
    table = scenario.architecture({"model": "SmolLM2-135M"})
    assert (gguf["layers"], gguf["kv_heads"], gguf["head_dim"]) == (table["layers"], table["kv_heads"], table["head_dim"])
    assert "GGUF" in gguf["source"]


@pytest.mark.parametrize("params, field", [({"model": "GPT-5"}, "model"), ({"context": 2_000_000}, "context"),
                                           ({"gpu": "TPU"}, "gpu"), ({"model": "org/name"}, "model")])
def test_scenario_bad_input_names_the_field(api, params, field):
    out = api.profile_scenario(params)
    assert out["ok"] is False and out["error"]["field"] == field, out


def test_measure_shape_reads_a_sink_and_locality():
    from backend.profile.scenario import measure_shape

    n = 400
    att = np.zeros((n, n))
    for t in range(n):
        att[t, 0] = 0.5                              # a sink
        att[t, max(0, t - 9): t + 1] += 0.4 / min(t + 1, 10)  # the last 10 keys
        att[t, : t + 1] += 0.1 / (t + 1)             # background
        att[t] /= att[t].sum()
    shape = measure_shape(att.astype(np.float32))
    assert shape["sinks"] == 1 and shape["sink_mass"] == pytest.approx(0.5, abs=0.01)
    assert shape["local_mass"] == pytest.approx(0.4 + 0.1 * 255 / 300, abs=0.06)
    assert 0 < shape["local_decay"] < 1


# ---- measured hardware ----

def test_hardware_is_measured_once_cached_with_the_date_and_used_by_the_preset(api, monkeypatch, tmp_path):
    monkeypatch.setenv("SINKVIS_CACHE_DIR", str(tmp_path))
    assert api.profile_hardware({})["measured"] is None            # nothing measured yet
    out = api.profile_hardware({"measure": True})
    m = out["measured"]
    assert m["ram_read_bps"] > 1e8 and m["disk_read_bps"] > 1e6 and m["measured_at"][:4].isdigit()
    assert json.loads((tmp_path / "hardware.json").read_text())["disk_read_bps"] == m["disk_read_bps"]
    assert list(tmp_path.iterdir()) == [tmp_path / "hardware.json"]  # the probe file is gone
    assert api.profile_hardware({})["measured"] == m               # cached: not measured again
    detected = api.profile_presets({})["presets"][0]
    disk = detected["tiers"][3]
    assert disk["bandwidth_bps"] == m["disk_read_bps"] and disk["modelled"] is False and disk["measured_at"]
    if presets.gpu()["modelled"]:  # no GPU: said on the panel, which GPU is modelled, and no copy measured
        assert "No GPU found" in out["gpu_note"] and "H100" in out["gpu_note"] and m["host_to_device_bps"] is None
        assert detected["tiers"][2]["modelled"] is True
    else:
        assert m["host_to_device_bps"] > 1e9 and detected["tiers"][2]["modelled"] is False
    assert api.profile_hardware({"measure": "yes"})["error"]["field"] == "measure"
