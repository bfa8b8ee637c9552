"""Quantized KV caches (issue 34): each format against its reference, bytes per token against its layout,
the cache layer's residual and IntactKV rules, eviction × format, and Evaluate with a format."""
import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants
from transformers.cache_utils import Fp8QuantizedLayer

from backend.defaults import bundled_text as bundled_eval_text
from backend.errors import UserError
from backend.evaluate.cache import PolicyCaches
from backend.evaluate.run import evaluate
from backend.quantize import kv_format
from backend.quantize.layer import QuantizedKVCache

GGUF = ["q8_0", "q5_1", "q5_0", "q4_1", "q4_0"]


def kv(shape=(2, 3, 40, 64), seed=0, outliers=True):
    """Keys-like data: a few loud channels and a loud first token, as real caches have."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    if outliers:
        x[..., 5] *= 12.0
        x[:, :, 0] *= 6.0
    return x


def stored(fmt, x, intact=0):
    cache = QuantizedKVCache(kv_format(fmt), intact)
    keys, values = cache.update(x, -x, 0)
    return keys, values


@pytest.mark.parametrize("name", GGUF)
def test_block_formats_are_ggufs_reference_row_by_row_bit_for_bit(name):
    x = kv()
    keys, values = stored(name, x)
    qtype = GGMLQuantizationType[name.upper()]
    rows = x.reshape(-1, 64).numpy()
    want = np.stack([quants.dequantize(quants.quantize(r[None], qtype), qtype)[0] for r in rows])
    assert np.array_equal(keys.reshape(-1, 64).numpy(), want)  # one block of 32 per half row, as llama.cpp stores
    assert np.array_equal(values.reshape(-1, 64).numpy(), np.stack(
        [quants.dequantize(quants.quantize(-r[None], qtype), qtype)[0] for r in rows]))
    assert not torch.equal(keys, x)  # it did quantize


@pytest.mark.parametrize("name", GGUF)
def test_block_formats_bytes_per_token_are_the_layout(name):
    fmt, layers, heads, dim = kv_format(name), 30, 3, 64
    token = kv((1, heads, 1, dim))
    stored_bytes = fmt.key.codec.encode(token).nbytes  # what llama.cpp writes for one token's keys in one layer
    assert stored_bytes == heads * dim // 32 * GGML_QUANT_SIZES[GGMLQuantizationType[name.upper()]][1]
    assert fmt.bytes_per_token(layers, heads, dim) == 2 * layers * stored_bytes


def test_bytes_per_token_of_the_other_formats():
    per_value = {"f16": 16, "int8": 8 + 1, "int4": 4 + 1, "int2": 2 + 1, "fp8-e4m3": 8, "fp8-e5m2-head": 8,
                 "int4-channel": 4 + 32 / 128}
    for name, bits in per_value.items():
        assert kv_format(name).bytes_per_token(2, 3, 64) == 2 * 2 * 3 * 64 * bits / 8, name
    kivi = kv_format("kivi-2")  # keys per channel over 128-token blocks, values per token in groups of 32
    assert kivi.bits() == (2 + 32 / 128, 2 + 1)
    mixed = kv_format(None, key="q8_0", value="q4_0")
    assert mixed.bits() == (8.5, 4.5) and mixed.name == "K q8_0 / V q4_0"


@pytest.mark.parametrize("kind,dtype", [("e4m3", torch.float8_e4m3fn), ("e5m2", torch.float8_e5m2)])
def test_fp8_is_transformers_fp8_layer_bit_for_bit(kind, dtype):
    class Reference(Fp8QuantizedLayer):
        fp8_dtype = dtype
        fp8_max = torch.finfo(dtype).max

    first, later = kv(seed=1), 0.5 * kv((2, 3, 7, 64), seed=2)  # later tokens inside the calibrated range
    cache = QuantizedKVCache(kv_format(f"fp8-{kind}"))
    cache.update(first, -first, 0)
    keys, values = cache.update(later, -later, 0)
    ref = Reference()
    ref.update(first, -first)
    ref_keys, ref_values = ref.update(later, -later)
    assert torch.equal(keys, ref_keys) and torch.equal(values, ref_values)
    # per head: one scale per KV head, i.e. the per-tensor reference run on each head alone
    per_head, _ = stored(f"fp8-{kind}-head", first)
    for h in range(first.shape[1]):
        head = Reference()
        head.update(first[:, h:h + 1], first[:, h:h + 1])
        assert torch.equal(per_head[:, h:h + 1], head._dequantize(head._quantized_keys))


def test_fp8_saturates_a_token_louder_than_its_calibration():
    cache = QuantizedKVCache(kv_format("fp8-e4m3"))
    cache.update(torch.ones(1, 1, 2, 32), torch.ones(1, 1, 2, 32), 0)
    keys, _ = cache.update(torch.full((1, 1, 1, 32), 10.0), torch.ones(1, 1, 1, 32), 0)
    assert torch.isfinite(keys).all() and float(keys[0, 0, -1].max()) == pytest.approx(1.0)


def int_reference(x: np.ndarray, nbits: int, axis: int) -> np.ndarray:
    """Asymmetric k-bit quantization of each 1-D group along `axis`, one group at a time (fp16 scale and minimum)."""
    def one(g):
        lo = np.float32(np.float16(g.min()))
        scale = np.float32(np.float16((np.float32(g.max()) - lo) / np.float32(2 ** nbits - 1)))
        if scale == 0:
            return np.full_like(g, lo)
        return lo + np.clip(np.round((g - lo) / scale), 0, 2 ** nbits - 1).astype(np.float32) * scale
    return np.apply_along_axis(one, axis, x)


@pytest.mark.parametrize("nbits", [8, 4, 2])
def test_integer_per_token_groups_along_head_dim(nbits):
    x = kv()
    keys, _ = stored(f"int{nbits}", x)
    groups = x.numpy().reshape(2, 3, 40, 2, 32)
    want = int_reference(groups, nbits, -1).reshape(x.shape)
    np.testing.assert_allclose(keys.numpy(), want, rtol=0, atol=1e-6)
    assert len(np.unique(keys[0, 0, 0, :32].numpy())) <= 2 ** nbits


def test_per_channel_waits_for_its_block_then_quantizes_it_per_channel():
    x = kv((1, 2, 40, 64))
    cache = QuantizedKVCache(kv_format("int2-channel-g16"))
    for t in range(40):  # token by token, as decoding inserts
        keys, _ = cache.update(x[:, :, t:t + 1], x[:, :, t:t + 1], 0)
    blocks = [int_reference(x[:, :, a:a + 16].numpy(), 2, 2) for a in (0, 16)]
    np.testing.assert_allclose(keys[:, :, :32].numpy(), np.concatenate(blocks, 2), rtol=0, atol=1e-6)
    assert torch.equal(keys[:, :, 32:], x[:, :, 32:])  # the last 8 wait in full precision
    chunked = QuantizedKVCache(kv_format("int2-channel-g16"))
    chunked.update(x[:, :, :25], x[:, :, :25], 0)  # a prefill in chunks that straddle the blocks stores the same
    assert torch.equal(chunked.update(x[:, :, 25:], x[:, :, 25:], 0)[0], keys)


def test_kivi_keys_per_channel_values_per_token_and_a_full_precision_window():
    x = kv((1, 2, 40, 64))
    keys, values = stored("kivi-2-r16", x)
    np.testing.assert_allclose(keys[:, :, :16].numpy(), int_reference(x[:, :, :16].numpy(), 2, 2), atol=1e-6, rtol=0)
    want_v = int_reference(-x[:, :, :32].numpy().reshape(1, 2, 32, 2, 32), 2, -1).reshape(1, 2, 32, 64)
    np.testing.assert_allclose(values[:, :, :32].numpy(), want_v, atol=1e-6, rtol=0)
    assert torch.equal(keys[:, :, 32:], x[:, :, 32:]) and torch.equal(values[:, :, 32:], -x[:, :, 32:])
    whole, _ = stored("kivi-2-r64", x)  # R ≥ the sequence: nothing quantized yet
    assert torch.equal(whole, x)


def test_intact_sinks_stay_in_full_precision():
    x = kv()
    for name in ("q4_0", "int2", "kivi-2-r16", "fp8-e5m2"):
        keys, values = stored(name, x, intact=4)
        assert torch.equal(keys[:, :, :4], x[:, :, :4]) and torch.equal(values[:, :, :4], -x[:, :, :4]), name
        assert not torch.equal(keys[:, :, 4:20], x[:, :, 4:20]), name


def test_bad_formats_say_what_to_use():
    for bad in ("q3_k", "int3", "fp8-e3m4", "kivi-2-r0"):
        with pytest.raises(UserError, match="unknown KV format") as err:
            kv_format(bad)
        assert err.value.field == "kv_format"
    with pytest.raises(UserError, match="head_dim is 48"):
        kv_format("q8_0").check(48)


@pytest.mark.parametrize("name", ["q4_0", "kivi-2-r8", "int4-channel-g8"])
def test_eviction_then_format_equals_evicting_a_recorded_cache_and_quantizing_by_hand(name):
    """Policies' caches (PolicyCaches, batch row per policy) evicting per KV head as tokens enter; the same kept
    entries of the recorded full-precision K/V, quantized by hand, give the same cache. A per-channel block is
    quantized over the entries of it that were still cached when it completed."""
    rng = np.random.default_rng(3)
    layers, batch, heads, n, C, dim = 2, 2, 3, 37, 10, 32
    record = [kv((1, heads, n, dim), seed=10 + layer) for layer in range(layers)]
    fmt = kv_format(name)
    cache = QuantizedKVCache(fmt)
    cache.fill([(k[:, :, :C].expand(batch, -1, -1, -1), -k[:, :, :C].expand(batch, -1, -1, -1)) for k in record])
    caches = PolicyCaches([(c.keys, c.values) for c in cache.layers], batch, cache=cache)
    cached_at = {}  # t → positions cached once token t entered
    for t in range(C, n):
        for layer in range(layers):
            new = record[layer][:, :, t:t + 1].expand(batch, -1, -1, -1)
            cache.update(new, -new, layer)
        caches.appended(t, t)
        cached_at[t] = caches.pos.copy()
        scores = rng.random(caches.pos.shape)
        mask = scores >= np.sort(scores, -1)[..., -C:][..., :1]  # C random entries per (row, layer, head)
        caches.keep(mask)
    residual = fmt.key.residual
    for layer in range(layers):
        got = cache.layers[layer].keys
        for b in range(batch):
            for h in range(heads):
                kept = caches.pos[b, layer * heads + h]
                x = record[layer][0, h, kept][None, None]
                if residual == 0:
                    want = torch.from_numpy(quants.dequantize(quants.quantize(x.numpy(), GGMLQuantizationType.Q4_0),
                                                              GGMLQuantizationType.Q4_0))
                else:  # each block of R positions: its survivors quantized together per channel; the last waits
                    want = x.clone()
                    done = n // residual * residual
                    for a in range(0, done, residual):
                        completed = a + residual - 1  # the token whose entry completed the block
                        then = cached_at[completed][b, layer * heads + h] if completed >= C else np.arange(a + residual)
                        block = np.sort(then[(then >= a) & (then < a + residual)])
                        q = int_reference(record[layer][0, h, block].numpy(), 2 if "2" in name else 4, 0)
                        for i, p in enumerate(kept):
                            if a <= p < a + residual:
                                want[0, 0, i] = torch.from_numpy(q[np.searchsorted(block, p)])
                torch.testing.assert_close(got[b, h][None, None], want, rtol=0, atol=1e-6)


# Evaluate with a format


@pytest.fixture(scope="module")
def demo(demo_api):
    return demo_api._state.model


def bf16_llama():
    """A 2-layer Llama computing in bfloat16, head_dim 32 (so every format applies)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from backend.models.loaded import LoadedModel
    from backend.models.spec import config_spec

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=64,
                         initializer_range=0.3, attn_implementation="eager")
    model = LlamaForCausalLM(config).eval().to(torch.bfloat16)
    return LoadedModel(model=model, tokenizer=None, source="tiny-llama", device="cpu", dtype="bfloat16",
                       spec=config_spec(config))


