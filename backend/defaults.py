"""The bundled texts and one set of budget defaults per model, shared by every view (issue 33, item 6).

The model-trace simulation, Evaluate, Sweep, Retrieval and the prefill heatmap start from the same
budget (C, S, W) and the same text, so their numbers can be set side by side. The services read
them here (this module imports no service and no Api); the UI reads them in one Api call
(`defaults`). Where a view must differ, `notes` says why and the UI shows it.

Evaluate is sized to finish in about a minute on the device in use: its cost grows with the steps
after the cache is full, so the token count is what a minute of steps buys, reckoned from the
model's size and the device. The CPU rate is SmolLM2-135M's on 2 cores: about 4 minutes for the
long run's 1,024 tokens (issue 33), 0.27 s per step for all default policies. Measured with the
sized 352 tokens (`main.py evaluate --model smollm2 --device cpu`, a busy 2-core machine): Full
Cache 6.0 s, the five batched policies 19.6 s, Quest's own pass 42.6 s. `long_run` holds the
values before sizing.
"""
from pathlib import Path

EVAL_DIR = Path(__file__).resolve().parents[1] / "assets" / "eval"
BUNDLED_TEXTS = {  # name → (file, what it is)
    "jargon": ("jargon-heldout.txt", "The Jargon File 4.4.7 (public domain), held out from the demo model's training"),
    "alice": ("alice-chapter1.txt", "Alice's Adventures in Wonderland, chapter I (Lewis Carroll, 1865; public domain, "
                                    "Project Gutenberg eBook #11)"),
}
LONG_RUN_TOKENS = 1024      # Evaluate's text before sizing (the demo model: 4× its 256-token context)
TARGET_SECONDS = 60         # Evaluate sized to finish in about this long
EVAL_BATCH = 6              # the default policies besides Full Cache (five batched, Quest on its own pass)
CPU_SECONDS_PER_PARAM = 3.3e-10  # per parameter and policy per step, 2 threads (SmolLM2: 0.27 s / 6)
GPU_SECONDS_PER_LAYER = {"cuda": 1.5e-3, "mps": 3e-3}  # a decode step there is bound by kernel launches per layer
PREFILL_SINKS, PREFILL_WINDOW = 4, 32  # the prefill methods' own S and W (h2o's recent window; kvpress-style),
                                      # the same in the heatmap, Evaluate's prefill protocol and prefill sweeps
TRACE_TOKENS_PER_C = 4      # the model-trace text: a few times C, so every policy must evict
MAX_TRACE_TOKENS = 1024     # the heatmap beside it draws an n × n matrix (backend/api/attention.py)


def bundled_text(name: str = "jargon") -> str:
    if name not in BUNDLED_TEXTS:
        raise KeyError(f"bundled text must be one of {', '.join(BUNDLED_TEXTS)}, not {name!r}")
    return (EVAL_DIR / BUNDLED_TEXTS[name][0]).read_text(encoding="utf-8")


def text_name(source: str) -> str:
    """The demo model reads its held-out Jargon File; every other model Alice (plain English prose)."""
    return "jargon" if source == "demo" else "alice"


def sweep_texts(models: list) -> list[dict]:
    """A sweep's text when none is given: the first model's default text (a sweep compares on one text)."""
    name = text_name(models[0] if models else "demo")
    return [{"name": BUNDLED_TEXTS[name][0], "text": bundled_text(name)}]


