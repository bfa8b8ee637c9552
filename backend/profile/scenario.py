""""What would it cost at scale?": a known model's KV on a named GPU at a long context.

The architecture gives KV bytes per token (2 × layers × KV heads × head dim × bytes per
element) and the weights; the GPU gives HBM size and bandwidth. HBM left after the
weights, in whole blocks, says the context length at which HBM runs out. Then a
synthetic trace of that length replays through the chosen placement policy, its shape
(sink mass, locality, heavy-hitter share) measured from the loaded model's attention on
a text — so the replay behaves like that model, at a length it could not run here.

Architectures: a short built-in table (from the published configs), a GGUF file's header,
or a Hub id's config.json (network: only when the user asks for that id).
"""
import math
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..validate import choice, integer, number, params_dict, text
from . import presets

GB, MIB = 1e9, 1 << 20
MAX_CONTEXT = 1 << 20          # 1,048,576 tokens
BYTES_PER_ELEMENT = {"fp16": 2, "bf16": 2, "fp8": 1, "fp32": 4}

# name → published config: layers, KV heads, head dim, parameters (weights at the KV dtype's width)
MODELS = {
    "Llama-3.1-8B": {"hub_id": "meta-llama/Llama-3.1-8B", "layers": 32, "kv_heads": 8, "head_dim": 128,
                     "parameters": 8_030_261_248},
    "Qwen2.5-7B": {"hub_id": "Qwen/Qwen2.5-7B", "layers": 28, "kv_heads": 4, "head_dim": 128,
                   "parameters": 7_615_616_512},
    "Mistral-7B": {"hub_id": "mistralai/Mistral-7B-v0.3", "layers": 32, "kv_heads": 8, "head_dim": 128,
                   "parameters": 7_248_023_552},
    "SmolLM2-135M": {"hub_id": "HuggingFaceTB/SmolLM2-135M", "layers": 30, "kv_heads": 3, "head_dim": 64,
                     "parameters": 134_515_008},
}

# Public specs. host_ram: the host memory a serving node gives one GPU for KV offload (an
# assumption, shown as such); Apple silicon has one unified memory: no separate RAM tier,
# and the GPU may use about 75% of it (macOS's default working-set limit).
GPUS = {
    "H100": {"name": "NVIDIA H100 SXM 80GB", "memory": 80 * GB, "bandwidth": 3.35e12, "l2": 50 * MIB,
             "link": 64 * GB, "link_name": "PCIe 5 x16", "host_ram": 256 * GB},
    "H200": {"name": "NVIDIA H200 141GB", "memory": 141 * GB, "bandwidth": 4.8e12, "l2": 50 * MIB,
             "link": 64 * GB, "link_name": "PCIe 5 x16", "host_ram": 256 * GB},
    "A100": {"name": "NVIDIA A100 SXM 80GB", "memory": 80 * GB, "bandwidth": 2.039e12, "l2": 40 * MIB,
             "link": 32 * GB, "link_name": "PCIe 4 x16", "host_ram": 256 * GB},
    "L4": {"name": "NVIDIA L4 24GB", "memory": 24 * GB, "bandwidth": 300 * GB, "l2": 48 * MIB,
           "link": 32 * GB, "link_name": "PCIe 4 x16", "host_ram": 64 * GB},
    "Apple-M": {"name": "Apple M-series, 128 GB unified memory (M3 Max)", "memory": 96 * GB, "bandwidth": 400 * GB,
                "l2": 0, "link": 0, "link_name": "unified memory", "host_ram": 0, "unified": True},
}
DISK = {"bandwidth": presets.NVME_GEN4, "capacity": 8e12}


def architecture(p: dict, loaded=None) -> dict:
    """{name, source, layers, kv_heads, head_dim, parameters} from the table, a GGUF header or a Hub id."""
    name = text(p, "model", allow_empty=False) if p.get("model") is not None else "Llama-3.1-8B"
    if name in MODELS:
        return {"name": name, "source": "built-in table (published config)", **MODELS[name]}
    if name.lower().endswith(".gguf"):
        from ..models.gguf import read_header

        path = Path(name).expanduser()
        if not path.is_file():
            raise UserError("not_found", f"No GGUF file at {name}.", "model")
        s = read_header(path).summary()
        if not (s["layers"] and s["kv_heads"] and s["head_dim"]):
            raise UserError("bad_gguf", f"{path.name}: the header lacks layers, KV heads or head dim.", "model")
        return {"name": s["name"], "source": f"GGUF header ({path.name})", "layers": int(s["layers"]),
                "kv_heads": int(s["kv_heads"]), "head_dim": int(s["head_dim"]), "parameters": int(s["parameters"])}
    if "/" in name and p.get("fetch_config") is True:
        return _from_hub(name)
    raise UserError("bad_input", f"Unknown model {name!r}: pick one of {', '.join(MODELS)}, a .gguf file, or a Hub id "
                    "with “fetch config” on (that downloads its config.json).", "model")


