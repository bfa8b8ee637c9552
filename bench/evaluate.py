"""Evaluate benchmark: SmolLM2-135M, C = 256, 2 threads. Time per token per policy, side by side:

  plain      one plain cached decode step (batch 1, a cache of C entries, no attentions returned):
             what running the model alone costs per token
  ours       Evaluate's evicting steps (backend/evaluate/run.py): the five real-cache policies
             (window, StreamingLLM, H2O, LRU, TOVA; H2O/LRU/TOVA per KV head) share one batched
             decode step with attentions, then the kernels decide and the caches are gathered;
             the step's wall time divided by the five policies
  per unit   ours with one kernel call per (layer, KV head) unit, as before kernels/eviction/units.py
             (--per-unit; the same kept sets, more Python → Numba calls)
  recompute  the sliding_window_recompute baseline: one forward over C + 1 tokens per token,
             sampled on a few steps (every step costs the same once the window is full)

Measured in interleaved rounds so background load hits each alike; medians are printed.
Targets (issue #12): ours ≤ 1.5 × plain, recompute ≥ 10 × ours. Threads (issue #32): on a loaded 2-core
machine compare --threads 1 and 2 (OpenMP threads spin while they wait for a busy core).

    python bench/evaluate.py [--model PATH(.gguf or folder)] [--cache-size 256] [--steps 24] [--threads 2]
                             [--per-unit]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

SMOLLM2 = Path.home() / ".cache" / "sinkvis" / "models" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
POLICIES = ["sliding_window", "streaming_llm", "h2o", "lru", "tova"]


def load(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backend.models.loaded import LoadedModel
    from backend.models.spec import config_spec

    extra = {"gguf_file": path.name} if path.suffix == ".gguf" else {}
    folder = path.parent if path.suffix == ".gguf" else path
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", **extra).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
    spec = config_spec(model.config)
    spec["parameters"] = sum(p.numel() for p in model.parameters())
    return LoadedModel(model=model, tokenizer=tokenizer, source=str(path), device="cpu", dtype="float32", spec=spec)


def plain_step(loaded, ids, C, repeats=4) -> float:
    from transformers import DynamicCache

    cache = DynamicCache(config=loaded.model.config)
    times = []
    with torch.inference_mode():
        loaded.model(input_ids=torch.tensor([ids[:C]]), past_key_values=cache, use_cache=True)
        for i in range(repeats):
            started = time.perf_counter()
            loaded.model(input_ids=torch.tensor([[ids[C + i]]]), position_ids=torch.tensor([[C]]),
                         past_key_values=cache, use_cache=True)
            times.append(time.perf_counter() - started)
            cache.crop(-1)  # back to C entries
    return statistics.median(times)


def ours_step(loaded, ids, C, steps, per_unit=False) -> tuple[float, float]:
    from backend.evaluate import deciders
    from backend.evaluate.run import evaluate

    units = deciders.Units
    if per_unit:
        deciders.Units = lambda sims: None  # KernelDecider then calls the kernel once per unit
    try:
        result = evaluate(loaded, ids[: C + 2 + steps], ["full"] + POLICIES, C, 4, C // 2)
    finally:
        deciders.Units = units
    timing = result["timing"]
    assert timing["batched_decode_steps"] == steps and timing["batch"] == len(POLICIES)
    return timing["seconds_per_batched_step"] / len(POLICIES), timing["seconds_per_batched_step"], result["seconds"]


def recompute_step(loaded, ids, C, repeats=2) -> float:
    import numpy as np

    from backend.evaluate.forward import over_kept

    times = []
    for i in range(repeats):
        started = time.perf_counter()
        over_kept(loaded, ids, np.arange(i, i + C), C + i)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=SMOLLM2)
    parser.add_argument("--cache-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=24, help="evicting steps per Evaluate round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-unit", action="store_true", help="also ours with one kernel call per unit (before)")
    args = parser.parse_args()
    loaded = load(args.model)
    torch.set_num_threads(args.threads)
    text = (Path(__file__).resolve().parents[1] / "assets" / "eval" / "alice-chapter1.txt").read_text(encoding="utf-8")
    ids = loaded.tokenizer(text)["input_ids"]
    C = args.cache_size
    assert len(ids) > C + 2 + args.steps, "the text is too short for these settings"
    ours_step(loaded, ids[: C + 8], C, 4)  # warm-up: kernels compiled / loaded from Numba's cache
    if args.per_unit:
        ours_step(loaded, ids[: C + 8], C, 4, per_unit=True)
    plain, ours, batched, runs, redo, unit, unit_runs = [], [], [], [], [], [], []
    for _ in range(args.rounds):
        plain.append(plain_step(loaded, ids, C))
        per_policy, step, run = ours_step(loaded, ids, C, args.steps)
        ours.append(per_policy)
        batched.append(step)
        runs.append(run)
        if args.per_unit:
            _, step, run = ours_step(loaded, ids, C, args.steps, per_unit=True)
            unit.append(step)
            unit_runs.append(run)
        redo.append(recompute_step(loaded, ids, C))
        print(f"round: plain {plain[-1] * 1000:.1f} ms, ours {ours[-1] * 1000:.1f} ms/policy "
              f"(batched step {batched[-1] * 1000:.1f} ms, whole run {runs[-1]:.1f} s)"
              + (f", per unit: batched step {unit[-1] * 1000:.1f} ms, whole run {unit_runs[-1]:.1f} s"
                 if args.per_unit else "") + f", recompute {redo[-1] * 1000:.1f} ms", flush=True)
    p, o, b, r = (statistics.median(x) * 1000 for x in (plain, ours, batched, redo))
    print(f"model {args.model.name}, C = {C}, {args.threads} threads, {args.rounds} rounds × {args.steps} evicting steps")
    print(f"plain cached decode step        {p:8.1f} ms/token")
    print(f"ours, per policy                {o:8.1f} ms/token  (one batched step of {len(POLICIES)} policies: {b:.1f} ms)")
    print(f"ours, whole Evaluate run        {statistics.median(runs):8.1f} s  ({C + 2 + args.steps} tokens, "
          f"{args.steps} evicting steps)")
    if args.per_unit:
        u = statistics.median(unit) * 1000
        print(f"per unit (before), batched step {u:8.1f} ms  (whole run {statistics.median(unit_runs):.1f} s; "
              f"ours / per unit {b / u:.2f}x)")
    print(f"recompute baseline              {r:8.1f} ms/token")
    print(f"ours / plain      {o / p:6.2f}x   (target ≤ 1.5)")
    print(f"recompute / ours  {r / o:6.1f}x   (target ≥ 10)")


if __name__ == "__main__":
    main()
