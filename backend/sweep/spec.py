"""What a sweep is: its settings (checked, every failure naming the field) and its cells.

A cell is one point of the frontier: (kind, model, text, policy, cache size, sinks,
window, and the few settings that change the numbers). Its key is a hash of exactly
those fields, so the same cell has the same key in every run, on every machine: the
results file is resumed by key and never holds a cell twice.
"""
import hashlib
import json
from dataclasses import asdict, dataclass, field

from ..defaults import PREFILL_WINDOW  # kind prefill: h2o's prefill window, as the heatmap and Evaluate's prefill
from ..errors import UserError
from ..validate import choice, integer, number, params_dict

KINDS = ("simulate", "evaluate", "retrieval", "prefill")
EVALUATE_POLICIES = ("full", "sliding_window", "streaming_llm", "h2o", "lru", "tova")
SIMULATE_POLICIES = EVALUATE_POLICIES + ("oracle",)  # the oracle needs the whole future: model traces only
QUEST = "quest"  # Evaluate's decode-time Quest (backend/evaluate/quest.py): evaluate sweeps only; evicts nothing
DEFAULT_RATIOS = (0.25, 0.5, 0.75, 0.9)  # kind prefill: kvpress's compression ratios (fraction of the context removed)
RECOMPUTE = "sliding_window_recompute"  # Evaluate's slow re-computation baseline: only when named
SYNTHETIC = "synthetic"  # the "model" of a simulate sweep on a generated trace
MAX_MODELS, MAX_TEXTS, MAX_SIZES = 8, 16, 64
MAX_TEXT_CHARS = 2_000_000
DEFAULT_SIZES = 8


@dataclass(frozen=True)
class Cell:
    kind: str            # simulate | evaluate | retrieval | prefill
    model: str           # "demo", a folder, a Hub id, or "synthetic"
    text: str            # the text's name (a file name) — its content is identified by text_sha
                         # (retrieval: the task's name; text_sha hashes the task's grid, RETRIEVAL_KEYS)
    text_sha: str        # sha256 of the text (or of the synthetic settings), 16 hex digits
    policy: str
    cache_size: int      # C; for Full Cache, the whole text (it keeps everything)
                         # (prefill: the context's tokens n, compressed once; the rest of the text is the continuation)
    sinks: int
    window: int
    settings: str        # the rest that changes the numbers, as canonical JSON
    rule_sha: str = ""   # a user policy's rule file (sha256 of its text): an edited rule is a new cell
    ratio: float | None = None  # kind prefill: the compression ratio (fraction of the context removed; Full: 0)

    @property
    def key(self) -> str:
        fields = asdict(self)
        if not fields["rule_sha"]:  # built-in policies: the key of every results file written before rule_sha
            del fields["rule_sha"]
        if fields["ratio"] is None:  # every kind but prefill: the keys written before the field existed
            del fields["ratio"]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]

    @property
    def group(self) -> tuple:
        """Cells that differ only in policy share one model run (one trace / one Full Cache reference)."""
        return (self.kind, self.model, self.text_sha, self.cache_size if self.policy != "full" else -1,
                self.sinks, self.window, self.settings, self.ratio)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SweepSpec:
    kind: str
    models: list
    texts: list                    # [{"name", "text"}] (evaluate, model simulate) or [{"name", "synthetic": {...}}]
    policies: list                 # plain names; a user policy's rule file is in policy_files (issue #17)
    cache_sizes: list | None       # None: auto (DEFAULT_SIZES log-spaced from 1/32 of the text to all of it)
    sinks: int
    window: int | None             # None: C // 2
    access_threshold: float = 0.01
    max_tokens: int = 1024         # tokens of each text used (evaluate; model simulate is also bounded by the context)
    layer: int = -1                # model simulate: the trace is this layer's mean over heads
    device: str = "auto"
    precision: str = "auto"
    positions: str = "original"    # Evaluate: keys keep their positions, or are re-rotated in the cache (rotary)
    granularity: str = "per_head"  # Evaluate: a kept set per KV head, or one for all heads
    policy_files: list = field(default_factory=list)  # user rule files (#17): [{name, file, source}], sent to workers
    retrieval: dict | None = None  # kind retrieval: the grid every cell runs (RETRIEVAL_KEYS; backend/retrieval)
    ratios: list | None = None     # kind prefill: the compression ratios (x); cache_sizes are not used
    kv_formats: list = field(default_factory=lambda: [None])  # KV formats (backend/quantize): None = unquantized
    intact_sinks: int = 0          # IntactKV, with a format: positions below it stay in full precision

    def rule_sha(self, policy: str) -> str:
        """A user policy's rule text, hashed (the Cell field); "" for a built-in."""
        source = next((f["source"] for f in self.policy_files if f["name"] == policy), None)
        return "" if source is None else hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def settings(self, model: str, kv_format: str | None = None) -> str:
        """kv_format: one of kv_formats; an unquantized cell's settings (and key) are as before formats existed."""
        if model == SYNTHETIC:
            s = {"access_threshold": self.access_threshold}
        elif self.kind == "retrieval":
            s = {"access_threshold": self.access_threshold, "precision": self.precision}
        elif self.kind == "prefill":
            s = {"max_tokens": self.max_tokens, "precision": self.precision}
        elif self.kind == "evaluate":
            s = {"access_threshold": self.access_threshold, "max_tokens": self.max_tokens, "precision": self.precision,
                 "positions": self.positions, "granularity": self.granularity}
        else:
            s = {"access_threshold": self.access_threshold, "max_tokens": self.max_tokens, "precision": self.precision,
                 "layer": self.layer}
        if kv_format is not None:
            from ..quantize import kv_format as parse

            s.update(parse(kv_format).settings(), intact_sinks=self.intact_sinks)
        return json.dumps(s, sort_keys=True)