def numbers(result):
    return [(r["policy"], r["perplexity"], r["kl_vs_full"], r["curve"]) for r in result["results"]]


def test_a_16_bit_format_on_a_16_bit_model_is_full_cache_exactly():
    model = bf16_llama()
    ids = np.random.default_rng(1).integers(0, 128, 50).tolist()
    policies = ["full", "sliding_window", "streaming_llm", "h2o", "tova"]
    plain = evaluate(model, ids, policies, cache_size=12, sinks=2, window=4)
    cast = evaluate(model, ids, policies, cache_size=12, sinks=2, window=4, kv_format=kv_format("bf16"))
    assert numbers(cast) == numbers(plain)
    assert cast["kv_format"] == "bf16" and cast["results"][0]["bytes_per_token"] == 2 * 1 * 32 * 2 * 2
    lossy = evaluate(model, ids, policies, cache_size=12, sinks=2, window=4, kv_format=kv_format("int2"))
    assert numbers(lossy) != numbers(plain)  # the same path with a lossy format does change the numbers


def test_kivi_with_a_window_as_long_as_the_text_is_full_cache_exactly(demo):
    ids = demo.tokenizer(bundled_eval_text())["input_ids"][:90]
    policies = ["full", "streaming_llm", "h2o"]
    plain = evaluate(demo, ids, policies, cache_size=40, sinks=4, window=16)
    kivi = evaluate(demo, ids, policies, cache_size=40, sinks=4, window=16, kv_format=kv_format("kivi-2-r128"))
    assert numbers(kivi) == numbers(plain)
    assert kivi["unquantized_full_perplexity"] == plain["results"][0]["perplexity"]


