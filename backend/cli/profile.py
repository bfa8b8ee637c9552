"""`main.py profile`: where the KV blocks of a sequence live across HBM, L2, RAM and disk, and what it costs.

With --scenario MODEL: "what would it cost at scale?" — that model's KV on a named GPU at --context tokens.
"""
from .common import add_trace_arguments, check, emit_result, load, read_text, wait_job

BLOCK_ARRAYS = ("tier", "access_count", "status")  # one number per KV block (the UI's block map): --blocks


def add_arguments(parser) -> None:
    add_trace_arguments(parser)
    parser.add_argument("--length", type=int, default=100_000, help="synthetic trace: tokens (decode steps)")
    parser.add_argument("--block-size", type=int, default=16, help="tokens per KV block (vLLM pages 16)")
    parser.add_argument("--preset", choices=["constrained", "detected"], default="constrained")
    parser.add_argument("--placement", choices=["lru", "topk", "heat"], default="lru",
                        help="lru: LRU offload, back up on reuse; topk: offload + top-k fetch per step; "
                             "heat: heat rule with hysteresis")
    parser.add_argument("--reuse", type=int, default=16, help="lru: a block used again within this many steps comes back to HBM")
    parser.add_argument("--window", type=int, default=16, help="topk: recent blocks kept in HBM")
    parser.add_argument("--k", type=int, default=16, help="topk: blocks fetched per step")
    parser.add_argument("--fetch-rule", choices=["attention", "quest_bound"], default="attention",
                        help="topk: fetch the blocks with the most attention, or Quest's own page choice (the "
                             "model's keys' min/max bound; model trace, --block-size 16)")
    parser.add_argument("--margin", type=float, default=0.5, help="heat: must beat the coldest by this much heat")
    parser.add_argument("--patience", type=int, default=32, help="heat: ... for this many steps")
    parser.add_argument("--all-layers", action="store_true", help="model trace: mean over all layers (default: --layer)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic trace: random seed")
    parser.add_argument("--scenario", metavar="MODEL",
                        help="at scale: Llama-3.1-8B, Qwen2.5-7B, Mistral-7B, SmolLM2-135M, a .gguf file, or a Hub id "
                             "(with --fetch-config)")
    parser.add_argument("--context", type=int, default=131_072, help="scenario: context length (tokens, up to 1,048,576)")
    parser.add_argument("--gpu", choices=["H100", "H200", "A100", "L4", "Apple-M"], default="H100", help="scenario: GPU")
    parser.add_argument("--dtype", choices=["fp16", "bf16", "fp8", "fp32"], default="fp16", help="scenario: KV and weights")
    parser.add_argument("--fetch-config", action="store_true", help="scenario: download a Hub id's config.json (network)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--blocks", action="store_true", help="with --json: include the per-block arrays")


def _policy(args) -> dict:
    return {"policy": args.placement, "reuse": args.reuse, "window": args.window, "k": args.k,
            "fetch_rule": args.fetch_rule,
            "margin": args.margin, "patience": args.patience}


def run(args, api) -> int:
    if args.scenario:
        return _scenario(args, api)
    params = {"trace": args.trace, "length": args.length, "block_size": args.block_size, "preset": args.preset,
              "seed": args.seed, **_policy(args)}
    if args.trace == "model":
        load(api, args, quiet=args.json)
        params.update(text=read_text(args), layer=args.layer, head=args.head,
                      aggregate="all_layers" if args.all_layers else "layer")
    result = wait_job(api, check(api.profile(params))["job_id"], quiet=args.json)
    if args.json:
        emit_result(result, leave_out=() if args.blocks else BLOCK_ARRAYS)
        return 0
    _print_summary(result["summary"])
    return 0


def _scenario(args, api) -> int:
    params = {"model": args.scenario, "context": args.context, "gpu": args.gpu, "dtype": args.dtype,
              "block_size": args.block_size, "fetch_config": args.fetch_config, **_policy(args)}
    if args.trace == "model" or args.text or args.text_file:
        load(api, args, quiet=args.json)
        if args.text or args.text_file:
            params["text"] = read_text(args)
    result = wait_job(api, check(api.profile_scenario(params))["job_id"], quiet=args.json)
    if args.json:
        emit_result(result, leave_out=() if args.blocks else BLOCK_ARRAYS)
        return 0
    s = result["scenario"]
    print(f"{s['model']['name']} ({s['model']['source']}): {s['bytes_per_token']:,} bytes of KV per token ({s['dtype']})")
    print(f"  {s['context']:,} tokens = {_size(s['kv_bytes'])} of KV; weights {_size(s['weights_bytes'])}")
    print(f"  {s['gpu']['name']}: HBM runs out at {s['hbm_runs_out_at_tokens']:,} tokens "
          f"({'fits' if s['fits_in_hbm'] else 'does not fit'})")
    print(f"  trace shape: {s['shape_source']}")
    _print_summary(result["replay"])
    return 0


def _print_summary(s: dict) -> None:
    print(f"{s['n_tokens']:,} tokens in {s['n_blocks']:,} blocks of {s['block_size']} "
          f"({s['bytes_per_token']:,} bytes/token: {s['bytes_per_token_source']})")
    print(f"  placement: {s['policy']} {s['policy_settings']}")
    for t in s["tiers"]:
        print(f"  {t['name']:<18} {t['blocks']:>9,} blocks {_size(t['bytes']):>10}  {t['hits']:>12,} hits"
              f"  (capacity {t['capacity_blocks']:,} blocks, {_size(t['bandwidth_bps'])}/s)")
    print(f"  promotions {s['promotions']:,}, demotions {s['demotions']:,}, moved {_size(s['bytes_moved'])} "
          f"({s['moved_over_kv']:.2f}x the KV)")
    if s["policy"] == "topk":
        print(f"  fetched {_size(s['bytes_fetched'])} ({s['bytes_fetched'] / s['kv_bytes']:.2f}x the KV): {s['fetch_rule_is']}")
    print(f"  KV read per decode step, mean over the run: {s['read_seconds_per_step'] * 1e3:.3f} ms vs "
          f"{s['read_seconds_all_hbm'] * 1e3:.3f} ms all in HBM ({s['read_time_ratio']:.2f}x)")
    print(f"  {s['l2_note']}")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):  # binary units, as the UI's (ui/js/format.js)
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
