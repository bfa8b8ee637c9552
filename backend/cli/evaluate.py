"""Perplexity of the model on a text with each eviction policy's cache applied."""
import sys

from .common import add_model_arguments, check, emit, load, read_text, wait_job


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--text-file", help="text to evaluate on (default: the bundled held-out Jargon File text)")
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--cache-size", type=int, default=256)
    parser.add_argument("--sinks", type=int, default=4)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--policy", default="all", help="all | full | sliding_window | streaming_llm | h2o | lru | tova")
    parser.add_argument("--json", action="store_true")


def run(args, api) -> int:
    load(api, args, quiet=args.json)
    text = read_text(args) if args.text_file else None
    policy = args.policy if args.policy == "all" else [args.policy]
    job = check(api.evaluate({"text": text, "max_tokens": args.max_tokens, "cache_size": args.cache_size,
                              "sinks": args.sinks, "window": args.window, "policy": policy}))
    result = wait_job(api, job["job_id"], quiet=args.json)
    rows = [{k: r[k] for k in ("policy", "perplexity", "kl_vs_full", "tokens", "seconds")} for r in result["results"]]
    if args.json:
        emit({"results": rows, "tokens": result["tokens"], "position_scheme": result["position_scheme"]})
        return 0
    print(f"{result['tokens']} tokens; {result['position_scheme']}")
    print(f"{'policy':16} {'perplexity':>11} {'KL vs full':>11} {'tokens':>7} {'seconds':>8}")
    for r in rows:
        kl = "—" if r["kl_vs_full"] is None else f"{r['kl_vs_full']:.4f}"
        print(f"{r['policy']:16} {r['perplexity']:11.2f} {kl:>11} {r['tokens']:7d} {r['seconds']:8.1f}")
    for r in result["results"]:
        if r.get("note"):
            print(f"note: {r['note']}", file=sys.stderr)
    return 0
