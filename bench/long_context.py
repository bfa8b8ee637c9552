"""Long context (issue 32): the prefill protocol against one plain sdpa forward of the same tokens.

Side by side in one run; each path runs in a subprocess of its own so that memory peaks do not mix.
Memory is the process's peak RSS (VmHWM) over the path alone: the peak is reset (/proc/self/clear_refs)
after the model is loaded and the tokens are ready, so it counts the loaded model plus what the path adds;
"above load" is that peak minus the RSS before the path.

  plain     one forward with transformers' sdpa attention, a DynamicCache, last logits only (the cache the
            protocol needs anyway)
  fast      the prefill protocol's compression step (backend/compress/plan.py compress: one prefill, each
            method's scores, its kept positions) with SnapKV + Knorm + Expected Attention, ratio 0.5.
            Goals: time ≤ 1.3× and memory ≤ 1.3× plain
  sums      the same plus H2O and ObservedAttention (every query's attention, summed over query blocks).
            Goal: memory ≤ 1.5× plain
  before    (--before) the previous prefill for the `sums` methods: one eager forward holding each layer's
            whole [H, n, n] weights (kept as tests/reference_compress.py's eager_prefill_scores)

--long adds the Llama-3.2-1B shape (its config, random init, float32) with SnapKV at --long-tokens
(default 32,768; ~30+ minutes on a 2-core CPU): plain and snapkv. --tokens 0 skips SmolLM2.

    python bench/long_context.py [--tokens 7800] [--threads 1] [--before] [--long] [--long-tokens 32768]
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAST = ["snapkv", "knorm", "expected_attention"]
SUMS = FAST + ["h2o", "observed_attention"]
LLAMA_1B = dict(  # meta-llama/Llama-3.2-1B's config.json
    hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
    head_dim=64, vocab_size=128256, max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=True,
    rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    bos_token_id=128000, eos_token_id=128001, hidden_act="silu")


def rss_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def smollm2(n: int):
    from backend.defaults import bundled_text as bundled_eval_text
    from backend.models.load import load_model

    loaded = load_model("smollm2", device="cpu", precision="fp32")
    text = bundled_eval_text("alice")
    ids = []
    while len(ids) < n:
        ids += loaded.tokenizer(text, verbose=False)["input_ids"]
    return loaded, ids[:n]


def llama_1b_shape(n: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from backend.models.loaded import LoadedModel

    torch.manual_seed(0)
    config = LlamaConfig(**LLAMA_1B)
    model = LlamaForCausalLM(config).eval()
    spec = {"context_length": config.max_position_embeddings, "parameters": sum(p.numel() for p in model.parameters())}
    loaded = LoadedModel(model, None, "Llama-3.2-1B shape (random init)", "cpu", "float32", spec)
    ids = torch.randint(0, config.vocab_size, (n,), generator=torch.Generator().manual_seed(0)).tolist()
    return loaded, ids


def run_path(path: str, loaded, ids) -> None:
    import torch
    from transformers import DynamicCache

    from backend.compress.budgets import Budget
    from backend.compress.plan import compress
    from backend.compress.prefill import Settings

    methods = {"fast": FAST, "sums": SUMS, "before": SUMS, "snapkv": ["snapkv"]}.get(path)
    if path == "plain":
        loaded.model.set_attn_implementation("sdpa")
        with torch.inference_mode():
            loaded.model(input_ids=torch.tensor([ids]), position_ids=torch.arange(len(ids))[None],
                         past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
    elif path == "before":
        sys.path.insert(0, str(ROOT / "tests"))
        from reference_compress import eager_prefill_scores

        from backend.compress.methods import METHODS

        eager_prefill_scores(loaded, ids, {m: METHODS[m] for m in methods}, Settings())
    else:
        compress(loaded, ids, methods, Budget.of(len(ids), None, 0.5), Settings())


def child(args) -> None:
    import torch

    loaded, ids = (llama_1b_shape if args.model == "llama-1b-shape" else smollm2)(args.tokens)
    torch.set_num_threads(args.threads)  # after loading (backend/models/threads.py sets its own)
    before = rss_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak RSS starts again from here
    started, cpu = time.perf_counter(), time.process_time()
    run_path(args.child, loaded, ids)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_kb": rss_kb("VmHWM"), "loaded_kb": before}))


def measure(path: str, model: str, tokens: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--child", path, "--model", model, "--tokens", str(tokens),
           "--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def header(title: str) -> None:
    print(f"\n{title}")
    print(f"{'path':<10}{'wall s':>9}{'× plain':>9}{'cpu s':>9}{'× plain':>9}{'peak RSS GB':>13}{'× plain':>9}"
          f"{'above load GB':>15}", flush=True)


def row(path: str, r: dict, plain: dict) -> None:
    """One path's line, printed as soon as it is measured (a long run shows its progress)."""
    print(f"{path:<10}{r['seconds']:>9.1f}{r['seconds'] / plain['seconds']:>9.2f}{r['cpu']:>9.1f}"
          f"{r['cpu'] / plain['cpu']:>9.2f}{r['peak_kb'] / 2**20:>13.2f}{r['peak_kb'] / plain['peak_kb']:>9.2f}"
          f"{(r['peak_kb'] - r['loaded_kb']) / 2**20:>15.2f}", flush=True)


def table(title: str, model: str, tokens: int, threads: int, paths: list) -> None:
    header(title)
    plain = measure("plain", model, tokens, threads)
    row("plain", plain, plain)
    for path in paths:
        row(path, measure(path, model, tokens, threads), plain)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=7800)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--before", action="store_true", help="also the previous whole-weights prefill")
    parser.add_argument("--long", action="store_true", help="also the Llama-3.2-1B shape with SnapKV")
    parser.add_argument("--long-tokens", type=int, default=32768)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="smollm2", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; wall times count other processes' "
          "turns too, cpu seconds do not")
    if args.tokens:  # --tokens 0: only the --long table
        table(f"SmolLM2-135M (fp32), {args.tokens:,} tokens, {args.threads} thread(s), ratio 0.5; fast = "
              f"{' + '.join(FAST)}; sums = fast + h2o + observed_attention", "smollm2", args.tokens, args.threads,
              ["fast", "sums"] + (["before"] if args.before else []))
    if args.long:
        table(f"Llama-3.2-1B shape (random init, fp32), {args.long_tokens:,} tokens, SnapKV", "llama-1b-shape",
              args.long_tokens, args.threads, ["snapkv"])


if __name__ == "__main__":
    main()
