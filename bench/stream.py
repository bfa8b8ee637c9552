"""Live stream benchmark: GPT-2-small-sized model (random init from GPT2Config()), eager attention, 2 threads.

Streams N = 512 tokens three ways:
  ours       StreamSession.step(): one cached forward with attentions + history/sink bookkeeping
  plain      a cached decode step over a DynamicCache that returns no attentions (same model)
  recompute  bertviz-style: a full forward over tokens 0..t with attentions at every step t

ours and plain run in lockstep (one step of each, alternately) so background load on a
shared machine hits both alike. recompute is timed on every 32nd step (midpoints
t = 15, 47, ..., 495) and scaled by 32 (midpoint rule: its cost grows smoothly with t),
which keeps the run around a minute. Timings on a shared 2-core machine are noisy.

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
from transformers import AutoModelForCausalLM, DynamicCache, GPT2Config  # noqa: E402  (random init, no download)

from backend.attention.stream import StreamSession  # noqa: E402
from backend.models.loaded import LoadedModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--sample-every", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (2 = the reference; on a busy shared machine 2 threads can spin and crawl)")
    args = parser.parse_args()
    n, every = args.tokens, args.sample_every

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = GPT2Config()  # 12 layers, 12 heads, width 768, 1,024 positions
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    ids = torch.randint(0, config.vocab_size, (n,)).tolist()
    loaded = LoadedModel(model=model, tokenizer=SimpleNamespace(eos_token_id=None), source="gpt2-random", device="cpu",
                         dtype="float32", spec={"layers": config.n_layer, "heads": config.n_head, "context_length": config.n_positions})
    print(f"GPT-2-small-sized, random init, eager attention, {torch.get_num_threads()} threads, {n} tokens")

    session = StreamSession(loaded, ids, lambda i: [str(x) for x in i])
    cache = DynamicCache(config=config)
    ours, plain = [], []
    with torch.inference_mode():
        for t in range(n):
            start = time.perf_counter()
            session.step()
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            out = model(input_ids=torch.tensor([[ids[t]]]), past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            plain.append(time.perf_counter() - start)

        sampled, sample_steps = [], range(every // 2 - 1, n, every)
        for t in sample_steps:
            start = time.perf_counter()
            model(input_ids=torch.tensor([ids[: t + 1]]), output_attentions=True, use_cache=False)
            sampled.append(time.perf_counter() - start)
    recompute_total = sum(sampled) * every

    print(f"history held: {session.history_bytes() / 2**20:.1f} MiB (for up to {session.max_tokens} tokens)")
    print(f"ours:      total {sum(ours):7.2f} s   mean step {statistics.mean(ours) * 1e3:6.2f} ms   "
          f"median {statistics.median(ours) * 1e3:6.2f} ms")
    print(f"plain:     total {sum(plain):7.2f} s   mean step {statistics.mean(plain) * 1e3:6.2f} ms   "
          f"median {statistics.median(plain) * 1e3:6.2f} ms")
    print(f"recompute: total {recompute_total:7.2f} s   (estimated from {len(sampled)} steps × {every}; "
          f"step at t={sample_steps[-1]}: {sampled[-1]:.3f} s)")
    print(f"median step ratio ours/plain: {statistics.median(ours) / statistics.median(plain):.3f}")
    print(f"speedup vs recompute (target >= 8): {recompute_total / sum(ours):.1f}x")
    print(f"mean step ratio ours/plain (target <= 1.15): {statistics.mean(ours) / statistics.mean(plain):.3f}")


if __name__ == "__main__":
    main()
