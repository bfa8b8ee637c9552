"""Worker processes: where a user's code runs, so that Cancel can always stop it (issue #25).

A user's eviction rule is Numba-compiled code, and a compiled loop cannot be interrupted
from another thread: a rule that never returns would hold its job, and its heavy-job
slot, for good. So user code runs in a Worker: a fresh interpreter (not forked: the app
has threads and torch state a fork would copy half-way) that runs one call at a time
and answers over a socket. The caller waits in short polls, so it sees Cancel within
POLL_SECONDS, and then kills the process and its process group (SIGKILL: nothing in the
child has to help; a subprocess the user's code started goes too).

The child is `python -m backend.worker_child` (the frozen app: `sinkvis --sinkvis-worker`),
not multiprocessing's spawn: spawn re-imports the caller's main module, so a plain script
using the Api without `if __name__ == "__main__":` would start its work again in every
worker (issue 31). Windows has no socketpair to hand over: there it is spawn.
Sweeps' local workers are Workers too (backend/sweep/local.py): one mechanism.

    w = Worker(init, init_args)                     # starts now; init runs first, in the child
    out = w.call(fn, *args, on_progress=f, should_stop=g)   # fn: a module-level function
    w.kill()                                        # or w.close(): let it exit

In the child, fn reports with workers.report(payload) (→ on_progress(payload) here). A
UserError raised by fn arrives as a UserError with its code, message and field; one
sent by fail(..., stuck=True) (a stuck rule, from a watchdog thread while fn still runs)
also kills the child, since fn will never answer. Any other exception arrives as WorkerDied
with its one line ("Type: message"); its traceback goes to the log. A child whose parent died exits.
"""
import atexit
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import weakref
from multiprocessing.connection import Connection
from pathlib import Path

from .errors import Cancelled, UserError

log = logging.getLogger("sinkvis")
POLL_SECONDS = 0.05   # how often a waiting caller looks at Cancel (the issue asks for ≤ 1 s)
_CONTEXT = multiprocessing.get_context("spawn")

# Child side: the pipe to the parent, once this process is a worker.
_conn = None
_contained = False  # a sweep's Ray actor: killed on Cancel (ray_runner.py), but no pipe of ours
_contained_call = None  # the actor's running call_contained: (done event, answer box)
_send_lock = threading.Lock()


def in_worker() -> bool:
    """True inside a worker process: user code runs right here (this process is the one Cancel kills)."""
    return _conn is not None or _contained


def can_fail_calls() -> bool:
    """True inside a Worker, or a Ray actor's call_contained, whose running call a watchdog can end with fail()."""
    return _conn is not None or _contained_call is not None


def mark_contained() -> None:
    """This process is a sweep's Ray actor, which Cancel kills: run user rules right here."""
    global _contained
    _contained = True


def _send(message) -> None:
    with _send_lock:
        _conn.send(message)


def report(payload) -> None:
    """From the call running in this worker: progress for the caller's on_progress."""
    if _conn is not None:
        _send(("progress", payload))


def fail(error: UserError, stuck: bool = False) -> None:
    """Answer the running call with an error from another thread (a watchdog); stuck: the call
    itself will never return, so the caller kills this process."""
    call = _contained_call
    if _conn is None and call is not None:  # a Ray actor: call_contained raises it; the driver kills the actor
        call[1]["error"] = error
        call[0].set()
        return
    _send(("error", error.code, error.message, error.field, stuck))


def call_contained(fn, *args):
    """A Ray actor's call (ray_runner.py): fn runs on a thread, so that a watchdog's fail() can answer
    for a user rule stuck in compiled code (the thread stays stuck until the driver kills the actor)."""
    global _contained_call
    done, box = threading.Event(), {}

    def run():
        try:
            box["out"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - raised below, in the actor's own thread
            box.setdefault("error", exc)
        finally:
            done.set()

    _contained_call = (done, box)
    try:
        threading.Thread(target=run, name="sweep task", daemon=True).start()
        done.wait()
    finally:
        _contained_call = None
    if "error" in box:
        raise box["error"]
    return box["out"]


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:  # reparented: the app died without killing us (e.g. SIGKILL)
        time.sleep(1.0)
    os._exit(1)


def _serve(conn, parent: int, init, init_args) -> None:
    global _conn
    _conn = conn
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    broken = None
    try:
        if init is not None:
            init(*init_args)
    except UserError as exc:
        broken = ("error", exc.code, exc.message, exc.field, False)
    except BaseException as exc:  # noqa: BLE001 - every call will say so
        broken = ("crash", f"{type(exc).__name__}: {str(exc)[:500]}", traceback.format_exc(limit=8)[-3000:])
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):  # the parent closed the pipe: nothing more to do
            return
        if broken is not None:
            _send(broken)
            continue
        try:
            out = ("done", fn(*args))
        except UserError as exc:
            out = ("error", exc.code, exc.message, exc.field, False)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            out = ("crash", f"{type(exc).__name__}: {str(exc)[:500]}", traceback.format_exc(limit=8)[-3000:])
        _send(out)


