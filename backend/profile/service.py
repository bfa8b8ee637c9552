"""Validate a cache-profile request, run the tier simulator in chunks, shape the result.

The rules of the simulation (placement policies) are in kernels/tiers/.
Here: the units (bytes ↔ blocks), the tiers (preset + the user's overrides), which
blocks are sinks (pinned) and heavy hitters (for the map), and the costs: KV read
time per decode step = Σ over tiers of the bytes attention read there / its bandwidth,
as the mean over the run, per timeline bucket, and at each snapshot step.
Heavy-hitter blocks: not sinks, in the top 10% of blocks by attention received over
the whole run, and at least twice the median block (so a flat trace marks none).
"""
import math
import time
from dataclasses import dataclass, field

import numpy as np

from kernels import tiers as kernel

from ..errors import UserError
from ..validate import choice, integer, number, params_dict, text
from . import presets

MAX_LENGTH = 20_000_000
MAX_BLOCKS = 1_250_000       # per-block arrays and 64 snapshots stay under ~100 MB
MAX_BLOCK_SIZE = 4096
N_SNAPSHOTS = 64
HEAVY_SHARE = 0.10
STATUS_NORMAL, STATUS_SINK, STATUS_HEAVY = 0, 1, 2

# Synthetic trace defaults: a few sinks, most mass local, 8 heavy hitters, and two
# random look-backs per step (each above the access threshold: far blocks do get hit).
SYNTHETIC = {"sinks": 4, "sink_mass": 0.2, "local_mass": 0.6, "local_decay": 0.97, "local_window": 256,
             "heavy_count": 8, "heavy_mass": 0.15, "background_mass": 0.05, "background_keys": 2, "seed": 0}


POLICIES = {
    "lru": "LRU offload: new blocks enter HBM; a full tier's least recently used block moves one tier down; "
           "a block used below HBM is read there and brought back up only when used again within the reuse "
           "window. GPU L2 is not used (real systems do not page KV into L2).",
    "topk": "Offload + top-k fetch (Quest/InfiniGen): HBM keeps the sink blocks and the recent window; every "
            "other block lives below HBM, and each step the k blocks with the most attention are fetched over "
            "the link. GPU L2 is not used.",
    "heat": "Heat with hysteresis: heat = attention received, halved every half_life steps. A block that gets "
            "attention rises past every tier whose coldest block it beats by the margin, once it has done so for "
            "the patience steps. New blocks enter HBM, pushing the coldest block of each full tier one tier "
            "down. (Margin 0, patience 0 is the old rule, which thrashes.)",
}
NO_L2 = ("lru", "topk")
FETCH_RULES = {
    "attention": "the k offloaded blocks with the most attention from this step's query (the trace's own mass)",
    "quest_bound": "Quest's own page choice: per layer and KV head the top-k pages of 16 tokens by the upper bound "
                   "Σ_c max(q_c·min_c, q_c·max_c) over the page's key min/max, from the model's real keys and queries "
                   "(a mean trace takes the pages most heads choose); model trace, top-k, block size 16 only",
}


@dataclass
class Request:
    trace: str
    length: int
    block_size: int
    preset: str
    bytes_per_token: int
    bytes_source: str
    weights_bytes: int = 0                          # the loaded model's weights, taken off detected HBM
    access_threshold: float = 0.01
    half_life: int = 256
    policy: str = "lru"
    reuse: int = 16                                 # LRU: steps within which a second use brings a block back
    margin: float = 0.5                             # heat: beat the coldest by this much heat (rows of attention)
    patience: int = 32                              # heat: ... on every touch for this many steps
    window: int = 16                                # top-k: recent blocks kept in HBM
    k: int = 16                                     # top-k: blocks fetched per step
    fetch_rule: str = "attention"                   # top-k: which blocks are fetched (FETCH_RULES)
    synthetic: dict = field(default_factory=lambda: dict(SYNTHETIC))
    overrides: list = field(default_factory=list)   # per tier: {capacity_bytes?, bandwidth_bps?}
    text: str = ""
    layer: int = -1
    head: int | None = None
    aggregate: str = "layer"


