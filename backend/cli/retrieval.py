"""`main.py retrieval`: pass-key / needle grids under eviction (lengths × depths, every policy)."""
import sys

from .common import (CliError, add_kv_format_arguments, add_model_arguments, add_policy_file_argument, check,
                     emit_result, kv_format_params, load, load_policy_files, wait_job)


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--task", choices=("pass_key", "needle", "multi_key", "custom"), default="pass_key")
    parser.add_argument("--protocol", choices=("streaming", "prefill"), default="streaming",
                        help="streaming: decode-time eviction (chunks of --chunk tokens); prefill: kvpress's, compress once")
    parser.add_argument("--policy", default="all", help="all, or names separated by commas")
    parser.add_argument("--lengths", help="context lengths in tokens, e.g. 512,1024,2048 (default: the model's)")
    parser.add_argument("--depths", help="needle depths in 0..1, e.g. 0,0.25,0.5,0.75,1")
    parser.add_argument("--cache-size", type=int, help="C, entries kept per (layer, KV head); default 128")
    parser.add_argument("--ratio", type=float, help="prefill only, instead of --cache-size: the fraction removed")
    parser.add_argument("--sinks", type=int)
    parser.add_argument("--window", type=int)
    parser.add_argument("--chunk", type=int, help="streaming: evict every k tokens (1 = token by token); default 64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chat-template", action="store_true", help="wrap the prompt in the model's chat template")
    for name in ("haystack", "needle", "question", "answer"):
        parser.add_argument(f"--{name}", help=f"custom task: the {name}" + (" (a file path or the text)" if name == "haystack" else ""))
    add_kv_format_arguments(parser)
    add_policy_file_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON (the Api's keys)")


def _numbers(value: str, cast, name: str) -> list:
    try:
        return [cast(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise CliError({"error": {"message": f"--{name} must be numbers separated by commas", "field": name}}) from None


def _haystack(value: str | None) -> str | None:
    from pathlib import Path

    if value and len(value) < 4096 and Path(value).is_file():
        return Path(value).read_text(encoding="utf-8")
    return value


def table(result: dict) -> str:
    """Per policy: depth (rows) × length (columns), ✓/✗ and the answer's log-probability."""
    built = ", ".join(f"{L} → {n}" for L, n in zip(result["lengths"], result.get("context_tokens") or []))
    lines = [f"context tokens built (length asked → tokens): {built}"] if built else []
    for s in result["summary"]:
        p = s["policy"]
        lines.append(f"{p}: accuracy {s['accuracy']:.2f}, mean log p(answer) {s['mean_logprob']:.2f}")
        lines.append("  depth  " + "".join(f"{L:>14}" for L in result["lengths"]))
        for d in result["depths"]:
            row = []
            for L in result["lengths"]:
                c = next(c for c in result["cells"] if c["policy"] == p and c["length"] == L and c["depth"] == d)
                row.append(f"{'✓' if c['correct'] else '✗'} {c['answer_logprob']:8.2f}".rjust(14))
            lines.append(f"  {d:5.2f}  " + "".join(row))
    return "\n".join(lines)


def run(args, api) -> int:
    load_policy_files(api, args)
    load(api, args, quiet=args.json)
    params = {"task": args.task, "protocol": args.protocol, "seed": args.seed, "chat_template": args.chat_template,
              "policy": args.policy if args.policy == "all" else args.policy.split(","), **kv_format_params(args)}
    if args.lengths:
        params["lengths"] = _numbers(args.lengths, int, "lengths")
    if args.depths:
        params["depths"] = _numbers(args.depths, float, "depths")
    for name in ("cache_size", "ratio", "sinks", "window", "chunk", "needle", "question", "answer"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if args.haystack is not None:
        params["haystack"] = _haystack(args.haystack)
    job = check(api.retrieval(params))
    result = wait_job(api, job["job_id"], quiet=args.json)
    if args.json:
        emit_result(result)
        return 0
    s = result["settings"]
    budget = f"C={s['cache_size']}" if s.get("cache_size") is not None else f"ratio={s['ratio']}"
    print(f"{result['model']['source']} · {result['task']} · {result['protocol']}"
          + (f" (k={result['chunk']})" if result["chunk"] else "") + f" · {budget} S={s['sinks']} W={s['window']}"
          f" · chat template {'on' if s['chat_template'] else 'off'} · {result['seconds']:.1f} s"
          + (f" · KV {result['kv_format']} ({result['bytes_per_token']:.0f} B/token)" if result.get("kv_format") else ""))
    print(table(result))
    for c in result["cells"]:
        if c.get("note"):
            print(f"note ({c['policy']}, {c['length']}, {c['depth']:g}): {c['note']}", file=sys.stderr)
    return 0
