"""Quantized-cache benchmark: an Evaluate with a KV format against the same Evaluate unquantized, side by side.

Both are backend/evaluate/run.py's evaluate() on SmolLM2-135M (fp32) with the five real-cache policies (window,
StreamingLLM, H2O, LRU, TOVA) at C, over C + steps tokens of English prose. A quantized run also fills its caches
through backend/quantize (quantize on insert, the gguf reference for llama.cpp's formats) and runs one more
Full Cache pass (the unquantized reference that KL is measured against). Printed per format, as medians of
interleaved rounds (background load hits each alike): the whole run's seconds and one batched decode step's,
each as a ratio to the unquantized run's. Target (issue 34): whole run ≤ 1.3×.

    python bench/quantize.py [--model PATH] [--cache-size 128] [--steps 64] [--rounds 2] [--threads 2]
                             [--formats q8_0,q4_0,kivi-2,fp8-e4m3]
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.evaluate import POLICIES, SMOLLM2, load  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(SMOLLM2))
    parser.add_argument("--cache-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--formats", default="q8_0,q4_0,kivi-2,fp8-e4m3")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from backend.defaults import bundled_text as bundled_eval_text
    from backend.evaluate.run import evaluate
    from backend.quantize import kv_format

    loaded = load(Path(args.model))
    C = args.cache_size
    ids = loaded.tokenizer(bundled_eval_text("alice"))["input_ids"][: C + 1 + args.steps]
    formats = [None] + [kv_format(name) for name in args.formats.split(",")]
    runs = {f: [] for f in formats}
    steps = {f: [] for f in formats}
    for _ in range(args.rounds):
        for f in formats:
            result = evaluate(loaded, ids, POLICIES, C, 4, C // 2, kv_format=f)
            runs[f].append(result["seconds"])
            steps[f].append(result["timing"]["seconds_per_batched_step"])
            if f is not None:
                full = next(r for r in result["results"] if r["policy"] == "streaming_llm")
                print(f"  {f.name}: StreamingLLM perplexity {full['perplexity']:.3f}", file=sys.stderr)
    base_run, base_step = statistics.median(runs[None]), statistics.median(steps[None])
    print(f"SmolLM2-135M fp32, {args.threads} threads, C = {C}, {len(ids)} tokens, {len(POLICIES)} policies batched, "
          f"{args.rounds} rounds (medians)")
    print(f"{'format':16} {'run s':>8} {'× plain':>8} {'step ms':>8} {'× plain':>8}")
    print(f"{'unquantized':16} {base_run:8.2f} {1.0:8.2f} {1000 * base_step:8.1f} {1.0:8.2f}")
    for f in formats[1:]:
        run, step = statistics.median(runs[f]), statistics.median(steps[f])
        print(f"{f.name:16} {run:8.2f} {run / base_run:8.2f} {1000 * step:8.1f} {step / base_step:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