def _from_hub(repo_id: str) -> dict:
    from transformers import AutoConfig

    from ..models.spec import config_spec

    try:
        config = AutoConfig.from_pretrained(repo_id)
    except Exception as exc:  # noqa: BLE001 - the Hub's many failure types become one named error
        raise UserError("hub_error", f"Could not read {repo_id}'s config from the Hub: {str(exc)[:200]}", "model") from None
    spec = config_spec(config)
    hidden, layers, vocab = spec["hidden_size"], spec["layers"], spec["vocab_size"]
    inter = int(getattr(config, "intermediate_size", 4 * hidden) or 4 * hidden)
    q = spec["heads"] * spec["head_dim"]
    kv = spec["kv_heads"] * spec["head_dim"]
    # Weights estimated from the shapes: attention (q, k, v, o) + a gated MLP per layer, embeddings in and out.
    params = layers * (hidden * (q + 2 * kv) + q * hidden + 3 * hidden * inter) + 2 * vocab * hidden
    return {"name": repo_id, "source": "the Hub's config.json (weights estimated from its shapes)",
            "layers": layers, "kv_heads": spec["kv_heads"], "head_dim": spec["head_dim"], "parameters": int(params)}


def hbm_exhaustion(hbm_bytes: float, weights_bytes: float, bytes_per_token: int, block_size: int) -> dict:
    """The context length (whole blocks) at which HBM left after the weights is full of KV."""
    block_bytes = bytes_per_token * block_size
    free = max(0.0, hbm_bytes - weights_bytes)
    blocks = int(free // block_bytes)
    return {"hbm_for_kv_bytes": free, "hbm_blocks": blocks, "tokens": blocks * block_size}


def measure_shape(matrix: np.ndarray, window: int = 256) -> dict:
    """Sink mass, locality (share and decay) and heavy-hitter share of an attention matrix, for the synthetic generator.

    Over the rows of the second half (long enough to have a past): sink mass = attention on
    sink tokens (mean received ≥ 0.10, backend.attention.sinks); local = on the last `window`
    keys; heavy = on the 8 other keys that receive the most over those rows; the rest is
    background. The local decay r makes a geometric window's mean distance match the row's.
    """
    from .service import model_sinks

    m = np.asarray(matrix, np.float64)
    n = m.shape[0]
    sinks = np.flatnonzero(model_sinks(matrix))
    rows = np.arange(max(1, n // 2), n)
    window = max(2, min(window, n // 2))
    sink_set = np.zeros(n, bool)
    sink_set[sinks] = True
    sink_mass = m[np.ix_(rows, sinks)].sum(axis=1).mean() if sinks.size else 0.0
    dist = rows[:, None] - np.arange(n)[None, :]
    local = (dist >= 0) & (dist < window) & ~sink_set[None, :]
    rm = m[rows]
    local_mass = (rm * local).sum(axis=1).mean()
    mean_dist = float((rm * local * dist).sum() / max((rm * local).sum(), 1e-12))
    far = (dist >= window) & ~sink_set[None, :]
    received = (rm * far).sum(axis=0)
    heavy = np.argsort(received)[::-1][:8]
    heavy = heavy[received[heavy] > 0]
    heavy_mass = float((rm[:, heavy] * far[:, heavy]).sum(axis=1).mean()) if heavy.size else 0.0
    background = max(0.0, 1.0 - sink_mass - local_mass - heavy_mass)
    return {"sinks": int(sinks.size), "sink_mass": round(float(sink_mass), 4), "local_mass": round(float(local_mass), 4),
            "local_window": int(window), "local_decay": round(_decay_for_mean_distance(mean_dist, window), 5),
            "heavy_count": int(heavy.size), "heavy_mass": round(heavy_mass, 4), "background_mass": round(background, 4),
            "rows": int(rows.size)}


def _decay_for_mean_distance(target: float, window: int) -> float:
    """r in (0, 1] whose truncated geometric weights r^d, d < window, have mean distance `target` (bisection)."""
    d = np.arange(window)

    def mean(r):
        w = np.exp(d * math.log(r))
        return float((w * d).sum() / w.sum())
    lo, hi = 1e-6, 1.0
    if target >= mean(hi):
        return 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean(mid) < target else (lo, mid)
    return (lo + hi) / 2


def parse(params) -> dict:
    p = params_dict(params)
    out = {"context": integer(p, "context", 131_072, 1, MAX_CONTEXT),
           "gpu": choice(p, "gpu", tuple(GPUS), "H100"),
           "dtype": choice(p, "dtype", tuple(BYTES_PER_ELEMENT), "fp16"),
           "block_size": integer(p, "block_size", 16, 1, 4096)}
    if p.get("gpu_memory_bytes") is not None:
        out["gpu_memory_bytes"] = number(p, "gpu_memory_bytes", lo=1.0, hi=1e15)
    if p.get("weights_bytes") is not None:
        out["weights_bytes"] = number(p, "weights_bytes", lo=0.0, hi=1e15)
    return out


def plan(p: dict, arch: dict, shape: dict, shape_source: str) -> dict:
    """Sizes, the HBM-exhaustion length, and the profile request that replays the trace at this context."""
    gpu = GPUS[p["gpu"]]
    width = BYTES_PER_ELEMENT[p["dtype"]]
    bpt = 2 * arch["layers"] * arch["kv_heads"] * arch["head_dim"] * width
    weights = p.get("weights_bytes", arch["parameters"] * width)
    memory = p.get("gpu_memory_bytes", gpu["memory"])
    B = p["block_size"]
    hbm = hbm_exhaustion(memory, weights, bpt, B)
    n_blocks = -(-p["context"] // B)
    disk = max(DISK["capacity"], 2 * n_blocks * B * bpt)
    tiers = [{"capacity_bytes": hbm["hbm_for_kv_bytes"], "bandwidth_bps": gpu["bandwidth"]},
             {"capacity_bytes": gpu["l2"], "bandwidth_bps": gpu["bandwidth"] * presets.L2_SPEEDUP},
             {"capacity_bytes": gpu["host_ram"], "bandwidth_bps": gpu["link"] or presets.PCIE5_X16},
             {"capacity_bytes": disk, "bandwidth_bps": DISK["bandwidth"]}]
    return {"model": arch, "gpu": {"id": p["gpu"], **gpu, "memory": memory}, "dtype": p["dtype"],
            "context": p["context"], "block_size": B, "bytes_per_token": bpt, "kv_bytes": p["context"] * bpt,
            "weights_bytes": weights, "hbm_runs_out_at_tokens": hbm["tokens"], "hbm_blocks": hbm["hbm_blocks"],
            "hbm_for_kv_bytes": hbm["hbm_for_kv_bytes"], "fits_in_hbm": p["context"] <= hbm["tokens"],
            "shape": shape, "shape_source": shape_source, "tiers": tiers}


def tier_notes(plan: dict) -> list[str]:
    g = plan["gpu"]
    gib = 2**30  # sizes in binary units, as the UI shows them (ui/js/format.js)
    return [f"{g['name']} minus {plan['weights_bytes'] / gib:.1f} GiB of weights", "GPU L2 (modelled)",
            "no separate RAM: unified memory" if g.get("unified") else
            f"host RAM for offload ({g['host_ram'] / gib:.0f} GiB assumed), over {g['link_name']}",
            "NVMe Gen4 (public spec)"]


def default_text(loaded, max_tokens: int = 768) -> str:
    """The bundled held-out English, cut to what the model takes (its context, at most max_tokens)."""
    from ..defaults import bundled_text  # the bundled texts live in one place

    words = bundled_text("jargon")[:12_000]
    keep = min(max_tokens, int(loaded.spec["context_length"]) - 1)
    ids = loaded.tokenizer(words, add_special_tokens=False, verbose=False)["input_ids"][:keep]
    return loaded.tokenizer.decode(ids)