def text_sha(entry: dict) -> str:
    payload = entry["text"] if "text" in entry else json.dumps(entry.get("synthetic", entry.get("retrieval")), sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _string_list(value, name: str, limit: int) -> list:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or len(items) > limit or \
            not all(isinstance(x, str) and x.strip() and len(x) <= 500 for x in items):
        raise UserError("bad_input", f"{name} must be a non-empty list of at most {limit} names.", name)
    return [x.strip() for x in items]


def _texts(value, kind: str, models: list) -> list:
    if not isinstance(value, list) or not value or len(value) > MAX_TEXTS:
        raise UserError("bad_input", f"texts must be a list of 1 to {MAX_TEXTS} entries "
                        "({\"name\", \"text\"} or {\"name\", \"synthetic\": {...}}).", "texts")
    out = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise UserError("bad_input", f"texts[{i}] must be an object with a name and a text.", "texts")
        name = entry.get("name") or f"text-{i + 1}"
        if not isinstance(name, str) or len(name) > 200:
            raise UserError("bad_input", f"texts[{i}].name must be a short text.", "texts")
        if "synthetic" in entry:
            if models != [SYNTHETIC]:
                raise UserError("bad_input", "A synthetic trace needs model 'synthetic' (and no other model).", "texts")
            from ..eviction import parse  # the simulator's own checks and defaults for the generator

            params = entry["synthetic"] if isinstance(entry["synthetic"], dict) else {}
            p = parse({"trace": "synthetic", **{k: v for k, v in params.items() if k != "trace"}})
            out.append({"name": name, "synthetic": {"length": p.length, **p.synthetic}})
            continue
        body = entry.get("text")
        if not isinstance(body, str) or not body.strip() or len(body) > MAX_TEXT_CHARS:
            raise UserError("bad_input", f"texts[{i}].text must be non-empty text of at most {MAX_TEXT_CHARS:,} characters.",
                            "texts")
        out.append({"name": name, "text": body})
    if SYNTHETIC in models and any("text" in t for t in out):
        raise UserError("bad_input", "Model 'synthetic' runs on synthetic traces only: give texts as {\"synthetic\": {...}}.",
                        "texts")
    return out


def _cache_sizes(value):
    if value in (None, "auto"):
        return None
    if isinstance(value, str):
        try:
            value = [int(x) for x in value.replace(" ", "").split(",") if x]
        except ValueError:
            raise UserError("bad_input", "cache_sizes must be 'auto' or whole numbers like 16,32,64.", "cache_sizes") from None
    if not isinstance(value, list) or not value or len(value) > MAX_SIZES or \
            not all(isinstance(c, int) and not isinstance(c, bool) and 2 <= c <= 1_000_000 for c in value):
        raise UserError("bad_input", f"cache_sizes must be 'auto' or 1 to {MAX_SIZES} whole numbers from 2 to 1,000,000.",
                        "cache_sizes")
    return sorted(set(value))


RETRIEVAL_KEYS = ("task", "protocol", "lengths", "depths", "chunk", "seed", "chat_template")


def _retrieval(value) -> dict:
    """A retrieval sweep's grid: every cell (policy × C) runs these lengths × depths; y = accuracy."""
    from ..retrieval.request import MAX_CELLS, MAX_CHUNK, PROTOCOLS
    from ..retrieval.tasks import TASKS
    from ..validate import flag

    v = params_dict(value)
    task = choice(v, "task", tuple(t for t in TASKS if t != "custom"), "pass_key")
    lengths, depths = v.get("lengths", [512, 1024, 2048]), v.get("depths", [0.0, 0.25, 0.5, 0.75, 1.0])
    if not isinstance(lengths, list) or not lengths or not all(isinstance(x, int) and not isinstance(x, bool)
                                                              and 8 <= x <= 1_000_000 for x in lengths):
        raise UserError("bad_input", "retrieval.lengths must be a list of whole numbers of tokens (≥ 8).", "lengths")
    if not isinstance(depths, list) or not depths or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                            for x in depths):
        raise UserError("bad_input", "retrieval.depths must be a list of numbers in 0..1.", "depths")
    outside = [x for x in depths if not 0 <= x <= 1]
    if outside:
        raise UserError("retrieval_depth_out_of_range", f"retrieval.depths must lie in 0..1; {outside[0]!r} does not.",
                        "depths")
    if len(lengths) * len(depths) > MAX_CELLS:
        raise UserError("bad_input", f"retrieval grid: at most {MAX_CELLS} lengths × depths.", "lengths")
    return {"task": task, "protocol": choice(v, "protocol", PROTOCOLS, "streaming"),
            "lengths": sorted(set(lengths)), "depths": sorted({float(x) for x in depths}),
            "chunk": integer(v, "chunk", 64, lo=1, hi=MAX_CHUNK), "seed": integer(v, "seed", 0, lo=0, hi=2 ** 31 - 1),
            "chat_template": flag(v, "chat_template", False)}