def test_quest_and_recompute_refuse_a_format(demo):
    ids = demo.tokenizer(bundled_eval_text())["input_ids"][:40]
    with pytest.raises(UserError, match="does not apply"):
        evaluate(demo, ids, ["full", "sliding_window_recompute"], 16, 2, 4, kv_format=kv_format("q8_0"))
    with pytest.raises(UserError, match="give a kv_format"):
        evaluate(demo, ids, ["full"], 16, 2, 4, intact_sinks=4)


def test_smollm2_q8_0_costs_little_and_fewer_bits_cost_more(smollm2_api):
    """Full Cache in each format on 160 tokens of Alice."""
    loaded = smollm2_api._state.model
    ids = loaded.tokenizer(bundled_eval_text("alice"))["input_ids"][:160]
    ppl = {}
    for name in ("q8_0", "q4_0", "int2"):
        result = evaluate(loaded, ids, ["full"], cache_size=64, sinks=4, window=32, kv_format=kv_format(name))
        ppl[name] = result["results"][0]["perplexity"]
        full = result["unquantized_full_perplexity"]
    assert abs(ppl["q8_0"] / full - 1) < 0.01, (full, ppl)  # llama.cpp: +0.005 on an 8B model
    assert ppl["q4_0"] > ppl["q8_0"] and ppl["int2"] > ppl["q4_0"], (full, ppl)
    assert ppl["int2"] > 1.05 * full, (full, ppl)


