"""Which devices and precisions this machine can run, and the Auto choices.

Auto device = CUDA > MPS > CPU. Auto precision = fp16 on a GPU, fp32 on the CPU
(CPU fp16 matmuls are slow or unsupported; bf16 needs Ampere+ on CUDA).
"""
import psutil

from ..errors import UserError

PRECISIONS = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
BYTES_PER_ELEMENT = {"float16": 2, "bfloat16": 2, "float32": 4}


def available_devices() -> list[dict]:
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    devices = [{"id": "auto", "label": "Auto (CUDA > MPS > CPU)", "available": True, "resolves_to": resolve_device("auto")}]
    cuda_entry = {"id": "cuda", "label": "CUDA", "available": cuda}
    if cuda:
        cuda_entry["label"] = f"CUDA ({torch.cuda.get_device_name(0)})"
        cuda_entry["memory_bytes"] = torch.cuda.get_device_properties(0).total_memory
    else:
        cuda_entry["reason"] = "No CUDA GPU found (or this torch build has no CUDA)."
    mps_entry = {"id": "mps", "label": "Apple Silicon (MPS)", "available": mps}
    if not mps:
        mps_entry["reason"] = "MPS needs an Apple Silicon Mac with a torch build that supports it."
    cpu_entry = {"id": "cpu", "label": "CPU", "available": True, "memory_bytes": psutil.virtual_memory().total}
    return devices + [cuda_entry, mps_entry, cpu_entry]


def resolve_device(choice: str) -> str:
    import torch

    if choice == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("device_unavailable", "CUDA is not available on this machine; pick Auto or CPU.", "device")
    if choice == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device_unavailable", "Apple Silicon (MPS) is not available here; pick Auto or CPU.", "device")
    if choice not in ("cuda", "mps", "cpu"):
        raise UserError("bad_input", "device must be auto, cuda, mps or cpu.", "device")
    return choice


def resolve_precision(choice: str, device: str) -> str:
    """Return a torch dtype name, or a clear error when the hardware cannot run it."""
    import torch

    if choice == "auto":
        return "float16" if device in ("cuda", "mps") else "float32"
    if choice not in PRECISIONS:
        raise UserError("bad_input", "precision must be auto, fp16, bf16 or fp32.", "precision")
    dtype = PRECISIONS[choice]
    if dtype == "bfloat16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("precision_unsupported", "This GPU cannot run bf16; pick fp16 or fp32.", "precision")
    if dtype == "bfloat16" and device == "mps":
        raise UserError("precision_unsupported", "bf16 on MPS needs macOS 14+ and is unreliable; pick fp16 or fp32.", "precision")
    return dtype


def free_memory_bytes(device: str) -> int:
    import torch

    if device == "cuda":
        free, _total = torch.cuda.mem_get_info()
        return int(free)
    return int(psutil.virtual_memory().available)  # CPU, and MPS shares system memory
