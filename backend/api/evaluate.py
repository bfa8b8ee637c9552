"""Public Api methods for perplexity under eviction (the Evaluate view of the Eviction tab)."""
from pathlib import Path

from ..envelope import public
from ..errors import UserError
from ..validate import integer, number, params_dict, text
from .attention import require_model

EVAL_TEXT = Path(__file__).resolve().parents[2] / "assets" / "eval" / "jargon-heldout.txt"
EVAL_POLICIES = ("full", "sliding_window", "streaming_llm", "h2o", "lru", "tova")
MAX_EVAL_TOKENS = 8192  # the recorded trace is n×n float64: 512 MiB at this bound


def bundled_eval_text() -> str:
    return EVAL_TEXT.read_text(encoding="utf-8")


def _policies(value) -> list[str]:
    if value in (None, "all"):
        return list(EVAL_POLICIES)
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or any(p not in EVAL_POLICIES for p in names):
        raise UserError("bad_input", f"policy must be 'all' or one of {', '.join(EVAL_POLICIES)} (the oracle needs the future, "
                        "which a real cache never has).", "policy")
    return ["full"] + [p for p in names if p != "full"]  # Full Cache is the reference for KL


class EvaluateMethods:
    @public
    def evaluate_info(self, params=None):
        params_dict(params)
        return {"policies": list(EVAL_POLICIES), "bundled_text_chars": len(bundled_eval_text()),
                "bundled_text_source": "The Jargon File 4.4.7 (public domain), held out from the demo model's training"}

    @public
    def evaluate(self, params=None):
        params = params_dict(params)
        loaded = require_model(self._state)
        body = text(params, "text", None, allow_empty=False) if params.get("text") not in (None, "") else bundled_eval_text()
        max_tokens = integer(params, "max_tokens", 1024, lo=2, hi=MAX_EVAL_TOKENS)
        context = loaded.context_length
        cache_size = integer(params, "cache_size", min(256, context // 2), lo=2, hi=context - 1)
        sinks = integer(params, "sinks", 4, lo=0, hi=cache_size - 1)
        window = integer(params, "window", 128, lo=1, hi=cache_size - 1)
        threshold = number(params, "access_threshold", 0.01, lo=0.0, hi=1.0)
        policies = _policies(params.get("policy", "all"))
        ids = loaded.tokenizer(body, add_special_tokens=True)["input_ids"][:max_tokens]
        if len(ids) < 2:
            raise UserError("bad_input", "text must be at least 2 tokens long.", "text")

        def work(report):
            from ..evaluate.run import evaluate

            return evaluate(loaded, ids, policies, cache_size, sinks, window, threshold, report)

        job = self._state.jobs.start("evaluate", work, exclusive=True)
        return {"job_id": job.id, "tokens": len(ids)}