class WorkerDied(RuntimeError):
    pass


def child_main(fd: int) -> None:
    """The child's side of the handshake (backend/worker_child.py): the parent's authkey (torch
    shares tensors through multiprocessing's resource sharer, which checks it), its sys.path (the
    functions it sends are imported by name), then the init to run; then serve calls."""
    conn = Connection(fd)
    multiprocessing.current_process().authkey = conn.recv_bytes()
    sys.path[:] = conn.recv()
    parent, init, init_args = conn.recv()
    _serve(conn, parent, init, init_args)


_ROOT = str(Path(__file__).resolve().parents[1])
_live: "weakref.WeakSet[Worker]" = weakref.WeakSet()


def _command(fd: int) -> list:
    if getattr(sys, "frozen", False):  # main.py hands this argument to child_main
        return [sys.executable, "--sinkvis-worker", str(fd)]
    return [sys.executable, "-m", "backend.worker_child", str(fd)]


class _Child:
    """A worker interpreter started as a command, in its own process group (kill takes the group)."""

    def __init__(self, init, init_args):
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (_ROOT, os.environ.get("PYTHONPATH"))))}
        try:
            self.popen = subprocess.Popen(_command(theirs.fileno()), pass_fds=(theirs.fileno(),), env=env,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send_bytes(bytes(multiprocessing.current_process().authkey))
        self.conn.send(sys.path)
        self.conn.send((os.getpid(), init, init_args))
        self.pid = self.popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def exitcode(self):
        return self.popen.poll()

    def kill(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # the group: what the user's code started goes too
        except (ProcessLookupError, PermissionError):
            pass

    def join(self, timeout=None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass


class _Spawned:
    """Windows: multiprocessing's spawn (no socketpair to hand over)."""

    def __init__(self, init, init_args):
        self.conn, child = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(target=_serve, args=(child, os.getpid(), init, init_args), daemon=True,
                                        name="sinkvis-worker")
        self.process.start()
        child.close()
        self.pid = self.process.pid

    def is_alive(self) -> bool:
        return self.process.is_alive()

    @property
    def exitcode(self):
        return self.process.exitcode

    def kill(self) -> None:
        self.process.kill()

    def join(self, timeout=None) -> None:
        self.process.join(timeout)


@atexit.register
def _kill_all() -> None:
    """The app exits: its workers (and what they started) go with it."""
    for worker in list(_live):
        worker.process.kill()


class Worker:
    def __init__(self, init=None, init_args=()):
        self.process = (_Spawned if os.name == "nt" else _Child)(init, init_args)
        self._conn = self.process.conn
        _live.add(self)
        self.busy = False  # a call was sent and has not answered: the child's state is unknown
        self.tag = None    # what the owner keeps it for (backend/usercode/pool.py: the file's key)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def call(self, fn, *args, on_progress=None, should_stop=None):
        """fn(*args) in the child; should_stop() (or raising from it) kills the child and raises Cancelled."""
        if not self.alive:
            raise WorkerDied("the worker process has exited")
        self.busy = True
        try:
            self._conn.send((fn, args))
            while True:
                if should_stop is not None and should_stop():
                    raise Cancelled()
                if not self._conn.poll(POLL_SECONDS):
                    if not self.alive:
                        raise WorkerDied(f"the worker process ended (exit code {self.process.exitcode})")
                    continue
                message = self._conn.recv()
                kind = message[0]
                if kind == "progress":
                    if on_progress is not None:
                        on_progress(message[1])
                    continue
                if kind == "done":
                    self.busy = False
                    return message[1]
                if kind == "error":
                    _, code, text, field, stuck = message
                    self.busy = bool(stuck)  # a stuck call never ends: the child is killed below
                    raise UserError(code, text, field)
                self.busy = False
                # the error's one line is the message; its traceback is for the log, not the UI
                log.info("a worker call failed: %s\n%s", message[1], message[2])
                raise WorkerDied(f"the worker failed: {message[1]}")
        except (EOFError, OSError) as exc:
            raise WorkerDied(f"the worker process ended ({exc})") from None
        finally:
            if self.busy:
                self.kill()  # cut short mid-call: nothing in the child can be trusted any more

    def kill(self) -> None:
        """Now, whatever the child is doing; its pipe closes and the process is reaped."""
        self.process.kill()
        self.process.join(5)
        self._conn.close()
        self.busy = False

    def close(self, timeout: float = 5.0) -> None:
        """Let an idle child exit on its own (end of its pipe), killing it if it does not."""
        if self.busy:
            return self.kill()
        self._conn.close()
        self.process.join(timeout)
        if self.process.is_alive():
            self.kill()
