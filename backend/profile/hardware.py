"""Measure what this machine can measure: RAM read, disk read, and host→device copy bandwidth.

Once, on request, then cached with the date in ~/.cache/sinkvis/hardware.json
(SINKVIS_CACHE_DIR moves it). Small and quick: a 128 MiB array read a few times; a
256 MiB temporary file written, flushed, dropped from the page cache (posix_fadvise
DONTNEED, where the OS has it) and read back; a 128 MiB pinned tensor copied to the
GPU when CUDA or MPS is there. What cannot be measured (HBM and L2 bandwidth without
a GPU kernel, PCIe without a GPU) keeps its public spec and is marked modelled.
"""
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

RAM_BYTES = 128 << 20
DISK_BYTES = 256 << 20
COPY_BYTES = 128 << 20
CHUNK = 8 << 20


def cache_dir() -> Path:
    return Path(os.environ.get("SINKVIS_CACHE_DIR") or Path.home() / ".cache" / "sinkvis")


def cache_path() -> Path:
    return cache_dir() / "hardware.json"


def cached() -> dict | None:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and "measured_at" in data else None
    except (OSError, ValueError):
        return None


def measure() -> dict:
    """Run the measurements now and cache them."""
    out = {"measured_at": dt.datetime.now().isoformat(timespec="seconds"), "ram_read_bps": ram_read(),
           **disk_read(), **host_to_device()}
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        cache_path().write_text(json.dumps(out), encoding="utf-8")
    except OSError:
        out["note"] = "could not write the cache; measured again next time"
    return out


def ram_read() -> float:
    a = np.ones(RAM_BYTES // 8, np.float64)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - t0)
    return RAM_BYTES / best


def disk_read() -> dict:
    """Write a temporary file next to the cache (the disk the app uses), drop it from the page cache, read it back."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    block = np.random.default_rng(0).integers(0, 255, CHUNK, np.uint8).tobytes()
    fd, name = tempfile.mkstemp(prefix="disk-probe-", dir=cache_dir())
    try:
        with os.fdopen(fd, "wb") as f:
            for _ in range(DISK_BYTES // CHUNK):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        cold = hasattr(os, "posix_fadvise")
        with open(name, "rb", buffering=0) as f:
            if cold:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            t0 = time.perf_counter()
            while f.read(CHUNK):
                pass
            seconds = time.perf_counter() - t0
    finally:
        os.unlink(name)
    return {"disk_read_bps": DISK_BYTES / seconds,
            "disk_method": "cold read after dropping the file from the page cache" if cold
            else "read right after writing (this OS may serve it from the page cache: an upper bound)"}


def host_to_device() -> dict:
    """Pinned host → device copy, best of three, when CUDA or MPS is present."""
    try:
        import torch
    except ImportError:
        return {"host_to_device_bps": None, "device": None}
    if torch.cuda.is_available():
        dev, sync, pin = "cuda", torch.cuda.synchronize, True
        name = torch.cuda.get_device_name(0)
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        dev, sync, pin = "mps", torch.mps.synchronize, False
        name = "Apple GPU (MPS)"
    else:
        return {"host_to_device_bps": None, "device": None}
    host = torch.ones(COPY_BYTES // 4, dtype=torch.float32)
    if pin:
        host = host.pin_memory()
    best = float("inf")
    for _ in range(3):
        sync()
        t0 = time.perf_counter()
        x = host.to(dev, non_blocking=True)
        sync()
        best = min(best, time.perf_counter() - t0)
        del x
    return {"host_to_device_bps": COPY_BYTES / best, "device": name}
