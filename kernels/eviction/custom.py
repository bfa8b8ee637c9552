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

Two loops: with no on_attention a key's score never changes after it enters. While each
new candidate scores at least as high as the one before (a window, StreamingLLM, LRU's
on_enter = t), the candidates are in order as they come: a FIFO, O(1) a step as the
built-in window's list; the first lower score turns the FIFO into a min-heap (a sorted
array is one) and it stays a heap (O(log C) a step). With on_attention every cached key
is rescored each step (O(C) a step, as a real system that reads the whole attention row):
that pass reads only per-slot arrays, so it vectorises; the locality weights, which go by
age, are added to the few recent keys' slots before it (issue #23: a lookup by age inside
the pass kept it scalar, 2.5x TOVA's time).
Per step, the accounting, the entering and the leaving are the built-ins' own
(accounting.py), so every counter means the same.
"""
from collections import namedtuple

import numpy as np
from numba import float64, int64, njit, typeof
from numba.core import types
from numba.extending import intrinsic

from . import Simulation
from .accounting import account, admit, drop, timeline_point
from .rows import given_row, row
from .state import HEAP, HEAP_N, KEY, NCACHED, State, heap_pop, heap_push
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
# `order` of the static loop: the candidates' FIFO (a ring, `fifo`) starts at F_FIRST, ends before
# F_END and holds F_LEN slots; IN_HEAP once the heap took over.
F_FIRST, F_END, F_LEN, IN_HEAP = range(4)


@intrinsic
def float_bits(typingctx, x):
    """A float64's bits as an int64, from a register (no load from score_bits: the pass that writes
    score can compute its order keys and still vectorise)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return (types.int64(types.float64), codegen) if x == types.float64 else None


@njit(inline="always")
def order_key(bits):
    """The int64 bits of a float64 score → an int64 in the same order (NaN excluded;
    −0.0 must be stored as 0.0, their bits differ). Integer minima vectorise where
    float ones (NaN rules) do not, and the static loop reuses state.py's int64 heap."""
    return bits ^ ((bits >> 63) & NO_KEY)


@njit(nogil=True)
def run_static(on_enter, run, t0, t1, n, capacity, protect_first, protect_recent, tau,
               kind, weights, sp, loc, loccum, heavy, fixed, slots, slot_of, free, heap, ctr, flt, tl, stride,
               evicted_at, ridx, rval, score, score_bits, fifo, order, fault, block, cols):
    span = loc.shape[0] - 1
    size = fifo.shape[0]
    given = block.shape[0] > 0  # rows given over the cached keys (Simulation.run_rows), else the trace's
    for t in range(t0, t1):
        if given:
            cnt, bg = given_row(t - t0, block, cols, ridx, rval)
        else:
            cnt, bg = row(kind, t, weights, sp, heavy, ridx, rval)
        account(t, cnt, bg, ridx, rval, loc, loccum, tau, slot_of, ctr, flt, fixed)
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
            c = slot_of[j]
            end = order[F_END]
            if order[IN_HEAP]:
                heap_push(slots, heap, ctr, c)
            elif order[F_LEN] == 0 or slots[c, KEY] >= slots[fifo[end - 1 if end > 0 else size - 1], KEY]:
                fifo[end] = c  # not below the last one (and younger): the FIFO stays in order
                order[F_END] = end + 1 if end + 1 < size else 0
                order[F_LEN] += 1
            else:
                fifo_to_heap(slots, heap, ctr, fifo, order)
                heap_push(slots, heap, ctr, c)
        if ctr[NCACHED] > capacity:
            if order[IN_HEAP]:
                v = heap_pop(slots, heap, ctr)
            else:
                v = fifo[order[F_FIRST]]
                order[F_FIRST] = order[F_FIRST] + 1 if order[F_FIRST] + 1 < size else 0
                order[F_LEN] -= 1
            drop(v, t, slots, slot_of, free, ctr, evicted_at, span)
        timeline_point(t, n, stride, ctr, flt, tl)


@njit(nogil=True)
def fifo_to_heap(slots, heap, ctr, fifo, order):
    """A candidate came in lower than the last: from now on a heap. The FIFO is sorted by
    (KEY, POS), and a sorted array is a min-heap, so it is copied over as it is."""
    i = order[F_FIRST]
    for h in range(order[F_LEN]):
        heap[h] = fifo[i]
        slots[fifo[i], HEAP] = h
        i = i + 1 if i + 1 < fifo.shape[0] else 0
    ctr[HEAP_N] = order[F_LEN]
    order[F_LEN] = 0
    order[IN_HEAP] = 1


