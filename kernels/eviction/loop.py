"""The accounting loop every policy shares (DESIGN.md "Eviction simulation: definitions").

Step t: (1) the query at t sees the cached keys and itself; (2) accounting: key j < t is
accessed when A[t, j] ≥ τ, a hit if cached, a miss if evicted; recall = the row's mass on
cached keys and t over the row's total; (3) the policy observes attention on cached keys
only; (4) key t enters and, while more than C keys are cached, the policy evicts one.
Runs steps [t0, t1) so the caller can stop between chunks; all state is in the State arrays.

Numba's on-disk cache of run_steps is keyed on this file only: after editing a policy
module, touch this file (or delete kernels/eviction/__pycache__/*.nb?) or the old code runs.
"""
from numba import njit

from . import h2o, lru, oracle, sliding_window, streaming_llm, tova
from .rows import loc_upto, row
from .state import (ACCESSES, BUCKET_N, BUCKET_RECALL, EV_RECENT, EVICTIONS, FREE, HEAD, HITS, MISSES, NCACHED, NEXT,
                    POS, PREV, RECALL_SUM, TAIL, TL_MISSES, TL_N, TL_OCC, TL_RECALL, TL_STEP, list_append,
                    list_unlink)

FULL, SLIDING_WINDOW, STREAMING_LLM, H2O, LRU, TOVA, ORACLE = range(7)
POLICY_CODES = {"full": FULL, "sliding_window": SLIDING_WINDOW, "streaming_llm": STREAMING_LLM,
                "h2o": H2O, "lru": LRU, "tova": TOVA, "oracle": ORACLE}


@njit(cache=True, nogil=True)  # other threads (the UI polling this job) run meanwhile
def run_steps(policy, t0, t1, n, capacity, sinks, window, tau,
              kind, weights, sp, loc, loccum, heavy, plan_end,
              slots, slot_of, free, heap, stamp, queue, ctr, flt, tl, stride, evicted_at, ridx, rval):
    span = loc.shape[0] - 1  # oldest age with a locality weight (−1: none)
    for t in range(t0, t1):
        cnt, bg = row(kind, t, weights, sp, heavy, ridx, rval)

        # 2. Accounting. Key j gets bg + loc[t − j] + its explicit extra (rows.py).
        # The recent block, ages 1..top, is handled as a whole: EV_RECENT counts its evicted keys.
        if span >= 0 and t - 1 - span >= 0 and slot_of[t - 1 - span] < 0:
            ctr[EV_RECENT] -= 1  # that key just aged out of the block
        ncached = ctr[NCACHED]
        every_key = bg >= tau
        top = min(t, span)
        dstar = 0  # ages 1..dstar reach τ on locality alone (loc does not grow with age)
        if not every_key:
            while dstar < top and loc[dstar + 1] + bg >= tau:
                dstar += 1
        total = bg * (t + 1) + loc_upto(loccum, top)
        kept = bg * (ncached + 1)
        if every_key:
            ctr[ACCESSES] += t
            ctr[HITS] += ncached
            ctr[MISSES] += t - ncached
        if ctr[EV_RECENT] == 0:  # the whole block is cached
            kept += loc_upto(loccum, top)
            ctr[ACCESSES] += dstar
            ctr[HITS] += dstar
        else:
            if top >= 0:
                kept += loc[0]
            for age in range(1, top + 1):
                cached = slot_of[t - age] >= 0
                if cached:
                    kept += loc[age]
                if age <= dstar:
                    ctr[ACCESSES] += 1
                    if cached:
                        ctr[HITS] += 1
                    else:
                        ctr[MISSES] += 1
        self_extra = 0
        for e in range(cnt):
            j = ridx[e]
            x = rval[e]
            total += x
            if j == t:
                kept += x
                self_extra = x
                continue
            cached = slot_of[j] >= 0
            if cached:
                kept += x
            if not every_key and t - j > dstar and x + bg + (loc[t - j] if t - j <= span else 0) >= tau:
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
            h2o.observe(slots, slot_of, heap, ctr, ridx, rval, cnt, t, loc, window)
        elif policy == LRU:
            lru.observe(slots, slot_of, queue, ctr, ridx, rval, cnt, t, bg, tau, loc, dstar)

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
                h2o.on_insert(slots, slot_of, heap, ctr, s, t, self_extra, bg, window, loccum)
            elif policy == LRU:
                lru.on_insert(slots, queue, ctr, s, t)
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
                    v = lru.victim(slots, queue, ctr)
                elif policy == TOVA:
                    v = tova.victim(slots, slot_of, stamp, ctr, ridx, rval, cnt, t, bg, loc)
                else:
                    v = oracle.victim(slots, heap, ctr)
                list_unlink(slots, ctr, v, PREV, NEXT, HEAD, TAIL)
                gone = slots[v, POS]
                slot_of[gone] = -1
                free[ctr[FREE]] = v
                ctr[FREE] += 1
                ctr[NCACHED] -= 1
                ctr[EVICTIONS] += 1
                if span >= 0 and gone >= t - span:
                    ctr[EV_RECENT] += 1  # an evicted key inside next step's block
                if evicted_at.shape[0] > 0:
                    evicted_at[gone] = t

            if policy == H2O:
                h2o.settle(slots, heap, ctr)

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
