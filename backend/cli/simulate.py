"""`main.py simulate`: compare KV-cache eviction policies on a synthetic or a model trace."""
import sys

from ..eviction import DEFAULTS as D
from .common import (add_policy_file_argument, add_trace_arguments, check, emit_result, load, load_policy_files,
                     read_text, wait_job)

POLICY_CHOICES = ["all", "full", "sliding_window", "streaming_llm", "h2o", "lru", "tova", "oracle"]


def add_arguments(parser) -> None:
    add_trace_arguments(parser)
    parser.add_argument("--all-layers", action="store_true", help="model trace: mean over all layers and heads")
    parser.add_argument("--length", type=int, default=D["length"], help="synthetic trace: tokens (steps)")
    parser.add_argument("--cache-size", type=int, default=D["cache_size"], help="budget C in tokens")
    parser.add_argument("--sinks", type=int, default=D["sinks"], help="StreamingLLM's sink count S")
    parser.add_argument("--window", type=int, default=D["window"], help="H2O's recent window W")
    parser.add_argument("--access-threshold", type=float, default=D["access_threshold"], help="τ: attention ≥ τ is an access")
    parser.add_argument("--policy", default=D["policy"], metavar="{" + ",".join(POLICY_CHOICES) + ",NAME}",
                        help="a built-in, all, or the NAME of a policy file (--policy-file, or the policies folder)")
    add_policy_file_argument(parser)
    parser.add_argument("--seed", type=int, default=D["seed"], help="synthetic trace: random seed")
    parser.add_argument("--json", action="store_true", help="print the Api's result as JSON: {\"trace\": {...}, \"results\": [...]}")


def run(args, api) -> int:
    load_policy_files(api, args)
    params = {"trace": args.trace, "length": args.length, "cache_size": args.cache_size, "sinks": args.sinks,
              "window": args.window, "access_threshold": args.access_threshold, "policy": args.policy,
              "seed": args.seed}
    if args.trace == "model":
        params.update(text=read_text(args), layer=args.layer, head=args.head,
                      aggregate="all_layers" if args.all_layers else ("head" if args.head is not None else "layer"))
        load(api, args, quiet=args.json)
    out = wait_job(api, check(api.simulate(params))["job_id"], quiet=args.json)
    if args.json:
        emit_result(out)
        return 0
    t = out["trace"]
    print(f"{t['kind']} trace, {t['length']:,} tokens, C = {t['cache_size']}, S = {t['sinks']}, W = {t['window']}, "
          f"τ = {t['access_threshold']:g}; {t['sink_count']} sinks, top-{t['heavy_k']} heavy hitters")
    a = t.get("approximation")
    if a:  # past 2,048 tokens the model trace is compact: say what it folded (docs/metrics.md)
        print(f"compact trace: the {a['keys_per_row']} largest weights of each row kept; folded mass per row mean "
              f"{a['folded_mass_mean']:.4f}, max {a['folded_mass_max']:.4f}; largest folded weight "
              f"{a['largest_folded_weight']:.3g}")
        if a.get("warning"):
            print(f"warning: {a['warning']}", file=sys.stderr)
    print(f"{'policy':<17}{'accesses':>12}{'hits':>12}{'misses':>12}{'evictions':>12}{'hit rate':>9}"
          f"{'recall':>8}{'sinks':>9}{'heavy':>10}{'seconds':>9}")
    for r in out["results"]:
        s, h = r["retained_sinks"], r["retained_heavy_hitters"]
        hit_rate = "—" if r["hit_rate"] is None else f"{r['hit_rate']:.4f}"
        print(f"{r['policy']:<17}{r['accesses']:>12,}{r['hits']:>12,}{r['misses']:>12,}{r['evictions']:>12,}"
              f"{hit_rate:>9}{r['attention_recall']:>8.4f}{s['kept']:>4}/{s['total']:<4}"
              f"{h['kept']:>5}/{h['total']:<4}{r['seconds']:>9.3f}")
    for r in out.get("failed", []):  # a user policy that failed (the others ran)
        print(f"{r['policy']}: error: {r['error']['message']}", file=sys.stderr)
    return 0
