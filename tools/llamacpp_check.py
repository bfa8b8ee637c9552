"""Agreement with llama.cpp on quantized KV caches, measured: the same GGUF, the same ids, K and V stored in
f16, q8_0 and q4_0 on both sides; compared as each side's relative perplexity increase over its own f16 cache.

    .venv/bin/python tools/llamacpp_check.py                          # SmolLM2 GGUF, alice, 1,024 tokens
    .venv/bin/python tools/llamacpp_check.py --tokens 512 --cache-types q8_0,q4_0,q5_1

llama.cpp computes with the GGUF's quantized weights (SmolLM2's file is Q4_1) and SinkVis with those weights
dequantized to fp32, so absolute perplexities differ; what a cache format adds on top of each should agree.
llama-cpp-python lives in its own virtual environment, build/llamacpp-venv (built from source on first use,
minutes; never a dependency of the app, never part of `make test`); its side is tools/llamacpp_side.py, run
there as a subprocess, talking JSON through two files. SinkVis's side is one forward over the ids through a
backend.quantize QuantizedKVCache: every key and value is quantized as it enters and read back dequantized,
as llama.cpp writes each batch into its cache before attending over it.

Two things make llama.cpp's cache differ from a block format alone, and the check accounts for both:
- llama.cpp rotates queries, keys and values by a Hadamard matrix when its cache is quantized (PR #21038). Each
  type is run twice there, without the rotation (LLAMA_ATTN_ROT_DISABLE=1: row "q4_0") and with it (its
  default: row "q4_0-rot"), against SinkVis's q4_0 and q4_0-rot formats (backend/quantize/rotated.py).
- A llama-architecture GGUF stores each head's query and key rows interleaved (convert_hf_to_gguf permutes them
  for llama.cpp's rotary layout; transformers un-permutes them on load), so llama.cpp's blocks of 32 along
  head_dim hold other channels than SinkVis's blocks in the Hugging Face order. With --key-order gguf (the
  default) SinkVis's side quantizes keys in llama.cpp's order; the last column is the Hugging Face order,
  what an engine serving the Hugging Face weights stores.
A row is flagged when the two increases differ by more than --threshold percentage points (2 by default).
"""
import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from kvpress_check import perplexity, text_ids  # noqa: E402
from llamacpp_side import GGML_TYPES  # noqa: E402

VENV = ROOT / "build" / "llamacpp-venv"
PINS = ["llama-cpp-python==0.3.36", "numpy"]
CACHE_TYPES = ("q8_0", "q4_0")
THRESHOLD = 2.0  # percentage points


def gguf_key_order(head_dim: int) -> list[int]:
    """Position p of a llama-architecture GGUF key head holds Hugging Face channel order[p]: the rotary pairs
    (i, i + head_dim/2) side by side (convert_hf_to_gguf's permute)."""
    half = head_dim // 2
    return [j * half + i for i in range(half) for j in (0, 1)]


class InOrder:
    """A codec that quantizes in another channel order: permute, round-trip, permute back."""

    def __init__(self, codec, order: list[int]):
        import torch

        self.codec, self.order = codec, torch.tensor(order)
        self.inverse = torch.argsort(self.order)

    def __getattr__(self, name):  # bits, check, name: the codec's own
        return getattr(self.codec, name)

    def roundtrip(self, x, state: dict, pending=None):
        return self.codec.roundtrip(x[..., self.order].contiguous(), state, pending)[..., self.inverse]


def increases(perplexities: dict) -> dict:
    """{cache type: percent over f16} from {cache type: perplexity} (f16 included)."""
    base = perplexities["f16"]
    return {t: 100.0 * (p / base - 1.0) for t, p in perplexities.items() if t != "f16"}


def compare(llamacpp: dict, sinkvis: dict, threshold: float = THRESHOLD) -> list[dict]:
    """One row per cache type both measured: each side's perplexity and increase over its f16, the gap."""
    up_l, up_s = increases(llamacpp), increases(sinkvis)
    return [{"cache_type": t, "llamacpp": llamacpp[t], "sinkvis": sinkvis[t], "llamacpp_up": up_l[t],
             "sinkvis_up": up_s[t], "gap": up_s[t] - up_l[t], "flag": abs(up_s[t] - up_l[t]) > threshold}
            for t in up_l if t in up_s]


def table(llamacpp: dict, sinkvis: dict, rows: list[dict], hf_order: dict, threshold: float = THRESHOLD) -> str:
    """rows: compare(llamacpp, sinkvis); hf_order: SinkVis's increases with keys in the Hugging Face order."""
    lines = ["| K and V cache | llama.cpp ppl | increase | SinkVis ppl | increase | gap (points) | | "
             "SinkVis, Hugging Face order |",
             "|---|---|---|---|---|---|---|---|",
             f"| f16 | {llamacpp['f16']:.3f} | | {sinkvis['f16']:.3f} | | | | |"]
    for r in rows:
        t = r["cache_type"]
        lines.append(f"| {t} | {r['llamacpp']:.3f} | {r['llamacpp_up']:+.2f}% | {r['sinkvis']:.3f} | "
                     f"{r['sinkvis_up']:+.2f}% | {r['gap']:+.2f} | {f'> {threshold:g}' if r['flag'] else ''} | "
                     f"{hf_order[t]:+.2f}% |")
    return "\n".join(lines)


