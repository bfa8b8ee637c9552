"""What every CLI subcommand shares: load a model through the Api, wait for a job, report errors."""
import json
import sys
import time


class CliError(Exception):
    """An Api error envelope, raised so a subcommand can stop with exit code 2."""

    def __init__(self, envelope: dict):
        err = envelope.get("error", {})
        field = f" [{err['field']}]" if err.get("field") else ""
        super().__init__(f"error{field}: {err.get('message', 'unknown error')}")


def check(envelope: dict) -> dict:
    if not envelope.get("ok"):
        raise CliError(envelope)
    return envelope


def wait_job(api, job_id: str, quiet: bool = False, poll: float = 0.05) -> dict:
    """Poll a job to its end; progress goes to stderr so stdout stays clean JSON."""
    last = None
    try:
        while True:
            status = check(api.job_status({"job_id": job_id}))
            if status["state"] != "running":
                break
            line = f"{status['stage']} {status['fraction'] * 100:5.1f}%"
            if status.get("seconds_left") is not None:  # Evaluate and Retrieval: from the steps / cells that remain
                line += f" · {status['seconds_left']:.0f} s left"
            if not quiet and line != last:
                print(line, file=sys.stderr)
                last = line
            time.sleep(poll)
    except KeyboardInterrupt:
        api.cancel_job({"job_id": job_id})
        raise
    if status["state"] != "done":
        raise CliError({"error": status.get("error", {"message": status["state"]})})
    return status["result"]


def add_model_arguments(parser) -> None:
    parser.add_argument("--model", default="demo", help="'demo' (bundled), 'smollm2' (the real GGUF model), a local folder, a .gguf file or a Hub id")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp16", "bf16", "fp32"])
    parser.add_argument("--trust-remote-code", action="store_true", help="run the model's own code (only if you trust it)")


def add_trace_arguments(parser) -> None:
    """--trace synthetic|model and what a model trace needs (simulate and profile share these)."""
    parser.add_argument("--trace", choices=["synthetic", "model"], default="synthetic",
                        help="synthetic (any length, no model) or the model's attention on --text/--text-file")
    add_model_arguments(parser)
    parser.add_argument("--text", help="text for a model trace")
    parser.add_argument("--text-file", help="read the text for a model trace from this file")
    parser.add_argument("--layer", type=int, default=-1, help="model trace: layer index, -1 = last")
    parser.add_argument("--head", type=int, default=None, help="model trace: one head; omit for the mean over heads")


def add_policy_file_argument(parser) -> None:
    parser.add_argument("--policy-file", action="append", default=[], metavar="F",
                        help="your eviction policy (a Python rule file, docs/write-your-own-policy.md); repeat for "
                             "several. Its code runs: naming it here is your consent. Then --policy NAME or all")


def add_kv_format_arguments(parser) -> None:
    """Quantized KV caches (backend/quantize): a format for K and V, or one each, and IntactKV's sinks."""
    parser.add_argument("--kv-format", help="store K and V in a format: f16, bf16, q8_0, q5_1, q5_0, q4_1, q4_0 "
                        "(llama.cpp), int8/int4/int2 (per token; -channel: per channel), kivi-2, kivi-4 (-rN: the "
                        "full-precision window, default 128), fp8-e4m3, fp8-e5m2 (-head: a scale per KV head)")
    parser.add_argument("--kv-format-k", help="keys' format (overrides --kv-format for K), as llama.cpp's --cache-type-k")
    parser.add_argument("--kv-format-v", help="values' format (overrides --kv-format for V)")
    parser.add_argument("--intact-sinks", type=int, help="IntactKV: keep the first N positions in full precision")


def kv_format_params(args) -> dict:
    return {name: getattr(args, name) for name in ("kv_format", "kv_format_k", "kv_format_v", "intact_sinks")
            if getattr(args, name, None) is not None}


def load_policy_files(api, args) -> list[str]:
    """Load each --policy-file (trusted: the user named it); returns their policy names."""
    return [check(api.load_policy_file({"path": f, "trust": True}))["policy"]["name"]
            for f in getattr(args, "policy_file", None) or []]


def load(api, args, quiet: bool = False) -> dict:
    job = check(api.load_model({"source": args.model, "device": args.device, "precision": args.precision,
                                "trust_remote_code": bool(getattr(args, "trust_remote_code", False))}))
    return wait_job(api, job["job_id"], quiet=quiet)


def read_text(args) -> str:
    if getattr(args, "text_file", None):
        try:
            with open(args.text_file, encoding="utf-8") as f:
                return f.read()
        except OSError as exc:
            raise CliError({"error": {"message": f"cannot read {args.text_file}: {exc.strerror}", "field": "text-file"}}) from None
    return args.text or ""


def emit(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def emit_result(result: dict, leave_out=(), **first) -> None:
    """--json prints the Api's own result, not a copy re-assembled here, so the CLI carries every
    figure the UI gets (issue #23: a hand-picked subset dropped some). `leave_out`: the UI-only parts
    a subcommand trims; `first`: what the CLI puts before it (a JSON Lines record's type)."""
    emit({**first, **{k: v for k, v in result.items() if k != "ok" and k not in leave_out}})
