"""llama.cpp's side of the quantized-cache agreement check (tools/llamacpp_check.py): runs inside
build/llamacpp-venv, where llama-cpp-python is built from source.

    build/llamacpp-venv/bin/python tools/llamacpp_side.py request.json result.json

request: {"gguf": path, "ids": [...], "cache_types": ["f16", "q8_0", "q4_0"], "rotation": [false, true], "threads": 2}
result:  {"llama_cpp": version, "runs": [{"cache_type": "q8_0", "rotation": false, "nll": [len(ids) - 1 floats]}]}

One evaluation of the whole id sequence per cache type, K and V in the same type, in batches of n_batch
tokens: llama.cpp writes each batch's keys and values into its (quantized) cache first and attends over
the cache, so every key a query reads has been through the format, as in SinkVis's quantize-on-insert.
A quantized V cache needs flash attention in llama.cpp, so flash attention is on for every type (f16
included: the baseline differs from the others only in the cache). Token t is scored by the logits at
t - 1; the ids are evaluated as given (no BOS added), the same ids SinkVis scores.

Rotation: llama.cpp (the build llama-cpp-python 0.3.36 vendors) multiplies queries and keys (and values, undoing it after attention) by a
Hadamard matrix when the cache is quantized, which spreads outlier channels over a block before it is
quantized ("attn_rot_k/v" in its log). `rotation: false` runs it with LLAMA_ATTN_ROT_DISABLE=1: the plain
block format, what SinkVis's formats are.

This file imports nothing from SinkVis, and `nll` (the scoring) is plain NumPy: tests run it anywhere.
"""
import json
import os
import sys

import numpy as np

# llama.cpp's ggml_type ids (ggml.h) for the cache types the check compares.
GGML_TYPES = {"f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8}


def nll(logits: np.ndarray, ids: list[int]) -> list[float]:
    """−log p(ids[t] | ids[:t]) for t ≥ 1, from logits[t - 1] (rows: positions, columns: vocabulary)."""
    rows = logits[: len(ids) - 1].astype(np.float64)
    top = rows.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
    return (log_z - rows[np.arange(len(ids) - 1), ids[1:]]).tolist()


def run(request: dict) -> dict:
    import llama_cpp

    ids = [int(i) for i in request["ids"]]
    runs = []
    for cache_type, rotation in [(t, r) for r in request.get("rotation", [True]) for t in request["cache_types"]]:
        if cache_type not in GGML_TYPES:
            raise ValueError(f"unknown cache type {cache_type!r}; choose from {', '.join(GGML_TYPES)}")
        if rotation:  # read by llama.cpp each time a KV cache is created
            os.environ.pop("LLAMA_ATTN_ROT_DISABLE", None)
        else:
            os.environ["LLAMA_ATTN_ROT_DISABLE"] = "1"
        llm = llama_cpp.Llama(model_path=request["gguf"], n_ctx=len(ids), n_batch=min(512, len(ids)),
                              n_ubatch=min(512, len(ids)), n_threads=request.get("threads", 2),
                              n_threads_batch=request.get("threads", 2), logits_all=True, flash_attn=True,
                              type_k=GGML_TYPES[cache_type], type_v=GGML_TYPES[cache_type], verbose=False)
        llm.eval(ids)
        runs.append({"cache_type": cache_type, "rotation": bool(rotation), "nll": nll(np.asarray(llm.scores), ids)})
        llm.close()
    return {"llama_cpp": llama_cpp.__version__, "runs": runs}


if __name__ == "__main__":
    req_path, res_path = sys.argv[1], sys.argv[2]
    with open(req_path, encoding="utf-8") as f:
        req = json.load(f)
    with open(res_path, "w", encoding="utf-8") as f:
        json.dump(run(req), f)
