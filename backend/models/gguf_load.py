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
import os
from pathlib import Path

from ..errors import UserError
from .devices import BYTES_PER_ELEMENT, free_memory_bytes, resolve_device, resolve_precision
from .gguf import check_supported, read_header
from .loaded import LoadedModel
from .pretrained import load_tokenizer, load_weights
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
    meta = _meta_cache(file)
    tokenizer, config = _read_meta(meta)
    if tokenizer is None:
        tokenizer = load_tokenizer(folder, False, gguf_file=name)
    report(0.7, "Loading weights", note=f"dequantizing {header.quantization} to {dtype_name}")
    _memoize_tensor_name_map()
    model = load_weights(folder, dtype_name, device, False, gguf_file=name, **({"config": config} if config else {}))
    if meta is not None and config is None:
        _save_meta(meta, tokenizer, model.config)
    report(0.98, "Ready")

    spec = config_spec(model.config)
    spec.update(parameters=int(sum(p.numel() for p in model.parameters())),
                weights_bytes=int(sum(p.numel() * p.element_size() for p in model.parameters())),
                kv_bytes_per_token=kv_bytes_per_token(spec, BYTES_PER_ELEMENT[dtype_name]),
                format="gguf", quantization=header.quantization, gguf_file=name, file_bytes=header.size_bytes,
                dequantized_to=dtype_name, architecture=header.architecture)
    return LoadedModel(model=model, tokenizer=tokenizer, source=label, device=device, dtype=dtype_name, spec=spec)


def _memoize_tensor_name_map() -> None:
    """transformers maps GGUF tensor names by walking the model and calling gguf.get_tensor_name_map(arch,
    layers) once per submodule: 397 calls for SmolLM2, each rebuilding the same table (0.12 s apiece, 45% of
    a load in a profile here). The function is pure, so one cached answer per (arch, layers) is the same
    map; transformers imports it from the gguf package at call time, so caching it there is enough."""
    import functools

    import gguf

    if not hasattr(gguf.get_tensor_name_map, "cache_info"):
        gguf.get_tensor_name_map = functools.lru_cache(maxsize=16)(gguf.get_tensor_name_map)


# ---- config + tokenizer cache -----------------------------------------------------------------
# transformers rebuilds the config and the tokenizer from the GGUF metadata on every load, parsing the
# whole vocabulary in Python twice: for SmolLM2 that is ~2/3 of a load on a busy 2-core machine (config
# 17.7 s + tokenizer 12.3 s + weights 34 s, measured side by side). Both are saved after the first load
# (save_pretrained) and read back next time (0.3 s). The key is the file's path, size and mtime and the
# transformers version, so a replaced file or an upgrade rebuilds them; the weights always come from the file.
_KEEP_ENTRIES = 16  # the cache never holds more (oldest go first); SmolLM2's entry is ~3.5 MB


def meta_cache_root() -> Path:
    """~/.cache/sinkvis/gguf-meta, or $SINKVIS_GGUF_META (tests point it at a temporary folder)."""
    return Path(os.environ.get("SINKVIS_GGUF_META") or Path.home() / ".cache" / "sinkvis" / "gguf-meta")


def _meta_cache(file: Path) -> Path | None:
    import hashlib

    import transformers

    try:
        st = file.stat()
        key = f"{file.resolve()}|{st.st_size}|{st.st_mtime_ns}|{transformers.__version__}"
    except OSError:
        return None
    return meta_cache_root() / hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _read_meta(meta: Path | None):
    """(tokenizer, config) from the cache, or (None, None): a missing or broken entry is rebuilt."""
    import shutil

    from transformers import AutoConfig, AutoTokenizer

    if meta is None or not (meta / "config.json").is_file():
        return None, None
    try:
        return AutoTokenizer.from_pretrained(meta), AutoConfig.from_pretrained(meta)
    except Exception:  # noqa: BLE001 - whatever is wrong with our own cache, the file itself is the truth
        shutil.rmtree(meta, ignore_errors=True)
        return None, None


def _save_meta(meta: Path, tokenizer, config) -> None:
    """Write to a temporary folder, then rename: a crash never leaves a half-written entry. Never fails a load."""
    import copy
    import shutil
    import tempfile

    tmp = None
    try:
        meta.parent.mkdir(parents=True, exist_ok=True)
        old = sorted((p for p in meta.parent.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for stale in old[: max(0, len(old) - _KEEP_ENTRIES + 1)]:
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=meta.parent))
        tokenizer.save_pretrained(tmp)
        config = copy.deepcopy(config)
        config.__dict__.pop("quantization_config", None)  # the GGUF quantizer comes from gguf_file on every load
        config.save_pretrained(tmp)
        tmp.rename(meta)
    except Exception:  # noqa: BLE001 - read-only home, a concurrent load won the rename…: the next load rebuilds
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
