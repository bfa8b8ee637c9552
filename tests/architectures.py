"""The architecture matrix (issue 30): sixteen tiny models people load, every view run on each through the Api.

Each builder makes a 2–4-layer model from transformers' own config class (hidden 64, the demo tokenizer's
vocabulary, random weights from a fixed seed) with its architecture's features switched on: sliding windows,
soft-capping, learned sinks, q/k norms, NoPE layers, partial or interleaved rotary, learned positions.
`save(name, folder)` writes it with the demo model's tokenizer; `run(api, name, folder)` loads that folder
through the Api (as a user does) and returns {feature: "✓" or what went wrong} for every FEATURES entry.

Numerical acceptance (checked against a plain transformers forward of a fresh copy, eager attention):
  eval_full       Evaluate's Full Cache perplexity (streaming protocol) = the forward's, to 1e-5 relative;
  prefill_full    the prefill protocol's Full Cache perplexity on the continuation = the forward's, 1e-5;
  attention       every layer's Quick Attention matrix (mean over heads and head 0) = output_attentions, 1e-5;
  stream          Live Stream rows (every layer, positions past the sliding window) = the same rows, 1e-5;
  quest           Quest with k ≥ every page = Full Cache (perplexity to 1e-5 relative, KL ≈ 0).

KNOWN_FAILURES is the one table of cells that fail today; tests/test_architectures.py marks them
xfail(strict=True), so a fix that flips a cell fails the suite until its entry is deleted here.
`tools/architecture_matrix.py` prints the matrix.
"""
import math
import shutil
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL_DIR = ROOT / "assets" / "demo-model"
VOCAB = 4096  # the demo tokenizer's vocabulary (len(AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)))
CONTEXT = 256
SLIDING = 8   # sliding windows well inside the ~60-token texts, so a window that is ignored shows
SEED = 0
TOL = 1e-5

# ~60 tokens with the demo tokenizer (BOS included): long enough to pass every sliding window and 3 Quest pages.
TEXT = ("Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to "
        "do: once or twice she had peeped into the book her sister was reading, but it had no pictures or "
        "conversations in it, and what is the use of a book, thought Alice, without pictures or conversations?")
CACHE = 16  # Evaluate's budget C; the text is ~4× longer, so every evicting policy evicts
RETRIEVAL_LENGTH = 96  # a pass-key context (tokens) that holds the needle and fits with its question in CONTEXT

STREAMING_POLICIES = ["streaming_llm", "h2o", "tova"]
SLIDING_ARCHITECTURES = {"mistral", "gemma2", "gemma3_text", "gpt_oss"}  # layers with a sliding window (SLIDING)
PREFILL_METHODS = ["snapkv", "pyramidkv", "adakv_snapkv", "expected_attention", "adakv_expected_attention", "knorm",
                   "keydiff", "tova", "h2o", "observed_attention", "streaming_llm"]

FEATURES = (["load", "attention", "stream", "simulate", "profile", "profile_quest", "eval_full",
             "eval_original", "eval_in_cache", "prefill_full"]
            + [f"prefill_{m}" for m in PREFILL_METHODS]
            + ["quest", "retrieval_streaming", "retrieval_prefill"])


# ---- the models -----------------------------------------------------------------------------------------------
def _common(**extra) -> dict:
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=CONTEXT, bos_token_id=0, eos_token_id=1,
                pad_token_id=None, initializer_range=0.2)  # a wide init: peaky attention, so heads and rows differ
    base.update(extra)
    return base


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    return LlamaForCausalLM(LlamaConfig(**_common()))


def _qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM  # q/k/v biases
    return Qwen2ForCausalLM(Qwen2Config(**_common()))


def _qwen3():
    from transformers import Qwen3Config, Qwen3ForCausalLM  # per-head q/k RMSNorm, explicit head_dim
    return Qwen3ForCausalLM(Qwen3Config(**_common(head_dim=16)))


def _granite():
    from transformers import GraniteConfig, GraniteForCausalLM  # attention scale, embedding/residual/logit multipliers
    return GraniteForCausalLM(GraniteConfig(**_common(attention_multiplier=0.5, embedding_multiplier=4.0,
                                                      residual_multiplier=0.5, logits_scaling=2.0)))


def _mistral():
    from transformers import MistralConfig, MistralForCausalLM
    return MistralForCausalLM(MistralConfig(**_common(sliding_window=SLIDING)))