def budget(context: int) -> dict:
    """C = a quarter of the context, at most 128; S = 4 sinks; W = C/2 (H2O's even split of recent and heavy)."""
    cache = max(2, min(128, context // 4))
    return {"cache_size": cache, "sinks": min(4, cache - 1), "window": window_for(cache)}


def window_for(cache_size: int) -> int:
    """W = C/2: H2O's even split of recent and heavy keys, for the budget given (the user's C too)."""
    return max(1, cache_size // 2)


def step_seconds(parameters: int, layers: int, device: str, threads: int) -> float:
    """One batched Evaluate decode step (EVAL_BATCH policies) on this device, from the model's size."""
    if device in GPU_SECONDS_PER_LAYER:
        return GPU_SECONDS_PER_LAYER[device] * layers
    return CPU_SECONDS_PER_PARAM * parameters * EVAL_BATCH * 2 / max(1, min(threads, 16))


def evaluate_tokens(cache_size: int, seconds_per_step: float) -> int:
    """Tokens that a TARGET_SECONDS run buys: C + 1 before the cache fills (cheap chunks), then one step each."""
    steps = int(TARGET_SECONDS / max(seconds_per_step, 1e-6))
    tokens = (cache_size + 1 + steps) // 32 * 32
    return max(min(tokens, LONG_RUN_TOKENS), min(LONG_RUN_TOKENS, 2 * cache_size + 32))


DEPTHS = [0.0, 0.25, 0.5, 0.75, 1.0]
ANSWER_ROOM = 64  # tokens after the context: the question and the answer (retrieval/request.py checks exactly)


def _fits(lengths, context: int) -> list[int]:
    return [n for n in lengths if n + ANSWER_ROOM <= context]


def retrieval_grid(context: int, device: str) -> dict:
    """The Retrieval grid (lengths × depths) and its presets. A long context on a CPU gets a smaller grid (9 cells
    up to 1,024 tokens, not 15 up to 2,048): each cell runs every policy over the whole context."""
    if context < 4096:  # the demo model: a grid that fits its context
        lengths, depths = _fits((96, 144, 192), context) or [context // 2], DEPTHS
    elif device == "cpu":
        lengths, depths = [256, 512, 1024], [0.0, 0.5, 1.0]
    else:
        lengths, depths = [512, 1024, 2048], DEPTHS
    presets = {"default": {"task": "pass_key", "lengths": lengths, "depths": depths}}
    whole = sorted({min(n, context - ANSWER_ROOM) for n in (1024, 2048, 4096, 8192) if n <= context})  # the last: the context
    if whole:
        presets["model_context"] = {"task": "pass_key", "lengths": whole, "depths": DEPTHS,
                                    "label": "model's context (" + ", ".join(f"{n:,}" for n in whole) + " tokens)"}
    if _fits((4096,), context):
        presets["ruler_4k"] = {"task": "needle", "lengths": [4096], "depths": DEPTHS,
                               "label": "RULER-style needle at 4k"}
    return {"task": "pass_key", "lengths": lengths, "depths": depths, "presets": presets}


def _trace_text(body: str, tokenizer, tokens: int) -> str:
    """The start of the text, about `tokens` long, cut at a line end."""
    ids = tokenizer(body, add_special_tokens=False, verbose=False)["input_ids"]
    chars = int(len(body) * min(1.0, tokens / max(1, len(ids))))
    cut = body.rfind("\n", 0, chars)
    return body[:cut if cut > chars // 2 else chars].strip()


def threads() -> int:
    import torch

    return torch.get_num_threads()


def evaluate_defaults(source: str, spec: dict, device: str, threads_: int | None = None) -> dict:
    """Evaluate's settings for this model and device: the shared budget and text, and the tokens a minute buys."""
    b = budget(int(spec["context_length"]))
    per_step = step_seconds(int(spec.get("parameters") or 0), int(spec.get("layers") or 1), device,
                            threads() if threads_ is None else threads_)
    tokens = evaluate_tokens(b["cache_size"], per_step)
    seconds = per_step * max(0, tokens - b["cache_size"] - 1)
    long_seconds = per_step * max(0, LONG_RUN_TOKENS - b["cache_size"] - 1)
    where = f"a quiet {threads_ if threads_ is not None else threads()}-thread CPU" if device == "cpu" else device.upper()
    note = (f"Sized to finish in about a minute: {tokens:,} tokens, about {seconds:.0f} s on {where} (reckoned from "
            f"the model's size; the estimate below is measured here, and a busy machine takes longer). Long run: "
            f"{LONG_RUN_TOKENS:,} tokens, about {max(1, round(long_seconds / 60))} min.") if tokens < LONG_RUN_TOKENS else None
    return {**b, "text": text_name(source), "max_tokens": tokens, "seconds": round(seconds, 1),
            "long_run": {"max_tokens": LONG_RUN_TOKENS, "seconds": round(long_seconds, 1)}, "note": note}


def for_model(source: str, spec: dict, device: str, tokenizer, threads_: int | None = None) -> dict:
    """Every view's defaults for this model on this device (the Api's `defaults`): plain values."""
    context = int(spec["context_length"])
    b = budget(context)
    name = text_name(source)
    evaluate = evaluate_defaults(source, spec, device, threads_)
    trace_tokens = min(context, MAX_TRACE_TOKENS, TRACE_TOKENS_PER_C * b["cache_size"])
    trace_text = _trace_text(bundled_text(name), tokenizer, trace_tokens)
    trace_len = len(tokenizer(trace_text, add_special_tokens=True, verbose=False)["input_ids"])
    ratio = round(min(0.95, max(0.05, 1 - b["cache_size"] / max(1, trace_len))), 2)
    return {
        "model": source, "device": device, "context_length": context, "budget": b, "text": name,
        "text_label": BUNDLED_TEXTS[name][1],
        "simulate_model": {**b, "model_text": trace_text, "tokens": trace_len},
        "evaluate": evaluate,
        "sweep": {**b, "text": name, "max_tokens": evaluate["max_tokens"], "cache_sizes": "auto"},
        "retrieval": {**b, **retrieval_grid(context, device)},
        "prefill_heatmap": {"cache_size": b["cache_size"], "ratio": ratio, "sinks": PREFILL_SINKS,
                            "window": PREFILL_WINDOW},
        "notes": {  # where a view differs from the shared budget and text, and why (the UI shows them)
            "evaluate": evaluate["note"],
            "simulate_model": f"The first {trace_len} tokens of the same text: the heatmap draws n × n.",
            "prefill_heatmap": f"Ratio {ratio} removes {ratio:.0%} of the text's {trace_len} tokens, so each KV head "
                               f"keeps about C = {b['cache_size']}, as the simulation (the methods' own S = "
                               f"{PREFILL_SINKS}, W = {PREFILL_WINDOW}).",
            "retrieval": "The grid's lengths are the task's haystacks, not the Evaluate text"
                         + (" (sized down on the CPU; presets for longer grids)." if device == "cpu" and context >= 4096
                            else "."),
            "sweep": "Many cache sizes (auto: 1/32 of the text to all of it) on Evaluate's text and tokens.",
        },
    }
