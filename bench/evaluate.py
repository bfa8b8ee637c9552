"""Evaluate benchmark: SmolLM2-135M, C = 256, on 1 and 2 torch threads side by side. Time per token:

  plain      one plain cached decode step (batch 1, a cache of C entries, no attentions returned):
             what running the model alone costs per token
  ours       Evaluate's evicting steps (backend/evaluate/run.py): the five real-cache policies
             (window, StreamingLLM, H2O, LRU, TOVA; H2O/LRU/TOVA per KV head) share one batched
             decode step with attentions, then the kernels decide and the caches are gathered
             (backend/evaluate/cache.py: one index_select per cache tensor); per policy = the batched
             step's wall time divided by the five policies
  per unit   ours with one kernel call per (layer, KV head) unit, as before kernels/eviction/units.py
             (--per-unit; the same kept sets, more Python → Numba calls)
  recompute  the sliding_window_recompute baseline: one forward over C + 1 tokens per token,
             sampled on a few steps (every step costs the same once the window is full)

Measured in interleaved rounds so background load hits each alike; medians are printed, with each whole
run's CPU seconds and the load average (on a shared machine the wall clock counts other processes' turns;
CPU seconds well above wall × threads' share mean OpenMP threads spun waiting for a busy core).
"1,024 tokens" extrapolates the whole run to a 1,024-token text at the measured batched step.
Targets: the batched step of five ≤ 60 ms, so a 1,024-token Evaluate of five policies takes about a
minute (issue #32; 181 ms on 2 threads before it); ours ≤ 1.5 × plain, recompute ≥ 10 × ours (issue #12).
Threads (issue #32): backend/models/threads.py picks the app's count; compare 1 and 2 here.

    python bench/evaluate.py [--model PATH(.gguf or folder)] [--cache-size 256] [--steps 24] [--threads 1,2]
                             [--rounds 2] [--per-unit]
"""
import argparse
import os
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


def ours_step(loaded, ids, C, steps, per_unit=False) -> tuple[float, float, float, float]:
    """(seconds per policy and step, seconds per batched step, the whole run's wall and CPU seconds)."""
    from backend.evaluate import deciders
    from backend.evaluate.run import evaluate

    units = deciders.Units
    if per_unit:
        deciders.Units = lambda sims: None  # KernelDecider then calls the kernel once per unit
    try:
        cpu = time.process_time()
        result = evaluate(loaded, ids[: C + 2 + steps], ["full"] + POLICIES, C, 4, C // 2)
        cpu = time.process_time() - cpu
    finally:
        deciders.Units = units
    timing = result["timing"]
    assert timing["batched_decode_steps"] == steps and timing["batch"] == len(POLICIES)
    step = timing["seconds_per_batched_step"]
    return step / len(POLICIES), step, result["seconds"], cpu


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
    parser.add_argument("--threads", default="1,2", help="torch thread counts, measured side by side: 1,2")
    parser.add_argument("--per-unit", action="store_true", help="also ours with one kernel call per unit (before)")
    args = parser.parse_args()
    threads = [int(x) for x in args.threads.split(",")]
    loaded = load(args.model)
    text = (Path(__file__).resolve().parents[1] / "assets" / "eval" / "alice-chapter1.txt").read_text(encoding="utf-8")
    ids = loaded.tokenizer(text)["input_ids"]
    C = args.cache_size
    assert len(ids) > C + 2 + args.steps, "the text is too short for these settings"
    ours_step(loaded, ids[: C + 8], C, 4)  # warm-up: kernels compiled / loaded from Numba's cache
    if args.per_unit:
        ours_step(loaded, ids[: C + 8], C, 4, per_unit=True)
    names = ("plain", "ours", "batched", "run", "cpu", "redo", "unit", "unit_run")
    m = {n: {k: [] for k in names} for n in threads}
    loads = []
    for _ in range(args.rounds):
        for n in threads:  # interleaved, so background load hits each thread count alike
            torch.set_num_threads(n)
            r = m[n]
            r["plain"].append(plain_step(loaded, ids, C))
            per_policy, step, run, cpu = ours_step(loaded, ids, C, args.steps)
            r["ours"].append(per_policy)
            r["batched"].append(step)
            r["run"].append(run)
            r["cpu"].append(cpu)
            if args.per_unit:
                _, step, run, _ = ours_step(loaded, ids, C, args.steps, per_unit=True)
                r["unit"].append(step)
                r["unit_run"].append(run)
            r["redo"].append(recompute_step(loaded, ids, C))
            loads.append(os.getloadavg()[0])
            print(f"round, {n} thread(s): plain {r['plain'][-1] * 1000:.1f} ms, ours {r['ours'][-1] * 1000:.1f} ms/policy "
                  f"(batched step {r['batched'][-1] * 1000:.1f} ms, whole run {r['run'][-1]:.1f} s, cpu {r['cpu'][-1]:.1f} s)"
                  + (f", per unit: batched step {r['unit'][-1] * 1000:.1f} ms, whole run {r['unit_run'][-1]:.1f} s"
                     if args.per_unit else "") + f", recompute {r['redo'][-1] * 1000:.1f} ms", flush=True)
    tokens = C + 2 + args.steps
    print(f"model {args.model.name}, C = {C}, {args.rounds} rounds × {args.steps} evicting steps ({tokens} tokens); "
          f"load average {min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cores")
    print(f"{'threads':>7} {'plain':>9} {'batched step':>13} {'per policy':>11} {'whole run':>10} {'run cpu':>8} "
          f"{'1,024 tokens':>13} {'recompute':>10} {'ours/plain':>11} {'recompute/ours':>15}")
    for n in threads:
        med = {k: statistics.median(v) if v else None for k, v in m[n].items()}
        p, o, b, r = (med[k] * 1000 for k in ("plain", "ours", "batched", "redo"))
        # a 1,024-token run: this run plus the evicting steps it did not take, at the measured step
        whole = med["run"] + (1024 - tokens) * med["batched"]
        print(f"{n:>7} {p:7.1f}ms {b:11.1f}ms {o:9.1f}ms {med['run']:9.1f}s {med['cpu']:7.1f}s {whole:12.0f}s "
              f"{r:8.1f}ms {o / p:10.2f}x {r / o:14.1f}x"
              + (f"   per unit (before): batched step {med['unit'] * 1000:.1f} ms, ours / per unit "
                 f"{b / (med['unit'] * 1000):.2f}x" if args.per_unit else ""))
    print("targets: batched step ≤ 60 ms (1,024 tokens of five policies in about a minute, issue #32), "
          "ours/plain ≤ 1.5, recompute/ours ≥ 10 (issue #12)")


if __name__ == "__main__":
    main()
