"""Retrieval benchmark on SmolLM2-135M (fp32, CPU, 2 threads). Three figures, each measured side by side:

  1. prefill protocol, one cell (pass key, --length tokens, depth 0.5, C = 128) with EVERY prefill
     method (backend/compress's prefill_answers: one full prefill, each method compresses its copy,
     the question answered for all) against one plain prefill of the same context (a forward
     with a cache, no attentions). Goal ≤ 2×.
  2. streaming protocol, the same cell with every evicting policy batched: chunks of k = 64 against
     k = 1 (Evaluate's exact token-by-token mode). Goal ≥ 10× faster. Full Cache has no k (it is the
     same chunked prefill in either mode), so it is timed on its own beside them, and the whole
     cell's ratio with it is printed too.
  3. the whole default grid (512, 1,024, 2,048 × depths 0, .25, .5, .75, 1) in the prefill
     protocol with every method. Goal ≤ 5 minutes on 2 cores. By default ESTIMATED from one
     measured cell per length × 5 depths (every depth of a length costs the same), and each of those
     cells' ratio to one plain prefill of its length (figure 1's at every length); --full-grid runs
     all 15 cells.

    python bench/retrieval.py [--length 1024] [--threads 2] [--full-grid] [--skip-k1]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LENGTHS, DEPTHS = [512, 1024, 2048], [0.0, 0.25, 0.5, 0.75, 1.0]


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def plain_prefill(loaded, ids) -> float:
    import torch
    from transformers import DynamicCache

    with torch.inference_mode():
        return timed(lambda: loaded.model(input_ids=torch.tensor([ids]), past_key_values=DynamicCache(
            config=loaded.model.config), use_cache=True))[0]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--cache-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full-grid", action="store_true")
    ap.add_argument("--skip-k1", action="store_true", help="skip figure 2's slow k = 1 run")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from backend.compress import prefill_answers, prefill_methods
    from backend.evaluate.deciders import registered_policies
    from backend.models.load import load_model
    from backend.retrieval.grid import run_grid
    from backend.retrieval.streaming import run_streaming
    from backend.retrieval.tasks import TASKS

    loaded = load_model("smollm2", "cpu", "fp32")
    methods = prefill_methods()
    p = TASKS["pass_key"](loaded.tokenizer, args.length, 0.5, 0, False)

    def prefill_cell(prompt):
        return prefill_answers(loaded, prompt.context_ids, prompt.question_ids, prompt.answer_ids, methods,
                               cache_size=args.cache_size, needle_span=prompt.needle_span)

    def ratio(prompt):
        """(ours, plain) seconds for one cell, both warmed up first (first calls pay one-time costs)."""
        plain_prefill(loaded, prompt.context_ids)
        prefill_cell(prompt)
        plain = min(plain_prefill(loaded, prompt.context_ids) for _ in range(2))
        ours, _ = timed(lambda: prefill_cell(prompt))
        return ours, min(plain, plain_prefill(loaded, prompt.context_ids))  # the machine's load may change meanwhile

    ours, plain = ratio(p)
    print(f"1. prefill protocol, {len(p.context_ids)} tokens, {len(methods)} methods (one cell): {ours:.2f} s; "
          f"one plain prefill {plain:.2f} s → {ours / plain:.1f}× (goal ≤ 2×)")

    evicting = [x for x in registered_policies() if x != "full"]
    short = TASKS["pass_key"](loaded.tokenizer, args.cache_size + 80, 0.5, 0, False)
    run_streaming(loaded, short, ["full"] + evicting, args.cache_size, 4, 32, chunk=64)  # warm-up: Numba's kernels
    k64, _ = timed(lambda: run_streaming(loaded, p, evicting, args.cache_size, 4, 32, chunk=64))
    full, _ = timed(lambda: run_streaming(loaded, p, ["full"], args.cache_size, 4, 32))
    if args.skip_k1:
        print(f"2. streaming, {len(evicting)} evicting policies batched: k = 64 {k64:.1f} s (k = 1 skipped); "
              f"Full Cache alone {full:.1f} s")
    else:
        k1, _ = timed(lambda: run_streaming(loaded, p, evicting, args.cache_size, 4, 32, chunk=1))
        print(f"2. streaming, {len(evicting)} evicting policies batched: k = 64 {k64:.1f} s, k = 1 {k1:.1f} s → "
              f"{k1 / k64:.1f}× faster (goal ≥ 10×); Full Cache alone {full:.1f} s (no k), so the whole cell "
              f"with it ≈ {(k1 + full) / (k64 + full):.1f}×")

    settings = {"cache_size": args.cache_size, "ratio": None, "sinks": 4, "window": 32, "chunk": 64, "seed": 0,
                "chat_template": False}
    if args.full_grid:
        total, _ = timed(lambda: run_grid(loaded, "pass_key", "prefill", methods, LENGTHS, DEPTHS, settings))
        how = "measured, all 15 cells"
    else:
        per_length = {}
        for L in LENGTHS:  # every depth of a length costs the same
            per_length[L] = (ours, plain) if L == len(p.context_ids) or L == args.length else \
                ratio(TASKS["pass_key"](loaded.tokenizer, L, 0.5, 0, False))
        total = sum(t for t, _ in per_length.values()) * len(DEPTHS)
        how = "estimated: one cell per length × 5 depths (" + ", ".join(
            f"{L}: {t:.1f} s, {t / q:.1f}× one plain prefill" for L, (t, q) in per_length.items()) + ")"
    print(f"3. default grid, prefill protocol, {len(methods)} methods, {args.threads} threads: {total / 60:.1f} min "
          f"(goal ≤ 5 min) — {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