def test_prefill_protocol_composes_every_method_with_a_format(demo):
    from backend.compress import prefill_perplexity

    ids = demo.tokenizer(bundled_eval_text())["input_ids"][:120]
    methods = ["full", "snapkv", "pyramidkv", "knorm"]  # pyramidkv: layers keep different counts (padding)
    plain = prefill_perplexity(demo, ids, 90, 30, methods, ratio=0.5)
    wide = prefill_perplexity(demo, ids, 90, 30, methods, ratio=0.5, kv_format=kv_format("kivi-2-r256"))
    assert {m: wide[m]["perplexity"] for m in methods} == {m: plain[m]["perplexity"] for m in methods}
    assert wide["full_unquantized"]["perplexity"] == plain["full"]["perplexity"]
    q4 = prefill_perplexity(demo, ids, 90, 30, methods, ratio=0.5, kv_format=kv_format("q4_0"))
    assert q4["full_unquantized"]["perplexity"] == plain["full"]["perplexity"]
    assert q4["full"]["perplexity"] != plain["full"]["perplexity"] and q4["full"]["kl_vs_full"] > 0
    assert q4["snapkv"]["memory_tokens"] == plain["snapkv"]["memory_tokens"]


def test_api_and_cli_take_a_format_and_report_its_bytes(demo_api):
    from helpers import ROOT, wait_job

    started = demo_api.evaluate({"max_tokens": 70, "cache_size": 32, "policy": ["streaming_llm"],
                                 "kv_format_k": "q8_0", "kv_format_v": "q4_0", "intact_sinks": 2})
    assert started["ok"], started
    assert started["settings"]["kv_format"] == "K q8_0 / V q4_0" and started["settings"]["intact_sinks"] == 2
    result = wait_job(demo_api, started["job_id"])["result"]
    assert [r["bytes_per_token"] for r in result["results"]] == [6 * 2 * 32 * (8.5 + 4.5) / 8] * 2
    assert result["kv_format"] == "K q8_0 / V q4_0" and result["unquantized_full_perplexity"] > 0
    bad = demo_api.evaluate({"max_tokens": 70, "kv_format": "q3_k"})
    assert not bad["ok"] and bad["error"]["field"] == "kv_format" and "q4_0" in bad["error"]["message"]
    lonely = demo_api.evaluate({"max_tokens": 70, "intact_sinks": 4})
    assert not lonely["ok"] and lonely["error"]["field"] == "intact_sinks"
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "main.py", "evaluate", "--model", "demo", "--max-tokens", "60",
                          "--cache-size", "24", "--policy", "h2o", "--kv-format", "int4", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["kv_format"] == "int4" and doc["results"][1]["bytes_per_token"] == 6 * 2 * 32 * 2 * 5 / 8


