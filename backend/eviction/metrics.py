"""What one policy run reports (DESIGN.md "Metrics"), the same for UI, CLI and README."""
import numpy as np

from kernels.eviction import Simulation

MAX_KEPT_LISTED = 4096  # Full Cache on 10M tokens keeps 10M keys: list the first ones, count all


def retained(mask: np.ndarray, keys: np.ndarray) -> dict:
    return {"kept": int(mask[keys].sum()) if len(keys) else 0, "total": int(len(keys))}


def result(policy: str, label: str, sim: Simulation, sinks: np.ndarray, heavy: np.ndarray, seconds: float,
           with_evictions: bool) -> dict:
    c = sim.counters()
    mask = sim.cached_mask()
    kept = np.nonzero(mask)[0]
    tl = sim.timeline()
    out = {
        "policy": policy, "label": label,
        "tokens_processed": c["tokens_processed"], "accesses": c["accesses"], "hits": c["hits"],
        "misses": c["misses"], "evictions": c["evictions"],
        "hit_rate": c["hits"] / c["accesses"] if c["accesses"] else None,
        "attention_recall": c["recall_sum"] / c["tokens_processed"] if c["tokens_processed"] else None,
        "retained_sinks": retained(mask, sinks), "retained_heavy_hitters": retained(mask, heavy),
        "kept": kept[:MAX_KEPT_LISTED].tolist(), "kept_count": int(len(kept)),
        "kept_truncated": bool(len(kept) > MAX_KEPT_LISTED),
        "seconds": round(seconds, 4),
        "timeline": {"step": tl[:, 0].astype(np.int64).tolist(), "occupancy": tl[:, 1].astype(np.int64).tolist(),
                     "recall": np.round(tl[:, 2], 6).tolist(), "misses": tl[:, 3].astype(np.int64).tolist()},
    }
    if with_evictions:
        out["evicted_at"] = sim.evicted_at.tolist()
    return out
