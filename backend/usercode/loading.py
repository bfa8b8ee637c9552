"""Loading a user's file: read it here, run it in a worker process, get back a description.

A file's module-level code is the user's code like any other: it may loop forever, call
sys.exit or os._exit. So the app never runs it itself: load_in_worker() sends each file's
text to a worker process (backend/workers.py), which runs it (run_module) and calls the
caller's `describe(module, source, file)` there; only what describe returns comes back.
A file that does not finish within LOAD_SECONDS, or that ends its process, is a
PolicyFileError naming it, and the files after it still load (in a fresh worker).
"""
import hashlib
import linecache
import os
import time
import types
from pathlib import Path

from ..errors import Cancelled, UserError
from ..workers import Worker, WorkerDied, report
from .errors import PolicyFileError, line_in, received

MAX_FILE_BYTES = 256_000
LOAD_SECONDS = 30.0   # a file's module-level code: imports torch at most; SINKVIS_LOAD_LIMIT overrides
LOAD_ENV = "SINKVIS_LOAD_LIMIT"


def read_file(path) -> tuple[str, str]:
    """(absolute path, text) of a policy file; a named error when it cannot be read."""
    file = str(path)
    try:
        p = Path(path).expanduser()
        file = str(p.resolve()) if p.exists() else str(p)
        if not p.exists():
            raise PolicyFileError("not_found", file, None, "no such file.")
        if not p.is_file():  # a FIFO would block the read for good; a device, a folder: not a policy
            raise PolicyFileError("bad_file", file, None, "not a regular file (a policy file is a plain .py file).")
        if p.suffix != ".py":
            raise PolicyFileError("bad_file", file, None, "a policy file is a Python file ending in .py.")
        if p.stat().st_size > MAX_FILE_BYTES:
            raise PolicyFileError("bad_file", file, None, f"larger than {MAX_FILE_BYTES:,} bytes; a policy is a small file.")
        return file, p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # a name too long, no permission, not UTF-8
        raise PolicyFileError("bad_file", file[:300], None, f"cannot be read as UTF-8 text ({exc}).") from None


def run_module(source: str, file: str) -> types.ModuleType:
    """Run a file's text as a module, in this process (a worker's: see load_in_worker)."""
    try:
        code = compile(source, file, "exec")
    except SyntaxError as exc:
        raise PolicyFileError("syntax_error", file, exc.lineno, f"syntax error: {exc.msg}.") from None
    # Numba and tracebacks read the source through linecache: make this text the one they see.
    linecache.cache[file] = (len(source), None, source.splitlines(keepends=True), file)
    module = types.ModuleType("sinkvis_policy_" + hashlib.sha1(file.encode()).hexdigest()[:12])
    module.__file__ = file
    try:
        exec(code, module.__dict__)  # noqa: S102 - the point of a policy file; trusted by the caller
    except BaseException as exc:  # noqa: BLE001 - sys.exit included: any way out of the user's module is theirs to fix
        raise PolicyFileError("import_error", file, line_in(exc.__traceback__, file),
                              f"running the file raised {type(exc).__name__}: {str(exc)[:200]}") from None
    report("ran")  # the module-level code is done (load_in_worker's deadline ends; compiling may take longer)
    return module


def load_limit() -> float:
    try:
        return max(0.1, float(os.environ.get(LOAD_ENV, LOAD_SECONDS)))
    except ValueError:
        return LOAD_SECONDS


def load_in_worker(entries, describe) -> list:
    """entries: [(file, source)] → for each, what describe(source, file) returned in a worker, or its
    PolicyFileError (not raised: one bad file never stops the others). describe is a module-level
    function (it crosses the pipe by name) that runs the file (run_module) and describes it;
    whatever it sends back must pickle and hold no user code."""
    out, worker, limit = [], None, load_limit()
    try:
        for file, source in entries:
            if worker is None or not worker.alive:
                worker = Worker()
                worker.call(int)  # started: the deadline counts the file's code, not the interpreter's start
            deadline = [time.monotonic() + limit]
            try:
                out.append(received(worker.call(_describe, describe, source, file,
                                                on_progress=lambda _: deadline.__setitem__(0, float("inf")),
                                                should_stop=lambda: time.monotonic() > deadline[0])))
            except PolicyFileError as exc:
                out.append(exc)
            except Cancelled:  # the deadline passed: the worker was killed
                out.append(PolicyFileError("load_timeout", file, None,
                                           f"running the file did not finish within {limit:g} s ({LOAD_ENV}); "
                                           "look for a loop that never ends at module level."))
            except (WorkerDied, UserError) as exc:
                out.append(PolicyFileError("load_crashed", file, None,
                                           f"running the file ended its process ({exc}); a policy file must not "
                                           "exit (sys.exit, os._exit) or crash the interpreter."))
    finally:
        if worker is not None:
            worker.close()
    return out


def _describe(describe, source: str, file: str):
    """In the worker: describe's answer, or its PolicyFileError in a form that pickles."""
    try:
        return describe(source, file)
    except PolicyFileError as exc:
        return exc.shipped()
    except BaseException as exc:  # noqa: BLE001 - describe read the user's module: an odd one is the file's mistake
        return PolicyFileError("bad_declaration", file, line_in(exc.__traceback__, file),
                               f"reading the file's names raised {type(exc).__name__}: {str(exc)[:200]}").shipped()