def _gemma2():
    from transformers import Gemma2Config, Gemma2ForCausalLM
    return Gemma2ForCausalLM(Gemma2Config(**_common(
        head_dim=16, query_pre_attn_scalar=16, sliding_window=SLIDING, attn_logit_softcapping=5.0,
        final_logit_softcapping=3.0, layer_types=["sliding_attention", "full_attention"])))


def _gemma3():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig
    return Gemma3ForCausalLM(Gemma3TextConfig(**_common(
        num_hidden_layers=3, head_dim=16, query_pre_attn_scalar=16, sliding_window=SLIDING,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0}})))


def _gpt_oss():
    import torch
    from transformers import GptOssConfig, GptOssForCausalLM
    model = GptOssForCausalLM(GptOssConfig(**_common(
        head_dim=16, num_local_experts=4, num_experts_per_tok=2, sliding_window=SLIDING,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={"rope_type": "yarn", "factor": 4.0, "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
                         "original_max_position_embeddings": 64, "rope_theta": 150000.0})))
    with torch.no_grad():  # sinks big enough to take a visible share of each row
        for layer in model.model.layers:
            layer.self_attn.sinks.copy_(torch.linspace(0.0, 3.0, layer.self_attn.sinks.numel()))
    return model


def _olmo2():
    from transformers import Olmo2Config, Olmo2ForCausalLM  # q/k RMSNorm over all heads, post-norms
    return Olmo2ForCausalLM(Olmo2Config(**_common()))


def _cohere():
    from transformers import CohereConfig, CohereForCausalLM  # per-head q/k LayerNorm, interleaved rotary, logit_scale
    return CohereForCausalLM(CohereConfig(**_common(use_qk_norm=True, logit_scale=0.5)))


def _smollm3():
    from transformers import SmolLM3Config, SmolLM3ForCausalLM  # no_rope_layers[i] == 0: layer i has no rotary
    return SmolLM3ForCausalLM(SmolLM3Config(**_common(num_hidden_layers=4, no_rope_layers=[1, 1, 1, 0],
                                                      no_rope_layer_interval=4)))


def _phi3():
    from transformers import Phi3Config, Phi3ForCausalLM  # fused qkv_proj, partial rotary
    return Phi3ForCausalLM(Phi3Config(**_common(
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5})))


def _gpt_neox():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM  # fused qkv, rotary on a quarter of each head
    return GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=CONTEXT, bos_token_id=0, eos_token_id=1, initializer_range=0.2,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25}))


def _falcon():
    from transformers import FalconConfig, FalconForCausalLM  # new decoder architecture: fused qkv, grouped KV
    return FalconForCausalLM(FalconConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2,
        new_decoder_architecture=True, parallel_attn=True, alibi=False, bias=False, max_position_embeddings=CONTEXT,
        bos_token_id=0, eos_token_id=1, initializer_range=0.2))


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel  # learned absolute positions
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=CONTEXT,
                                      bos_token_id=0, eos_token_id=1, initializer_range=0.2))


def _opt():
    from transformers import OPTConfig, OPTForCausalLM  # learned positions (offset 2)
    return OPTForCausalLM(OPTConfig(vocab_size=VOCAB, hidden_size=64, ffn_dim=128, num_hidden_layers=2,
                                    num_attention_heads=4, max_position_embeddings=CONTEXT, word_embed_proj_dim=64,
                                    bos_token_id=0, eos_token_id=1, pad_token_id=None, init_std=0.2))


ARCHITECTURES = {
    "llama": _llama, "qwen2": _qwen2, "qwen3": _qwen3, "granite": _granite, "mistral": _mistral,
    "gemma2": _gemma2, "gemma3_text": _gemma3, "gpt_oss": _gpt_oss, "olmo2": _olmo2, "cohere": _cohere,
    "smollm3": _smollm3, "phi3": _phi3, "gpt_neox": _gpt_neox, "falcon": _falcon, "gpt2": _gpt2, "opt": _opt,
}


def _sharpen_qk_norms(model, gain: float = 2.0) -> None:
    """q/k norms start at weight 1 (Gemma's at 0, used as 1 + w): unit-norm queries and keys give near-uniform rows,
    which would hide a wrong rotary or scale. Scale them so attention is as peaky as in the models without norms."""
    import torch

    with torch.no_grad():
        for name, module in model.named_modules():
            if name.endswith(("q_norm", "k_norm")) and getattr(module, "weight", None) is not None:
                if "gemma" in type(module).__name__.lower():
                    module.weight.fill_(gain - 1.0)
                else:
                    module.weight.mul_(gain)


