"""Bounded reads of files that come from a model folder (a download, a folder the user picked).

A model folder is untrusted input: `config.json` can be a symlink to /dev/zero, a FIFO
that never ends, a directory, or a 10 GB file. Reading one with `Path.read_text()`
grows memory until the OOM killer comes (issue #13: 2.5 GB in 6 s). Every reader of a
model-folder file goes through here instead:

    from backend.safe_read import read_json, read_bytes, open_regular, check_folder_files, LIMITS

    config = read_json(folder / "config.json", "config")          # dict/list, or FileRefused
    data = read_bytes(folder / "merges.txt", "tokenizer")          # bytes ≤ LIMITS["tokenizer"]
    with open_regular(folder / "m.gguf", "weights") as f:         # a checked binary file object:
        magic = f.read(4)                                          # the caller bounds its own reads
    check_folder_files(folder)   # before handing a folder to transformers: every file it may read
                                 # (configs, tokenizer files, weights) is a regular file within its limit

Rules: the path (symlinks followed — the HF cache is made of them) must end at a
regular file; FIFOs, sockets, devices and directories are refused without blocking
(opened O_NONBLOCK, checked with fstat on the open descriptor, so what we check is
what we read); the size must be within the kind's limit, and the read itself stops at
limit + 1 bytes, so a file that grows (or a /proc file that lies about its size) is
refused too. Failures raise FileRefused (a UserError, code "bad_file", field
"source"), whose message names the file and says why, and whose `reason` is one of
missing, permission, not_regular, too_large, unopenable, not_text, not_json. It is neither an OSError nor a
ValueError: callers that used to catch those must catch FileRefused too.
"""
import json
import os
import stat
from pathlib import Path

from .errors import UserError

MiB = 1024 * 1024
# Per kind of file, the largest we accept. Generous for real models (Gemma 3's tokenizer.json is
# 33 MB, the largest config.json on the Hub are ~100 KB), tiny against memory.
LIMITS = {
    "config": 4 * MiB,            # config.json, generation_config.json
    "json": 32 * MiB,             # tokenizer_config.json, special_tokens_map.json, added_tokens.json
    "tokenizer": 128 * MiB,       # tokenizer.json, tokenizer.model, vocab.*, merges.txt
    "gguf_header": 256 * MiB,     # a GGUF file's metadata (vocabulary included); tensors are read elsewhere
    "weights": None,              # size checked against the config (backend/models/config_check.py)
    "results": 256 * MiB,         # a sweep's JSON Lines results file (~1 KB a cell: 250,000 cells)
}
# Files transformers reads from a model folder, by kind (anything else in the folder is left alone).
FOLDER_FILES = {
    "config.json": "config", "generation_config.json": "config",
    "tokenizer_config.json": "json", "special_tokens_map.json": "json", "added_tokens.json": "json",
    "chat_template.json": "json", "chat_template.jinja": "json", "preprocessor_config.json": "json",
    "tokenizer.json": "tokenizer", "tokenizer.model": "tokenizer", "vocab.json": "tokenizer",
    "vocab.txt": "tokenizer", "merges.txt": "tokenizer", "spiece.model": "tokenizer",
    "sentencepiece.bpe.model": "tokenizer",
    "model.safetensors.index.json": "json", "pytorch_model.bin.index.json": "json",
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


class FileRefused(UserError):
    """A model-folder file that is not a regular file, or larger than its kind allows."""

    def __init__(self, path, why: str, reason: str, field: str = "source"):
        super().__init__("bad_file", f"{Path(path).name[:120]} in the model folder {why}; "
                         "re-download the model or fix the folder.", field)
        self.path = str(path)
        self.why = why        # "is a pipe, not a regular file", …: for callers that word the message for another file
        self.reason = reason  # missing | permission | not_regular | too_large | unopenable | not_text | not_json


def _limit(kind: str) -> int | None:
    if kind not in LIMITS:
        raise ValueError(f"unknown file kind {kind!r}; one of {sorted(LIMITS)}")
    return LIMITS[kind]


def _open_fd(path) -> int:
    """An fd on a regular file (symlinks followed), or FileRefused. Never blocks on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileRefused(path, "is missing (or is a broken link)", "missing") from None
    except PermissionError:
        raise FileRefused(path, "cannot be read (no permission)", "permission") from None
    except IsADirectoryError:
        raise FileRefused(path, "is a folder, not a file", "not_regular") from None
    except OSError as exc:  # a symlink loop (ELOOP), a name too long, an I/O error…
        raise FileRefused(path, f"cannot be opened ({exc.strerror or type(exc).__name__})", "unopenable") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = ("a folder" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "special")
        raise FileRefused(path, f"is {what}, not a regular file", "not_regular")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)  # regular files never block; undo O_NONBLOCK for ordinary reads
    return fd


def check_regular(path, kind: str) -> int:
    """Raise FileRefused unless `path` is a regular file within LIMITS[kind]; return its size."""
    fd = _open_fd(path)
    try:
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    _check_size(path, size, _limit(kind))
    return size


def _check_size(path, size: int, limit: int | None) -> None:
    if limit is not None and size > limit:
        raise FileRefused(path, f"is {size / MiB:,.1f} MiB, over the {limit // MiB} MiB a file of this kind may be", "too_large")


def open_regular(path, kind: str = "weights"):
    """A binary file object on a checked regular file. Its size is checked against the kind's limit;
    the caller bounds its own reads (a GGUF reader reads the header piece by piece)."""
    fd = _open_fd(path)
    try:
        _check_size(path, os.fstat(fd).st_size, _limit(kind))
    except FileRefused:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_bytes(path, kind: str) -> bytes:
    """The whole file, at most LIMITS[kind] bytes (more → FileRefused, without reading the rest)."""
    limit = _limit(kind)
    with open_regular(path, kind) as f:
        data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise FileRefused(path, f"is over the {limit // MiB} MiB a file of this kind may be (it grew while read)", "too_large")
    return data


def read_text(path, kind: str) -> str:
    try:
        return read_bytes(path, kind).decode("utf-8")
    except UnicodeDecodeError:
        raise FileRefused(path, "is not UTF-8 text", "not_text") from None


def read_json(path, kind: str = "config"):
    """Parsed JSON (any type: the caller checks it is the object it wants). Bad JSON → FileRefused."""
    try:
        return json.loads(read_text(path, kind))
    except json.JSONDecodeError as exc:
        raise FileRefused(path, f"is not valid JSON ({exc.msg} at line {exc.lineno})", "not_json") from None
    except RecursionError:
        raise FileRefused(path, "is JSON nested too deeply", "not_json") from None


def check_folder_files(folder) -> None:
    """Before transformers opens a model folder: every file it may read there is a regular file within
    its limit. Configs and tokenizer files by name (LIMITS by kind), weights by suffix (regular only)."""
    folder = Path(folder)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise FileRefused(folder, f"cannot be listed ({exc.strerror or type(exc).__name__})", "unopenable") from None
    for entry in entries:
        kind = FOLDER_FILES.get(entry.name)
        if kind is None and entry.name.endswith(_WEIGHT_SUFFIXES):
            kind = "weights"
        if kind is not None:
            check_regular(folder / entry.name, kind)
