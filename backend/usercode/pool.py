"""User files run in worker processes (issue #25): each run of a rule or a prefill file's score
takes a worker that holds the loaded file, so Cancel (or a stuck step, watch.py) kills the process
and the job, its slot and the app are free at once. Built-in policies stay in-process.

A worker loads its file once (a rule: Numba compiles it, seconds, and the loop once more for
each trace layout); it then goes back to a short list of idle workers and the next run of the
same file takes it warm. A worker killed mid-run is replaced by a fresh one warming up in the
background, and the registry starts one per file when it loads (warm()), so a first run, or a
run after a Cancel once the replacement is warm, does not wait for the compile.

What a worker does to get ready is the file's own `prepare(shipment, layouts)` (a module-level
function of the service that owns the file: this package imports none of them); it keeps what
it loaded with keep(), and the calls that follow find it with loaded().

    w = take(user, "simulate", should_stop); w.call(fn, ...); give_back(w, user)
"""
import threading
import time

from ..workers import POLL_SECONDS, Worker

MAX_IDLE = 4  # idle warm workers kept (each holds numpy + Numba: ~75 MB of its own, 165 MB resident)

_idle: list[Worker] = []
_warming: set = set()       # rule keys whose worker is starting
_failed: dict = {}          # rule key → why its last warm-up failed (for the run waiting on it)
_busy: set = set()          # workers taken by a run
_starting: set = set()      # workers compiling their rule
_lock = threading.Lock()


def rule_key(user) -> tuple:
    return rule_key_of(user.shipment())


def _prepare(prepare, shipment, layouts) -> None:
    prepare(shipment, layouts)


_here: dict = {}  # in a worker: rule key → what its prepare loaded


def keep(shipment, loaded) -> None:
    """In a worker: what prepare loaded for this file, for the calls that follow."""
    _here[rule_key_of(shipment)] = loaded


def loaded(shipment):
    """In a worker: what prepare kept for this file."""
    return _here[rule_key_of(shipment)]


def rule_key_of(shipment) -> tuple:
    import hashlib

    return shipment["file"], hashlib.sha256(shipment["source"].encode()).hexdigest()


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


def warm(user, layouts=None) -> None:
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
            worker.call(_prepare, user.prepare, user.shipment(), tuple(layouts or user.layouts))
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