def save(name: str, folder: Path) -> Path:
    """The tiny `name` model (seed SEED) with the demo model's tokenizer, saved to `folder`."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (DEMO_MODEL_DIR / f).is_file():
            shutil.copy(DEMO_MODEL_DIR / f, folder / f)
    torch.manual_seed(SEED)
    model = ARCHITECTURES[name]().eval()
    _sharpen_qk_norms(model)
    model.save_pretrained(folder)
    return folder


# ---- the reference: a plain forward of a fresh copy -------------------------------------------------------------
def reference(folder: Path, ids: list[int]) -> dict:
    """log-probs [n, V] and attentions [L][H, n, n] (float64) from a plain eager forward, output_attentions=True."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_attentions=True, use_cache=False)
    return {"logprobs": torch.log_softmax(out.logits[0].double(), dim=-1).numpy(),
            "attentions": [a[0].double().numpy() for a in out.attentions], "model": model}


def reference_logprobs(ref: dict, ids: list[int]) -> np.ndarray:
    """log-probs [n, V] of the reference model on other ids (a retrieval prompt)."""
    import torch

    with torch.no_grad():
        logits = ref["model"](input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    return torch.log_softmax(logits.double(), dim=-1).numpy()


def perplexity(logprobs: np.ndarray, ids: list[int], start: int, stop: int) -> float:
    """exp(mean NLL) of ids[start:stop], each predicted from the row before it."""
    nll = [-logprobs[t - 1, ids[t]] for t in range(start, stop)]
    return math.exp(float(np.mean(nll)))


# ---- running the views through the Api --------------------------------------------------------------------------
class CellFailed(Exception):
    """A cell's check failed: its message is what the matrix shows."""


def _ok(result: dict) -> dict:
    if not result.get("ok"):
        e = result.get("error", {})
        raise CellFailed(f"{e.get('code')}: {e.get('message')}")
    return result


def _job(api, started: dict, timeout: float = 300.0) -> dict:
    _ok(started)
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = _ok(api.job_status({"job_id": started["job_id"]}))
        if status["state"] != "running":
            if status["state"] != "done":
                e = status.get("error") or {}
                raise CellFailed(f"{e.get('code', status['state'])}: {e.get('message')}")
            return status["result"]
        time.sleep(0.01)
    raise CellFailed(f"timeout: still running after {timeout:.0f} s")


def _close(name: str, got: float, want: float, tol: float = TOL) -> None:
    if got is None or not math.isfinite(got) or abs(got - want) > tol * abs(want):
        raise CellFailed(f"{name} {got} vs reference {want} (relative {abs((got or 0) - want) / abs(want):.2e})")


def _rows_close(name: str, got, want) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise CellFailed(f"{name}: shape {got.shape} vs reference {want.shape}")
    dev = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not dev <= TOL:
        raise CellFailed(f"{name}: max deviation {dev:.3g} from eager output_attentions")


def _finite_policies(results: list[dict], names: list[str]) -> dict:
    by = {r["policy"]: r for r in results}
    missing = [p for p in names if p not in by]
    if missing:
        raise CellFailed(f"no result for {missing}")
    bad = [p for p in names if by[p]["perplexity"] is None or not math.isfinite(by[p]["perplexity"])]
    if bad:
        raise CellFailed(f"perplexity not finite for {bad}")
    return by


def check_attention(api, ref, spec) -> str:
    note = ""
    for layer in range(spec["layers"]):
        per_head = ref["attentions"][layer]
        for head, want in ((None, per_head.mean(axis=0)), (0, per_head[0])):
            got = _ok(api.attention({"text": TEXT, "layer": layer, "head": head}))
            _rows_close(f"layer {layer} head {head}", got["matrix"], want)
            shortfall = 1.0 - np.asarray(got["matrix"]).sum(axis=1)
            if shortfall.max() > 1e-4:  # learned sinks (gpt-oss) take part of each row: the view says how much
                if got["learned_sink"] is None or not np.allclose(got["learned_sink"], shortfall, atol=1e-5):
                    raise CellFailed(f"rows sum short of 1 by up to {shortfall.max():.3f} and learned_sink does not "
                                     "account for it")
                note = f" (rows sum short of 1 by up to {shortfall.max():.3f}: the learned sinks' share, shown)"
            elif got["learned_sink"] is not None:
                raise CellFailed("learned_sink reported on a model without learned sinks")
    return "✓" + note


def check_stream(api, ref, spec, n_steps: int = 2 * SLIDING + 4) -> str:
    _ok(api.stream_start({"prompt": TEXT, "generate": 0, "view": {"layer": 0, "head": None}}))
    for t in range(n_steps):
        layer = t % spec["layers"]
        out = _ok(api.stream_step({"steps": 1, "view": {"layer": layer, "head": None}}))
        if len(out["steps"]) != 1 or out["steps"][0]["position"] != t:
            raise CellFailed(f"step {t}: got {[s['position'] for s in out['steps']]}")
        _rows_close(f"position {t} layer {layer}", out["steps"][0]["row"],
                    ref["attentions"][layer].mean(axis=0)[t, : t + 1])
    return "✓"


def check_simulate(api, ids) -> str:
    out = _job(api, api.simulate({"trace": "model", "text": TEXT, "cache_size": CACHE, "sinks": 2, "window": 4,
                                  "policy": "all", "layer": -1}))
    full = next((r for r in out["results"] if r["policy"] == "full"), None)
    if full is None or full["tokens_processed"] != len(ids):
        raise CellFailed(f"full cache processed {full and full['tokens_processed']} tokens, not {len(ids)}")
    if any(r["evictions"] == 0 for r in out["results"] if r["policy"] != "full"):
        raise CellFailed("an evicting policy evicted nothing")
    return "✓"


def check_profile(api, quest: bool) -> str:
    params = {"trace": "model", "text": TEXT, "block_size": 16, "preset": "constrained", "policy": "topk",
              "window": 1, "k": 2, "layer": -1}
    if quest:
        params["fetch_rule"] = "quest_bound"
    out = _job(api, api.profile(params))
    if out["summary"]["bytes_fetched"] <= 0 and quest:
        raise CellFailed("Quest's choice fetched nothing")
    return "✓"


def check_eval_full(api, ids, ref) -> str:
    out = _job(api, api.evaluate({"text": TEXT, "max_tokens": len(ids), "policy": ["full"], "cache_size": CACHE}))
    full = out["results"][0]
    if full["tokens"] != len(ids) - 1:
        raise CellFailed(f"scored {full['tokens']} tokens, not {len(ids) - 1}")
    _close("Full Cache perplexity", full["perplexity"], perplexity(ref["logprobs"], ids, 1, len(ids)))
    return "✓"


def check_eval_evicting(api, ids, positions: str, name: str) -> str:
    out = _job(api, api.evaluate({"text": TEXT, "max_tokens": len(ids), "policy": STREAMING_POLICIES,
                                  "cache_size": CACHE, "sinks": 2, "window": 4, "positions": positions}))
    by = _finite_policies(out["results"], ["full"] + STREAMING_POLICIES)
    sliding = out["model"]["sliding_window_note"]
    if (sliding is not None) != (name in SLIDING_ARCHITECTURES):
        raise CellFailed(f"the result's sliding-window note is {sliding!r}")
    quiet = [p for p in STREAMING_POLICIES if by[p]["evictions"] == 0]
    if quiet:
        raise CellFailed(f"{quiet} evicted nothing")
    if positions == "in_cache":
        # Sliding Window moves every kept key down by one per eviction: each query-key distance is unchanged, so
        # in-cache positions must give original positions' numbers (each layer's own rotary, none on NoPE layers).
        ppl = {}
        for where in ("original", "in_cache"):
            run = _job(api, api.evaluate({"text": TEXT, "max_tokens": len(ids), "policy": ["sliding_window"],
                                          "cache_size": CACHE, "sinks": 2, "window": 4, "positions": where}))
            ppl[where] = next(r["perplexity"] for r in run["results"] if r["policy"] == "sliding_window")
        if abs(ppl["in_cache"] / ppl["original"] - 1) > TOL:
            raise CellFailed(f"window attention in-cache {ppl['in_cache']:.8g} ≠ original {ppl['original']:.8g} "
                             f"(distances unchanged)")
    return "✓"


def _prefill(api, ids, methods) -> dict:
    n = len(ids) * 3 // 4
    out = _job(api, api.evaluate({"protocol": "prefill", "text": TEXT, "max_tokens": len(ids), "policy": methods,
                                  "context_tokens": n, "continuation_tokens": len(ids) - n, "cache_size": CACHE,
                                  "sinks": 2, "window": 4}))
    return {r["policy"]: r for r in out["results"]}, n


def check_prefill(api, ids, ref) -> dict:
    """{prefill_full, prefill_<method>…}: all methods in one run; if that fails, each on its own to name the culprit."""
    cells = {}
    try:
        by, n = _prefill(api, ids, PREFILL_METHODS)
    except CellFailed as exc:
        by, n, first = None, len(ids) * 3 // 4, str(exc)
    if by is None:
        try:
            by, n = _prefill(api, ids, ["full"])
        except CellFailed as exc:
            return {f: str(exc) for f in ["prefill_full"] + [f"prefill_{m}" for m in PREFILL_METHODS]}
        for m in PREFILL_METHODS:
            cells[f"prefill_{m}"] = _cell(lambda: _prefill_one(api, ids, m))
    else:
        for m in PREFILL_METHODS:
            cells[f"prefill_{m}"] = _cell(lambda: _finite_policies(list(by.values()), [m]) and "✓")
    cells["prefill_full"] = _cell(lambda: _close("prefill Full Cache perplexity", by["full"]["perplexity"],
                                                 perplexity(ref["logprobs"], ids, n, len(ids))) or "✓")
    return cells


def _prefill_one(api, ids, method) -> str:
    by, _ = _prefill(api, ids, [method])
    _finite_policies(list(by.values()), [method])
    return "✓"


def check_quest(api, ids) -> str:
    everything = _job(api, api.evaluate({"text": TEXT, "max_tokens": len(ids), "policy": ["quest"],
                                         "cache_size": 16 * (len(ids) // 16 + 1)}))
    by = _finite_policies(everything["results"], ["full", "quest"])
    _close("Quest (k ≥ every page) perplexity", by["quest"]["perplexity"], by["full"]["perplexity"])
    if abs(by["quest"]["kl_vs_full"]) > 1e-6:
        raise CellFailed(f"Quest (k ≥ every page) KL from Full Cache {by['quest']['kl_vs_full']:.3g}")
    one_page = _job(api, api.evaluate({"text": TEXT, "max_tokens": len(ids), "policy": ["quest"], "cache_size": 16}))
    _finite_policies(one_page["results"], ["quest"])
    return "✓"


def check_retrieval(api, protocol: str, ref: dict, tokenizer) -> str:
    """One cell (RETRIEVAL_LENGTH tokens, depth 0.5): Full Cache's teacher-forced answer log-prob = the plain forward's."""
    from backend.retrieval.tasks import TASKS

    policy = ["full", "streaming_llm"] if protocol == "streaming" else ["full", "snapkv"]
    out = _job(api, api.retrieval({"task": "pass_key", "protocol": protocol, "seed": 0, "chat_template": False,
                                   "policy": policy, "lengths": [RETRIEVAL_LENGTH], "depths": [0.5], "cache_size": CACHE,
                                   "sinks": 2, "window": 4, "chunk": 8}))
    by = {c["policy"]: c for c in out["cells"]}
    if sorted(by) != sorted(policy):
        raise CellFailed(f"cells for {sorted(by)}, not {sorted(policy)}")
    prompt = TASKS["pass_key"](tokenizer, RETRIEVAL_LENGTH, 0.5, 0, False)
    ids = list(prompt.context_ids) + list(prompt.question_ids) + list(prompt.answer_ids)
    lp = reference_logprobs(ref, ids)
    first = len(prompt.context_ids) + len(prompt.question_ids)
    want = float(sum(lp[t - 1, ids[t]] for t in range(first, len(ids))))
    if abs(by["full"]["answer_logprob"] - want) > max(TOL * abs(want), 2e-6):
        raise CellFailed(f"Full Cache answer log-prob {by['full']['answer_logprob']} vs reference {want:.6f}")
    return "✓"


def _cell(check) -> str:
    try:
        return check()
    except CellFailed as exc:
        return str(exc).splitlines()[0]
    except Exception as exc:  # noqa: BLE001 - a harness bug or an exception outside the Api: shown, not hidden
        return f"harness {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def run(api, name: str, folder: Path) -> dict:
    """Load `folder` (saved by `save(name, ...)`) through the Api and run every feature: {feature: cell}."""
    from helpers import wait_job  # noqa: F401 - tests/ is on sys.path (pytest rootdir, or the tool adds it)

    cells = {}
    started = api.load_model({"source": str(folder), "device": "cpu", "precision": "fp32"})
    cells["load"] = _cell(lambda: _job(api, started) and "✓")
    if cells["load"] != "✓":
        return {f: cells["load"] if f == "load" else "not run: the load failed" for f in FEATURES}
    loaded = api._state.model
    ids = loaded.tokenizer(TEXT, add_special_tokens=True, verbose=False)["input_ids"]
    ref = reference(folder, ids)
    spec = loaded.spec
    cells["attention"] = _cell(lambda: check_attention(api, ref, spec))
    cells["stream"] = _cell(lambda: check_stream(api, ref, spec))
    cells["simulate"] = _cell(lambda: check_simulate(api, ids))
    cells["profile"] = _cell(lambda: check_profile(api, quest=False))
    cells["profile_quest"] = _cell(lambda: check_profile(api, quest=True))
    cells["eval_full"] = _cell(lambda: check_eval_full(api, ids, ref))
    cells["eval_original"] = _cell(lambda: check_eval_evicting(api, ids, "original", name))
    cells["eval_in_cache"] = _cell(lambda: check_eval_evicting(api, ids, "in_cache", name))
    cells.update(check_prefill(api, ids, ref))
    cells["quest"] = _cell(lambda: check_quest(api, ids))
    cells["retrieval_streaming"] = _cell(lambda: check_retrieval(api, "streaming", ref, loaded.tokenizer))
    cells["retrieval_prefill"] = _cell(lambda: check_retrieval(api, "prefill", ref, loaded.tokenizer))
    for f, refusal in NOT_APPLICABLE.items():
        if f[0] == name and cells[f[1]] == refusal:
            cells[f[1]] = f"n/a: {refusal}"
    return {f: cells[f] for f in FEATURES}


# ---- what fails today -------------------------------------------------------------------------------------------
# (architecture, feature) → the cell's text today. tests/test_architectures.py: xfail(strict=True) on these.
_PREFILL_CELLS = ["prefill_full"] + [f"prefill_{m}" for m in PREFILL_METHODS]

KNOWN_FAILURES: dict[tuple[str, str], str] = {}


# Refusals by name where a feature is undefined (not failures): the cell shows "n/a: <the refusal>" and passes
# while the Api answers exactly this.
def _outside_interface(what: str) -> str:
    return (f"{what} needs each layer's queries and keys, taken where the model calls transformers' attention "
            "interface; falcon computes its attention its own way and never calls it. Load a model that does "
            "(Llama, Qwen, Gemma, Mistral, gpt-oss, OLMo, Phi-3, Pythia, GPT-2, …).")


NOT_APPLICABLE: dict[tuple[str, str], str] = {
    # DESIGN.md: in-cache positions re-rotate keys, so learned absolute positions cannot move.
    **{(arch, "eval_in_cache"): "bad_input: in-cache positions need keys that can move to other positions, and this "
                                "model has no rotary embedding: its positions are baked into each cached K/V: use "
                                "positions='original'." for arch in ("gpt2", "opt")},
    # Falcon computes attention inline, never through AttentionInterface: nothing to capture queries and keys from.
    **{("falcon", f): "unsupported_model: " + _outside_interface("Compression at prefill")
       for f in _PREFILL_CELLS + ["retrieval_prefill"]},
    ("falcon", "profile_quest"): "unsupported_model: " + _outside_interface("Quest's fetch rule"),
    ("falcon", "quest"): "bad_input: " + _outside_interface("Quest"),
}


def markdown(results: dict, full: bool = False) -> str:
    """results {arch: {feature: cell}} → a markdown table. Each distinct failure is numbered (✗1, ✗2, …) and
    spelled out once under the table; full=True writes every cell's text in the table instead."""
    legend: dict[str, int] = {}

    def short(cell: str) -> str:
        if full or cell == "✓":
            return cell.replace("|", "/")
        if cell.startswith("✓"):
            return "✓*"  # ✓ with a note (gpt-oss's sink share): the note is in the legend
        return ("n/a" if cell.startswith("n/a: ") else "✗") + str(legend.setdefault(cell, len(legend) + 1))

    lines = ["| architecture | " + " | ".join(FEATURES) + " |", "|---" * (len(FEATURES) + 1) + "|"]
    notes = []
    for arch, cells in results.items():
        lines.append(f"| {arch} | " + " | ".join(short(cells.get(f, "")) for f in FEATURES) + " |")
        notes += [f"- ✓* {arch} × {f}: {c}" for f, c in cells.items() if c.startswith("✓") and c != "✓" and not full]
    if legend:
        lines += ["", *(f"{n}. {text}" for text, n in legend.items())]
    return "\n".join(lines + ([""] + notes if notes else []))
