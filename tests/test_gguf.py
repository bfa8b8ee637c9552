"""GGUF files the tests write themselves (the `gguf` package's GGUFWriter), from a tiny Llama config.

The writer follows llama.cpp's convert script: tensor names (token_embd, blk.N.attn_q, …),
the rotary Q/K row permutation, Q8_0 blocks for the matrices and F32 norms, the byte-level
BPE vocabulary of the demo model. Loaded back through SinkVis, the model must give the same
attention as the original PyTorch model holding the same (dequantized) weights: that checks
the name mapping, the un-permutation, GQA and RoPE end to end.
"""
import json
import os
import shutil
import time

import numpy as np
import pytest
import torch

from backend.api import Api
from backend.models.gguf import read_header
from helpers import DEMO_MODEL_DIR, load

TEXT = "The attention sink takes what the other tokens leave over."


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's rotary permutation of Q/K rows (transformers undoes it when it reads the file)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = json.loads((DEMO_MODEL_DIR / "tokenizer.json").read_text())["model"]["vocab"]
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def write_gguf(path, model=None, arch="llama", quant="Q8_0", name="tiny-llama"):
    """Write `model` (a LlamaForCausalLM) as GGUF; return the model holding the weights as the file stores them."""
    import gguf
    from gguf import GGMLQuantizationType as Q

    tok = json.loads((DEMO_MODEL_DIR / "tokenizer.json").read_text())
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_file_type(7 if quant == "Q8_0" else 0)  # llama.cpp's MOSTLY_Q8_0 / ALL_F32
    model = model or tiny_llama()
    c = model.config
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(len(vocab))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([3 if i < 2 else 1 for i in range(len(vocab))])  # 3 = control (bos, eos)
    w.add_token_merges(merges)
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_add_bos_token(True)

    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    stored = {}

    def put(gguf_name, hf_name, array=None):
        a = np.ascontiguousarray(sd[hf_name] if array is None else array, dtype=np.float32)
        if quant == "Q8_0" and a.ndim == 2:
            blocks = gguf.quants.quantize(a, Q.Q8_0)
            w.add_tensor(gguf_name, blocks, raw_shape=blocks.shape, raw_dtype=Q.Q8_0)
            a = gguf.quants.dequantize(blocks, Q.Q8_0).reshape(a.shape)
        else:
            w.add_tensor(gguf_name, a)
        stored[hf_name] = a

    put("token_embd.weight", "model.embed_tokens.weight")
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        put(f"blk.{i}.attn_norm.weight", p + "input_layernorm.weight")
        q = _permute(sd[p + "self_attn.q_proj.weight"], c.num_attention_heads)
        k = _permute(sd[p + "self_attn.k_proj.weight"], c.num_key_value_heads)
        put(f"blk.{i}.attn_q.weight", p + "self_attn.q_proj.weight", q)
        put(f"blk.{i}.attn_k.weight", p + "self_attn.k_proj.weight", k)
        put(f"blk.{i}.attn_v.weight", p + "self_attn.v_proj.weight")
        put(f"blk.{i}.attn_output.weight", p + "self_attn.o_proj.weight")
        put(f"blk.{i}.ffn_norm.weight", p + "post_attention_layernorm.weight")
        put(f"blk.{i}.ffn_gate.weight", p + "mlp.gate_proj.weight")
        put(f"blk.{i}.ffn_up.weight", p + "mlp.up_proj.weight")
        put(f"blk.{i}.ffn_down.weight", p + "mlp.down_proj.weight")
    put("output_norm.weight", "model.norm.weight")
    put("output.weight", "lm_head.weight")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # The reference: the same model with the weights the file holds (Q8_0-rounded, Q/K un-permuted).
    inverse = {}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}.self_attn."
        inverse[p + "q_proj.weight"] = c.num_attention_heads
        inverse[p + "k_proj.weight"] = c.num_key_value_heads
    with torch.no_grad():
        for hf_name, a in stored.items():
            if hf_name in inverse:  # undo the permutation: permute is its own inverse only for 2 halves → do it exactly
                n = inverse[hf_name]
                a = a.reshape(n, a.shape[0] // n // 2, 2, *a.shape[1:]).swapaxes(1, 2).reshape(a.shape)
            model.state_dict()[hf_name].copy_(torch.from_numpy(np.ascontiguousarray(a)))
    return model


def write_header_only(path, arch: str, extra=None):
    """A GGUF with metadata and no tensors (enough for the header checks)."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"tiny-{arch}")
    w.add_block_count(1)
    for key, value in (extra or {}).items():
        w.add_uint32(key, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module", autouse=True)
def meta_cache(tmp_path_factory):
    """The config/tokenizer cache of GGUF loads (gguf_load.py) in a temporary folder, not ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("gguf-meta")
        mp.setenv("SINKVIS_GGUF_META", str(folder))
        yield folder


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf")
    reference = write_gguf(folder / "tiny-llama.Q8_0.gguf")
    return folder / "tiny-llama.Q8_0.gguf", reference


@pytest.fixture(scope="module")
def gguf_api(tiny_gguf):
    api = Api()
    status = load(api, str(tiny_gguf[0]), device="cpu", precision="fp32")
    assert status["state"] == "done", status
    yield api
    api._state.jobs.cancel_all()


def test_header_is_read_without_the_tensors(tiny_gguf):
    path, _ = tiny_gguf
    started = time.perf_counter()
    header = read_header(path)
    seconds = time.perf_counter() - started
    s = header.summary()
    assert (s["architecture"], s["quantization"], s["name"]) == ("llama", "Q8_0", "tiny-llama")
    assert (s["layers"], s["heads"], s["kv_heads"], s["head_dim"], s["context_length"], s["vocab_size"]) == (2, 4, 2, 16, 128, 4096)
    assert s["parameters"] == sum(p.numel() for p in tiny_llama().parameters())
    assert header.metadata["tokenizer.ggml.tokens"] == {"array_length": 4096}  # the vocabulary is skipped, not kept
    assert seconds < 0.5, seconds
    header.check_complete()


def test_gguf_loads_and_its_attention_equals_the_original_model(gguf_api, tiny_gguf):
    info = gguf_api.model_info()
    spec = info["spec"]
    assert info["source"].endswith("tiny-llama.Q8_0.gguf") and info["dtype"] == "float32"
    assert (spec["format"], spec["quantization"], spec["dequantized_to"], spec["architecture"]) == ("gguf", "Q8_0", "float32", "llama")
    assert (spec["layers"], spec["heads"], spec["kv_heads"], spec["head_dim"]) == (2, 4, 2, 16)
    assert spec["weights_bytes"] == 4 * spec["parameters"]          # memory after dequantization, not the file size
    assert spec["weights_bytes"] > 2.5 * spec["file_bytes"]

    loaded = gguf_api._state.model
    reference = tiny_gguf[1]
    ids = loaded.tokenizer(TEXT)["input_ids"]
    assert ids[0] == 0 and len(ids) > 8                              # BOS added, the demo BPE vocabulary
    from transformers import AutoTokenizer
    assert ids[1:] == AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)(TEXT)["input_ids"][1:]
    with torch.inference_mode():
        x = torch.tensor([ids])
        got = loaded.model(input_ids=x, output_attentions=True)
        want = reference(input_ids=x, output_attentions=True)
    for a, b in zip(got.attentions, want.attentions):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=1e-4)

    res = gguf_api.attention({"text": TEXT, "layer": -1})
    m = np.array(res["matrix"])
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-5)
    assert np.all(np.triu(m, 1) == 0)


