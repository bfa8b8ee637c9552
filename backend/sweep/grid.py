"""Settings → the cells of a sweep: policies × cache sizes × texts × models (one kind).

Auto cache sizes: DEFAULT_SIZES sizes log-spaced from 1/32 of the text to the whole text
(the x axis of the H2O / StreamingLLM / kvpress plots), kept where every policy can run
(C ≥ sinks + 2 so the window C/2 leaves room; an Evaluate cache below the model's context).
Full Cache keeps everything whatever C is, so it is one cell per text, at C = the text.
"""
import numpy as np

from ..errors import UserError
from .spec import DEFAULT_SIZES, QUEST, SYNTHETIC, Cell, SweepSpec, text_sha

QUEST_PAGE = 16  # backend/evaluate/quest.PAGE: Quest reads whole pages


def auto_sizes(n: int, count: int = DEFAULT_SIZES) -> list[int]:
    lo = max(2, n / 32)
    return sorted({int(round(c)) for c in np.geomspace(lo, n, count)})


def usable_tokens(spec: SweepSpec, n_ids: int, facts: dict) -> int:
    """How many tokens of a text a cell runs on: Evaluate goes past the context on a rotary model
    only (learned positions stop there, backend/evaluate/run.py); a trace never does."""
    context = facts["context"]
    if spec.kind == "prefill":  # context + continuation in one forward: within the model's context
        return min(n_ids, spec.max_tokens, context)
    if spec.kind == "evaluate":
        return min(n_ids, spec.max_tokens) if facts["rotary"] else min(n_ids, spec.max_tokens, context)
    return min(n_ids, spec.max_tokens, context)  # a model trace past 2,048 tokens is compact (eviction/traces.py)


def model_facts(source: str, spec: SweepSpec, token=None) -> dict:
    """Tokenizer and context of a model, without loading its weights (the driver never runs a model)."""
    from ..models.load import read_config, resolve_source
    from ..models.pretrained import load_tokenizer
    from ..models.spec import config_spec

    path, _ = resolve_source(source, token, lambda *a, **k: None)
    if path.name.lower().endswith(".gguf"):  # the header has the shape; the tokenizer comes from the file's metadata
        from ..models.gguf import read_header

        header = read_header(path)
        return {"tokenizer": load_tokenizer(path.parent, False, gguf_file=path.name),
                "context": int(header.arch_value("context_length") or 2048),
                "rotary": header.arch_value("rope.dimension_count") is not None or header.architecture in ("llama", "qwen2", "mistral", "gemma")}
    shape = config_spec(read_config(path, False))
    return {"tokenizer": load_tokenizer(path, False), "context": shape["context_length"],
            "rotary": shape["position_scheme"] == "rotary"}


def text_tokens(facts: dict, text: str) -> int:
    return len(facts["tokenizer"](text, add_special_tokens=True, verbose=False)["input_ids"])


def build_cells(spec: SweepSpec, facts_for=None) -> tuple[list[Cell], list[dict]]:
    """(cells, notes): the grid in a stable order; notes say which sizes were left out and why."""
    facts_for = facts_for or (lambda model: model_facts(model, spec))
    cells, notes = [], []
    for model in spec.models:
        facts = None if model == SYNTHETIC else facts_for(model)
        for entry in spec.texts:
            if model == SYNTHETIC:
                n, context = entry["synthetic"]["length"], None
            elif spec.kind == "retrieval":  # C must stay below the shortest context (nothing evicted otherwise)
                n, context = min(entry["retrieval"]["lengths"]), facts["context"]
            else:
                n, context = usable_tokens(spec, text_tokens(facts, entry["text"]), facts), facts["context"]
            if n < 2 or (spec.kind == "prefill" and n < 3):
                raise UserError("bad_input", f"text {entry['name']!r} is shorter than {3 if spec.kind == 'prefill' else 2} "
                                "tokens.", "texts")
            if spec.kind == "prefill":
                cells += prefill_cells(spec, model, entry, n)
                continue
            top = min(n, context - 1) if spec.kind == "evaluate" else n - 1 if spec.kind == "retrieval" else n
            # (an Evaluate cache stays below the context; a retrieval cache below the shortest context)
            sizes = spec.cache_sizes or auto_sizes(top)
            sha = text_sha(entry)
            for policy, fmt in [(x, f) for f in spec.kv_formats for x in spec.policies]:
                settings = spec.settings(model, fmt)
                if policy == "full":  # a retrieval grid's Full Cache keeps its longest context
                    whole = max(entry["retrieval"]["lengths"]) if spec.kind == "retrieval" else n
                    cells.append(Cell(spec.kind, model, entry["name"], sha, "full", whole, spec.sinks, 0, settings))
                    continue
                for c in sizes:
                    window = spec.window if spec.window is not None else c // 2
                    why = _unusable(spec, c, window, n, context) or (
                        f"C = {c} is below one Quest page ({QUEST_PAGE} tokens)" if policy == QUEST and c < QUEST_PAGE else None)
                    if why:
                        notes.append({"model": model, "text": entry["name"], "cache_size": c, "policy": policy, "why": why})
                        continue
                    cells.append(Cell(spec.kind, model, entry["name"], sha, policy, c, spec.sinks, window, settings,
                                      spec.rule_sha(policy)))
    return cells, _dedupe_notes(notes)


def prefill_cells(spec: SweepSpec, model: str, entry: dict, usable: int) -> list[Cell]:
    """Kind prefill (kvpress's protocol, Evaluate's split): the first 3/4 of the usable tokens are the context,
    compressed once at each ratio; the rest is the continuation. Full Cache: one cell, ratio 0."""
    n = max(2, usable * 3 // 4)  # backend/api/evaluate._prefill_request's default context_tokens
    sha = text_sha(entry)
    return [Cell("prefill", model, entry["name"], sha, policy, n, spec.sinks, spec.window, spec.settings(model, fmt), "", r)
            for fmt in spec.kv_formats for policy in spec.policies for r in ([0.0] if policy == "full" else spec.ratios)]


def _unusable(spec: SweepSpec, c: int, window: int, n: int, context) -> str | None:
    if c < spec.sinks + 2:
        return f"C = {c} leaves no room beside {spec.sinks} sinks (needs C ≥ sinks + 2)"
    if window >= c:
        return f"window {window} must be below C = {c}"
    if c > n:
        return f"C = {c} is more than the text's {n} tokens (nothing would be evicted)"
    if spec.kind == "retrieval" and c >= n:
        return f"C = {c} is at or above the shortest context ({n} tokens): nothing would be evicted there"
    if spec.kind == "evaluate" and context and c + 1 > context:
        return f"C = {c} does not fit the model's context {context} with the new token"
    return None


def _dedupe_notes(notes: list[dict]) -> list[dict]:
    """One note per (model, text, size, reason): most reasons are the same for every policy."""
    seen, out = set(), []
    for n in notes:
        k = (n["model"], n["text"], n["cache_size"], n["why"])
        if k not in seen:
            seen.add(k)
            out.append({k2: v for k2, v in n.items() if k2 != "policy"})
    return out


def group_tasks(cells: list[Cell], texts: list[dict]) -> list[dict]:
    """Cells sharing everything but the policy → one task (one trace, one Full Cache reference)."""
    by_sha = {text_sha(t): t for t in texts}
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.group, []).append(cell)
    return [{"cells": [c.as_dict() for c in group], "source": by_sha[group[0].text_sha]} for group in groups.values()]
