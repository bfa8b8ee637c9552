"""`main.py sweep`: quality against KV memory for every policy (local workers or a Ray cluster)."""
import sys
from pathlib import Path

from ..errors import UserError
from .common import CliError, add_policy_file_argument, emit, load_policy_files


def add_arguments(parser) -> None:
    parser.add_argument("--model", action="append", help="'demo', a folder, a Hub id, or 'synthetic' (simulate on a "
                        "generated trace); repeat for several models (default: demo)")
    parser.add_argument("--text-file", action="append", help="a text to run on; repeat for several (default: the bundled "
                        "held-out Jargon File text)")
    parser.add_argument("--synthetic-length", type=int, default=100_000, help="--model synthetic: trace length in steps")
    parser.add_argument("--kind", choices=["evaluate", "simulate", "retrieval", "prefill"], default="evaluate",
                        help="retrieval: every cell runs a pass-key/needle grid (--task, --lengths, --depths); y = accuracy. "
                        "prefill: kvpress's protocol, each prefill method at each --ratios; y = continuation perplexity")
    parser.add_argument("--ratios", default="0.25,0.5,0.75,0.9", help="prefill: compression ratios (fraction of the "
                        "context removed), separated by commas")
    parser.add_argument("--task", default="pass_key", help="retrieval: pass_key, needle or multi_key")
    parser.add_argument("--protocol", default="streaming", help="retrieval: streaming or prefill")
    parser.add_argument("--lengths", default="512,1024,2048", help="retrieval: context lengths")
    parser.add_argument("--depths", default="0,0.25,0.5,0.75,1", help="retrieval: needle depths in 0..1")
    parser.add_argument("--chunk", type=int, default=64, help="retrieval, streaming: evict every k tokens")
    parser.add_argument("--policy", default="all", help="all, or names separated by commas (full,streaming_llm,h2o,...)")
    parser.add_argument("--cache-sizes", default="auto", help="auto (8 sizes log-spaced from 1/32 of the text to all of "
                        "it) or 16,32,64,...")
    parser.add_argument("--sinks", type=int, default=4)
    parser.add_argument("--window", type=int, default=None, help="H2O's recent window (default: C/2 at each size)")
    parser.add_argument("--max-tokens", type=int, default=1024, help="tokens of each text used")
    parser.add_argument("--access-threshold", type=float, default=0.01)
    parser.add_argument("--layer", type=int, default=-1, help="simulate on a model: the trace is this layer's mean over heads")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp16", "bf16", "fp32"])
    parser.add_argument("--out", required=True, help="results file (JSON Lines); an existing one is resumed")
    parser.add_argument("--ray", help="run on an existing Ray cluster: 'auto' or its address HOST:PORT")
    parser.add_argument("--workers", type=int, default=None, help="local worker processes (default: one per core, "
                        "at most 4 — each holds a copy of the models; 0 = in this process)")
    add_policy_file_argument(parser)
    parser.add_argument("--kv-formats", default="none", help="evaluate, prefill, retrieval: KV formats, a point per "
                        "policy × size × format (none = unquantized; e.g. none,q8_0,q4_0,kivi-2; docs/quantization.md)")
    parser.add_argument("--intact-sinks", type=int, default=0, help="with --kv-formats: the first N positions unquantized")
    parser.add_argument("--json", action="store_true", help="print the summary and the sweep's rows as JSON")


def _texts(args) -> list[dict]:
    if args.model and "synthetic" in args.model:
        return [{"name": f"synthetic-{args.synthetic_length}", "synthetic": {"length": args.synthetic_length}}]
    if not args.text_file:
        from ..defaults import sweep_texts

        return sweep_texts(args.model or ["demo"])
    out = []
    for name in args.text_file:
        try:
            out.append({"name": Path(name).name, "text": Path(name).read_text(encoding="utf-8")})
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError({"error": {"message": f"cannot read {name}: {exc}", "field": "text-file"}}) from None
    return out


def spec_params(args) -> dict:
    return {"kind": args.kind, "models": args.model or ["demo"], "texts": _texts(args),
            "policies": args.policy if args.policy == "all" else [p for p in args.policy.split(",") if p],
            "cache_sizes": args.cache_sizes, "sinks": args.sinks, "window": args.window, "max_tokens": args.max_tokens,
            "access_threshold": args.access_threshold, "layer": args.layer, "device": args.device,
            "precision": args.precision, "retrieval": _retrieval(args) if args.kind == "retrieval" else None,
            **({"ratios": args.ratios} if args.kind == "prefill" else {}),
            "kv_formats": [f.strip() for f in args.kv_formats.split(",") if f.strip()] or ["none"],
            "intact_sinks": args.intact_sinks}


