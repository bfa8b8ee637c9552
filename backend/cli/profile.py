"""`main.py profile`: where the KV blocks of a sequence live across HBM, L2, RAM and disk, and what it costs."""
from .common import add_trace_arguments, check, emit, load, read_text, wait_job


def add_arguments(parser) -> None:
    add_trace_arguments(parser)
    parser.add_argument("--length", type=int, default=100_000, help="synthetic trace: tokens (decode steps)")
    parser.add_argument("--block-size", type=int, default=16, help="tokens per KV block (vLLM pages 16)")
    parser.add_argument("--preset", choices=["constrained", "detected"], default="constrained")
    parser.add_argument("--seed", type=int, default=0, help="synthetic trace: random seed")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--blocks", action="store_true", help="with --json: include the per-block arrays")


def run(args, api) -> int:
    params = {"trace": args.trace, "length": args.length, "block_size": args.block_size, "preset": args.preset,
              "seed": args.seed}
    if args.trace == "model":
        load(api, args, quiet=args.json)
        params.update(text=read_text(args), layer=args.layer, head=args.head)
    result = wait_job(api, check(api.profile(params))["job_id"], quiet=args.json)
    if args.json:
        emit(result if args.blocks else result["summary"])
        return 0
    s = result["summary"]
    print(f"{s['n_tokens']:,} tokens in {s['n_blocks']:,} blocks of {s['block_size']} "
          f"({s['bytes_per_token']:,} bytes/token: {s['bytes_per_token_source']})")
    for t in s["tiers"]:
        print(f"  {t['name']:<18} {t['blocks']:>9,} blocks {_size(t['bytes']):>10}  {t['hits']:>12,} hits"
              f"  (capacity {t['capacity_blocks']:,} blocks, {t['bandwidth_bps'] / 1e9:,.0f} GB/s)")
    print(f"  promotions {s['promotions']:,}, demotions {s['demotions']:,}, moved {_size(s['bytes_moved'])}")
    print(f"  KV read per decode step {s['read_seconds_per_step'] * 1e3:.3f} ms vs {s['read_seconds_all_hbm'] * 1e3:.3f} ms "
          f"all in HBM ({s['read_time_ratio']:.2f}x)")
    print(f"  {s['l2_note']}")
    return 0


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
