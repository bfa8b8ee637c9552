"""A retrieval request checked before any work: each bad input is a named error saying what to change.

Named errors (code: when):
  retrieval_missing_haystack / _needle / _question / _answer, retrieval_answer_not_in_needle: the custom task
      lacks a part, or its answer is not in its needle (custom.py);
  retrieval_context_too_long: a length (plus the question and the answer) exceeds the model's context;
  retrieval_depth_out_of_range: a depth outside 0..1;
  retrieval_budget_not_below_context: cache_size at or above a context length, or at or above the tokens the
      shortest length's context really holds (nothing would be evicted there).
"""
from ..defaults import budget, retrieval_grid, window_for
from ..errors import UserError
from ..evaluate.deciders import registered_policies
from ..quantize.params import kv_format_params
from ..validate import choice, flag, integer, number, text
from .answer import MAX_NEW_TOKENS
from .custom import check as check_custom
from .prefill import methods as prefill_methods
from .tasks import TASKS

PROTOCOLS = ("streaming", "prefill")
MAX_CELLS = 60
MAX_CHUNK = 512


def defaults(loaded) -> dict:
    """The shared budget (backend/defaults.py: C, S, W as every view) and a grid sized to the model and device."""
    grid = retrieval_grid(loaded.context_length, loaded.device)
    return {"task": grid["task"], "protocol": "streaming", "policy": "all", "lengths": grid["lengths"],
            "depths": grid["depths"], **budget(loaded.context_length), "ratio": None, "chunk": 64, "seed": 0,
            "chat_template": False, "max_new_tokens": MAX_NEW_TOKENS, "presets": grid["presets"]}


def protocol_policies(protocol: str) -> list[str]:
    if protocol == "streaming":
        return ["full"] + [p for p in registered_policies() if p != "full"]
    names = prefill_methods()
    return [] if names is None else ["full"] + [p for p in names if p != "full"]


def _list(params, name, default, item, what):
    value = params.get(name, default)
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or len(value) > 20:
        raise UserError("bad_input", f"{name} must be a list of 1 to 20 {what}.", name)
    return [item({name: v}, name) for v in value]


def _policies(value, known: list[str]) -> list[str]:
    if value in (None, "all"):
        return list(known)
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or any(not isinstance(p, str) or p not in known for p in names):
        raise UserError("bad_input", f"policy must be 'all' or a list of {', '.join(known)}.", "policy")
    return ["full"] + [p for p in dict.fromkeys(names) if p != "full"]  # Full Cache: the reference for "why it missed"


