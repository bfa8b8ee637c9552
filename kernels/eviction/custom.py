"""A user's eviction policy: one score per cached key; the lowest unprotected key goes.

The rule is two plain functions, Numba-compiled once (compile_rule) and passed into the
loops below, which Numba specialises per function, so the rule is inlined as a built-in is:

    on_enter(t, run) -> float                              score of key t as it enters
    on_attention(score, attention, age, t, run) -> float   optional; called at every step
        for every cached key, key t included (age 0), with the attention query t
        pays it (in slot order: each call must depend only on its arguments)

`attention` is the trace's fixed-point weight as a float (k · 2^-24, exact), so sums of
it are exact (below 2^29) and a rule can equal a built-in bit for bit. `run` is a
RunSettings (capacity, sinks, window, tau; tau is a float like attention). Protected
keys (the first `protect_first` positions, the `protect_recent` youngest, age <
protect_recent) are never candidates; ties evict the older key. A rule that returns NaN
stops the run with the step and key (FAULT_*): NaN has no order, so no victim is right.

Two loops: with no on_attention a key's score never changes after it enters, so the
candidates sit in a min-heap (O(log C) a step); with one, every cached key is rescored
each step (O(C) a step, as a real system that reads the whole attention row).
Per step, the accounting, the entering and the leaving are the built-ins' own
(accounting.py), so every counter means the same.
"""
from collections import namedtuple

import numpy as np
from numba import float64, int64, njit, typeof

from . import Simulation
from .accounting import account, admit, drop, timeline_point
from .rows import row
from .state import KEY, NCACHED, State, heap_pop, heap_push
from .trace import ONE, Trace

RunSettings = namedtuple("RunSettings", "capacity sinks window tau")
RUN_TYPE = typeof(RunSettings(1, 1, 1, 0.5))
ENTER_SIGNATURE = float64(int64, RUN_TYPE)
ATTENTION_SIGNATURE = float64(float64, float64, int64, int64, RUN_TYPE)
INV_ONE = 1.0 / ONE  # a power of two: weight × INV_ONE is exact

# fault[0]: what went wrong (0 = nothing), fault[1]: the step, fault[2]: the key's position.
FAULT_NONE, FAULT_ENTER_NAN, FAULT_ATTENTION_NAN = 0, 1, 2


def compile_rule(on_enter, on_attention=None):
    """Compile the rule's functions for the loops' argument types (errors: Numba's own)."""
    enter = njit(ENTER_SIGNATURE, nogil=True, error_model="numpy")(on_enter)
    attention = njit(ATTENTION_SIGNATURE, nogil=True, error_model="numpy")(on_attention) if on_attention else None
    return enter, attention


NO_KEY = np.int64(0x7FFFFFFFFFFFFFFF)


@njit(inline="always")
def order_key(bits):
    """The int64 bits of a float64 score → an int64 in the same order (NaN excluded;
    −0.0 must be stored as 0.0, their bits differ). Integer minima vectorise where
    float ones (NaN rules) do not, and the static loop reuses state.py's int64 heap."""
    return bits ^ ((bits >> 63) & NO_KEY)


@njit(nogil=True)
def run_static(on_enter, run, t0, t1, n, capacity, protect_first, protect_recent, tau,
               kind, weights, sp, loc, loccum, heavy, slots, slot_of, free, heap, ctr, flt, tl, stride,
               evicted_at, ridx, rval, score, score_bits, fault):
    span = loc.shape[0] - 1
    for t in range(t0, t1):
        cnt, bg = row(kind, t, weights, sp, heavy, ridx, rval)
        account(t, cnt, bg, ridx, rval, loc, loccum, tau, slot_of, ctr, flt)
        s = admit(t, slots, slot_of, free, ctr)
        first = on_enter(t, run)
        if first != first:
            fault[0], fault[1], fault[2] = FAULT_ENTER_NAN, t, t
            return
        score[s] = first + 0.0  # −0.0 → 0.0: they are equal, their bits are not
        slots[s, KEY] = order_key(score_bits[s])
        # The key that just reached age protect_recent becomes a candidate (the new key
        # itself when nothing recent is protected); the first protect_first never do.
        j = t - protect_recent
        if j >= protect_first and slot_of[j] >= 0:
            heap_push(slots, heap, ctr, slot_of[j])
        if ctr[NCACHED] > capacity:
            drop(heap_pop(slots, heap, ctr), t, slots, slot_of, free, ctr, evicted_at, span)
        timeline_point(t, n, stride, ctr, flt, tl)


