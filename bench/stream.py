"""Live stream benchmark: GPT-2-small-sized model (random init from GPT2Config()), eager attention, 2 threads.

Streams a 512-token prompt (random ids) and times, per token position t:
  ours       StreamSession.step() as the app runs it: one cached forward with attentions
             (through the backbone: prompt tokens need no LM head) + history/sink bookkeeping
  plain      a cached decode step of the LM (backbone + LM head) that returns no attentions
  plain-bb   the same cached step through the backbone only, no attentions: isolates the cost
             of returning and recording attention rows
  recompute  bertviz-style: a full forward of the backbone over tokens 0..t with attentions
             (bertviz runs the base model, no LM head; ours does not run the head either)

All run interleaved, position by position, so background load on a shared machine hits
each alike. recompute is timed every 32nd position (t = 15, 47, ..., 495) and scaled by
32 (midpoint rule: its cost grows smoothly with t), which keeps the run to minutes.
Timings on a shared 2-core machine are noisy; with more runnable threads than cores,
2 OpenMP threads can spin and crawl (--threads 1 is then steadier). The CPU-time line
(process time per call) is less sensitive to other processes than wall time; with 2
threads it also counts OpenMP spin-waiting. The last two lines are wall-time ratios.

    python bench/stream.py [--tokens 512] [--sample-every 32] [--threads 2]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, DynamicCache, GPT2Config  # noqa: E402

from backend.attention.stream import StreamSession  # noqa: E402
from backend.models.loaded import LoadedModel  # noqa: E402


CPU = {}  # name → CPU seconds of this process per timed call: steadier than wall time on a busy machine


def timed(fn, name=None):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if name:
        CPU.setdefault(name, []).append(time.process_time() - cpu)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--sample-every", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    n, every = args.tokens, args.sample_every

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = GPT2Config()  # 12 layers, 12 heads, width 768, 1,024 positions; random init, no download
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    backbone = model.base_model
    ids = torch.randint(0, config.vocab_size, (n,)).tolist()
    loaded = LoadedModel(model=model, tokenizer=SimpleNamespace(eos_token_id=None), source="gpt2-random", device="cpu",
                         dtype="float32", spec={"layers": config.n_layer, "heads": config.n_head, "context_length": config.n_positions})
    print(f"GPT-2-small-sized, random init, eager attention, {torch.get_num_threads()} threads, {n} tokens")

    session = StreamSession(loaded, ids, lambda i: [str(x) for x in i])
    caches = {"plain": DynamicCache(config=config), "plain-bb": DynamicCache(config=config)}
    nets = {"plain": model, "plain-bb": backbone}
    times = {"ours": [], "plain": [], "plain-bb": []}
    sampled = {}
    with torch.inference_mode():
        for t in range(n):
            times["ours"].append(timed(session.step, "ours")[0])
            for name, net in nets.items():
                seconds, out = timed(lambda: net(input_ids=torch.tensor([[ids[t]]]), past_key_values=caches[name], use_cache=True), name)
                caches[name] = out.past_key_values
                times[name].append(seconds)
            if t % every == every // 2 - 1:
                sampled[t] = timed(lambda: backbone(input_ids=torch.tensor([ids[: t + 1]]), output_attentions=True,
                                                    use_cache=False), "recompute")[0]
    recompute_total = sum(sampled.values()) * every
    cpu = {k: sum(v) for k, v in CPU.items()}

    print(f"history held: {session.history_bytes() / 2**20:.1f} MiB (allocated for up to {session.max_tokens} tokens)")
    for name, ts in times.items():
        print(f"{name:9s}  total {sum(ts):7.2f} s   mean step {statistics.mean(ts) * 1e3:7.2f} ms   "
              f"median {statistics.median(ts) * 1e3:7.2f} ms")
    last = max(sampled)
    print(f"recompute  total {recompute_total:7.2f} s   (estimated: {len(sampled)} sampled steps × {every}; "
          f"step at t={last}: {sampled[last]:.3f} s)")
    print(f"CPU time (process, all threads): ours {cpu['ours']:.2f} s, plain {cpu['plain']:.2f} s, plain-bb {cpu['plain-bb']:.2f} s, "
          f"recompute {cpu['recompute'] * every:.2f} s (estimated)")
    print(f"CPU-time ratios: speedup vs recompute {cpu['recompute'] * every / cpu['ours']:.1f}x, ours/plain {cpu['ours'] / cpu['plain']:.3f}, "
          f"ours/plain-bb {cpu['ours'] / cpu['plain-bb']:.3f}")
    mean = {k: statistics.mean(v) for k, v in times.items()}
    print(f"mean step ratio ours/plain-bb (attention overhead alone): {mean['ours'] / mean['plain-bb']:.3f}")
    print(f"speedup vs recompute (target >= 8): {recompute_total / sum(times['ours']):.1f}x")
    print(f"mean step ratio ours/plain (target <= 1.15): {mean['ours'] / mean['plain']:.3f}")


if __name__ == "__main__":
    main()
