"""Agreement with NVIDIA kvpress, measured: the same text, split, ratios and presses on both sides.

    .venv/bin/python tools/kvpress_check.py                     # SmolLM2, alice, n = 1,024, m = 256
    .venv/bin/python tools/kvpress_check.py --context 512 --methods snapkv,knorm --ratios 0.5

kvpress 0.5.5 needs transformers < 5.3 and the app runs 5.23, so kvpress lives in its own virtual
environment, build/kvpress-venv (built on first use with PINS below; never a dependency of the app,
never part of `make test`). Its side is tools/kvpress_side.py, run there as a subprocess, talking
JSON through two files. Both sides load the same weights: the app's loaded model (GGUF dequantized
to fp32) is saved once as a safetensors folder under build/ and kvpress loads that folder.

Protocol (kvpress's pipeline): compress the first n tokens once at ratio r, then score the next m
teacher-forced, uncompressed, at their original positions; perplexity over the m tokens. SinkVis's
side is backend.compress.prefill_perplexity on the same ids. A row is flagged when the two
perplexities differ by more than --threshold percent (2 by default).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from kvpress_side import PRESSES, attn_implementation  # noqa: E402  (no kvpress import at module level)

VENV = ROOT / "build" / "kvpress-venv"
# kvpress 0.5.5 asks for transformers >=4.56,<5.3 and torch >=2.3.1,<3: torch 2.13.0 is the wheel already on
# this machine's disk (any other downloads gigabytes), transformers 5.2.0 the newest kvpress accepts.
PINS = ["kvpress==0.5.5", "torch==2.13.0", "transformers==5.2.0"]
METHODS = list(PRESSES)
RATIOS = (0.5, 0.75, 0.9)
THRESHOLD = 2.0  # percent


def split(ids: list[int], context_tokens: int, continuation_tokens: int) -> tuple[list[int], int, int]:
    """The ids both sides get (context then continuation, nothing after), checked."""
    if context_tokens < 1 or continuation_tokens < 1:
        raise ValueError("context and continuation need at least 1 token each")
    if context_tokens + continuation_tokens > len(ids):
        raise ValueError(f"the text has {len(ids)} tokens: fewer than {context_tokens} + {continuation_tokens}; "
                         "use a longer text or a shorter split")
    return list(ids[:context_tokens + continuation_tokens]), context_tokens, continuation_tokens


def perplexity(nll: list[float]) -> float:
    return float(math.exp(sum(nll) / len(nll)))


def request(model_dir: Path, ids: list[int], context_tokens: int, continuation_tokens: int,
            methods: list[str], ratios) -> dict:
    return {"model": str(model_dir), "ids": [int(i) for i in ids], "context_tokens": context_tokens,
            "continuation_tokens": continuation_tokens,
            "runs": [{"method": m, "ratio": float(r)} for r in ratios for m in methods]}


def kvpress_perplexities(result: dict) -> dict:
    """{(method, ratio): perplexity} from kvpress_side's result; Full Cache as ("full", 0.0)."""
    out = {("full", 0.0): perplexity(result["full_nll"])}
    out.update({(run["method"], run["ratio"]): perplexity(run["nll"]) for run in result["runs"]})
    return out


def sinkvis_perplexities(loaded, ids: list[int], context_tokens: int, continuation_tokens: int,
                         methods: list[str], ratios) -> dict:
    """{(method, ratio): perplexity} from backend.compress.prefill_perplexity; Full Cache as ("full", 0.0)."""
    from backend.compress import prefill_perplexity

    out = {("full", 0.0): prefill_perplexity(loaded, ids, context_tokens, continuation_tokens, ["full"],
                                             ratio=0.5)["full"]["perplexity"]}
    for r in ratios:
        res = prefill_perplexity(loaded, ids, context_tokens, continuation_tokens, methods, ratio=float(r))
        out.update({(m, float(r)): res[m]["perplexity"] for m in methods})
    return out


def compare(kvpress: dict, sinkvis: dict, threshold: float = THRESHOLD) -> list[dict]:
    """One row per (method, ratio) both have: difference in percent of kvpress's perplexity, flagged past threshold."""
    rows = []
    for key in kvpress:
        if key not in sinkvis:
            continue
        a, b = kvpress[key], sinkvis[key]
        diff = 100.0 * (b - a) / a
        rows.append({"method": key[0], "ratio": key[1], "kvpress": a, "sinkvis": b, "diff_percent": diff,
                     "flag": abs(diff) > threshold})
    return rows


