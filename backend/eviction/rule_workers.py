"""User rules run in worker processes (issue #25): each run of a rule takes a worker that
holds the compiled rule, so Cancel (or a stuck step, rule_watch.py) kills the process
and the job, its slot and the app are free at once. Built-in policies stay in-process.

A worker compiles its rule once (Numba: seconds, and the loop once more for each trace
layout); it then goes back to a short list of idle workers and the next run of the same
rule takes it warm. A worker killed mid-run is replaced by a fresh one warming up in the
background, and PolicyRegistry starts one per rule when a file loads (warm()), so a first
run, or a run after a Cancel once the replacement is warm, does not wait for the compile.

    out = simulate_rule(user, trace, ...)     # Simulate: the whole run of one rule, in its worker
    w = take(user); ...; give_back(w)          # Evaluate's decider (backend/evaluate/remote_decider.py)
"""
import threading
import time

from ..workers import POLL_SECONDS, Worker, report
from .rule_watch import current_step, step_limit, watching

MAX_IDLE = 4  # idle warm workers kept (each holds numpy + Numba: ~75 MB of its own, 165 MB resident)

_idle: list[Worker] = []
_warming: set = set()       # rule keys whose worker is starting
_failed: dict = {}          # rule key → why its last warm-up failed (for the run waiting on it)
_busy: set = set()          # workers taken by a run
_starting: set = set()      # workers compiling their rule
_lock = threading.Lock()


def rule_key(user) -> tuple:
    import hashlib

    return user.file, hashlib.sha256(user.source.encode()).hexdigest()


LAYOUTS = ("simulate", "evaluate")  # the loop is compiled once per trace layout: C arrays, strided rows


def _load(shipment, layouts) -> None:
    """Child side: compile the rule (once per process) and its loop for these trace layouts."""
    from kernels.eviction import synthetic_trace

    from ..evaluate.deciders import row_trace
    from .custom_policies import load_shipped

    policy = load_shipped([shipment])[shipment["name"]]
    capacity = sum(v for v in (policy.protect_first, policy.protect_recent) if isinstance(v, int)) + 2
    traces = {"simulate": lambda: synthetic_trace(4), "evaluate": lambda: row_trace(4)[0]}
    for layout in layouts:
        policy.simulation(traces[layout](), capacity, 0, 0, 1).run(0, 0)


def take(user, layout: str, should_stop=None) -> Worker:
    """An idle worker holding this rule; else one warming up (started now for this layout if none
    is). While it compiles, should_stop() may raise Cancelled: the warm-up goes on, its worker idles."""
    key = rule_key(user)
    while True:
        with _lock:
            found = next((w for w in _idle if w.tag == key), None)
            if found is not None:
                _idle.remove(found)
            failed = _failed.pop(key, None) if found is None and key not in _warming else None
        if found is not None and found.alive:
            with _lock:
                _busy.add(found)
            return found
        if failed is not None:
            raise failed
        warm(user, (layout,))  # none idle and none warming (another run took the last one): start one
        if should_stop is not None:
            should_stop()
        time.sleep(POLL_SECONDS)


def give_back(worker: Worker, user=None) -> None:
    """After a run: an idle live worker is kept warm; a killed one is replaced in the background."""
    with _lock:
        _busy.discard(worker)
    if worker.alive and not worker.busy:
        with _lock:
            _idle.append(worker)
            extra = _idle[:-MAX_IDLE]
            del _idle[:-MAX_IDLE]
        for w in extra:
            w.close()
    else:
        worker.kill()
        if user is not None:
            warm(user)


def warm(user, layouts=LAYOUTS) -> None:
    """Start a worker for this rule in the background (compiling takes seconds), unless one is
    idle or warming already. A run compiles a layout it lacks itself."""
    key = rule_key(user)
    with _lock:
        if key in _warming or any(w.tag == key for w in _idle):
            return
        _warming.add(key)

    def start():
        worker = None
        try:
            worker = Worker()
            worker.tag = key
            with _lock:
                _starting.add(worker)
            worker.call(_load, user.shipment(), tuple(layouts))
        except Exception as exc:  # noqa: BLE001 - the run that waits for it says so
            if worker is not None:
                worker.kill()
            worker = None
            with _lock:
                _failed[key] = exc
        finally:
            with _lock:
                _warming.discard(key)
                _starting.discard(worker)
        if worker is not None:
            give_back(worker)

    threading.Thread(target=start, name=f"warm {user.name}", daemon=True).start()


def keep_only(keys: set) -> None:
    """Kill the idle workers of rules not in keys (a file removed or changed)."""
    with _lock:
        gone = [w for w in _idle if w.tag not in keys]
        _idle[:] = [w for w in _idle if w.tag in keys]
    for w in gone:
        w.kill()


def shutdown() -> None:
    """Kill every idle worker (the app is closing; tests)."""
    with _lock:
        idle = list(_idle)
        _idle.clear()
    for w in idle:
        w.kill()


def pids() -> dict:
    """The worker processes this app holds, by what they do (tests check the process table)."""
    with _lock:
        return {"idle": {w.pid for w in _idle}, "busy": {w.pid for w in _busy},
                "starting": {w.pid for w in _starting}}


def simulate_rule(user, trace, capacity, sinks, window, tau, record, sink_keys, heavy, limit, on_steps,
                  should_stop) -> dict:
    """One user policy's whole Simulate run, in a worker: its result dict (metrics.result).
    on_steps(steps) as chunks finish; should_stop() raises Cancelled to stop (the worker is killed)."""
    worker = take(user, "simulate", should_stop)
    try:
        return worker.call(_simulate_child, user.shipment(), trace, capacity, sinks, window, tau, record, sink_keys,
                           heavy, step_limit(limit), on_progress=on_steps, should_stop=should_stop)
    finally:
        give_back(worker, user)


def _simulate_child(shipment, trace, capacity, sinks, window, tau, record, sink_keys, heavy, limit) -> dict:
    from .custom_policies import load_shipped
    from .metrics import result
    from .run import chunks

    user = load_shipped([shipment])[shipment["name"]]
    sim = user.simulation(trace, capacity, sinks, window, tau, record_evictions=record)
    sim.run(0, 0)  # compiles the loop if this worker has not yet (_load): not part of the time
    report(0)  # compiled: the run starts
    started = time.perf_counter()
    with watching(user, lambda: current_step(sim), sim.settings, limit):
        for t0, t1 in chunks(trace.n):
            sim.run(t0, t1)
            user.check(sim)  # a NaN score: rule_nan, the run stops
            report(t1 - t0)
    return result(user.name, user.label, sim, sink_keys, heavy, time.perf_counter() - started, with_evictions=record)