def parse(params, bytes_per_token: int, bytes_source: str, weights_bytes: int = 0) -> Request:
    p = params_dict(params)
    trace = choice(p, "trace", ("synthetic", "model"), "synthetic")
    req = Request(trace=trace, length=integer(p, "length", 100_000, 1, MAX_LENGTH),
                  block_size=integer(p, "block_size", 16, 1, MAX_BLOCK_SIZE),
                  preset=choice(p, "preset", ("constrained", "detected"), "constrained"),
                  bytes_per_token=bytes_per_token, bytes_source=bytes_source, weights_bytes=weights_bytes,
                  access_threshold=number(p, "access_threshold", 0.01, 1e-9, 1.0),
                  half_life=integer(p, "half_life", 256, 1, kernel.MAX_HALF_LIFE),
                  policy=choice(p, "policy", tuple(POLICIES), "lru"),
                  reuse=integer(p, "reuse", 16, 0, 1 << 30), margin=number(p, "margin", 0.5, 0.0, kernel.MAX_MARGIN),
                  patience=integer(p, "patience", 32, 0, 1 << 30), window=integer(p, "window", 16, 1, 1 << 20),
                  k=integer(p, "k", 16, 0, 1 << 16),
                  fetch_rule=choice(p, "fetch_rule", tuple(FETCH_RULES), "attention"))
    if p.get("bytes_per_token") is not None:
        req.bytes_per_token = integer(p, "bytes_per_token", lo=1, hi=1 << 40)
        req.bytes_source = "set by you"
    s = req.synthetic
    s["sinks"] = integer(p, "sinks", s["sinks"], 0, min(4096, req.length))
    s["heavy_count"] = integer(p, "heavy_count", s["heavy_count"], 0, 4096)
    s["background_keys"] = integer(p, "background_keys", s["background_keys"], 0, 64)
    s["local_window"] = integer(p, "local_window", s["local_window"], 1, kernel.MAX_WINDOW)
    s["seed"] = integer(p, "seed", s["seed"], 0, 2**63 - 1)
    s["local_decay"] = number(p, "local_decay", s["local_decay"], 1e-6, 1.0)
    for name in ("sink_mass", "local_mass", "heavy_mass", "background_mass"):
        s[name] = number(p, name, s[name], 0.0, 1e6)
    if s["local_mass"] <= 0:
        raise UserError("bad_input", "local_mass must be above 0 (every query looks at its neighbours).", "local_mass")
    req.overrides = _overrides(p.get("tiers"))
    if trace == "model":
        req.text = text(p, "text")
        req.layer = integer(p, "layer", -1)
        req.head = integer(p, "head", None, 0, allow_none=True)
        req.aggregate = choice(p, "aggregate", ("layer", "all_layers"), "all_layers")
    elif -(-req.length // req.block_size) > MAX_BLOCKS:
        raise UserError("too_many_blocks", f"{req.length:,} tokens in blocks of {req.block_size} is more than "
                        f"{MAX_BLOCKS:,} blocks; use a larger block size.", "block_size")
    if req.fetch_rule == "quest_bound":
        _check_quest(req)
    return req


def _check_quest(req: Request) -> None:
    """Quest's page choice exists only for a model's keys and queries, on its own 16-token pages, for top-k fetch."""
    from ..evaluate.quest import PAGE

    if req.policy != "topk":
        raise UserError("bad_input", "fetch_rule 'quest_bound' is a rule of the top-k fetch policy; set policy to "
                        "'topk' or fetch_rule to 'attention'.", "fetch_rule")
    if req.trace != "model":
        raise UserError("bad_input", "fetch_rule 'quest_bound' needs the model's keys and queries: pick the model "
                        "trace, or fetch_rule 'attention'.", "fetch_rule")
    if req.block_size != PAGE:
        raise UserError("page_size_mismatch", f"Quest's page choice is made on pages of {PAGE} tokens; set the block "
                        f"size to {PAGE} (it is {req.block_size}) or use fetch_rule 'attention'.", "block_size")


def _overrides(value) -> list:
    """The user's capacities and bandwidths, one optional dict per tier (top to bottom)."""
    if value is None:
        return [{}] * 4
    if not isinstance(value, list) or len(value) > 4:
        raise UserError("bad_input", "tiers must be a list of up to 4 tiers (HBM, L2, RAM, disk).", "tiers")
    out = []
    for i, tier in enumerate(value + [None] * (4 - len(value))):
        tier = tier or {}
        if not isinstance(tier, dict):
            raise UserError("bad_input", f"tiers.{i} must be an object.", f"tiers.{i}")
        got = {}
        for key in ("capacity_bytes", "bandwidth_bps"):
            if tier.get(key) is not None:
                got[key] = number({f"tiers.{i}.{key}": tier[key]}, f"tiers.{i}.{key}", lo=0.0, hi=1e18)
        out.append(got)
    return out


def resolve_tiers(req: Request, n_blocks: int, n_sink_blocks: int) -> list[dict]:
    """Preset values, the user's overrides on top, capacities in whole blocks; checks there is room."""
    block_bytes = req.block_size * req.bytes_per_token
    need_top = kernel.room_needed(req.policy, n_sink_blocks, n_blocks, req.window, req.k)
    tiers = presets.preset(req.preset, n_blocks, block_bytes, max(need_top, n_sink_blocks + 1), req.weights_bytes)["tiers"]
    for i, (tier, over) in enumerate(zip(tiers, req.overrides)):
        tier.update({k: (int(v) if k == "capacity_bytes" else v) for k, v in over.items()})
        tier["capacity_blocks"] = int(tier["capacity_bytes"] // block_bytes)
        if tier["capacity_blocks"] > 0 and tier["bandwidth_bps"] <= 0:
            raise UserError("bad_input", f"{tier['name']} read bandwidth must be above 0.", f"tiers.{i}.bandwidth_bps")
    if req.policy in NO_L2:  # real serving systems do not page KV into L2: the policy leaves it empty
        tiers[1]["capacity_blocks"] = 0
        tiers[1]["unused"] = "not used by this policy: real serving systems do not page KV blocks into L2"
    if tiers[0]["capacity_blocks"] < need_top:
        what = (f"the {n_sink_blocks} sink block(s), the {req.window}-block window and the k = {req.k} fetched blocks"
                if req.policy == "topk" else f"the {n_sink_blocks} sink block(s) plus one")
        raise UserError("no_room", f"GPU HBM must hold {what}: at least {need_top * block_bytes:,} bytes "
                        f"({need_top:,} blocks of {block_bytes:,} bytes).", "tiers.0.capacity_bytes")
    room = sum(t["capacity_blocks"] for t in tiers)
    if req.policy == "topk":  # HBM keeps only the sinks and the window
        room = sum(t["capacity_blocks"] for t in tiers[1:]) + n_sink_blocks + req.window
    if room < n_blocks:
        short = (n_blocks - room) * block_bytes
        raise UserError("no_room", f"The tiers hold {room:,} of {n_blocks:,} blocks; add at least {short:,} bytes "
                        "(disk is the easy place).", "tiers.3.capacity_bytes")
    return tiers


def precheck(req: Request) -> None:
    """Fail fast, before a job starts, on tiers too small for a synthetic sequence (a model's length comes later)."""
    if req.trace == "synthetic":
        n_blocks = -(-req.length // req.block_size)
        resolve_tiers(req, n_blocks, -(-req.synthetic["sinks"] // req.block_size))


def snapshot_steps(n_tokens: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_tokens - 1, min(N_SNAPSHOTS, n_tokens)).round().astype(np.int64))


def block_status(acc: np.ndarray, pinned: np.ndarray) -> np.ndarray:
    status = np.where(pinned, STATUS_SINK, STATUS_NORMAL).astype(np.int8)
    free = acc[~pinned]
    if free.size:
        k = max(1, math.ceil(HEAVY_SHARE * free.size))
        cutoff = max(np.partition(free, free.size - k)[free.size - k], 2 * np.median(free), 1)
        status[~pinned & (acc >= cutoff)] = STATUS_HEAVY
    return status


def model_sinks(matrix: np.ndarray) -> np.ndarray:
    """Sink tokens by the design's definition (mean received attention ≥ 0.10)."""
    from ..attention.sinks import received_after, sink_mask

    n = matrix.shape[0]
    return sink_mask(received_after(matrix), n - 1)


def prepare(req: Request, matrix=None, fetch=None, learned_sink=None, blocks=None):
    """→ (n tokens, pinned per block, tiers, keyword arguments for kernels.tiers.simulate).
    A model trace: blocks (block_trace.BlockTrace, pooled from the model's rows at req.block_size), or a whole
    float [n, n] matrix pooled here (learned_sink: each row's share on the model's learned sinks, gpt-oss, which
    lives in no block). fetch: Quest's page choice per step (quest_fetch.fetch_sets), for fetch_rule 'quest_bound'."""
    from ..attention.sinks import sink_mask
    from .block_trace import from_matrix

    B = req.block_size
    if req.trace == "model":
        blocks = from_matrix(matrix, B, learned_sink) if blocks is None else blocks
        if blocks.block_size != B:
            raise ValueError(f"the trace was pooled in blocks of {blocks.block_size}, the profile's are {B}")
        n = blocks.n
        sink_tokens = np.flatnonzero(sink_mask(blocks.received, n - 1))  # the design's sinks: mean received ≥ 0.10
    else:
        n = req.length
        sink_tokens = np.arange(req.synthetic["sinks"])
    n_blocks = -(-n // B)
    pinned = np.zeros(n_blocks, bool)
    pinned[sink_tokens // B] = True
    tiers = resolve_tiers(req, n_blocks, int(pinned.sum()))
    s = req.synthetic
    kwargs = dict(policy=req.policy, tau=req.access_threshold, half_life=req.half_life, margin=req.margin,
                  patience=req.patience, reuse=req.reuse, window=req.window, k=req.k, snap_steps=snapshot_steps(n))
    if req.trace == "model":
        kwargs.update(mass=blocks.mass, chunk_steps=max(16, (1 << 21) // n), fetch=fetch)
    else:
        kwargs.update(sink_count=s["sinks"], w_sink=s["sink_mass"], w_local=s["local_mass"], w_hh=s["heavy_mass"],
                      w_bg=s["background_mass"], bg_keys=s["background_keys"], seed=s["seed"],
                      lcum=kernel.local_table(s["local_decay"], s["local_window"]),
                      hh_pos=kernel.heavy_positions(n, s["heavy_count"], s["sinks"], s["seed"]), chunk_steps=1 << 16)
    return n, pinned, tiers, kwargs


# What a block map needs besides the summary: one number per block, and the steps the scrubber walks.
BLOCK_FIELDS = ("n_tokens", "block_size", "bytes_per_token", "tier", "access_count", "status", "snapshot_steps")


def run(req: Request, progress, matrix=None, fetch=None, learned_sink=None, blocks=None) -> tuple[dict, dict]:
    """→ (result for the UI/CLI, what profile_snapshot needs). progress(fraction, stage) may raise Cancelled."""
    started = time.perf_counter()
    n, pinned, tiers, kwargs = prepare(req, matrix, fetch, learned_sink, blocks)
    n_blocks, B, steps = len(pinned), req.block_size, kwargs["snap_steps"]
    progress(0.02, "Simulating")
    out = kernel.simulate(n, B, [t["capacity_blocks"] for t in tiers], pinned,
                          on_chunk=lambda done: progress(0.02 + 0.95 * done / n, "Simulating"), **kwargs)
    progress(0.98, "Summarising")
    status = block_status(out["acc"], pinned)
    bandwidth = np.array([t["bandwidth_bps"] for t in tiers])
    summary = _summary(req, n, n_blocks, tiers, out, status, bandwidth)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    result = {"summary": summary, "n_tokens": n, "block_size": B, "bytes_per_token": req.bytes_per_token,
              "tier": out["tier"].tolist(), "access_count": out["access"].tolist(), "status": status.tolist(),
              "snapshot_steps": steps.tolist(), "timeline": timeline(out, n, req.bytes_per_token, bandwidth)}
    kept = {"snapshots": out["snapshots"], "steps": steps, "bytes_per_token": req.bytes_per_token,
            "read_seconds": read_seconds(out["snap_read"], req.bytes_per_token, bandwidth),
            "all_hbm_seconds": (steps + 1) * req.bytes_per_token / bandwidth[0],
            "moved_bytes": out["snap_moved"] * req.bytes_per_token}
    return result, kept


def read_seconds(tokens_per_tier: np.ndarray, bytes_per_token: int, bandwidth: np.ndarray) -> np.ndarray:
    """Σ over tiers of the bytes read there / its bandwidth (tiers that read nothing cost nothing)."""
    tokens = np.asarray(tokens_per_tier, np.float64)
    used = bandwidth > 0
    return (tokens[..., used] * bytes_per_token / bandwidth[used]).sum(axis=-1)


def timeline(out: dict, n: int, bytes_per_token: int, bandwidth: np.ndarray) -> dict:
    """Per bucket of steps: mean KV read time and bytes moved per step, and the all-in-HBM read time."""
    steps = out["timeline_steps"].astype(np.float64)
    first = np.concatenate(([0], np.cumsum(out["timeline_steps"])[:-1]))
    last = first + out["timeline_steps"] - 1
    tokens_all = (first + 1 + last + 1) / 2  # mean tokens in the cache over the bucket's steps: dense all-in-HBM
    return {"first_step": first.tolist(), "last_step": last.tolist(),
            "read_seconds": (read_seconds(out["timeline_read"], bytes_per_token, bandwidth) / steps).tolist(),
            "all_hbm_seconds": (tokens_all * bytes_per_token / bandwidth[0]).tolist(),
            "moved_bytes": (out["timeline_moved"] * bytes_per_token / steps).tolist(),
            "read_bytes": (out["timeline_read"].sum(axis=1) * bytes_per_token / steps).tolist()}


def _summary(req, n, n_blocks, tiers, out, status, bandwidth) -> dict:
    bpt = req.bytes_per_token
    read = float(read_seconds(out["read_tokens"], bpt, bandwidth)) / n           # mean over the run's steps
    all_hbm = float((n + 1) / 2 * bpt / bandwidth[0])                           # dense, all in HBM: mean of t + 1
    for i, tier in enumerate(tiers):
        tier.update(blocks=int(out["blocks"][i]), bytes=int(out["tokens"][i]) * bpt, hits=int(out["hits"][i]))
    kv_bytes = n * bpt
    return {
        "trace": req.trace, "preset": req.preset, "policy": req.policy, "policy_rule": POLICIES[req.policy],
        "policy_settings": _policy_settings(req),
        "fetch_rule_is": FETCH_RULES[req.fetch_rule] if req.policy == "topk" else None, "n_tokens": n, "block_size": req.block_size, "n_blocks": n_blocks,
        "bytes_per_token": bpt, "bytes_per_token_source": req.bytes_source, "block_bytes": req.block_size * bpt,
        "kv_bytes": kv_bytes, "tiers": tiers, "accesses": int(out["hits"].sum()),
        "promotions": out["promotions"], "demotions": out["demotions"], "bytes_moved": out["moved_tokens"] * bpt,
        "moved_over_kv": out["moved_tokens"] / n, "bytes_fetched": out["fetched_tokens"] * bpt,
        "read_bytes_per_step": float(out["read_tokens"].sum()) * bpt / n,
        "read_seconds_per_step": read, "read_seconds_all_hbm": all_hbm, "read_time_ratio": read / all_hbm,
        "read_time_is": "mean over all decode steps of the run",
        "sink_blocks": int((status == STATUS_SINK).sum()), "heavy_hitter_blocks": int((status == STATUS_HEAVY).sum()),
        "access_threshold": req.access_threshold, "half_life": req.half_life,
        "synthetic": dict(req.synthetic) if req.trace == "synthetic" else None, "l2_note": presets.L2_NOTE,
        "heavy_hitter_rule": "not a sink block, in the top 10% of blocks by attention received over the run, "
                             "and at least twice the median block",
    }


def _policy_settings(req) -> dict:
    if req.policy == "lru":
        return {"reuse": req.reuse}
    if req.policy == "topk":
        return {"window": req.window, "k": req.k, "fetch_rule": req.fetch_rule}
    return {"half_life": req.half_life, "margin": req.margin, "patience": req.patience}


def snapshot(kept: dict | None, params) -> dict:
    """The tier of every block at one snapshot of the last profile: by index, or the last one at or before step."""
    if kept is None:
        raise UserError("no_profile", "Run a profile first.")
    p = params_dict(params)
    steps = kept["steps"]
    if p.get("step") is not None and p.get("index") is None:
        step = integer(p, "step", lo=0)
        index = max(0, int(np.searchsorted(steps, step, side="right")) - 1)
    else:
        index = integer(p, "index", len(steps) - 1, 0, len(steps) - 1)
    tiers = kept["snapshots"][index]
    return {"index": index, "step": int(steps[index]), "tiers": tiers.tolist(),
            "blocks_per_tier": np.bincount(tiers[tiers >= 0], minlength=4).tolist(),
            "read_seconds": float(kept["read_seconds"][index]), "all_hbm_seconds": float(kept["all_hbm_seconds"][index]),
            "moved_bytes": int(kept["moved_bytes"][index])}