def check_fits(loaded, task: str, lengths: list[int], seed: int, chat_template: bool, custom: dict | None,
               cache_size: int | None = None) -> None:
    """The shortest context holds the prompt and more than cache_size tokens; the longest, with its question and
    answer, fits the model's context."""
    shortest, longest = min(lengths), max(lengths)
    if longest > loaded.context_length:  # before any prompt is built: a haystack of 2^31 tokens would take hours
        raise UserError("retrieval_context_too_long", f"A {longest}-token context is longer than the model's context "
                        f"({loaded.context_length}): use lengths below {loaded.context_length}.", "lengths")
    built = len(TASKS[task](loaded.tokenizer, shortest, 0.5, seed, chat_template, **(custom or {})).context_ids)
    # The context is whole sentences up to the length asked, so it can be far shorter (a custom haystack of one
    # long sentence gives just the needle). Filling is greedy, so the shortest length builds the shortest context.
    if cache_size is not None and cache_size >= built:
        cause = (" (the haystack's sentences do not fit: give a haystack of shorter sentences)"
                 if custom and built < shortest // 2 else "")
        raise UserError("retrieval_budget_not_below_context", f"The {shortest}-token length builds a context of only "
                        f"{built} tokens{cause}, and cache_size {cache_size} keeps all of them, so nothing would be "
                        f"evicted and every policy would equal Full Cache: use a cache_size below {built}.",
                        "haystack" if cause else "cache_size")
    prompt = TASKS[task](loaded.tokenizer, longest, 0.5, seed, chat_template, **(custom or {}))
    need = longest + len(prompt.question_ids) + max(len(prompt.answer_ids), MAX_NEW_TOKENS)
    if need > loaded.context_length:
        raise UserError("retrieval_context_too_long", f"A {longest}-token context with its question and answer "
                        f"({need} tokens) is longer than the model's context ({loaded.context_length}): use lengths "
                        f"up to {loaded.context_length - (need - longest)}.", "lengths")


def parse(loaded, params: dict) -> dict:
    """Validated {task, protocol, policies, lengths, depths, settings, custom}."""
    d = defaults(loaded)
    task = choice(params, "task", tuple(TASKS), d["task"])
    protocol = choice(params, "protocol", PROTOCOLS, d["protocol"])
    known = protocol_policies(protocol)
    if not known:
        raise UserError("prefill_unavailable", "The prefill protocol needs backend/compress, which this build lacks: "
                        "use protocol='streaming'.", "protocol")
    policies = _policies(params.get("policy", "all"), known)
    lengths = _list(params, "lengths", d["lengths"], lambda p, n: integer(p, n, lo=8), "whole numbers of tokens")
    depths = _list(params, "depths", d["depths"], lambda p, n: number(p, n), "numbers in 0..1")
    for x in depths:
        if not 0.0 <= x <= 1.0:
            raise UserError("retrieval_depth_out_of_range", f"Depth {x!r} is outside 0..1 (0 = the needle at the "
                            "context's start, 1 = at its end): give depths between 0 and 1.", "depths")
    if len(lengths) * len(depths) > MAX_CELLS:
        raise UserError("bad_input", f"The grid has {len(lengths) * len(depths)} cells; at most {MAX_CELLS}: "
                        "give fewer lengths or depths.", "lengths")
    shortest = min(lengths)
    ratio = params.get("ratio")
    if ratio is not None and protocol != "prefill":
        raise UserError("bad_input", "ratio (the fraction removed) is for the prefill protocol; the streaming "
                        "protocol keeps cache_size entries.", "ratio")
    if ratio is not None:
        ratio = number(params, "ratio")
        if not 0.0 < ratio < 1.0:
            raise UserError("bad_input", f"ratio must be between 0 and 1, exclusive (the fraction of the context's "
                            f"entries removed; got {ratio:g}).", "ratio")
        cache_size = None
    else:
        cache_size = integer(params, "cache_size", d["cache_size"], lo=2)
        if cache_size >= shortest:
            raise UserError("retrieval_budget_not_below_context", f"cache_size {cache_size} is at or above the "
                            f"{shortest}-token context, so nothing would be evicted there: use a cache_size below "
                            f"{shortest}, or longer lengths.", "cache_size")
    budget = cache_size if cache_size is not None else 2 ** 31
    settings = {"cache_size": cache_size, "ratio": ratio,
                "sinks": integer(params, "sinks", min(d["sinks"], budget - 1), lo=0, hi=budget - 1),
                "window": integer(params, "window", min(d["window"] if cache_size is None else window_for(cache_size),
                                                        budget - 1), lo=1, hi=budget - 1),  # W = C/2 of this C
                "chunk": integer(params, "chunk", d["chunk"], lo=1, hi=MAX_CHUNK),
                "seed": integer(params, "seed", 0, lo=0, hi=2 ** 31 - 1),
                "chat_template": flag(params, "chat_template", False),
                "positions": "original", "max_new_tokens": MAX_NEW_TOKENS}
    if settings["chat_template"] and not getattr(loaded.tokenizer, "chat_template", None):
        raise UserError("bad_input", "This model's tokenizer has no chat template: set chat_template to false.",
                        "chat_template")
    custom = None
    if task == "custom":
        custom = {k: text(params, k, "", allow_empty=True) for k in ("haystack", "needle", "question", "answer")}
        check_custom(**custom)
    check_fits(loaded, task, lengths, settings["seed"], settings["chat_template"], custom, cache_size)
    settings.update(kv_format_params(params, loaded)[1])  # a quantized cache (backend/quantize), if asked
    return {"task": task, "protocol": protocol, "policies": policies, "lengths": lengths, "depths": depths,
            "settings": settings, "custom": custom}
