"""Public Api methods for eviction (see backend/api/__init__.py for the rules)."""
from ..defaults import PREFILL_SINKS, PREFILL_WINDOW, budget
from ..envelope import public
from ..errors import UserError
from ..eviction import DEFAULTS, POLICIES, parse, simulate, traces
from ..validate import integer, number, params_dict, text
from .attention import MAX_MATRIX_TOKENS, require_model
from .policies import policy_registry


def _check_layer_head(spec: dict, p) -> None:
    """The model's shape is known: say now, not after a forward pass, that a layer or head is out of range."""
    layers, heads = int(spec.get("layers") or 0), int(spec.get("heads") or 0)
    if layers and not -layers <= p.layer < layers:
        raise UserError("bad_input", f"layer must be between {-layers} and {layers - 1} (−1 = last).", "layer")
    if heads and p.aggregate == "head" and not 0 <= p.head < heads:
        raise UserError("bad_input", f"head must be blank (mean over heads) or between 0 and {heads - 1}.", "head")


def _prefill_kept_request(params, loaded) -> tuple[list[int], list[str], dict]:
    """The trace's text, the methods, the budget and one (layer, query head) for prefill_kept, checked."""
    from ..attention.extract import encode
    from ..compress import prefill_methods

    params = params_dict(params)
    ids = encode(loaded, text(params, "text"))
    limit = min(MAX_MATRIX_TOKENS, loaded.context_length)  # the heatmap beside it draws an n × n matrix
    if len(ids) > limit:
        raise UserError("too_long", f"The text is {len(ids):,} tokens; the heatmap draws at most {limit:,}. Shorten it.",
                        "text")
    if len(ids) < 2:
        raise UserError("bad_input", "text must be at least 2 tokens long to compress.", "text")
    known = prefill_methods()
    names = params.get("methods", "all")
    names = known if names == "all" else [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not names or any(m not in known for m in names):
        raise UserError("bad_input", f"methods must be 'all' or a list of prefill methods from {', '.join(known)}.",
                        "methods")
    layers, heads, kv_heads = (int(loaded.spec[k]) for k in ("layers", "heads", "kv_heads"))
    layer = integer(params, "layer", -1, lo=-layers, hi=layers - 1) % layers
    head = integer(params, "head", 0, lo=0, hi=heads - 1)
    shared = budget(loaded.context_length)  # backend/defaults.py: the C of every view
    if params.get("cache_size") is not None:
        kept = {"cache_size": integer(params, "cache_size", None, lo=1), "ratio": None}
    else:  # by default remove what leaves about C keys, as the simulation beside the heatmap keeps
        ratio = round(min(0.95, max(0.05, 1 - shared["cache_size"] / len(ids))), 2)
        kept = {"cache_size": None, "ratio": number(params, "ratio", ratio, lo=0.0, hi=0.99)}
    settings = {**kept, "sinks": integer(params, "sinks", PREFILL_SINKS, lo=0),  # the methods' own S and W
                "window": integer(params, "window", PREFILL_WINDOW, lo=0),
                "layer": layer, "head": head, "kv_head": head // (heads // kv_heads)}  # GQA: a group reads one KV head
    return ids, list(dict.fromkeys(names)), settings


class EvictionMethods:
    @public
    def eviction_policies(self, params=None):
        params_dict(params)
        users = policy_registry(self._state).listing()  # user policies (rule files) beside the built-ins
        from ..compress import prefill_methods

        return {"policies": POLICIES + users.pop("policies"), "defaults": DEFAULTS, "user_policies": users,
                "prefill_methods": prefill_methods()}  # for the heatmap's "keys kept at prefill" (prefill_kept)

    @public
    def simulate(self, params=None):
        """Start a simulation job; its result is {"trace": {...}, "results": [one dict per policy]}."""
        p = parse(params, policy_registry(self._state).snapshot())  # bad settings fail here, naming the field
        loaded = require_model(self._state) if p.trace == "model" else None
        if loaded is not None:
            _check_layer_head(loaded.spec, p)

        def work(progress):
            if loaded is None:
                return simulate(p, traces.synthetic(p), progress)
            progress(0.0, "Running the model on the text")
            trace, info = traces.from_model(loaded, p)
            out = simulate(p, trace, progress)
            out["trace"].update(info)
            return out

        return {"job_id": self._state.jobs.start("simulate", work).id}

    @public
    def prefill_kept(self, params=None):
        """Start a job: one prefill of the text, then which keys each prefill method (backend/compress) keeps in
        one layer for one query head's KV head. Result: {"n", "settings", "methods": [{"method", "kept": [positions],
        "memory_tokens", "note"}]}; the kept set is fixed after the prefill (the same for every query row)."""
        loaded = require_model(self._state)
        ids, methods, s = _prefill_kept_request(params, loaded)

        def work(progress):
            from ..compress import prefill_kept

            per_method = prefill_kept(loaded, ids, methods, cache_size=s["cache_size"], ratio=s["ratio"],
                                      sinks=s["sinks"], window=s["window"], report=progress)
            rows = []
            for m in methods:
                kept = per_method[m]["kept"][s["layer"]][s["kv_head"]]
                rows.append({"method": m, "kept": [int(k) for k in kept if k >= 0],
                             "memory_tokens": per_method[m]["memory_tokens"], "note": per_method[m]["note"]})
            return {"n": len(ids), "settings": s, "methods": rows}

        return {"job_id": self._state.jobs.start("prefill_kept", work).id, "settings": s}  # the page cancels a stale one
