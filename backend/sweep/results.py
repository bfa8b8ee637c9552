"""The results file: JSON Lines, one finished cell a line, appended as cells finish.

Only the driver writes it (workers and Ray tasks hand their rows back), under an
exclusive lock so two sweeps cannot interleave into one file. Reading keeps the first
row of each key and ignores a torn last line (a crash mid-write), so a resumed sweep
skips exactly the cells that are there and nothing is counted twice.

The file is named by the user (--out, the Api's `out`), so it gets the model files' rules
(backend/safe_read.py): a folder, a pipe, a device (/dev/zero), a file over LIMITS["results"],
one that is not UTF-8 text, or one that cannot be read or written is a named error on `out`,
never a traceback, a hang or unbounded memory.
"""
import json
import os
import stat
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from ..safe_read import LIMITS, FileRefused, open_regular

LIMIT = LIMITS["results"]

try:
    import fcntl
except ImportError:  # Windows: one sweep per file is then the user's business
    fcntl = None


def refused(path, why: str) -> UserError:
    return UserError("bad_file", f"The sweep results file {str(path)[:200]} {why}: give out a new file name ending in "
                     ".jsonl, or a results file of an earlier sweep.", "out")


def read_rows(path) -> list[dict]:
    """Every complete row, first one per key, in file order."""
    path = Path(path)
    if not os.path.lexists(path):
        return []
    try:
        f = open_regular(path, "results")  # never blocks on a pipe; a device or a folder is refused
    except FileRefused as exc:
        raise refused(path, exc.why) from None
    rows, seen = [], set()
    with f:
        data = f.read(LIMIT + 1)
    if len(data) > LIMIT:  # it grew while read
        raise refused(path, f"is over the {LIMIT >> 20} MiB a results file may be")
    try:  # only up to the last newline: a crash can tear the last line inside a character
        text = data[: data.rfind(b"\n") + 1].decode("utf-8")
    except UnicodeDecodeError:
        raise refused(path, "is not UTF-8 text (not a results file)") from None
    for line in text.split("\n")[:-1]:
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):  # a line that is not a row (nested too deeply included)
            continue
        key = row.get("key") if isinstance(row, dict) else None
        if isinstance(key, str) and key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


class ResultsWriter:
    """Appends rows, one flushed line each; refuses a key that is already in the file."""

    def __init__(self, path):
        self.path = Path(path)
        self.keys = {r["key"] for r in read_rows(self.path)}
        self._file = None

    def __enter__(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_NONBLOCK: a pipe created since read_rows checked must not hang the open; checked below.
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0), 0o644)
        except OSError as exc:
            raise refused(self.path, f"cannot be written ({exc.strerror or type(exc).__name__})") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise refused(self.path, "is not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        self._file = open(fd, "a+", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._file.close()
                raise UserError("busy", f"Another sweep is writing {self.path}; wait for it or pick another file.", "out") from None
        self._file.seek(0, os.SEEK_END)
        if self._file.tell():  # a torn last line would swallow our first row: end it
            self._file.seek(self._file.tell() - 1)
            last = self._file.read(1)
            self._file.seek(0, os.SEEK_END)
            if last != "\n":
                self._file.write("\n")
        return self

    def append(self, row: dict) -> bool:
        if row["key"] in self.keys:
            return False
        self._file.write(json.dumps(row, ensure_ascii=False, allow_nan=False, default=_plain) + "\n")
        self._file.flush()
        self.keys.add(row["key"])
        return True

    def __exit__(self, *exc):
        if self._file is not None:
            self._file.close()  # closing releases the lock


def _plain(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


@contextmanager
def writer(path):
    with ResultsWriter(path) as w:
        yield w
