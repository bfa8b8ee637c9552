"""Will a model fit? parameters × bytes per element × ~1.2 against what the device has free.

The 1.2 covers the runtime's own buffers, activations of a short prompt and the KV
cache of a few thousand tokens; it is an estimate to warn early, not a guarantee.
torch is imported only for a GPU choice: the CPU answer comes from psutil alone.
"""
import psutil

from ..errors import UserError

OVERHEAD = 1.2
TIGHT = 0.7  # above this share of free memory the OS (or other tabs) may push it over
_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
_DTYPE_TO_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def _device_and_bytes(device: str, precision: str) -> tuple[str, int, str | None]:
    """(resolved device, bytes per element, reason it cannot run or None)."""
    if device == "cpu":
        return "cpu", _BYTES["fp32" if precision == "auto" else precision], None
    from ..models.devices import resolve_device, resolve_precision  # imports torch

    try:
        resolved = resolve_device(device)
        dtype = resolve_precision(precision, resolved)
    except UserError as exc:
        return device, _BYTES.get(precision, 2), exc.message
    return resolved, _BYTES[_DTYPE_TO_PRECISION[dtype]], None


def _free_bytes(device: str) -> int:
    if device == "cuda":
        from ..models.devices import free_memory_bytes

        return free_memory_bytes("cuda")
    return int(psutil.virtual_memory().available)  # CPU, and MPS shares system memory


def estimate_memory(parameters: int | None, device: str = "auto", precision: str = "auto") -> dict:
    resolved, per_element, reason = _device_and_bytes(device, precision)
    out = {"device": resolved, "bytes_per_element": per_element}
    if reason:
        return {**out, "needed_bytes": None, "available_bytes": None, "verdict": "will_not_fit", "reason": reason}
    available = _free_bytes(resolved)
    if not parameters:
        return {**out, "needed_bytes": None, "available_bytes": available, "verdict": None,
                "reason": "The Hub does not give this model's parameter count."}
    needed = int(parameters * per_element * OVERHEAD)
    # The parts of the need, so the UI can say why it is more than the weights.
    return {**out, "weights_bytes": parameters * per_element, "overhead": OVERHEAD, "needed_bytes": needed,
            "available_bytes": available, "verdict": verdict(needed, available)}


def verdict(needed: int, available: int) -> str:
    return "will_not_fit" if needed > available else "tight" if needed > TIGHT * available else "fits"