def sinkvis_perplexities(loaded, ids: list[int], cache_types, key_order: list[int] | None = None) -> dict:
    """{cache type: perplexity over ids[1:]} from one forward through a QuantizedKVCache in that format
    (keys quantized in `key_order` when given)."""
    import torch

    from backend.quantize import kv_format
    from backend.quantize.layer import QuantizedKVCache

    out = {}
    with torch.inference_mode():
        for t in ("f16", *cache_types):
            fmt = kv_format(t)
            if key_order is not None:
                fmt = dataclasses.replace(fmt, key=dataclasses.replace(fmt.key, codec=InOrder(fmt.key.codec, key_order)))
            logits = loaded.model(input_ids=torch.tensor([ids]), past_key_values=QuantizedKVCache(fmt),
                                  use_cache=True).logits[0]
            lp = torch.log_softmax(logits.double(), dim=-1)
            out[t] = perplexity([-float(lp[i - 1, ids[i]]) for i in range(1, len(ids))])
    return out


def venv_python(venv: Path = VENV) -> Path:
    """The llama.cpp venv's interpreter; built (pip install PINS, compiling llama.cpp) when missing."""
    import os

    python = venv / "bin" / "python"
    if not python.exists():
        print(f"building {venv} ({' '.join(PINS)}; compiles llama.cpp, minutes) …", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True,
                       env={**os.environ, "CMAKE_ARGS": "-DLLAMA_CURL=OFF"})
    return python


def run_llamacpp(python: Path, req: dict, side: Path = ROOT / "tools" / "llamacpp_side.py") -> dict:
    with tempfile.TemporaryDirectory(prefix="llamacpp-check-") as tmp:
        req_path, res_path = Path(tmp) / "request.json", Path(tmp) / "result.json"
        req_path.write_text(json.dumps(req), encoding="utf-8")
        subprocess.run([str(python), str(side), str(req_path), str(res_path)], check=True)
        return json.loads(res_path.read_text(encoding="utf-8"))


def main(argv=None) -> int:
    from backend.models.bundled import smollm2_path

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=str(smollm2_path()), help="the GGUF both sides load")
    ap.add_argument("--text", default="alice", help="a bundled text (alice, jargon) or a file")
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--cache-types", default=",".join(CACHE_TYPES), help=f"from {', '.join(GGML_TYPES)}")
    ap.add_argument("--key-order", choices=("gguf", "hf"), default="gguf",
                    help="the channel order SinkVis quantizes keys in for the agreement row (see above)")
    ap.add_argument("--threshold", type=float, default=THRESHOLD)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)
    import torch

    from backend.models.load import load_model

    cache_types = [t for t in args.cache_types.split(",") if t and t != "f16"]
    unknown = [t for t in cache_types if t not in GGML_TYPES]
    if unknown:
        ap.error(f"llama.cpp has no cache type {unknown}; choose from {', '.join(GGML_TYPES)}")
    torch.set_num_threads(args.threads)
    loaded = load_model(args.gguf, device="cpu", precision="fp32")
    ids = text_ids(loaded, args.text)[: args.tokens]
    if len(ids) < args.tokens:
        ap.error(f"the text has {len(ids)} tokens, fewer than --tokens {args.tokens}")
    result = run_llamacpp(venv_python(), {"gguf": args.gguf, "ids": ids, "cache_types": ["f16", *cache_types],
                                          "rotation": [False, True], "threads": args.threads})
    # f16 is never rotated (llama.cpp rotates only a quantized cache): one f16 row serves both
    llama = {r["cache_type"] + ("-rot" if r["rotation"] and r["cache_type"] != "f16" else ""): perplexity(r["nll"])
             for r in result["runs"]}
    formats = [t + suffix for suffix in ("", "-rot") for t in cache_types]
    hf = sinkvis_perplexities(loaded, ids, formats)
    mine = hf if args.key_order == "hf" else sinkvis_perplexities(
        loaded, ids, formats, gguf_key_order(loaded.spec["head_dim"]))
    rows = compare(llama, mine, args.threshold)
    print(f"llama-cpp-python {result['llama_cpp']} vs SinkVis; {Path(args.gguf).name}, text {args.text}, "
          f"{len(ids)} tokens; K and V in the same type; increase = perplexity over the same side's f16 cache; "
          f"-rot: llama.cpp's Hadamard rotation on (its default) and SinkVis's -rot format; "
          f"SinkVis quantizes keys in {args.key_order} order")
    print(table(llama, mine, rows, increases(hf), args.threshold))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 1 if any(r["flag"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
