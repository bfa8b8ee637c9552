"""kvpress's side of the agreement check (tools/kvpress_check.py): runs inside build/kvpress-venv.

    build/kvpress-venv/bin/python tools/kvpress_side.py request.json result.json

request: {"model": HF folder, "ids": [...], "context_tokens": n, "continuation_tokens": m,
          "runs": [{"method": SinkVis name, "ratio": r}, ...]}
result:  {"kvpress": version, "transformers": version, "torch": version,
          "runs": [{"method", "ratio", "nll": [m floats], "kept_per_layer": [...], "attn_implementation"}]}

The protocol is kvpress's own (kvpress/pipeline.py, KVPressTextGenerationPipeline._forward and
generate_answer): the context is prefilled once inside `with press(model)`, which compresses each
layer's cache in its forward hook; the continuation is then fed, uncompressed, over that cache at
positions n, n+1, … (the pipeline's question/answer positions). Teacher-forced: token c₀ is scored
by the prefill's last logits (the same for every press, the prefill itself being uncompressed), the
later ones by one forward over the continuation. A multi-token forward over a cache whose layers hold
different lengths (PyramidKV) fails in transformers' mask (built for layer 0's length) — in kvpress's
own pipeline too, for any question longer than one token — so such a cache is fed one token a step,
the way generate_answer decodes.

This file imports nothing from SinkVis (kvpress needs transformers < 5.3, the app runs 5.23), and
with press=None the scoring runs in any environment: tests/test_kvpress_check.py runs it there.
"""
import contextlib
import json
import sys

# SinkVis method → kvpress press, kvpress's defaults (kvpress/presses/*.py, version 0.5.5).
PRESSES = {
    "snapkv": ("SnapKVPress", {}),
    "pyramidkv": ("PyramidKVPress", {}),
    "adakv_snapkv": ("AdaKVPress", {"press": "SnapKVPress"}),  # alpha_safeguard 0.2
    "expected_attention": ("ExpectedAttentionPress", {}),
    "adakv_expected_attention": ("AdaKVPress", {"press": "ExpectedAttentionPress"}),
    "knorm": ("KnormPress", {}),
    "keydiff": ("KeyDiffPress", {}),
    "observed_attention": ("ObservedAttentionPress", {}),
    "tova": ("TOVAPress", {}),
    "streaming_llm": ("StreamingLLMPress", {"n_sink": 4}),
    "random": ("RandomPress", {"seed": 0}),
}
# ObservedAttentionPress reads the attention weights (eager only); AdaKVPress asserts it is *not* eager
# (its per-head masks are applied by kvpress's patch of the sdpa/flash functions). Everything else: sdpa.
EAGER = {"observed_attention"}


def attn_implementation(method: str) -> str:
    return "eager" if method in EAGER else "sdpa"


def make_press(method: str, ratio: float):
    """The press at compression_ratio = ratio; a wrapper (AdaKV) gets it on the press it wraps."""
    import kvpress

    name, kwargs = PRESSES[method]
    if "press" in kwargs:
        return getattr(kvpress, name)(press=getattr(kvpress, kwargs["press"])(compression_ratio=ratio))
    return getattr(kvpress, name)(compression_ratio=ratio, **kwargs)


def continuation_nll(model, ids: list[int], context_tokens: int, continuation_tokens: int, press=None):
    """(nll of each continuation token [m], cache entries per layer after the prefill)."""
    import torch
    from transformers import DynamicCache

    n, cont = context_tokens, ids[context_tokens:context_tokens + continuation_tokens]
    cache = DynamicCache()
    with torch.inference_mode():
        with press(model) if press is not None else contextlib.nullcontext():
            out = model(input_ids=torch.tensor([ids[:n]]), past_key_values=cache, logits_to_keep=1)
        kept = [int(layer.keys.shape[2]) for layer in cache.layers]
        nll = [-float(torch.log_softmax(out.logits[0, -1].float(), dim=-1)[cont[0]])]
        if len(set(kept)) == 1:  # one forward over the continuation, at positions n, n+1, …
            out = model(input_ids=torch.tensor([cont[:-1]]), past_key_values=cache,
                        position_ids=torch.arange(n, n + len(cont) - 1)[None])
            lp = torch.log_softmax(out.logits[0].float(), dim=-1)
            nll += (-lp[torch.arange(len(cont) - 1), torch.tensor(cont[1:], dtype=torch.long)]).tolist()
        else:  # layers of different lengths (PyramidKV): one token a step, as generate_answer decodes
            for i, token in enumerate(cont[:-1]):
                out = model(input_ids=torch.tensor([[token]]), past_key_values=cache,
                            position_ids=torch.tensor([[n + i]]))
                nll.append(-float(torch.log_softmax(out.logits[0, -1].float(), dim=-1)[cont[i + 1]]))
    return nll, kept


def load(folder: str, implementation: str):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation=implementation).eval()


def main(request_path: str, result_path: str) -> None:
    import torch
    import transformers

    torch.manual_seed(0)
    request = json.loads(open(request_path, encoding="utf-8").read())
    torch.set_num_threads(int(request.get("threads", torch.get_num_threads())))
    models, runs = {}, []
    for run in request["runs"]:
        implementation = attn_implementation(run["method"])
        if implementation not in models:
            models[implementation] = load(request["model"], implementation)
        press = make_press(run["method"], run["ratio"])
        nll, kept = continuation_nll(models[implementation], request["ids"], request["context_tokens"],
                                     request["continuation_tokens"], press)
        runs.append({**run, "nll": nll, "kept_per_layer": kept, "attn_implementation": implementation,
                     "press": repr(press)})
        print(f"kvpress {run['method']} r={run['ratio']}: done", file=sys.stderr, flush=True)
    if "sdpa" not in models:
        models["sdpa"] = load(request["model"], "sdpa")
    full, _ = continuation_nll(models["sdpa"], request["ids"], request["context_tokens"], request["continuation_tokens"])
    out = {"kvpress": _installed("kvpress"),
           "transformers": transformers.__version__, "torch": torch.__version__, "full_nll": full, "runs": runs}
    open(result_path, "w", encoding="utf-8").write(json.dumps(out))


def _installed(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # a request with no runs needs no kvpress (the tests run it so)
        return "not installed"


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