def test_second_load_uses_the_cached_config_and_tokenizer(gguf_api, tiny_gguf, meta_cache):
    path, reference = tiny_gguf
    entries = [p for p in meta_cache.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "tokenizer.json").is_file()
    assert "quantization_config" not in json.loads((entries[0] / "config.json").read_text())

    def load_and_compare():
        api = Api()
        assert load(api, str(path), device="cpu", precision="fp32")["state"] == "done"
        assert api.model_info()["spec"] == gguf_api.model_info()["spec"]
        loaded = api._state.model
        ids = loaded.tokenizer(TEXT)["input_ids"]
        assert ids == gguf_api._state.model.tokenizer(TEXT)["input_ids"]
        with torch.inference_mode():
            got = loaded.model(input_ids=torch.tensor([ids]), output_attentions=True)
            want = reference(input_ids=torch.tensor([ids]), output_attentions=True)
        torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=1e-4)

    load_and_compare()                                   # from the cache
    (entries[0] / "config.json").write_text("{broken")   # a damaged entry is rebuilt from the file
    load_and_compare()
    assert json.loads((entries[0] / "config.json").read_text())["model_type"] == "llama"


def test_broken_ggufs_get_named_errors_and_the_model_stays(gguf_api, tiny_gguf, tmp_path):
    path, _ = tiny_gguf
    data = path.read_bytes()
    before = gguf_api.model_info()

    def attempt(name, content):
        bad = tmp_path / name
        bad.write_bytes(content)
        status = load(gguf_api, str(bad), device="cpu", precision="fp32")
        assert status["state"] == "error", status
        assert gguf_api.model_info() == before          # the previous model stays loaded
        return status["error"]

    e = attempt("cut-header.gguf", data[:5000])
    assert e["code"] == "bad_gguf" and "cut-header.gguf" in e["message"] and "truncated" in e["message"]
    e = attempt("cut-tensors.gguf", data[: len(data) - 4096])
    assert e["code"] == "bad_gguf" and "truncated" in e["message"] and f"{len(data) - 4096:,}" in e["message"]
    e = attempt("not-gguf.gguf", b"PK\x03\x04" + os.urandom(2000))
    assert e["code"] == "bad_gguf" and "not a GGUF file" in e["message"]
    huge = bytearray(data[:24])
    huge[16:24] = (2**60).to_bytes(8, "little")         # claims 2^60 metadata entries
    e = attempt("huge-count.gguf", bytes(huge) + b"\0" * 100)
    assert e["code"] == "bad_gguf" and "more than the rest of the file holds" in e["message"]
    bad_utf8 = data.replace(b"tiny-llama", b"tiny-\xff\xfelama", 1)
    e = attempt("bad-text.gguf", bad_utf8)
    assert e["code"] == "bad_gguf" and "UTF-8" in e["message"]
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    status = load(gguf_api, str(fifo))
    assert status["error"]["code"] == "bad_file" and "pipe" in status["error"]["message"]
    assert gguf_api.model_info() == before


