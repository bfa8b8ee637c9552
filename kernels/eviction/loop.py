"""The accounting loop every policy shares (DESIGN.md "Eviction simulation: definitions").

Step t: (1) the query at t sees the cached keys and itself; (2) accounting: key j < t is
accessed when A[t, j] ≥ τ, a hit if cached, a miss if evicted; recall = the row's mass on
cached keys and t over the row's total; (3) the policy observes attention on cached keys
only; (4) key t enters and, while more than C keys are cached, the policy evicts one.
Runs steps [t0, t1) so the caller can stop between chunks; all state is in the State arrays.
The rows come from rows.row (a synthetic, dense model or compact model trace) or are given (run_rows).

Numba's on-disk cache of run_steps is keyed on this file only: after editing a policy
module, rows.py or accounting.py, delete kernels/eviction/__pycache__/*.nb? or the old code runs
(touching this file did not always suffice here).
"""
from numba import njit

from . import h2o, lru, oracle, sliding_window, streaming_llm, tova
from .accounting import account, admit, drop, timeline_point
from .rows import given_row, row
from .state import NCACHED

FULL, SLIDING_WINDOW, STREAMING_LLM, H2O, LRU, TOVA, ORACLE = range(7)
POLICY_CODES = {"full": FULL, "sliding_window": SLIDING_WINDOW, "streaming_llm": STREAMING_LLM,
                "h2o": H2O, "lru": LRU, "tova": TOVA, "oracle": ORACLE}


@njit(cache=True, nogil=True)  # other threads (the UI polling this job) run meanwhile
def run_steps(policy, t0, t1, n, capacity, sinks, window, tau,
              kind, weights, sp, loc, loccum, heavy, fixed, plan_end,
              slots, slot_of, free, heap, stamp, queue, ctr, flt, tl, stride, evicted_at, ridx, rval,
              block, cols):
    """block: int64 [t1 − t0, len(cols)] rows given over the keys `cols` (rows.given_row),
    used instead of the trace's rows when it has any rows; shape (0, 0) otherwise."""
    span = loc.shape[0] - 1  # oldest age with a locality weight (−1: none)
    for t in range(t0, t1):
        if block.shape[0] > 0:
            cnt, bg = given_row(t - t0, block, cols, ridx, rval)
        else:
            cnt, bg = row(kind, t, weights, sp, heavy, ridx, rval)

        # 2. Accounting (accounting.py, shared with the loop for user policies).
        self_extra, dstar = account(t, cnt, bg, ridx, rval, loc, loccum, tau, slot_of, ctr, flt, fixed)

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
            s = admit(t, slots, slot_of, free, ctr)
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
                drop(v, t, slots, slot_of, free, ctr, evicted_at, span)

            if policy == H2O:
                h2o.settle(slots, heap, ctr)

        timeline_point(t, n, stride, ctr, flt, tl)


@njit(cache=True, nogil=True)  # here, not in its own file: Numba's cache of it is keyed on this file, as run_steps'
def run_units(policy, t0, t1, n, capacity, sinks, window, tau,
              kind, weights, sp, loc, loccum, heavy, fixed, plan_end,
              slots, slot_of, free, heap, stamp, queue, ctr, flt, tl, stride, evicted_at, ridx, rval,
              blocks, cols):
    """run_steps for U units of one policy in one call (Evaluate's per-(layer, KV head) kept sets): every
    state array has a leading unit axis, blocks int64 [U, t1 − t0, k] and cols int64 [U, k] are each unit's
    rows and keys; the trace (never read when rows are given) and the scratch rows are shared."""
    for u in range(slots.shape[0]):
        run_steps(policy, t0, t1, n, capacity, sinks, window, tau,
                  kind, weights, sp, loc, loccum, heavy, fixed, plan_end,
                  slots[u], slot_of[u], free[u], heap[u], stamp[u], queue[u], ctr[u], flt[u], tl[u], stride,
                  evicted_at[u], ridx, rval, blocks[u], cols[u])