@njit(nogil=True)
def run_dynamic(on_enter, on_attention, run, t0, t1, n, capacity, protect_first, protect_recent, tau,
                kind, weights, sp, loc, loccum, heavy, fixed, slots, slot_of, free, ctr, flt, tl, stride,
                evicted_at, ridx, rval, score, score_bits, kpos, extra, locf, fault, block, cols):
    span = loc.shape[0] - 1
    nloc = loc.shape[0]  # locf[nloc] = 0: the weight past the table
    nslots = kpos.shape[0]
    given = block.shape[0] > 0  # rows given over the cached keys (Simulation.run_rows), else the trace's
    for t in range(t0, t1):
        if given:
            cnt, bg = given_row(t - t0, block, cols, ridx, rval)
        else:
            cnt, bg = row(kind, t, weights, sp, heavy, ridx, rval)
        account(t, cnt, bg, ridx, rval, loc, loccum, tau, slot_of, ctr, flt, fixed)
        s = admit(t, slots, slot_of, free, ctr)
        first = on_enter(t, run)
        if first != first:
            fault[0], fault[1], fault[2] = FAULT_ENTER_NAN, t, t
            return
        score[s] = first
        kpos[s] = t
        # A key's weight is bg + loc[age] + its explicit extra (rows.py), in units of 1
        # (each term k · 2^-24 and their sums below 2^29: exact): spread the explicit extras
        # and the locality weights onto the cached keys' slots, then rescore every cached key.
        for e in range(cnt):
            k = slot_of[ridx[e]]
            if k >= 0:
                extra[k] += rval[e] * INV_ONE
        top = min(t, span)
        if top < nslots:  # the ages with a locality weight: the few recent keys, by position
            for age in range(top + 1):
                k = slot_of[t - age]
                if k >= 0:
                    extra[k] += locf[age]
        else:  # a locality span longer than the cache: each slot looks its age up
            for k in range(nslots):
                extra[k] += locf[min(t - kpos[k], nloc)]
        bgf = bg * INV_ONE
        lo, hi = protect_first, t - protect_recent  # the candidates' positions
        nan = False
        low = NO_KEY  # the lowest candidate score (its order key), found in the same pass
        # Slot order, not position order: the iterations are independent (the rule is a
        # pure function) and read only per-slot arrays, so the pass vectorises.
        for k in range(nslots):  # free slots too (kpos −1; their scores are never read): no branch
            p = kpos[k]
            x = on_attention(score[k], bgf + extra[k], t - p, t, run) + 0.0  # −0.0 → 0.0 (see order_key)
            extra[k] = 0.0
            score[k] = x
            nan |= (x != x) & (p >= 0)
            low = min(low, order_key(float_bits(x)) if lo <= p and p <= hi else NO_KEY)
        if nan:
            for k in range(nslots):
                if kpos[k] >= 0 and score[k] != score[k]:
                    fault[0], fault[1], fault[2] = FAULT_ATTENTION_NAN, t, kpos[k]
                    return
        if ctr[NCACHED] > capacity:
            # The oldest candidate with the lowest score: an integer min-reduction (order keys
            # of the float bits), which vectorises. A key younger than the candidates (p > hi)
            # with that score cannot be the oldest: a candidate has it.
            oldest = NO_KEY
            for k in range(nslots):
                p = kpos[k]
                oldest = min(oldest, p if lo <= p and order_key(score_bits[k]) == low else NO_KEY)
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
        self.extra = np.zeros(capacity + 1, np.float64)  # a slot's attention this step besides bg (units of 1)
        self.kpos = np.full(capacity + 1, -1, np.int64)  # each slot's position (−1: free), contiguous
        self.locf = np.append(trace.loc * INV_ONE, 0.0)  # locality by age in units of 1 (exact), 0 past it
        self.fifo = np.zeros(capacity + 1, np.int64)     # the static loop's candidates while in order
        self.order = np.zeros(4, np.int64)
        self.fault = np.zeros(3, np.int64)
        self.ridx = np.zeros(trace.max_row, np.int64)
        self.rval = np.zeros(trace.max_row, np.int64)
        self.loccum = trace.loccum
        self.steps_done = 0

    def _run(self, t0: int, t1: int, block, cols) -> None:
        """Simulation's one loop entry (run, run_rows): the rule's loops in place of the built-ins'."""
        tr, st = self.trace, self.state
        if self.fault[0]:
            return
        if self.on_attention is None:
            run_static(self.on_enter, self.settings, t0, t1, tr.n, self.capacity, self.protect_first,
                       self.protect_recent, self.tau, tr.kind, tr.weights, tr.sp, tr.loc, self.loccum, tr.heavy, tr.fixed,
                       st.slots, st.slot_of, st.free, st.heap, st.ctr, st.flt, st.tl, st.stride, st.evicted_at,
                       self.ridx, self.rval, self.score, self.score.view(np.int64), self.fifo, self.order, self.fault,
                       block, cols)
        else:
            run_dynamic(self.on_enter, self.on_attention, self.settings, t0, t1, tr.n, self.capacity,
                        self.protect_first, self.protect_recent, self.tau, tr.kind, tr.weights, tr.sp, tr.loc,
                        self.loccum, tr.heavy, tr.fixed, st.slots, st.slot_of, st.free, st.ctr, st.flt, st.tl, st.stride,
                        st.evicted_at, self.ridx, self.rval, self.score, self.score.view(np.int64), self.kpos, self.extra,
                        self.locf, self.fault, block, cols)
        self.steps_done = t1 if not self.fault[0] else int(self.fault[1])
