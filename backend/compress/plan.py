"""Checks, the one prefill, each method's kept positions and notes — shared by answers and perplexity."""
import numpy as np

from ..errors import UserError
from .budgets import Budget
from .methods import METHODS
from .prefill import Prefill, Settings


def method_registry() -> dict:
    """Built-in methods plus the user's prefill files (registered by backend/eviction/custom_policies.py)."""
    from .user import user_methods

    return {**METHODS, **user_methods()}


def check(loaded, n: int, methods: list[str], cache_size, ratio, sinks: int, window: int, extra_tokens: int) -> Budget:
    known = method_registry()
    bad = [m for m in methods if m not in known]
    if bad or not methods:
        raise UserError("bad_input", f"unknown prefill method {bad[0] if bad else None!r}; choose from "
                        f"{', '.join(known)}.", "methods")
    if (cache_size is None) == (ratio is None):
        raise UserError("bad_input", "give exactly one of cache_size (tokens kept per head) or ratio (fraction "
                        "removed).", "cache_size")
    if cache_size is not None and not (isinstance(cache_size, int) and cache_size >= 1):
        raise UserError("bad_input", "cache_size must be a whole number ≥ 1.", "cache_size")
    if ratio is not None and not 0 <= float(ratio) < 1:
        raise UserError("bad_input", "ratio (the fraction removed) must be in [0, 1).", "ratio")
    if n < 2:
        raise UserError("bad_input", "the context must be at least 2 tokens long.", "context")
    if sinks < 0 or window < 0:
        raise UserError("bad_input", "sinks and window must be ≥ 0.", "sinks")
    if n + extra_tokens > loaded.context_length:
        raise UserError("bad_input", f"context ({n}) plus what follows it ({extra_tokens}) is longer than the "
                        f"model's context ({loaded.context_length}); use a shorter context.", "context")
    return Budget.of(n, cache_size, None if ratio is None else float(ratio))


def _note(name: str, method, budget: Budget, settings: Settings, layers: int) -> str | None:
    from .methods import pyramidkv, snapkv

    if method.budget == "all" or budget.kept >= budget.n:
        return None
    notes = []
    if method.scorer is snapkv and snapkv.window_size(budget.n) < snapkv.WINDOW:
        notes.append(f"the context ({budget.n} tokens) is shorter than SnapKV's observation window "
                     f"({snapkv.WINDOW}); a window of {snapkv.window_size(budget.n)} was used")
    protect = method.scorer.protected(settings)
    smallest = budget.kept
    if method.budget == "pyramid" and not pyramidkv.fits(budget.n, budget.ratio):
        notes.append(f"the pyramid does not fit: its smallest layer budget (kept/β = {budget.kept / pyramidkv.BETA:.0f}) "
                     f"would fall below the window ({pyramidkv.WINDOW}), so every layer keeps {budget.kept} as kvpress "
                     "does, and PyramidKV equals SnapKV here (it differs from about n·(1 − r) ≥ "
                     f"{pyramidkv.BETA * pyramidkv.WINDOW} kept tokens)")
    if method.budget == "pyramid":
        smallest = min(pyramidkv.layer_budget(budget.n, budget.ratio, i, layers) for i in range(layers))
    if budget.floored:
        notes.append(f"ratio {budget.ratio:g} would keep int(n·(1 − r)) = 0 of the {budget.n} context tokens; each "
                     "head keeps 1 (a cache holds at least one entry)")
    if protect > 0 and protect >= smallest:  # a method that protects nothing is never "filled" by it
        notes.append(f"{name} always keeps {protect} positions (its observation window or protected tokens) but "
                     f"the {'smallest layer ' if method.budget == 'pyramid' else ''}budget is {smallest} per head: the "
                     "protected positions alone fill the cache (the earliest of them are kept), so its scores "
                     "choose nothing")
    if method.budget == "adaptive":
        notes.append("heads keep different numbers of entries (masked); memory is the mean kept per (layer, head)")
    if not notes:
        return None
    text = "; ".join(notes)
    return text[0].upper() + text[1:] + "."



def compress(loaded, context_ids, methods, budget: Budget, settings: Settings, report=None):
    """The prefill, then per method its kept positions (per layer [KV, k], −1 pads), memory and note."""
    registry = method_registry()
    report = report or (lambda *a, **k: None)
    report(0.0, "Prefill (full attention, methods scoring each layer)")
    scoring = {m: registry[m] for m in methods if registry[m].budget != "all" and budget.kept < budget.n}
    prefill = Prefill(loaded, list(context_ids), scoring, settings, report)
    report(0.5, "Compressing")
    out = {}
    for m in methods:
        method = registry[m]
        if m in scoring:
            kept = prefill.kept(m, method.budget, budget)
        else:
            kept = [np.broadcast_to(np.arange(budget.n), (c.keys.shape[1], budget.n)).copy() for c in prefill.cache.layers]
        memory = float(np.mean([(k >= 0).sum(axis=1).mean() for k in kept]))
        out[m] = {"kept": kept, "memory_tokens": memory, "note": _note(m, method, budget, settings, prefill.layers)}
    return prefill, out


def rows_of(kept_by_method: dict) -> tuple[list, dict]:
    """Distinct kept sets (one batch row each) and method → row; 'keeps all' rows first."""
    rows, index, row_of = [], {}, {}
    for m, kept in kept_by_method.items():
        key = b"".join(k.tobytes() + bytes(str(k.shape), "ascii") for k in kept)
        if key not in index:
            index[key] = len(rows)
            rows.append(kept)
        row_of[m] = index[key]
    return rows, row_of


def groups(rows: list, n: int) -> list[list[int]]:
    """Row indices batched together: rows that keep everything apart from the compressed ones
    (so a compressed row is not padded to the full length)."""
    full = [r for r, kept in enumerate(rows) if all((k >= 0).sum() == k.shape[0] * n for k in kept)]
    rest = [r for r in range(len(rows)) if r not in full]
    return [g for g in (full, rest) if g]