def test_unsupported_architecture_is_named(gguf_api, tmp_path):
    write_header_only(tmp_path / "rwkv.gguf", "rwkv6")
    status = load(gguf_api, str(tmp_path / "rwkv.gguf"))
    e = status["error"]
    assert e["code"] == "unsupported_gguf" and "'rwkv6'" in e["message"]
    assert "llama" in e["message"] and "qwen2" in e["message"] and "gpt2" in e["message"]


def test_two_ggufs_in_a_folder_ask_the_user_to_pick(gguf_api, tiny_gguf, tmp_path):
    path, _ = tiny_gguf
    folder = tmp_path / "two"
    folder.mkdir()
    shutil.copy(path, folder / "a.Q8_0.gguf")
    write_header_only(folder / "b.gguf", "llama", {"llama.context_length": 4096})
    status = load(gguf_api, str(folder))
    e = status["error"]
    assert e["code"] == "pick_gguf" and "a.Q8_0.gguf" in e["message"] and "b.gguf" in e["message"]
    listed = gguf_api.local_models({"folder": str(folder)})["models"]
    picked = [m for m in listed if m["source"] == "folder"]
    assert [m["id"] for m in picked] == ["a.Q8_0.gguf", "b.gguf"]
    assert picked[0]["quantization"] == "Q8_0" and picked[0]["architecture"] == "llama" and picked[0]["layers"] == 2
    assert picked[1]["context_length"] == 4096 and picked[1]["load"].endswith("b.gguf")
    # one GGUF alone in a folder (no config.json) is the model the folder names
    from backend.models.load import resolve_source

    solo = tmp_path / "solo"
    solo.mkdir()
    (solo / "only.gguf").symlink_to(path)
    assert resolve_source(str(solo), None, lambda *a, **k: None) == (solo / "only.gguf", str(solo / "only.gguf"))


def test_gguf_info_card_uses_the_dequantized_size(tiny_gguf):
    path, _ = tiny_gguf
    api = Api()
    card = api.gguf_info({"path": str(path), "device": "cpu", "precision": "fp32"})
    assert card["ok"] and card["quantization"] == "Q8_0" and card["memory"]["bytes_per_element"] == 4
    assert card["memory"]["needed_bytes"] == int(card["parameters"] * 4 * 1.2) and card["memory"]["verdict"] == "fits"
    assert api.gguf_info({"path": str(path.with_suffix(".txt"))})["error"]["field"] == "path"
    assert api.gguf_info({"path": str(path.parent / "missing.gguf")})["error"]["code"] == "bad_file"
