"""Unpack the app once into <cache>/sinkvis/app/<hash>, safely, and reuse it afterwards.

- The folder is named by the first 16 hex digits of the payload's SHA-256 (computed at build
  time), so a changed build gets a new folder; it holds a marker listing every file and its size,
  written last. A later start checks the marker's hash and every size (a stat per file, ~10 ms):
  a folder someone emptied or partly deleted is unpacked again.
- Unpacking goes to <hash>.partial-<pid> and is renamed to <hash> when complete, so an
  interrupted start (killed, power loss, full disk) never leaves a folder that looks complete;
  the next start removes the leftover and starts over.
- <hash>.lock (exclusive, while unpacking) makes a second copy started at the same time wait
  for the first and then use its folder. <hash>.inuse is held shared by every running copy
  (the lock is inherited by the app through exec), so cleaning up an old build's folder, done
  after a new build is installed, skips builds that are still running.
- Before unpacking, the free space is checked against the unpacked size; a write that fails
  anyway (ENOSPC) removes the partial folder and says how much is needed.
"""
import errno
import json
import os
import re
import shutil
from pathlib import Path

from launcher import payload

MARKER = ".sinkvis-install.json"
BUILD_NAME = re.compile(r"^[0-9a-f]{16}$")
SPACE_MARGIN = 64 << 20


class InstallError(Exception):
    """The app could not be unpacked; the message says what to change."""


def cache_root() -> Path:
    """$SINKVIS_APP_DIR, else <XDG_CACHE_HOME or ~/.cache>/sinkvis/app (next to the models and Numba caches)."""
    if os.environ.get("SINKVIS_APP_DIR"):
        return Path(os.environ["SINKVIS_APP_DIR"]).absolute()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sinkvis" / "app"


# --- locks: flock on POSIX (shared and exclusive); on Windows msvcrt's exclusive byte lock ----------
if os.name == "nt":
    import msvcrt
    import time

    def _flock(fd: int, exclusive: bool, wait: bool) -> bool:
        if not exclusive:
            return True  # no shared locks: a running build's folder is kept by Windows refusing to rename it
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not wait:
                    return False
                time.sleep(0.1)
else:
    import fcntl

    def _flock(fd: int, exclusive: bool, wait: bool) -> bool:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            return False


def _lock_file(path: Path, exclusive: bool, wait: bool = True):
    """An open descriptor holding the lock on `path`, or None (wait=False and someone holds it)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if _flock(fd, exclusive, wait):
        return fd
    os.close(fd)
    return None


def hold_in_use(root: Path, digest: str) -> int:
    """Mark this build as running (shared lock on <hash>.inuse); returns the descriptor to keep open."""
    root.mkdir(parents=True, exist_ok=True)
    return _lock_file(root / f"{digest[:16]}.inuse", exclusive=False)


def is_installed(folder: Path, digest: str) -> bool:
    """Whether `folder` holds this build completely: marker with the same hash, every file at its size."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        if marker.get("sha256") != digest:
            return False
        return all(os.lstat(folder / name).st_size == size for name, size in marker["files"].items())
    except (OSError, ValueError, KeyError, AttributeError):
        return False


def _remove(path: Path) -> bool:
    """Delete a folder (or a leftover file), renaming it first so a half-deleted folder is never mistaken."""
    if not path.exists() and not path.is_symlink():
        return False
    trash = path.with_name(f"{path.name}.trash-{os.getpid()}") if ".trash-" not in path.name else path
    try:
        os.rename(path, trash)
    except OSError:
        return False  # Windows: files inside are in use
    if trash.is_dir() and not trash.is_symlink():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink(missing_ok=True)
    return True


def _check_space(root: Path, needed: int) -> None:
    free = shutil.disk_usage(root).free
    if free < needed + SPACE_MARGIN:
        raise InstallError(f"not enough free space in {root} to unpack SinkVis: it needs {needed / 1e6:.0f} MB, "
                           f"{free / 1e6:.0f} MB are free. Free some space there, or set SINKVIS_APP_DIR to a "
                           f"folder on a disk with more room.")


def install(open_zip, digest: str, unpacked_bytes: int, root: Path, progress=None) -> tuple:
    """(folder, unpacked): the folder holding this build, unpacked now (True) or found ready (False).

    open_zip() returns a new file object over the payload zip (see payload.extract)."""
    root.mkdir(parents=True, exist_ok=True)
    name = digest[:16]
    final = root / name
    if is_installed(final, digest):
        return final, False
    lock = _lock_file(root / f"{name}.lock", exclusive=True)  # a copy started at the same time waits here
    try:
        if is_installed(final, digest):  # the other copy unpacked it while we waited
            return final, False
        for leftover in root.glob(f"{name}.*-*"):  # interrupted starts of this build (.partial-, .trash-)
            _remove(leftover)
        _check_space(root, unpacked_bytes)
        partial = root / f"{name}.partial-{os.getpid()}"
        try:
            files = payload.extract(open_zip, partial, progress=progress)
            (partial / MARKER).write_text(json.dumps({"sha256": digest, "files": files}), encoding="utf-8")
            _remove(final)  # an incomplete or damaged one
            os.rename(partial, final)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if exc.errno == errno.ENOSPC:
                raise InstallError(f"the disk holding {root} filled up while unpacking SinkVis "
                                   f"({unpacked_bytes / 1e6:.0f} MB). Free some space, or set SINKVIS_APP_DIR.") from exc
            raise
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return final, True
    finally:
        os.close(lock)


def remove_old_builds(root: Path, keep: str) -> list:
    """Delete the folders of other builds that no running copy holds; returns the names removed."""
    removed = []
    for entry in sorted(root.iterdir()):
        build = entry.name.split(".", 1)[0]
        if not BUILD_NAME.match(build) or build == keep[:16] or entry.suffix in {".lock", ".inuse"}:
            continue
        in_use = _lock_file(root / f"{build}.inuse", exclusive=True, wait=False)
        if in_use is None:
            continue  # that build is running
        try:
            if _remove(entry):
                removed.append(entry.name)
        finally:
            os.close(in_use)
    for stale in root.glob("*.lock"):  # lock files of builds whose folder is gone
        build = stale.stem
        if BUILD_NAME.match(build) and build != keep[:16] and not (root / build).exists():
            for suffix in (".lock", ".inuse"):
                (root / f"{build}{suffix}").unlink(missing_ok=True)
    return removed
