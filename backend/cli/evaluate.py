"""Perplexity of the model on a text with each eviction policy's real KV cache applied."""
import sys

from .common import (add_kv_format_arguments, add_model_arguments, kv_format_params, add_policy_file_argument, check, emit_result, load, load_policy_files,
                     read_text, wait_job)


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--text-file", help="text to evaluate on (default: a bundled text, see --bundled-text)")
    parser.add_argument("--bundled-text", choices=("jargon", "alice"),
                        help="jargon: held-out Jargon File (default for the demo model); alice: Alice in Wonderland ch. I")
    parser.add_argument("--max-tokens", type=int, help="default: sized to about a minute on the device (1024 where "
                        "that fits; backend/defaults.py)")
    parser.add_argument("--cache-size", type=int, help="default min(128, context/4)")
    parser.add_argument("--sinks", type=int, help="default 4")
    parser.add_argument("--window", type=int, help="H2O's recent window; default cache-size/2")
    parser.add_argument("--policy", default="all",
                        help="all (every policy but the slow sliding_window_recompute baseline), or a comma list of "
                             "full, sliding_window, sliding_window_recompute, streaming_llm, h2o, lru, tova, quest")
    parser.add_argument("--positions", choices=("original", "in_cache"), default="original",
                        help="original: keys keep their positions; in_cache: StreamingLLM's (rotary models)")
    parser.add_argument("--granularity", choices=("per_head", "shared"), default="per_head",
                        help="per_head: H2O/TOVA/LRU decide per layer and KV head; shared: one kept set for all")
    parser.add_argument("--protocol", choices=("streaming", "prefill"), default="streaming",
                        help="streaming: evict token by token (default); prefill: kvpress's — the first "
                             "--context-tokens compressed once at prefill, the next --continuation-tokens scored")
    parser.add_argument("--ratio", type=float, help="prefill: fraction of the context removed (default 0.5; "
                        "or give --cache-size)")
    parser.add_argument("--context-tokens", type=int, help="prefill: default 3/4 of the text")
    parser.add_argument("--continuation-tokens", type=int, help="prefill: default the rest")
    add_kv_format_arguments(parser)
    add_policy_file_argument(parser)
    parser.add_argument("--json", action="store_true")


def run_prefill(args, api) -> int:
    """--protocol prefill (backend/compress via Api.evaluate): one row per method."""
    params = {"protocol": "prefill", "text": read_text(args) if args.text_file else None,
              "policy": args.policy if args.policy == "all" else args.policy.split(","), **kv_format_params(args)}
    for name in ("bundled_text", "max_tokens", "cache_size", "sinks", "window", "ratio", "context_tokens",
                 "continuation_tokens"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    job = check(api.evaluate(params))
    result = wait_job(api, job["job_id"], quiet=args.json)
    if args.json:
        emit_result(result)
        return 0
    s = result["settings"]
    budget = f"C={s['cache_size']}" if s["cache_size"] is not None else f"ratio={s['ratio']}"
    print(f"{result['model']['source']} · {result['text']['name']} · prefill protocol: {s['context_tokens']} context "
          f"tokens compressed ({budget}), next {s['continuation_tokens']} scored")
    print(f"KV format: {result['kv_format'] or 'unquantized'} ({result['bytes_per_token']:.0f} bytes per token)")
    print(f"{'method':26} {'perplexity':>11} {'KL vs full':>11} {'kept/head':>10}")
    for r in result["results"]:
        print(f"{r['policy']:26} {r['perplexity']:11.3f} {r['kl_vs_full']:11.4f} {r['memory_tokens']:10.1f}")
    for r in result["results"]:
        if r.get("note"):
            print(f"note: {r['policy']}: {r['note']}", file=sys.stderr)
    return 0


def run(args, api) -> int:
    load_policy_files(api, args)  # before the model: a broken file fails in a second, not after a load
    load(api, args, quiet=args.json)
    if args.protocol == "prefill":
        return run_prefill(args, api)
    params = {"text": read_text(args) if args.text_file else None, "policy": args.policy if args.policy == "all"
              else args.policy.split(","), "positions": args.positions, "granularity": args.granularity,
              **kv_format_params(args)}
    for name in ("bundled_text", "max_tokens", "cache_size", "sinks", "window"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if not args.json:
        est = check(api.evaluate_estimate(params))
        print(f"estimate: ~{est['seconds']:.0f} s for {est['steps']} steps", file=sys.stderr)
    job = check(api.evaluate(params))
    for warning in job.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    result = wait_job(api, job["job_id"], quiet=args.json)
    if args.json:
        emit_result(result)
        return 0
    rows = result["results"]
    s, text = result["settings"], result["text"]
    print(f"{result['model']['source']} · {text['name']} ({text['tokens']} tokens, sha256 {text['sha256']}) · "
          f"C={s['cache_size']} S={s['sinks']} W={s['window']} · {result['granularity']}")
    print(f"positions: {result['position_scheme']}")
    if result.get("kv_format"):
        print(f"KV format: {result['kv_format']} ({rows[0]['bytes_per_token']:.0f} bytes per token; intact sinks "
              f"{result['intact_sinks']}); Full Cache unquantized: perplexity {result['unquantized_full_perplexity']:.2f}")
    print(f"{'policy':26} {'perplexity':>11} {'KL vs full':>11} {'tokens':>7} {'seconds':>8}")
    for r in rows:
        kl = "—" if r["kl_vs_full"] is None else f"{r['kl_vs_full']:.4f}"
        print(f"{r['policy']:26} {r['perplexity']:11.2f} {kl:>11} {r['tokens']:7d} {r['seconds']:8.1f}")
    past = [r for r in result["results"] if r.get("perplexity_past_context") is not None]
    if past:
        print(f"past the context ({result['context_length']} tokens):")
        for r in past:
            print(f"  {r['policy']:24} within {r['perplexity_within_context']:9.2f}   past {r['perplexity_past_context']:9.2f}")
    for note in [result.get("note")] + [r.get("note") for r in result["results"]]:
        if note:
            print(f"note: {note}", file=sys.stderr)
    return 0
