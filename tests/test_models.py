"""Loading models: the demo model, specs, failures that keep the previous model usable."""
import json
import os
import shutil

import pytest
from helpers import load

from backend.models.spec import config_spec, kv_bytes_per_token


def test_demo_model_loads_with_specs(demo_api):
    info = demo_api.model_info()
    assert info["ok"] and info["loaded"] and info["source"] == "demo"
    spec = info["spec"]
    assert info["device"] == "cpu" and info["dtype"] == "float32"  # Auto on a CPU-only machine
    model = demo_api._state.model.model
    assert spec["layers"] == model.config.num_hidden_layers and spec["heads"] == model.config.num_attention_heads
    assert spec["kv_heads"] == model.config.num_key_value_heads == 2  # grouped-query attention: 3 query heads per KV head
    assert spec["parameters"] == sum(p.numel() for p in model.parameters())
    assert spec["weights_bytes"] == spec["parameters"] * 4
    assert spec["kv_bytes_per_token"] == 2 * spec["layers"] * spec["kv_heads"] * spec["head_dim"] * 4
    assert spec["position_scheme"] == "rotary" and spec["context_length"] == 256


def test_kv_bytes_for_grouped_query_attention():
    from transformers import LlamaConfig

    config = LlamaConfig(num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, hidden_size=4096)
    spec = config_spec(config)
    assert (spec["kv_heads"], spec["head_dim"], spec["position_scheme"]) == (8, 128, "rotary")
    assert kv_bytes_per_token(spec, 2) == 2 * 32 * 8 * 128 * 2  # 128 KiB per token at fp16, as for Llama-3-8B


def test_precision_choices_on_cpu(api, tiny_model_dir):
    status = load(api, tiny_model_dir, precision="bf16")
    assert status["state"] == "done" and status["result"]["dtype"] == "bfloat16"
    assert status["result"]["spec"]["kv_bytes_per_token"] == 2 * 2 * 4 * 16 * 2


def test_unavailable_device_is_a_clear_error(api, tiny_model_dir):
    status = load(api, tiny_model_dir, device="cuda")
    assert status["state"] == "error"
    assert status["error"]["code"] == "device_unavailable" and status["error"]["field"] == "device"


def _break(folder, tmp_path, how):
    broken = tmp_path / how
    shutil.copytree(folder, broken)
    if how == "truncated_weights":
        weights = broken / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "config_not_json":
        (broken / "config.json").write_text("{ this is not json")
    elif how == "no_tokenizer":
        for f in broken.glob("*token*"):
            f.unlink()
    elif how == "not_causal":
        config = json.loads((broken / "config.json").read_text())
        config["architectures"] = ["BertForMaskedLM"]
        (broken / "config.json").write_text(json.dumps(config))
    elif how == "remote_code":
        config = json.loads((broken / "config.json").read_text())
        config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
        (broken / "config.json").write_text(json.dumps(config))
    elif how == "oversized":
        config = json.loads((broken / "config.json").read_text())
        config.update(n_layer=4000, n_embd=8192, n_head=64)
        (broken / "config.json").write_text(json.dumps(config))
        # a sparse file: the size check must refuse it before anything is read
        with open(broken / "model.safetensors", "r+b") as f:
            f.truncate(10 * 2**40)
    return broken


@pytest.mark.parametrize("how, code", [
    ("truncated_weights", "bad_weights"),
    ("config_not_json", "bad_config"),
    ("no_tokenizer", "bad_tokenizer"),
    ("not_causal", "not_causal"),
    ("remote_code", "needs_remote_code"),
    ("oversized", "too_big"),
])
def test_failed_load_keeps_previous_model(api, tiny_model_dir, tmp_path, how, code):
    assert load(api, tiny_model_dir)["state"] == "done"
    before = api._state.model
    status = load(api, _break(tiny_model_dir, tmp_path, how))
    assert status["state"] == "error", status
    assert status["error"]["code"] == code, status["error"]
    assert len(status["error"]["message"]) > 20
    assert api._state.model is before
    still = api.attention({"text": "still works after a failed load"})
    assert still["ok"] and still["n"] > 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file regardless of permissions")
def test_unreadable_folder(api, tiny_model_dir, tmp_path):
    locked = tmp_path / "locked"
    shutil.copytree(tiny_model_dir, locked)
    os.chmod(locked / "config.json", 0)
    assert load(api, locked)["error"]["code"] == "unreadable"


def test_missing_folder_and_bad_ids(api):
    assert load(api, "/no/such/folder")["error"]["code"] == "not_found"
    assert load(api, "../../etc")["error"]["field"] == "source"
    bad = api.load_model({"source": "demo", "precision": "fp8"})
    assert not bad["ok"] and bad["error"]["field"] == "precision"


def test_cancelled_load_keeps_previous(api, tiny_model_dir):
    assert load(api, tiny_model_dir)["state"] == "done"
    before = api._state.model
    started = api.load_model({"source": "demo"})
    api.cancel_job({"job_id": started["job_id"]})
    from helpers import wait_job

    status = wait_job(api, started["job_id"])
    assert status["state"] in ("cancelled", "done")
    if status["state"] == "cancelled":
        assert api._state.model is before


def test_second_load_while_one_runs_is_refused(api, tiny_model_dir):
    first = api.load_model({"source": str(tiny_model_dir)})
    second = api.load_model({"source": str(tiny_model_dir)})
    from helpers import wait_job

    if api.job_status({"job_id": first["job_id"]})["state"] == "running":
        assert not second["ok"] and second["error"]["code"] == "busy"
    assert wait_job(api, first["job_id"])["state"] == "done"
