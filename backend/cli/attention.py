"""`main.py attention`: tokens, one attention matrix and its sinks, as JSON or a short summary."""
from .common import add_model_arguments, check, emit_result, load, read_text


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--text", help="the text to run")
    parser.add_argument("--text-file", help="read the text from this file")
    parser.add_argument("--layer", type=int, default=-1, help="layer index, -1 = last")
    parser.add_argument("--head", type=int, default=None, help="head index; omit for the mean over heads")
    parser.add_argument("--sink-threshold", type=float, default=0.10)
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args, api) -> int:
    load(api, args, quiet=args.json)
    result = check(api.attention({"text": read_text(args), "layer": args.layer, "head": args.head,
                                  "sink_threshold": args.sink_threshold}))
    if args.json:
        emit_result(result)
    else:
        print(f"{result['n']} tokens, layer {result['layer']}, head {'mean' if result['head'] is None else result['head']}")
        for s in result["sinks"]:
            print(f"  sink at {s['position']:4d} {s['token']!r}: mean received attention {s['score']:.3f}")
    return 0