def _ratios(value) -> list:
    """Kind prefill's x: compression ratios r in [0, 1) (kvpress's compression_ratio: kept = int(n·(1 − r)))."""
    if value in (None, "auto"):
        return list(DEFAULT_RATIOS)
    if isinstance(value, str):
        try:
            value = [float(x) for x in value.replace(" ", "").split(",") if x]
        except ValueError:
            raise UserError("bad_input", "ratios must be numbers like 0.25,0.5,0.75.", "ratios") from None
    if not isinstance(value, list) or not value or len(value) > MAX_SIZES or \
            not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in value):
        raise UserError("bad_input", f"ratios must be 1 to {MAX_SIZES} numbers like 0.25,0.5,0.75.", "ratios")
    used = {r: round(float(r), 6) for r in value}  # what the cells run: the range check is on these
    bad = [r for r in value if not 0 < used[r] < 1]
    if bad:
        rounded = f" (rounded to 6 decimals, as cells run it: {used[bad[0]]:g})" if used[bad[0]] != bad[0] else ""
        raise UserError("ratio_out_of_range", f"ratio {bad[0]!r}{rounded} is outside (0, 1): it is the fraction of "
                        "the context removed (0.5 keeps half); give ratios from 0.000001 to 0.999999.", "ratios")
    return sorted(set(used.values()))


def _prefill_methods() -> tuple:
    """The built-in prefill methods (backend/compress), Full Cache first; the user's prefill files are added
    from parse_spec's user_policies (their text travels to the workers, as a rule file's does)."""
    from ..compress.plan import METHODS

    return ("full",) + tuple(m for m in METHODS if m != "full")


