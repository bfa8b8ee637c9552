"""The accounting loop every policy shares (DESIGN.md "Eviction simulation: definitions").

Step t: (1) the query at t sees the cached keys and itself; (2) accounting: key j < t is
accessed when A[t, j] ≥ τ, a hit if cached, a miss if evicted; recall = the row's mass on
cached keys and t over the row's total; (3) the policy observes attention on cached keys
only; (4) key t enters and, while more than C keys are cached, the policy evicts one.
Runs steps [t0, t1) so the caller can stop between chunks; all state is in `st` arrays.
"""
from numba import njit

from . import h2o, lru, oracle, sliding_window, streaming_llm, tova
from .rows import row
from .state import (ACCESSES, BUCKET_N, BUCKET_RECALL, EVICTIONS, FREE, HITS, MISSES, NCACHED, NEXT, POS,
                    PREV, RECALL_SUM, TAIL, HEAD, TL_MISSES, TL_N, TL_OCC, TL_RECALL, TL_STEP, list_append,
                    list_unlink)

FULL, SLIDING_WINDOW, STREAMING_LLM, H2O, LRU, TOVA, ORACLE = range(7)
POLICY_CODES = {"full": FULL, "sliding_window": SLIDING_WINDOW, "streaming_llm": STREAMING_LLM,
                "h2o": H2O, "lru": LRU, "tova": TOVA, "oracle": ORACLE}


@njit(cache=True)
def run_steps(policy, t0, t1, n, capacity, sinks, window, tau,
              kind, weights, sp, loc, heavy, plan_end,
              slots, slot_of, free, heap, stamp, ctr, flt, tl, stride, evicted_at, ridx, rval):
    for t in range(t0, t1):
        cnt, bg = row(kind, t, weights, sp, loc, heavy, ridx, rval)

        # 2. Accounting. Keys the row does not name get exactly bg.
        ncached = ctr[NCACHED]
        every_key = bg >= tau
        if every_key:
            ctr[ACCESSES] += t
            ctr[HITS] += ncached
            ctr[MISSES] += t - ncached
        total = bg * (t + 1)
        kept = bg * (ncached + 1)
        self_extra = 0
        for e in range(cnt):
            j = ridx[e]
            w = rval[e]
            total += w
            if j == t:
                kept += w
                self_extra = w
                continue
            cached = slot_of[j] >= 0
            if cached:
                kept += w
            if not every_key and w + bg >= tau:
                ctr[ACCESSES] += 1
                if cached:
                    ctr[HITS] += 1
                else:
                    ctr[MISSES] += 1
        recall = 1.0 if total == 0 else kept / total
        flt[RECALL_SUM] += recall
        flt[BUCKET_RECALL] += recall

        # 3. The policy observes the row (cached keys only).
        if policy == H2O:
            h2o.observe(slots, slot_of, heap, ctr, ridx, rval, cnt, t)
        elif policy == LRU:
            lru.observe(slots, slot_of, ctr, ridx, rval, cnt, t, bg, tau)

        # 4. Key t enters; evict while over budget.
        if policy == FULL:
            slot_of[t] = 0
            ctr[NCACHED] += 1
        else:
            ctr[FREE] -= 1
            s = free[ctr[FREE]]
            slot_of[t] = s
            slots[s, POS] = t
            list_append(slots, ctr, s, PREV, NEXT, HEAD, TAIL)
            ctr[NCACHED] += 1
            if policy == H2O:
                h2o.on_insert(slots, slot_of, heap, ctr, s, t, self_extra, bg, window)
            elif policy == LRU:
                lru.on_insert(slots, ctr, s, t)
            elif policy == ORACLE:
                oracle.on_insert(slots, heap, ctr, s, t, plan_end)
            if ctr[NCACHED] > capacity:
                if policy == SLIDING_WINDOW:
                    v = sliding_window.victim(slots, ctr)
                elif policy == STREAMING_LLM:
                    v = streaming_llm.victim(slots, ctr, sinks)
                elif policy == H2O:
                    v = h2o.victim(slots, heap, ctr)
                elif policy == LRU:
                    v = lru.victim(slots, ctr)
                    lru.on_evict(slots, ctr, v)
                elif policy == TOVA:
                    v = tova.victim(slots, slot_of, stamp, ctr, ridx, rval, cnt, t, bg)
                else:
                    v = oracle.victim(slots, heap, ctr)
                list_unlink(slots, ctr, v, PREV, NEXT, HEAD, TAIL)
                gone = slots[v, POS]
                slot_of[gone] = -1
                free[ctr[FREE]] = v
                ctr[FREE] += 1
                ctr[NCACHED] -= 1
                ctr[EVICTIONS] += 1
                if evicted_at.shape[0] > 0:
                    evicted_at[gone] = t

        # Timeline: one point per `stride` steps (≤ 2,000), recall averaged over the bucket.
        ctr[BUCKET_N] += 1
        if (t + 1) % stride == 0 or t == n - 1:
            k = ctr[TL_N]
            tl[k, TL_STEP] = t
            tl[k, TL_OCC] = ctr[NCACHED]
            tl[k, TL_RECALL] = flt[BUCKET_RECALL] / ctr[BUCKET_N]
            tl[k, TL_MISSES] = ctr[MISSES]
            ctr[TL_N] = k + 1
            ctr[BUCKET_N] = 0
            flt[BUCKET_RECALL] = 0.0