def _retrieval(args) -> dict:
    try:
        return {"task": args.task, "protocol": args.protocol, "chunk": args.chunk,
                "lengths": [int(x) for x in args.lengths.split(",") if x.strip()],
                "depths": [float(x) for x in args.depths.split(",") if x.strip()]}
    except ValueError:
        raise CliError({"error": {"message": "--lengths and --depths must be numbers separated by commas",
                                  "field": "lengths"}}) from None


def run(args, api) -> int:
    from ..api.policies import policy_registry
    from ..sweep import make_runner, parse_spec, plan, read_rows, run_sweep

    load_policy_files(api, args)  # --policy-file: then usable by NAME in --policy, and sent to the workers
    try:
        spec = parse_spec(spec_params(args), policy_registry(api._state).snapshot(prefill=True))
        runner = make_runner(args.ray, args.workers)

        def report(s):
            if not args.json or sys.stderr.isatty():
                rate = "—" if s["cells_per_minute"] is None else f"{s['cells_per_minute']:.1f}/min"
                left = "—" if s["seconds_left"] is None else f"{s['seconds_left']:.0f} s left"
                print(f"{s['cells_done']}/{s['cells_todo']} cells ({s['cells_skipped']} already in the file), "
                      f"{rate}, {left}", file=sys.stderr)

        summary = run_sweep(spec, args.out, runner, report)
        keys = {c.key for c in plan(spec, args.out)["cells"]}
        rows = [r for r in read_rows(args.out) if r["key"] in keys]
    except UserError as exc:
        raise CliError({"error": {"message": exc.message, "field": exc.field}}) from None
    if args.json:
        emit({"summary": summary, "rows": rows})
        return 0
    print(f"{summary['out']}: {len(rows)} cells ({summary['written']} new) on {summary['runner']}")
    for note in summary["notes"]:
        print(f"left out: {note['model']} / {note['text']}: {note['why']}", file=sys.stderr)
    print_frontier(rows, spec.kind)
    return 0


def print_frontier(rows: list[dict], kind: str) -> None:
    """One table per model × text: policies down, cache sizes across, the headline metric in each cell."""
    metric = {"evaluate": "perplexity", "retrieval": "accuracy", "prefill": "perplexity"}.get(kind, "hit_rate")
    x = "ratio" if kind == "prefill" else "cache_size"  # a prefill budget is a compression ratio
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["cell"]["model"], r["cell"]["text"]), []).append(r)
    for (model, text), group in groups.items():
        sizes = sorted({r["cell"][x] for r in group if r["cell"]["policy"] != "full"})
        full = {_series(r, "full"): r["metrics"][metric] for r in group if r["cell"]["policy"] == "full"}
        by = {(_series(r), r["cell"][x]): r["metrics"][metric] for r in group}
        per_token = next((r.get("kv_bytes_per_token") for r in group if not r.get("kv_format")), None)
        tokens = (f"{group[0]['tokens']}-token context + {group[0]['continuation_tokens']} scored" if kind == "prefill"
                  else f"{group[0]['tokens']} tokens")
        print(f"\n{model} · {text} · {tokens} · {metric}"
              + (f" · KV {per_token:,} bytes/token" if per_token else ""))
        head = "r=" if x == "ratio" else "C="
        print(f"{'policy':26}" + "".join(f"{head + str(c):>10}" for c in sizes) + (f"{'full':>10}" if full else ""))
        for policy in dict.fromkeys(_series(r) for r in group if r["cell"]["policy"] != "full"):
            same = full.get(_series({"cell": {"policy": "full"}, "kv_format": _format_of(policy)}, "full"))
            print(f"{policy:26}" + "".join(_fmt(by.get((policy, c))) for c in sizes) + (_fmt(same) if full else ""))
        formats = {r["kv_format"]: r["kv_bytes_per_token"] for r in group if r.get("kv_format")}
        for name, per in formats.items():
            print(f"  @ {name}: KV {per:,.0f} bytes/token")


def _series(row: dict, policy: str | None = None) -> str:
    """A frontier line: the policy, and its KV format when quantized (policy × format, issue 34)."""
    policy = policy or row["cell"]["policy"]
    return f"{policy} @ {row['kv_format']}" if row.get("kv_format") else policy


def _format_of(series: str):
    return series.split(" @ ", 1)[1] if " @ " in series else None


def _fmt(v) -> str:
    return f"{'—':>10}" if v is None else f"{v:10.3f}" if abs(v) >= 10 else f"{v:10.4f}"

