"""`main.py stream`: stream a text token by token; per step the token, sinks, heavy hitters and step time.

With --json, stdout is JSON Lines, one record per Api call, each that call's own result:
{"type": "start", ...} (stream_start), one {"type": "step", "steps": [...], ...} per step
(stream_step: the token, its attention row, step_seconds; sinks and heavy hitters so far),
then {"type": "summary", ...} (stream_state: recommended_sinks, sink_table, sink_grid, ...).
Positions are 0-based token indices; sinks and heavy hitters are for the chosen view.
"""
import sys

from .common import add_model_arguments, check, emit_result, load, read_text


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
    if args.json:
        emit_result(start, type="start")
    else:
        print(f"{start['prompt_tokens']} prompt tokens, {start['n_layers']} layers × {start['n_heads']} heads, "
              f"view {start['view']}")
    if start.get("note"):  # the prompt was longer than the stream can hold
        print(start["note"], file=sys.stderr)
    remaining = args.steps if args.steps is not None else start["max_tokens"]
    result = {"done": False}
    while remaining > 0 and not result["done"]:
        result = check(api.stream_step({"steps": 1}))
        remaining -= 1
        if args.json:
            emit_result(result, type="step")
            continue
        sinks = [s["position"] for s in result["sinks"]]
        for step in result["steps"]:
            print(f"{step['position']:5d} {step['token']!r:>14} {step['step_seconds'] * 1000:8.2f} ms  sinks {sinks}  "
                  f"heavy {result['heavy_hitters']}")
    state = check(api.stream_state())
    if args.json:
        emit_result(state, type="summary")
    else:
        print(f"{state.get('message') or 'stopped after ' + str(state['position']) + ' tokens'}; "
              f"recommended sink count: {state['recommended_sinks']}"
              + (f" ({state['recommended_sinks_note']})" if state["recommended_sinks_note"] else
                 f" (per layer: {' '.join(map(str, state['recommended_sinks_by_layer']))})"))
    return 0
