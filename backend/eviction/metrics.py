"""What one policy run reports (DESIGN.md "Metrics"), the same for UI, CLI and docs/metrics.md.

    policy, label            "h2o", "H2O"
    tokens_processed         steps run (= trace length)
    accesses, hits, misses   A[t, j] ≥ τ for a key j < t; a hit if j was cached at step t
    evictions                keys dropped (n − C for every policy but Full Cache)
    hit_rate                 hits / accesses (null when there were no accesses)
    attention_recall         mean over steps of the row's mass on cached keys and t itself
    retained_sinks           {"kept", "total"}: sinks (mean attention from later queries ≥
                             sink threshold) still cached at the end
    retained_heavy_hitters   {"kept", "total"}: the top-k keys by attention over the whole
                             trace (k = C − W unless set) still cached at the end
    kept, kept_count         positions cached at the end (the first 4,096 listed; all counted)
    seconds                  wall time of this policy's run (policies run side by side)
    timeline                 ≤ 2,000 points: step, occupancy after it, recall averaged over
                             the steps since the previous point, cumulative misses
    evicted_at               model traces only: step at which each key was evicted, −1 if never
"""
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