@pytest.mark.parametrize("protocol", ["streaming", "prefill"])
def test_retrieval_takes_a_format_in_both_protocols(demo_api, protocol):
    from helpers import wait_job

    base = {"task": "pass_key", "protocol": protocol, "lengths": [96], "depths": [0.5], "cache_size": 32,
            "policy": ["full", "streaming_llm"] + (["h2o"] if protocol == "streaming" else ["snapkv"])}
    if protocol == "streaming":
        base["chunk"] = 8

    def logprobs(**fmt):
        job = demo_api.retrieval({**base, **fmt})
        assert job["ok"], job
        result = wait_job(demo_api, job["job_id"])["result"]
        return {c["policy"]: c["answer_logprob"] for c in result["cells"]}, result

    plain, _ = logprobs()
    wide, result = logprobs(kv_format="kivi-2-r512")  # nothing reaches a full block: every cache is unchanged
    assert wide == plain and result["kv_format"] == "kivi-2-r512"
    q4, result = logprobs(kv_format="q4_0", intact_sinks=4)
    assert all(q4[p] != plain[p] for p in plain), (q4, plain)
    assert result["settings"]["intact_sinks"] == 4 and result["bytes_per_token"] == 6 * 2 * 32 * 2 * 4.5 / 8


def test_a_sweeps_format_axis_gives_the_cells_own_numbers_at_the_formats_bytes(demo_api, tmp_path, capsys):
    """A point is policy × budget × format; each row's metrics are the single Evaluate's with that format, and its
    x (kv_bytes) is C × the format's bytes per token. Unquantized cells keep the keys they had before formats."""
    from helpers import wait_job

    from backend.cli.sweep import print_frontier
    from backend.sweep import LocalRunner, parse_spec, read_rows, run_sweep

    text = bundled_eval_text()[:3000]
    common = {"kind": "evaluate", "models": ["demo"], "texts": [{"name": "j", "text": text}], "cache_sizes": [24],
              "sinks": 4, "max_tokens": 64, "policies": ["full", "streaming_llm"]}
    plain = parse_spec(common)
    spec = parse_spec({**common, "kv_formats": ["none", "q4_0"], "intact_sinks": 2})
    run_sweep(spec, tmp_path / "q.jsonl", LocalRunner(0))
    rows = read_rows(tmp_path / "q.jsonl")
    assert len(rows) == 4
    from backend.sweep.grid import build_cells

    assert {c.key for c in build_cells(plain)[0]} < {r["key"] for r in rows}  # unquantized keys unchanged
    for r in rows:
        params = {"text": text, "max_tokens": 64, "cache_size": 24, "sinks": 4, "window": 12,
                  "policy": ["streaming_llm"]}
        if r["kv_format"]:
            params.update(kv_format="q4_0", intact_sinks=2)
        job = demo_api.evaluate(params)
        single = {x["policy"]: x for x in wait_job(demo_api, job["job_id"])["result"]["results"]}
        assert r["metrics"]["perplexity"] == pytest.approx(single[r["cell"]["policy"]]["perplexity"], rel=1e-9)
        per = single["full"]["bytes_per_token"]
        assert r["kv_bytes_per_token"] == per
        if r["cell"]["policy"] != "full":
            assert r["kv_bytes"] == 24 * per
    assert {r["kv_bytes_per_token"] for r in rows} == {6 * 2 * 32 * 2 * 4, 6 * 2 * 32 * 2 * 4.5 / 8}
    print_frontier(rows, "evaluate")
    printed = capsys.readouterr().out
    assert "streaming_llm @ q4_0" in printed and "@ q4_0: KV 432 bytes/token" in printed
    with pytest.raises(UserError, match="simulate sweep"):
        parse_spec({**common, "kind": "simulate", "policies": ["h2o"], "kv_formats": ["q8_0"]})
    with pytest.raises(UserError, match="unknown KV format"):
        parse_spec({**common, "kv_formats": ["q3"]})


