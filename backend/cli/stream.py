"""`main.py stream`: stream a text token by token; per step the token, sinks, heavy hitters and step time.

With --json, stdout is JSON Lines: one {"type": "step", ...} object per step, then one
{"type": "summary", ...} (done, message, recommended_sinks, sink_table, sink_grid).
Positions are 0-based token indices; sinks and heavy hitters are for the chosen view.
"""
import sys

from .common import add_model_arguments, check, emit, load, read_text


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--text", help="the prompt")
    parser.add_argument("--text-file", help="read the prompt from this file")
    parser.add_argument("--steps", type=int, default=None, help="tokens to stream (default: the prompt, plus --generate)")
    parser.add_argument("--generate", type=int, default=None,
                        help="tokens to generate after the prompt (default: enough to reach --steps)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy; > 0 samples")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--layer", default="-1", help="layer index (-1 = last) or 'all' (mean over all layers and heads)")
    parser.add_argument("--head", type=int, default=None, help="head index; omit for the mean over heads")
    parser.add_argument("--sink-threshold", type=float, default=0.10)
    parser.add_argument("--heavy-fraction", type=float, default=0.10, help="heavy hitters: top fraction of keys by H2O score")
    parser.add_argument("--json", action="store_true", help="print JSON Lines")


def run(args, api) -> int:
    if args.model is not None:  # None: use the model the caller already loaded (tests, embedding)
        load(api, args, quiet=args.json)
    layer = "all" if args.layer == "all" else int(args.layer)
    generate = args.generate if args.generate is not None else (args.steps or 0)
    start = check(api.stream_start({"prompt": read_text(args), "generate": generate, "temperature": args.temperature,
                                    "seed": args.seed, "sink_threshold": args.sink_threshold,
                                    "heavy_fraction": args.heavy_fraction, "view": {"layer": layer, "head": args.head}}))
    if not args.json:
        print(f"{start['prompt_tokens']} prompt tokens, {start['n_layers']} layers × {start['n_heads']} heads, "
              f"view {start['view']}")
    if start.get("note"):  # the prompt was longer than the stream can hold
        print(start["note"], file=sys.stderr)
    remaining = args.steps if args.steps is not None else start["max_tokens"]
    result = {"done": False}
    while remaining > 0 and not result["done"]:
        result = check(api.stream_step({"steps": 1}))
        remaining -= 1
        for step in result["steps"]:
            sinks = [s["position"] for s in result["sinks"]]
            line = {"type": "step", "position": step["position"], "token": step["token"], "token_id": step["token_id"],
                    "generated": step["generated"], "sinks": sinks, "heavy_hitters": result["heavy_hitters"],
                    "step_ms": round(step["step_seconds"] * 1000, 3)}
            if args.json:
                emit(line)
            else:
                print(f"{step['position']:5d} {step['token']!r:>14} {line['step_ms']:8.2f} ms  sinks {sinks}  "
                      f"heavy {result['heavy_hitters']}")
    state = check(api.stream_state())
    summary = {"type": "summary", "done": state["done"], "message": state.get("message"), "position": state["position"],
               "recommended_sinks": state["recommended_sinks"], "recommended_sinks_by_layer": state["recommended_sinks_by_layer"],
               "lead_share_by_layer": state["lead_share_by_layer"], "recommended_sinks_note": state["recommended_sinks_note"],
               "sink_table": state["sink_table"], "sink_grid": state["sink_grid"], "note": start.get("note")}
    if args.json:
        emit(summary)
    else:
        print(f"{state.get('message') or 'stopped after ' + str(state['position']) + ' tokens'}; "
              f"recommended sink count: {state['recommended_sinks']}"
              + (f" ({state['recommended_sinks_note']})" if state["recommended_sinks_note"] else
                 f" (per layer: {' '.join(map(str, state['recommended_sinks_by_layer']))})"))
    return 0