@njit(nogil=True)
def run_dynamic(on_enter, on_attention, run, t0, t1, n, capacity, protect_first, protect_recent, tau,
                kind, weights, sp, loc, loccum, heavy, slots, slot_of, free, ctr, flt, tl, stride,
                evicted_at, ridx, rval, score, score_bits, kpos, extra, fault):
    span = loc.shape[0] - 1
    nloc = loc.shape[0]
    nslots = kpos.shape[0]
    for t in range(t0, t1):
        cnt, bg = row(kind, t, weights, sp, heavy, ridx, rval)
        account(t, cnt, bg, ridx, rval, loc, loccum, tau, slot_of, ctr, flt)
        s = admit(t, slots, slot_of, free, ctr)
        first = on_enter(t, run)
        if first != first:
            fault[0], fault[1], fault[2] = FAULT_ENTER_NAN, t, t
            return
        score[s] = first
        kpos[s] = t
        # A key's weight is bg + loc[age] + its explicit extra (rows.py): spread the
        # explicit extras onto the cached keys' slots, then rescore every cached key.
        # Slot order, not position order: the iterations are independent (the rule is
        # a pure function), which lets the CPU overlap them.
        for e in range(cnt):
            k = slot_of[ridx[e]]
            if k >= 0:
                extra[k] += rval[e]
        for k in range(nslots):  # free slots too (kpos −1): no branch, so it vectorises
            age = t - kpos[k]
            w = bg + extra[k] + (loc[age] if age < nloc else 0)
            extra[k] = 0
            score[k] = on_attention(score[k], w * INV_ONE, age, t, run) + 0.0  # −0.0 → 0.0 (see order_key)
        nan = False
        for k in range(nslots):
            nan |= kpos[k] >= 0 and score[k] != score[k]
        if nan:
            for k in range(nslots):
                if kpos[k] >= 0 and score[k] != score[k]:
                    fault[0], fault[1], fault[2] = FAULT_ATTENTION_NAN, t, kpos[k]
                    return
        if ctr[NCACHED] > capacity:
            # The lowest score among the candidates, then the oldest key with it: two
            # integer min-reductions (order keys of the float bits), which vectorise.
            lo, hi = protect_first, t - protect_recent
            low = NO_KEY
            for k in range(nslots):
                p = kpos[k]
                low = min(low, order_key(score_bits[k]) if lo <= p and p <= hi else NO_KEY)
            oldest = NO_KEY
            for k in range(nslots):
                p = kpos[k]
                oldest = min(oldest, p if lo <= p and p <= hi and order_key(score_bits[k]) == low else NO_KEY)
            victim = slot_of[oldest]
            kpos[victim] = -1
            drop(victim, t, slots, slot_of, free, ctr, evicted_at, span)
        timeline_point(t, n, stride, ctr, flt, tl)


class CustomSimulation(Simulation):
    """A compiled user rule on one trace; the same interface as Simulation (run in chunks,
    counters, kept, timeline, evicted_at). A NaN score stops the run and raises nothing:
    `fault` says what, when and where (the caller turns it into an error)."""

    def __init__(self, on_enter, on_attention, protect_first: int, protect_recent: int, trace: Trace,
                 capacity: int, sinks: int, window: int, tau: int, record_evictions: bool = False):
        if protect_first + protect_recent > capacity:
            raise ValueError(f"the policy protects {protect_first} + {protect_recent} keys, more than the cache "
                             f"holds ({capacity}): nothing could be evicted")
        self.on_enter, self.on_attention = on_enter, on_attention
        self.protect_first, self.protect_recent = protect_first, protect_recent
        self.trace, self.capacity, self.sinks, self.window, self.tau = trace, capacity, sinks, window, tau
        self.settings = RunSettings(int(capacity), int(sinks), int(window), tau * INV_ONE)
        self.state = State(trace.n, capacity, False, record_evictions)
        self.score = np.zeros(capacity + 1, np.float64)
        self.extra = np.zeros(capacity + 1, np.int64)
        self.kpos = np.full(capacity + 1, -1, np.int64)  # each slot's position (−1: free), contiguous
        self.fault = np.zeros(3, np.int64)
        self.ridx = np.zeros(trace.max_row, np.int64)
        self.rval = np.zeros(trace.max_row, np.int64)
        self.loccum = trace.loccum
        self.steps_done = 0

    def run(self, t0: int, t1: int) -> None:
        tr, st = self.trace, self.state
        if self.fault[0]:
            return
        if self.on_attention is None:
            run_static(self.on_enter, self.settings, t0, t1, tr.n, self.capacity, self.protect_first,
                       self.protect_recent, self.tau, tr.kind, tr.weights, tr.sp, tr.loc, self.loccum, tr.heavy,
                       st.slots, st.slot_of, st.free, st.heap, st.ctr, st.flt, st.tl, st.stride, st.evicted_at,
                       self.ridx, self.rval, self.score, self.score.view(np.int64), self.fault)
        else:
            run_dynamic(self.on_enter, self.on_attention, self.settings, t0, t1, tr.n, self.capacity,
                        self.protect_first, self.protect_recent, self.tau, tr.kind, tr.weights, tr.sp, tr.loc,
                        self.loccum, tr.heavy, st.slots, st.slot_of, st.free, st.ctr, st.flt, st.tl, st.stride,
                        st.evicted_at, self.ridx, self.rval, self.score, self.score.view(np.int64), self.kpos, self.extra,
                        self.fault)
        self.steps_done = t1 if not self.fault[0] else int(self.fault[1])