def test_the_error_picture_shows_where_the_error_is_and_intact_sinks_remove_theirs(demo_api):
    from helpers import wait_job

    def picture(**fmt):
        job = demo_api.quantization_error({"max_tokens": 96, **fmt})
        assert job["ok"], job
        status = wait_job(demo_api, job["job_id"])
        assert status["state"] == "done", status
        return status["result"]

    q4 = picture(kv_format="q4_0")
    spec = demo_api.model_info()["spec"]
    assert q4["tokens"] == 96 and np.array(q4["key_error"]).shape == (spec["layers"], spec["kv_heads"])
    assert len(q4["key_error_by_position"]) == 96 and len(q4["outlier_channels"][0][0]) == 4
    assert 0 < min(map(min, q4["key_error"])) and max(map(max, q4["key_error"])) < 0.5
    assert 0 in q4["sinks"]  # the demo model's first token is a sink (DESIGN: 1–13× uniform by layer)
    q8 = picture(kv_format="q8_0")
    assert np.all(np.array(q8["key_error"]) < np.array(q4["key_error"]))  # more bits, less error, everywhere
    intact = picture(kv_format="q4_0", intact_sinks=1)
    assert intact["key_error_by_position"][0] == 0.0 and q4["key_error_by_position"][0] > 0
    assert intact["key_error_by_position"][1:] == q4["key_error_by_position"][1:]
    assert np.all(np.array(intact["sink_error_share"])[:, :] <= np.array(q4["sink_error_share"]) + 1e-12)
    none = demo_api.quantization_error({"max_tokens": 96})
    assert not none["ok"] and none["error"]["field"] == "kv_format"


def test_the_cache_profile_takes_a_formats_bytes_per_token(api):
    from helpers import wait_job

    def profile(**extra):
        job = api.profile({"length": 4000, "block_size": 16, **extra})
        assert job["ok"], job
        return wait_job(api, job["job_id"])["result"]

    plain, q4 = profile(), profile(kv_format="q4_0")
    assert plain["bytes_per_token"] == 2 * 12 * 12 * 64 * 2  # GPT-2 small in fp16, no model loaded
    assert q4["bytes_per_token"] == 12 * 12 * 64 * 2 * 18 // 32  # 18 bytes per block of 32 values
    assert q4["summary"]["n_blocks"] == plain["summary"]["n_blocks"]
    bad = api.profile({"length": 4000, "kv_format": "q9"})
    assert not bad["ok"] and bad["error"]["field"] == "kv_format"


def test_rotated_formats_quantize_in_the_hadamard_basis_and_keep_the_rest():
    from backend.quantize.rotated import block_size, hadamard

    h = hadamard(64)
    assert torch.allclose(h @ h, torch.eye(64, dtype=torch.float64), atol=1e-12)  # orthonormal, its own inverse
    assert [block_size(d) for d in (64, 128, 96, 80)] == [64, 128, 32, 16]
    plain, rotated = kv_format("q4_0"), kv_format("q4_0-rot")
    assert rotated.bits() == plain.bits() and rotated.name == "q4_0-rot"
    x = torch.randn(1, 2, 7, 64, dtype=torch.float32)
    x[..., 5] *= 30  # an outlier channel: it sets its block's scale unless the rotation spreads it
    hf = h.float()
    expected = plain.key.codec.roundtrip(x @ hf, {}) @ hf
    got = rotated.key.codec.roundtrip(x, {})
    assert torch.allclose(got, expected, atol=1e-6)
    assert (got - x).pow(2).sum() < 0.5 * (plain.key.codec.roundtrip(x, {}) - x).pow(2).sum()
    for bad in ("f16-rot", "q4_0-rot-x"):  # a 16-bit cast has nothing to gain from a rotation
        with pytest.raises(UserError, match="unknown KV format"):
            kv_format(bad)