def table(rows: list[dict], threshold: float = THRESHOLD) -> str:
    """Markdown table (it goes into docs/kvpress-agreement.md as printed)."""
    lines = ["| method | ratio | attention (kvpress) | kvpress ppl | SinkVis ppl | diff % | |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['ratio']:.2f} | {attn_implementation(r['method'])} | {r['kvpress']:.3f} | "
                     f"{r['sinkvis']:.3f} | {r['diff_percent']:+.2f} | {f'> {threshold:g}%' if r['flag'] else ''} |")
    return "\n".join(lines)


def venv_python(venv: Path = VENV) -> Path:
    """The kvpress venv's interpreter; the venv is built (pip install PINS) when missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"building {venv} ({' '.join(PINS)}) …", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
    return python


def export_model(loaded, folder: Path) -> Path:
    """The loaded model's weights (as loaded: a GGUF dequantized) as a safetensors folder, once, so kvpress
    loads exactly these. transformers refuses save_pretrained on a GGUF-loaded model, so the state dict and
    the config (without its GGUF origin) are written directly."""
    import copy

    from safetensors.torch import save_model

    if not (folder / "config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        save_model(loaded.model, str(folder / "model.safetensors"))  # tied tensors are written once
        config = copy.deepcopy(loaded.model.config)
        for name in ("quantization_config", "_pre_quantization_dtype"):
            if hasattr(config, name):
                delattr(config, name)
        config.save_pretrained(folder)
    return folder


def run_kvpress(python: Path, req: dict, side: Path = ROOT / "tools" / "kvpress_side.py") -> dict:
    with tempfile.TemporaryDirectory(prefix="kvpress-check-") as tmp:
        req_path, res_path = Path(tmp) / "request.json", Path(tmp) / "result.json"
        req_path.write_text(json.dumps(req), encoding="utf-8")
        env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
               "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
        subprocess.run([str(python), str(side), str(req_path), str(res_path)], check=True, env=env)
        return json.loads(res_path.read_text(encoding="utf-8"))


def text_ids(loaded, text: str) -> list[int]:
    from backend.defaults import BUNDLED_TEXTS, bundled_text as bundled_eval_text

    body = bundled_eval_text(text) if text in BUNDLED_TEXTS else Path(text).read_text(encoding="utf-8")
    return loaded.tokenizer(body, add_special_tokens=True, verbose=False)["input_ids"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2", help="what SinkVis loads (smollm2, demo, a folder)")
    ap.add_argument("--text", default="alice", help="a bundled text (alice, jargon) or a file")
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--continuation", type=int, default=256)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--ratios", default=",".join(str(r) for r in RATIOS))
    ap.add_argument("--threshold", type=float, default=THRESHOLD)
    ap.add_argument("--threads", type=int, default=2, help="torch threads on each side (they run one after the other)")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)
    import torch

    from backend.models.load import load_model

    methods, ratios = args.methods.split(","), [float(r) for r in args.ratios.split(",")]
    unknown = [m for m in methods if m not in PRESSES]
    if unknown:
        ap.error(f"no kvpress press for {unknown}; choose from {', '.join(METHODS)}")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model, device="cpu", precision="fp32")
    ids, c, m = split(text_ids(loaded, args.text), args.context, args.continuation)
    model_dir = export_model(loaded, ROOT / "build" / f"{Path(args.model).name}-hf")
    result = run_kvpress(venv_python(), {**request(model_dir, ids, c, m, methods, ratios), "threads": args.threads})
    kv = kvpress_perplexities(result)
    sv = sinkvis_perplexities(loaded, ids, c, m, methods, ratios)
    rows = compare(kv, sv, args.threshold)
    print(f"kvpress {result['kvpress']} (transformers {result['transformers']}, torch {result['torch']}) vs SinkVis; "
          f"{args.model}, text {args.text}: context {c}, continuation {m} tokens; "
          f"Full Cache ppl kvpress {perplexity(result['full_nll']):.3f}")
    print(table(rows, args.threshold))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 1 if any(r["flag"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
