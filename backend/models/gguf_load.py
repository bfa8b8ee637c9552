"""Load a GGUF model (a llama.cpp / LM Studio / Ollama file) through transformers' GGUF support.

transformers rebuilds the config and the tokenizer from the file's metadata and
dequantizes every tensor to the precision asked for (fp32 on the CPU, fp16 on a GPU):
the loaded model is an ordinary PyTorch model with eager attention, so everything
else in SinkVis works on it unchanged. Its memory is that of the *dequantized*
weights (SmolLM2's 98 MB Q4_1 file becomes 538 MB at fp32), and that is what the
fits / tight / will-not-fit check uses.

Before any of that, the header is read (backend/models/gguf.py: bounded, no tensor
data) to refuse a corrupt, truncated or unsupported file in milliseconds with a
named error, instead of after a long dequantization.
"""
from pathlib import Path

from ..errors import UserError
from .devices import BYTES_PER_ELEMENT, free_memory_bytes, resolve_device, resolve_precision
from .gguf import check_supported, read_header
from .loaded import LoadedModel
from .spec import config_spec, kv_bytes_per_token


def gguf_in_folder(folder: Path) -> Path | None:
    """The one .gguf file in a folder (None when there is none); several → the user must pick one."""
    try:
        found = sorted(p for p in folder.iterdir() if p.name.lower().endswith(".gguf") and p.is_file())
    except OSError:
        return None
    if len(found) > 1:
        names = ", ".join(p.name for p in found[:6]) + (" …" if len(found) > 6 else "")
        raise UserError("pick_gguf", f"{folder} holds {len(found)} GGUF files ({names}); pick one: give the file's path "
                        "instead of the folder (each is listed separately in the Local list).", "source")
    return found[0] if found else None


def load_gguf(file: Path, label: str, device: str, precision: str, report) -> LoadedModel:
    from .load import _load_tokenizer, _load_weights

    report(0.55, "Reading config")
    header = read_header(file)
    check_supported(header)
    header.check_complete()
    device = resolve_device(device)
    dtype_name = resolve_precision(precision, device)

    # The weights grow to parameters × the dequantized precision, whatever the file's size.
    needed = header.parameters * BYTES_PER_ELEMENT[dtype_name]
    free = free_memory_bytes(device)
    if needed > 0.9 * free:
        raise UserError("too_big", f"Dequantized to {dtype_name}, this GGUF ({header.quantization}, "
                        f"{header.size_bytes / 2**30:.1f} GiB on disk) needs about {needed / 2**30:.1f} GiB but {device} has "
                        f"{free / 2**30:.1f} GiB free; pick a lower precision, another device or a smaller model.", "source")

    # No separate AutoConfig call: it would parse the whole file once more (~5 s here) only to learn what
    # the header already said (the architecture); AutoModelForCausalLM builds the config itself.
    folder, name = file.parent, file.name
    report(0.6, "Loading tokenizer")
    tokenizer = _load_tokenizer(folder, False, gguf_file=name)
    report(0.7, "Loading weights", note=f"dequantizing {header.quantization} to {dtype_name}")
    model = _load_weights(folder, dtype_name, device, False, gguf_file=name)
    report(0.98, "Ready")

    spec = config_spec(model.config)
    spec.update(parameters=int(sum(p.numel() for p in model.parameters())),
                weights_bytes=int(sum(p.numel() * p.element_size() for p in model.parameters())),
                kv_bytes_per_token=kv_bytes_per_token(spec, BYTES_PER_ELEMENT[dtype_name]),
                format="gguf", quantization=header.quantization, gguf_file=name, file_bytes=header.size_bytes,
                dequantized_to=dtype_name, architecture=header.architecture)
    return LoadedModel(model=model, tokenizer=tokenizer, source=label, device=device, dtype=dtype_name, spec=spec)
