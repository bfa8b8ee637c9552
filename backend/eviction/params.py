"""Checks the settings of a simulation; every failure names the field to fix."""
from dataclasses import dataclass, field

from ..errors import UserError
from ..validate import choice, integer, number, params_dict, text
from .policies import NAMES, NEEDS_FUTURE
from ..usercode.watch import MAX_LIMIT as MAX_RULE_STEP_LIMIT

MAX_LENGTH = 20_000_000   # synthetic steps; 10M runs in well under a minute per policy
MAX_CACHE = 1_000_000
DENSE_TRACE_TOKENS = 2048  # up to here a model trace is dense n × n (exact); past it compact (kernels/eviction/sparse.py)
TRACE_KEYS = 256           # a compact trace's explicit keys per row: every weight > 1/257 is one, so τ ≥ 0.004 misses no access
MAX_LOCALITY = 0.99       # beyond this the locality span (ages with weight > 0) runs to thousands

# Every setting's default (the UI reads them from eviction_policies; sink_count defaults to min(sinks, 1000),
# heavy_k to C − W). The synthetic defaults are chosen so the policies differ, as on real models: 1,000 heavy
# hitters that stay heavy for 3,000 steps overflow C − W and keep changing, so at C=256 on 100,000 steps
# hit rates are sliding window 0.50, StreamingLLM 0.82, H2O 0.85, LRU 0.94, TOVA 1.00 (16 everlasting heavy
# hitters fit in any cache and gave H2O = LRU = TOVA = 100%).
DEFAULTS = {"trace": "synthetic", "policy": "all", "length": 100_000, "cache_size": 256, "sinks": 4, "window": 128,
            "access_threshold": 0.01, "sink_threshold": 0.10, "sink_mass": 0.5, "locality": 0.8,
            "heavy_hitters": 1000, "heavy_mass": 0.2, "heavy_life": 3000, "background": 0.1, "seed": 0,
            "layer": -1, "head": None, "aggregate": "layer"}
D = DEFAULTS

MODEL_TEXT_CHARS = 700  # ≈ 250 demo-model tokens (inside its 256 context), several times its C = 64


def _model_text() -> str:
    """The model-trace default before a model is loaded: the start of the bundled held-out text, cut at a line end
    (with a model, backend/defaults.py sizes the text to its C)."""
    from ..defaults import bundled_text

    try:
        text = bundled_text("jargon")
    except OSError:  # a trimmed build without the asset: the UI then asks for a text
        return ""
    cut = text.rfind("\n", 0, MODEL_TEXT_CHARS)
    return text[:cut if cut > 0 else MODEL_TEXT_CHARS].strip()


DEFAULTS["model_text"] = _model_text()


@dataclass
class SimParams:
    trace: str
    policies: list
    length: int
    cache_size: int
    sinks: int
    window: int
    access_threshold: float
    sink_threshold: float
    heavy_k: int
    synthetic: dict
    text: str = ""
    layer: int = -1
    head: int | None = None
    aggregate: str = "layer"
    user_policies: dict = field(default_factory=dict)  # name → UserPolicy (custom_policies.py) for those chosen
    rule_step_limit: float | None = None  # seconds a user rule's step may take (None: usercode.watch.step_limit())


def parse(params, user_policies: dict | None = None) -> SimParams:
    """`user_policies`: the loaded user policies (name → UserPolicy), offered beside the built-ins."""
    p = params_dict(params)
    trace = choice(p, "trace", ("synthetic", "model"), D["trace"])
    cache_size = integer(p, "cache_size", D["cache_size"], lo=1, hi=MAX_CACHE)
    sinks = integer(p, "sinks", D["sinks"], lo=0, hi=MAX_CACHE)
    if cache_size < sinks + 1:
        raise UserError("bad_input", f"cache_size must be at least sinks + 1 = {sinks + 1} (got {cache_size}): "
                        "StreamingLLM needs room for one recent key besides the sinks.", "cache_size")
    window = integer(p, "window", D["window"], lo=0, hi=MAX_CACHE)
    if window >= cache_size:
        raise UserError("bad_input", f"window must be less than cache_size ({cache_size}; got {window}): "
                        "H2O keeps C − W heavy hitters besides the window.", "window")
    user = dict(user_policies or {})
    policy = choice(p, "policy", ("all", *NAMES, *user), D["policy"])
    if policy == "all":
        policies = [n for n in NAMES if trace == "model" or n not in NEEDS_FUTURE] + list(user)
    else:
        if trace == "synthetic" and policy in NEEDS_FUTURE:
            raise UserError("bad_input", f"policy {policy} needs the whole future of the trace: "
                            "run it on a model trace.", "policy")
        policies = [policy]
    out = SimParams(
        trace=trace, policies=policies,
        length=integer(p, "length", D["length"], lo=1, hi=MAX_LENGTH) if trace == "synthetic" else 0,
        cache_size=cache_size, sinks=sinks, window=window,
        access_threshold=number(p, "access_threshold", D["access_threshold"], lo=1e-6, hi=1.0),
        sink_threshold=number(p, "sink_threshold", D["sink_threshold"], lo=0.0, hi=1.0),
        heavy_k=integer(p, "heavy_k", cache_size - window, lo=0, hi=MAX_CACHE),
        synthetic=_synthetic(p, sinks) if trace == "synthetic" else {},
        user_policies={name: user[name] for name in policies if name in user},
        rule_step_limit=rule_step_limit(p),
    )
    if trace == "model":
        out.text = text(p, "text")
        out.layer = integer(p, "layer", D["layer"])
        out.aggregate = choice(p, "aggregate", ("layer", "head", "all_layers"), D["aggregate"])
        out.head = integer(p, "head", D["head"], lo=0, allow_none=True)
        if out.aggregate == "head" and out.head is None:
            raise UserError("bad_input", "head is required when aggregate is 'head'.", "head")
        if out.aggregate != "head" and p.get("aggregate") is None and out.head is not None:
            out.aggregate = "head"  # a head given without an aggregate means that head
    return out


def rule_step_limit(p: dict) -> float | None:
    """The seconds a user rule's step may take (backend/usercode/watch.py), if the caller set it."""
    if p.get("rule_step_limit") in (None, ""):
        return None
    return number(p, "rule_step_limit", lo=0.01, hi=MAX_RULE_STEP_LIMIT)


def _synthetic(p: dict, sinks: int) -> dict:
    s = {
        "sink_count": integer(p, "sink_count", min(sinks, 1000), lo=0, hi=1000),  # each is read every step
        "sink_mass": number(p, "sink_mass", D["sink_mass"], lo=0.0, hi=1.0),
        "locality": number(p, "locality", D["locality"], lo=0.0, hi=MAX_LOCALITY),
        "heavy_hitters": integer(p, "heavy_hitters", D["heavy_hitters"], lo=0, hi=1000),
        "heavy_mass": number(p, "heavy_mass", D["heavy_mass"], lo=0.0, hi=1.0),
        "background": number(p, "background", D["background"], lo=0.0, hi=1.0),
        "seed": integer(p, "seed", D["seed"], lo=0, hi=2**31 - 1),
        "heavy_life": integer(p, "heavy_life", D["heavy_life"], lo=0, hi=MAX_LENGTH),  # 0: a heavy hitter stays heavy
    }
    if s["sink_mass"] + s["heavy_mass"] + s["background"] > 1.0 + 1e-9:
        raise UserError("bad_input", "sink_mass + heavy_mass + background must be at most 1 "
                        f"(got {s['sink_mass'] + s['heavy_mass'] + s['background']:g}); locality gets the rest.",
                        "background")
    return s
