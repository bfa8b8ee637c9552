"""The feature checks `main.py --self-test` (and the frozen binary's) runs after the attention pass.

Each check takes the Api with the demo model loaded and returns a piece of the JSON
summary; a failing Api call raises CliError, which fails the self-test.
"""
import time

from .cli.common import check, wait_job

PROMPT = "In the beginning the Jargon File was a collection of hacker slang. " * 3


def stream_check(api) -> dict:
    started = time.perf_counter()
    check(api.stream_start({"prompt": PROMPT, "generate": 0}))
    steps = check(api.stream_step({"steps": 32}))
    taken = len(steps["steps"])
    return {"stream": {"steps": taken, "sinks": [s["position"] for s in steps["sinks"]],
                       "seconds": round(time.perf_counter() - started, 3)}}


def eviction_check(api) -> dict:
    job = check(api.simulate({"trace": "synthetic", "length": 100_000, "policy": "all"}))
    result = wait_job(api, job["job_id"], quiet=True)
    return {"eviction": {r["policy"]: {"hit_rate": r["hit_rate"], "seconds": r["seconds"]} for r in result["results"]}}


def profile_check(api) -> dict:
    job = check(api.profile({"trace": "synthetic", "length": 100_000, "preset": "constrained"}))
    result = wait_job(api, job["job_id"], quiet=True)
    summary = result.get("summary", result)
    keys = ("n_blocks", "promotions", "demotions", "bytes_moved")
    return {"profile": {k: summary[k] for k in keys if k in summary}}


def gguf_check(api) -> dict:
    """The real model from its GGUF (when this machine has SmolLM2): header, load, one attention pass.

    Last of the checks: it replaces the demo model. ~15–20 s on a 2-core machine (the dequantization);
    without the file it reports how to get it and does not fail (the app works without it).
    """
    from .models.bundled import HOW_TO_GET, smollm2_path, smollm2_present
    from .models.gguf import read_header

    if not smollm2_present():
        return {"gguf": {"present": False, "how_to_get": HOW_TO_GET}}
    started = time.perf_counter()
    header = read_header(smollm2_path()).summary()
    header_seconds = time.perf_counter() - started
    info = wait_job(api, check(api.load_model({"source": "smollm2", "device": "cpu", "precision": "fp32"}))["job_id"], quiet=True)
    loaded = time.perf_counter()
    att = check(api.attention({"text": PROMPT, "layer": -1}))
    return {"gguf": {"present": True, "architecture": header["architecture"], "quantization": header["quantization"],
                     "header_seconds": round(header_seconds, 4), "load_seconds": round(loaded - started, 3),
                     "dequantized_to": info["spec"]["dequantized_to"], "weights_bytes": info["spec"]["weights_bytes"],
                     "attention_tokens": att["n"], "sinks": [s["position"] for s in att["sinks"]]}}


CHECKS = [stream_check, eviction_check, profile_check, gguf_check]
