"""User code stuck in one step is named and stopped: `rule_timeout`, `score_timeout` (issue #25).

Inside a worker process (backend/workers.py), or a sweep's Ray actor (workers.call_contained),
every run of a user rule is watched: one
thread looks at the step each run is on every TICK_SECONDS; a step that takes longer
than the limit fails the call with rule_timeout, naming the file, the function, the
step and how long it had taken, and the caller kills the process (a compiled loop
cannot be stopped any other way; Ray's driver kills the actor). The limit is rule_step_limit (Simulate and Evaluate
take it as a setting), else $SINKVIS_RULE_STEP_LIMIT, else DEFAULT_LIMIT seconds. A
built-in policy's step takes microseconds (about a millisecond at C = 1,000,000), so the
default is thousands of times what any fair rule needs.

Which function: the rule's on_enter(t, run) is called alone on another thread; if it
has not returned within PROBE_SECONDS the rule is stuck there, else in on_attention.
"""
import os
import threading
import time
from contextlib import contextmanager

import numpy as np

from ..errors import UserError
from ..workers import can_fail_calls, fail
from .errors import PolicyFileError

DEFAULT_LIMIT = 2.0     # seconds one step of a user rule may take
MAX_LIMIT = 3600.0
TICK_SECONDS = 0.05
PROBE_SECONDS = 0.3
LIMIT_ENV = "SINKVIS_RULE_STEP_LIMIT"


_override = threading.local()


@contextmanager
def limit_for_this_thread(value):
    """Evaluate's rule_step_limit for the deciders made on this thread (their interface takes none)."""
    before = getattr(_override, "value", None)
    _override.value = value
    try:
        yield
    finally:
        _override.value = before


def step_limit(value=None) -> float:
    """The limit a run uses: the setting given, else this thread's, else the environment's, else the default."""
    if value is None:
        value = getattr(_override, "value", None)
    if value is None:
        try:
            value = float(os.environ.get(LIMIT_ENV, DEFAULT_LIMIT))
        except ValueError:
            value = DEFAULT_LIMIT
    return min(MAX_LIMIT, max(0.01, float(value)))


def current_step(sim) -> int:
    """The step a user rule's Simulation is on: the newest position it admitted (a step admits
    its key before it calls the rule; a slot keeps the position of its last key)."""
    from kernels.eviction.state import POS

    return int(np.max(sim.state.slots[:, POS]))


class _Watch:
    def __init__(self, step_of, limit: float, stuck):
        self.step_of, self.limit, self.stuck = step_of, limit, stuck
        self.step, self.since = None, time.monotonic()


_watches: set = set()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def watching(policy, step_of, settings, limit: float):
    """A user rule's run, watched (below): a stuck step is rule_timeout, naming the function."""
    return watching_steps(step_of, limit, lambda step, took: timeout_error(
        policy, step, took, limit, _stuck_function(policy, step, settings, limit)))


@contextmanager
def watching_steps(step_of, limit: float, stuck):
    """While the block runs, a step (step_of(): the step in progress, None between steps) that
    takes longer than `limit` seconds ends the worker's call with stuck(step, seconds taken). Outside
    a Worker, nothing is watched (nothing could stop the code there; a sweep's pool worker stops on Cancel)."""
    global _thread
    if not can_fail_calls():
        yield
        return
    watch = _Watch(step_of, limit, stuck)
    with _lock:
        _watches.add(watch)
        if _thread is None:
            _thread = threading.Thread(target=_loop, name="rule watchdog", daemon=True)
            _thread.start()
    try:
        yield
    finally:
        with _lock:
            _watches.discard(watch)


def _loop() -> None:
    while True:
        time.sleep(TICK_SECONDS)
        now = time.monotonic()
        with _lock:
            watches = list(_watches)
        for w in watches:
            step = w.step_of()
            if step != w.step:
                w.step, w.since = step, now
            elif step is not None and now - w.since > w.limit:
                with _lock:
                    _watches.discard(w)
                fail(w.stuck(step, now - w.since), stuck=True)


def _stuck_function(policy, step, settings, limit) -> str:
    if not policy.rescores:
        return "on_enter"
    done = threading.Event()

    def probe():
        policy.on_enter(step, settings)
        done.set()

    threading.Thread(target=probe, daemon=True).start()  # if on_enter never returns, neither does this
    return "on_attention" if done.wait(min(PROBE_SECONDS, limit)) else "on_enter"


def timeout_error(policy, step: int, took: float, limit: float, function: str) -> UserError:
    return PolicyFileError(
        "rule_timeout", policy.file, policy.lines.get(function),
        f"{function} of {policy.name} was stopped at step {step}: that step had taken {took:.1f} s and not "
        f"finished, over the limit of {limit:g} s a step (rule_step_limit; a built-in policy's step takes "
        "microseconds). Look for a loop that never ends.")
