"""The four tiers (top to bottom: GPU HBM, GPU L2, system RAM, disk) and their two presets.

Bandwidths are public specs (../shared/DESIGN.md): H200 HBM3e 4.8 TB/s, H100 HBM3
3.35 TB/s, PCIe 5 x16 about 64 GB/s each way (how a GPU reads host RAM), NVMe Gen4
about 7 GB/s. GPU L2 is a *modelled* tier: no real system pages KV blocks into L2.
Its capacity is the GPU's L2 size (50 MiB on an H100 when there is no GPU) and its
bandwidth is modelled as 2× HBM (there is no public spec; microbenchmarks of Hopper
put L2 at a few times HBM). The order follows the design: sinks are pinned to the
top tier, HBM, and L2 sits between HBM and the host as a hypothetical cache level.
"""
import functools
import math
import shutil
from pathlib import Path

import psutil

TIER_IDS = ("hbm", "l2", "ram", "disk")
TIER_NAMES = ("GPU HBM", "GPU L2 (modelled)", "System RAM", "Disk")
L2_NOTE = "GPU L2 is a modelled tier: no real system pages KV blocks into L2."

TB, GB, MIB = 1e12, 1e9, 1 << 20
HBM_BANDWIDTH = {"H200": 4.8 * TB, "H100": 3.35 * TB}
PCIE5_X16 = 64 * GB
NVME_GEN4 = 7 * GB
L2_SPEEDUP = 2.0
MODELLED_GPU = {"name": "H100 80GB (modelled: no GPU here)", "memory": 80 * GB, "l2": 50 * MIB,
                "bandwidth": HBM_BANDWIDTH["H100"], "modelled": True}
# "constrained": shares of the sequence's KV bytes, so HBM, L2 and RAM all fill and
# the rest spills to disk, which is roomy (a longer sequence than planned still runs).
CONSTRAINED_SHARE = {"hbm": 0.20, "l2": 0.05, "ram": 0.25}
CONSTRAINED_DISK_MIN = 1 * TB


@functools.lru_cache(maxsize=1)
def gpu() -> dict:
    """This machine's first CUDA GPU, or an H100 80GB marked modelled. torch is imported only here."""
    try:
        import torch

        if not torch.cuda.is_available():
            return dict(MODELLED_GPU)
        props = torch.cuda.get_device_properties(0)
    except Exception:  # noqa: BLE001 - no usable torch/CUDA: the GPU tiers are modelled
        return dict(MODELLED_GPU)
    name = props.name
    bandwidth = next((bw for key, bw in HBM_BANDWIDTH.items() if key in name.upper()), None)
    return {"name": name if bandwidth else f"{name} (bandwidth modelled as H100's)",
            "memory": int(props.total_memory), "l2": int(getattr(props, "L2_cache_size", 0) or 50 * MIB),
            "bandwidth": bandwidth or HBM_BANDWIDTH["H100"], "modelled": False}


def _tiers(capacities, g, measured=None) -> list[dict]:
    """The four tiers. `measured` (backend/profile/hardware.py) replaces a spec where it measures the same
    thing: disk read for the disk tier, pinned host→GPU copy for the RAM tier (how a GPU reads host RAM)."""
    m = measured or {}
    bandwidths = [g["bandwidth"], g["bandwidth"] * L2_SPEEDUP, PCIE5_X16, NVME_GEN4]
    notes = [g["name"], L2_NOTE, "read by the GPU over PCIe 5 x16 (public spec)", "NVMe Gen4 (public spec)"]
    modelled = [g["modelled"], True, True, True]
    measured_at = [None] * 4
    if m.get("host_to_device_bps"):
        bandwidths[2], notes[2], modelled[2] = m["host_to_device_bps"], f"host→{m.get('device')} copy, measured", False
        measured_at[2] = m["measured_at"]
    if m.get("disk_read_bps"):
        bandwidths[3], notes[3], modelled[3] = m["disk_read_bps"], f"disk read, measured ({m.get('disk_method')})", False
        measured_at[3] = m["measured_at"]
    return [{"id": i, "name": n, "capacity_bytes": int(c), "bandwidth_bps": float(bw), "note": note,
             "modelled": mod, "measured_at": at}
            for i, n, c, bw, note, mod, at in zip(TIER_IDS, TIER_NAMES, capacities, bandwidths, notes, modelled,
                                                   measured_at)]


def gpu_note() -> str:
    """What the panel says about the GPU tiers, in words."""
    g = gpu()
    if g["modelled"]:
        return "No GPU found on this machine: GPU HBM and L2 are modelled as an NVIDIA H100 80GB (public specs)."
    return f"GPU found: {g['name']}; HBM bandwidth from its public spec, L2 modelled."


def detected(weights_bytes: int = 0, measured: dict | None = None) -> dict:
    """This machine; the loaded model's weights take their share of HBM first."""
    g = gpu()
    ram = psutil.virtual_memory().available
    disk = shutil.disk_usage(Path.home()).free
    hbm = max(0, g["memory"] - weights_bytes)
    weights = f" minus {weights_bytes / 2**30:.2f} GiB of weights" if weights_bytes else ""  # binary, as the UI shows sizes
    return {"name": "detected", "label": "Detected hardware",
            "description": f"{g['name']}{weights}; available RAM; free disk space"
                           + (" (no GPU found: GPU tiers modelled)" if g["modelled"] else ""),
            "gpu_note": gpu_note(), "tiers": _tiers((hbm, g["l2"], ram, disk), g, measured)}


def constrained(n_blocks: int, block_bytes: int, min_hbm_blocks: int = 2) -> dict:
    """Whole blocks: HBM at least min_hbm_blocks (the sink blocks plus one)."""
    blocks = [math.ceil(n_blocks * CONSTRAINED_SHARE[i]) for i in ("hbm", "l2", "ram")]
    blocks[0] = max(blocks[0], min_hbm_blocks)
    caps = [b * block_bytes for b in blocks] + [max(CONSTRAINED_DISK_MIN, 2 * n_blocks * block_bytes)]
    return {"name": "constrained", "label": "Constrained",
            "description": "HBM 20%, L2 5%, RAM 25% of this sequence's KV; the rest spills to disk",
            "tiers": _tiers(caps, gpu())}


def preset(name: str, n_blocks: int, block_bytes: int, min_hbm_blocks: int = 2, weights_bytes: int = 0) -> dict:
    if name == "detected":
        from . import hardware

        return detected(weights_bytes, hardware.cached())
    return constrained(n_blocks, block_bytes, min_hbm_blocks)
