"""Public Api methods for perplexity under eviction (the Evaluate view of the Eviction tab)."""
import hashlib

from ..attention.seam import outside_interface_message, through_interface
from ..envelope import public
from ..defaults import BUNDLED_TEXTS, PREFILL_SINKS, PREFILL_WINDOW, bundled_text, evaluate_defaults
from ..errors import Cancelled, UserError
from ..evaluate.quest import PAGE as QUEST_PAGE
from ..eviction.params import rule_step_limit
from ..usercode.watch import limit_for_this_thread
from ..validate import choice, integer, number, params_dict, text
from .attention import model_facts, require_model
from ..quantize.params import kv_format_params
from .policies import policy_registry

RECOMPUTE = "sliding_window_recompute"
EVAL_POLICIES = ("full", "sliding_window", "streaming_llm", "h2o", "lru", "tova", RECOMPUTE)
MAX_EVAL_TOKENS = 16384  # memory is O(n) per policy now; the Full pass's cache grows with n


def _prefill_methods() -> list[str]:
    from ..compress import prefill_methods

    return prefill_methods()


def _known_policies() -> list[str]:
    """The built-in policies plus any registered later (custom policies, backend/evaluate/deciders.py)."""
    from ..evaluate.run import evaluate_policies

    return evaluate_policies()


def _policies(value) -> list[str]:
    known = _known_policies()
    if value in (None, "all"):  # the slow re-computation baseline only when named
        return [p for p in known if p != RECOMPUTE]
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or any(p not in known for p in names):
        raise UserError("bad_input", f"policy must be 'all' or one of {', '.join(known)} (the oracle needs the future, "
                        "which a real cache never has).", "policy")
    return ["full"] + [p for p in dict.fromkeys(names) if p != "full"]  # Full Cache is the reference for KL


def _defaults(loaded) -> dict:
    """The shared budget and text (backend/defaults.py), the tokens sized to about a minute on this device."""
    return evaluate_defaults(loaded.source, loaded.spec, loaded.device)


def _text_ids(params, loaded, defaults) -> tuple[list[int], dict]:
    """The text's token ids (up to max_tokens) and what it is."""
    if params.get("text") not in (None, ""):
        body, name = text(params, "text", None, allow_empty=False), "your text"
    else:
        bundled = choice(params, "bundled_text", tuple(BUNDLED_TEXTS), defaults["text"])
        body, name = bundled_text(bundled), f"bundled: {BUNDLED_TEXTS[bundled][1]}"
    max_tokens = integer(params, "max_tokens", defaults["max_tokens"], lo=2, hi=MAX_EVAL_TOKENS)
    ids = loaded.tokenizer(body, add_special_tokens=True, verbose=False)["input_ids"][:max_tokens]
    if len(ids) < 2:
        raise UserError("bad_input", "text must be at least 2 tokens long.", "text")
    return ids, {"name": name, "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest()[:16],
                 "tokens": len(ids), "chars": len(body)}