def parse_spec(params, user_policies: dict | None = None) -> SweepSpec:
    """`user_policies`: the loaded user files (name → custom_policies.UserPolicy, an eviction rule, or
    compress.user.PrefillFile, a prefill method), offered beside the built-ins of the kinds they fit."""
    p = params_dict(params)
    rules = {n: u for n, u in (user_policies or {}).items() if not getattr(u, "prefill", False)}
    scorers = {n: u for n, u in (user_policies or {}).items() if getattr(u, "prefill", False)}
    kind = choice(p, "kind", KINDS, "evaluate")
    models = _string_list(p.get("models", p.get("model", "demo")), "models", MAX_MODELS)
    if SYNTHETIC in models and (len(models) > 1 or kind != "simulate"):
        raise UserError("bad_input", "Model 'synthetic' is a generated trace: use it alone, with kind simulate.", "models")
    retrieval = _retrieval(p.get("retrieval")) if kind == "retrieval" else None
    if SYNTHETIC in models and kind in ("retrieval", "prefill"):
        raise UserError("bad_input", f"A {kind} sweep needs a model, not 'synthetic'.", "models")
    if kind == "prefill" and p.get("cache_sizes", "auto") not in (None, "auto"):
        raise UserError("bad_input", "A prefill sweep's x is ratios (the fraction removed), not cache_sizes.", "cache_sizes")
    prefill_kind = kind == "prefill" or (retrieval is not None and retrieval["protocol"] == "prefill")
    user, other = (scorers, rules) if prefill_kind else (rules, scorers)  # a file runs where its kind of method does
    if prefill_kind:
        allowed = _prefill_methods()  # backend/compress; retrieval's prefill protocol runs the same methods
    elif kind == "evaluate":
        allowed = EVALUATE_POLICIES + (QUEST,)
    elif kind == "retrieval":
        allowed = EVALUATE_POLICIES
    else:
        allowed = tuple(x for x in SIMULATE_POLICIES if x != "oracle" or SYNTHETIC not in models)
    raw = p.get("policies", p.get("policy", "all"))
    allowed = allowed + tuple(user)
    if kind == "evaluate":
        allowed = allowed + (RECOMPUTE,)
    if raw == "all":
        policies = [x for x in allowed if x != RECOMPUTE]
    else:
        policies = _string_list(raw, "policies", 32)
        bad = [x for x in policies if x not in allowed]
        if bad and bad[0] in other:
            what = ("a prefill method (a score file): it runs in prefill sweeps and retrieval's prefill protocol"
                    if bad[0] in scorers else "an eviction rule: it runs in simulate, evaluate and retrieval "
                    "(streaming) sweeps")
            raise UserError("bad_input", f"policy {bad[0]!r} is {what}, not in this {kind} sweep.", "policies")
        if bad:
            raise UserError("bad_input", f"policy {bad[0]!r} is not one of {', '.join(allowed)} for this sweep.", "policies")
        policies = [x for x in allowed if x in policies]  # one order everywhere
    sinks = integer(p, "sinks", 4, lo=0, hi=100_000)
    window = integer(p, "window", None, lo=1, hi=1_000_000, allow_none=True)
    if kind == "prefill" and window is None:
        window = PREFILL_WINDOW  # not C/2: a prefill budget is a ratio
    files = [user[x].shipment() for x in policies if x in user]
    kv_formats, intact = _kv_formats(p, kind, policies)
    texts = [{"name": retrieval["task"], "retrieval": retrieval}] if retrieval else _texts(p.get("texts"), kind, models)
    return SweepSpec(
        kind=kind, models=models, texts=texts, policies=policies, retrieval=retrieval,
        ratios=_ratios(p.get("ratios")) if kind == "prefill" else None,
        cache_sizes=_cache_sizes(p.get("cache_sizes", "auto")), sinks=sinks, window=window,
        access_threshold=number(p, "access_threshold", 0.01, lo=1e-6, hi=1.0),
        max_tokens=integer(p, "max_tokens", 1024, lo=2, hi=8192),
        layer=integer(p, "layer", -1, lo=-1000, hi=1000),
        device=choice(p, "device", ("auto", "cuda", "mps", "cpu"), "auto"),
        precision=choice(p, "precision", ("auto", "fp16", "bf16", "fp32"), "auto"),
        positions=choice(p, "positions", ("original", "in_cache"), "original"),
        granularity=choice(p, "granularity", ("per_head", "shared"), "per_head"),
        policy_files=files, kv_formats=kv_formats, intact_sinks=intact)


def _kv_formats(p: dict, kind: str, policies: list) -> tuple[list, int]:
    """The format axis (issue 34): a list of format names, "none" (or null) = unquantized; each cell is
    policy × size × format, and its x is the format's KV bytes."""
    from ..quantize import kv_format

    value = p.get("kv_formats", [None])
    names = [value] if isinstance(value, str) or value is None else value
    if not isinstance(names, list) or not names or len(names) > 16:
        raise UserError("bad_input", "kv_formats must be a list of 1 to 16 format names (\"none\": unquantized).",
                        "kv_formats")
    out = []
    for name in names:
        name = None if name in (None, "", "none") else name
        if name is not None:
            kv_format(name)  # a bad name fails here, naming the formats
        if name not in out:
            out.append(name)
    if out != [None] and kind == "simulate":
        raise UserError("bad_input", "A simulate sweep replays attention, it stores no K/V: KV formats are for "
                        "evaluate, prefill and retrieval sweeps.", "kv_formats")
    if out != [None] and ({QUEST, RECOMPUTE} & set(policies)):
        raise UserError("bad_input", "Quest and the re-computation baseline read no stored cache: leave them out of a "
                        "sweep with KV formats.", "policies")
    intact = integer(p, "intact_sinks", 0, lo=0, hi=100_000)
    return out, intact
