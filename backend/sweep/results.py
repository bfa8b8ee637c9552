"""The results file: JSON Lines, one finished cell a line, appended as cells finish.

Only the driver writes it (workers and Ray tasks hand their rows back), under an
exclusive lock so two sweeps cannot interleave into one file. Reading keeps the first
row of each key and ignores a torn last line (a crash mid-write), so a resumed sweep
skips exactly the cells that are there and nothing is counted twice.
"""
import json
import os
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError

try:
    import fcntl
except ImportError:  # Windows: one sweep per file is then the user's business
    fcntl = None


def read_rows(path) -> list[dict]:
    """Every complete row, first one per key, in file order."""
    path = Path(path)
    if not path.exists():
        return []
    rows, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # a torn last line: that cell did not finish writing
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+", encoding="utf-8")
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