def _prefill_request(params, loaded, defaults) -> tuple[list[int], dict, dict]:
    """kvpress's protocol (backend/compress): a context of n tokens compressed at ratio r or to C, then m tokens."""
    from ..compress import prefill_methods

    ids, info = _text_ids(params, loaded, defaults)
    usable = min(len(ids), loaded.context_length)
    if usable < 3:
        raise UserError("bad_input", "the prefill protocol needs a text of at least 3 tokens.", "text")
    n = integer(params, "context_tokens", max(2, usable * 3 // 4), lo=2, hi=usable - 1)
    m = integer(params, "continuation_tokens", usable - n, lo=1, hi=usable - n)
    if m < 2:  # the first continuation token is predicted by the uncompressed prefill, the same for every method
        raise UserError("bad_input", "continuation_tokens must be at least 2: the first continuation token is predicted "
                        "by the uncompressed prefill, the same for every method, so one token cannot tell them apart. "
                        "Give 2 or more (with fewer context_tokens, or a longer text).", "continuation_tokens")
    if params.get("cache_size") is not None:
        budget = {"cache_size": integer(params, "cache_size", None, lo=1, hi=n), "ratio": None}
    else:
        budget = {"cache_size": None, "ratio": number(params, "ratio", 0.5, lo=0.0, hi=0.99)}
    known = prefill_methods()
    names = params.get("policy", "all")
    names = known if names in (None, "all") else [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not names or any(p not in known for p in names):
        raise UserError("bad_input", f"policy must be 'all' or prefill methods from {', '.join(known)}.", "policy")
    settings = {"context_tokens": n, "continuation_tokens": m, **budget,
                "sinks": integer(params, "sinks", PREFILL_SINKS, lo=0, hi=n),
                "window": integer(params, "window", PREFILL_WINDOW, lo=0, hi=n)}
    return ids, ["full"] + [p for p in dict.fromkeys(names) if p != "full"], {**settings, "text": info}

class EvaluateMethods:
    @public
    def evaluate_info(self, params=None):
        params_dict(params)
        loaded = self._state.model
        policy_registry(self._state)  # the user's policy files (#17) register with Evaluate when first read
        return {"policies": _known_policies(), "default_policies": [p for p in EVAL_POLICIES if p != RECOMPUTE],
                "positions": ["original", "in_cache"], "granularity": ["per_head", "shared"],
                "protocols": ["streaming", "prefill"], "prefill_methods": _prefill_methods(),
                "bundled_texts": {k: v[1] for k, v in BUNDLED_TEXTS.items()},
                "bundled_text_chars": len(bundled_text()), "bundled_text_source": BUNDLED_TEXTS["jargon"][1],
                "defaults": _defaults(loaded) if loaded is not None else None}

    def _request(self, params):
        """Validated settings and token ids, shared by evaluate and evaluate_estimate."""
        params = params_dict(params)
        loaded = require_model(self._state)
        policy_registry(self._state)  # the user's policy files (#17), offered beside the built-ins
        defaults = _defaults(loaded)
        ids, info = _text_ids(params, loaded, defaults)
        context = loaded.context_length
        cache_size = integer(params, "cache_size", defaults["cache_size"], lo=2, hi=context - 1)
        settings = {
            "cache_size": cache_size,
            "sinks": integer(params, "sinks", min(defaults["sinks"], cache_size - 1), lo=0, hi=cache_size - 1),
            "window": integer(params, "window", min(defaults["window"], cache_size - 1), lo=1, hi=cache_size - 1),
            "access_threshold": number(params, "access_threshold", 0.01, lo=0.0, hi=1.0),
            "positions": choice(params, "positions", ("original", "in_cache"), "original"),
            "granularity": choice(params, "granularity", ("per_head", "shared"), "per_head"),
            "rule_step_limit": rule_step_limit(params),  # seconds a user rule's step may take (issue #25)
        }
        fmt, named = kv_format_params(params, loaded)
        settings.update(named)
        policies = _policies(params.get("policy", "all"))
        if fmt is not None:  # Quest and the re-computation baseline read no stored cache: a format is not theirs
            if params.get("policy", "all") in (None, "all"):
                policies = [p for p in policies if p not in ("quest", RECOMPUTE)]
            settings["format"] = fmt
        if "quest" in policies and not through_interface(loaded.model):  # Quest is a tap on the attention function
            if params.get("policy", "all") not in (None, "all"):
                raise UserError("bad_input", outside_interface_message(loaded.model, "Quest"), "policy")
            policies = [p for p in policies if p != "quest"]
        if "quest" in policies and cache_size < QUEST_PAGE:  # it would read one whole page, more than C
            if params.get("policy", "all") not in (None, "all"):
                raise UserError("bad_input", f"Quest reads whole pages of {QUEST_PAGE} tokens, so at cache_size "
                                f"{cache_size} it would read a page, more than the cache: use a cache_size of at "
                                f"least {QUEST_PAGE}, or leave Quest out.", "cache_size")
            policies = [p for p in policies if p != "quest"]  # _warnings says so
        return loaded, ids, policies, settings, info

    @staticmethod
    def _warnings(loaded, ids, settings) -> list[str]:
        out = []
        if len(ids) <= settings["cache_size"] + 1:
            out.append(f"The text ({len(ids)} tokens) is not longer than the cache ({settings['cache_size']}): nothing "
                       "is evicted and every policy equals Full Cache. Use a longer text or a smaller cache.")
        if settings["cache_size"] < QUEST_PAGE and "quest" in _known_policies() and \
                isinstance(getattr(loaded.model.config, "num_key_value_heads", None), int):
            out.append(f"Quest is left out: it reads whole pages of {QUEST_PAGE} tokens, more than the cache "
                       f"({settings['cache_size']}). Use a cache_size of at least {QUEST_PAGE} to compare it.")
        if len(ids) > loaded.context_length and loaded.spec.get("position_scheme") != "rotary":
            out.append(f"The text goes past the context ({loaded.context_length} tokens); this model's learned "
                       "positions cannot, so the run stops there.")
        return out

    @public
    def evaluate_estimate(self, params=None):
        """Before a run: how long it will take here (measured), and what it will not show."""
        loaded, ids, policies, settings, info = self._request(params)
        from ..evaluate.estimate import estimate

        steps = min(len(ids), loaded.context_length if loaded.spec.get("position_scheme") != "rotary" else len(ids)) - 1
        batch = len([p for p in policies if p not in ("full", RECOMPUTE)])
        with self._state.model_lock:
            out = estimate(loaded, steps, settings["cache_size"], batch, RECOMPUTE in policies)
        return {**out, "tokens": len(ids), "policies": policies, "warnings": self._warnings(loaded, ids, settings),
                "text": info}

    @public
    def evaluate(self, params=None):
        if choice(params_dict(params), "protocol", ("streaming", "prefill"), "streaming") == "prefill":
            return self._evaluate_prefill(params)
        loaded, ids, policies, settings, info = self._request(params)
        state = self._state

        def work(report):
            from ..evaluate.run import evaluate

            facts = model_facts(loaded)

            def guarded(*args, **kwargs):  # a run belongs to the model it started on
                if state.model is not loaded:
                    raise UserError("model_changed", "Another model was loaded during the run, so this run was "
                                    f"stopped (it was evaluating {loaded.source}). Press Run again to evaluate the new one.")
                if kwargs.get("partial"):  # the result so far names its model, as the final one does
                    kwargs["partial"]["model"] = facts
                report(*args, **kwargs)

            try:
                with limit_for_this_thread(settings["rule_step_limit"]):  # for the user rules' deciders
                    result = evaluate(loaded, ids, policies, settings["cache_size"], settings["sinks"],
                                      settings["window"], settings["access_threshold"], guarded,
                                      positions=settings["positions"], granularity=settings["granularity"],
                                      text_info=info, kv_format=settings.get("format"),
                                      intact_sinks=settings["intact_sinks"])
            except Cancelled as cancelled:  # the partial result the job keeps names its model too
                if cancelled.partial is not None:
                    cancelled.partial["model"] = facts
                raise
            result["model"] = facts
            return result

        job = state.jobs.start("evaluate", work, exclusive=True)
        shown = {k: v for k, v in settings.items() if k != "format"}  # a new dict: `work` still reads settings
        return {"job_id": job.id, "tokens": len(ids), "policies": policies, "settings": shown, "text": info,
                "warnings": self._warnings(loaded, ids, shown)}

    @public
    def kv_formats(self, params=None):
        """The KV formats offered (backend/quantize/formats.py EXAMPLES): [{name, bits: [K, V]}], one list for
        every select in the UI."""
        params_dict(params)
        from ..quantize.formats import offered

        return {"formats": offered()}

    @public
    def quantization_error(self, params=None):
        """The picture of why a KV format hurts (backend/quantize/error.py): K and V error per layer × KV head and
        per position, sinks and outlier channels marked. Params: text | bundled_text, max_tokens=256 (2..2048),
        kv_format | kv_format_k / kv_format_v (required), intact_sinks=0."""
        params = params_dict(params)
        loaded = require_model(self._state)
        defaults = {**_defaults(loaded), "max_tokens": 256}
        ids, info = _text_ids({**params, "max_tokens": integer(params, "max_tokens", 256, lo=2, hi=2048)}, loaded,
                              defaults)
        ids = ids[: loaded.context_length] if loaded.spec.get("position_scheme") != "rotary" else ids
        fmt, named = kv_format_params(params, loaded)
        if fmt is None:
            raise UserError("bad_input", "give a kv_format (or kv_format_k / kv_format_v) to see its error, e.g. q4_0.",
                            "kv_format")
        state = self._state

        def work(report):
            from ..quantize.error import quantization_error

            out = quantization_error(loaded, ids, fmt, named["intact_sinks"], report)
            return {**out, "settings": named, "text": info, "model": model_facts(loaded)}

        job = state.jobs.start("quantization_error", work, exclusive=True)
        return {"job_id": job.id, "tokens": len(ids), "settings": named, "text": info}

    def _evaluate_prefill(self, params):
        """protocol "prefill": kvpress's — the context compressed once at prefill, the continuation scored after."""
        params = params_dict(params)
        loaded = require_model(self._state)
        ids, methods, settings = _prefill_request(params, loaded, _defaults(loaded))
        info, state = settings.pop("text"), self._state
        fmt, named = kv_format_params(params, loaded)
        settings.update(named)

        def work(report):
            from ..compress import prefill_perplexity

            def guarded(*args, **kwargs):
                if state.model is not loaded:
                    raise UserError("model_changed", "Another model was loaded during the run, so it was stopped.")
                report(*args, **kwargs)

            out = prefill_perplexity(loaded, ids, settings["context_tokens"], settings["continuation_tokens"], methods,
                                     cache_size=settings["cache_size"], ratio=settings["ratio"],
                                     sinks=settings["sinks"], window=settings["window"], report=guarded,
                                     kv_format=fmt, intact_sinks=settings["intact_sinks"])
            from ..quantize.formats import kv_bytes

            kv = kv_bytes(loaded, fmt)
            return {"protocol": "prefill", "settings": settings, "text": info, **kv,
                    "results": [{"policy": m, "tokens": settings["continuation_tokens"], **r,
                                 **(kv if m != "full_unquantized" else kv_bytes(loaded, None))} for m, r in out.items()],
                    "model": model_facts(loaded)}

        job = state.jobs.start("evaluate", work, exclusive=True)
        return {"job_id": job.id, "protocol": "prefill", "policies": methods, "settings": settings, "text": info}
