"""Check a model's config before anything is allocated: does it make sense, does it fit, do the weights match it.

The config decides what transformers allocates: a 138 KB weights file under a config that
says 400 layers makes transformers build (and randomly initialise) 400 layers — 4 GB and
counting (issue #13). So the size comes from the config, never from the weight files:

1. `check_config(config)`: every shape number is a positive whole number in a sane range,
   the widths divide by the heads → else `bad_model`, naming the field.
2. `check_fits(config, dtype_name, device)`: a cheap arithmetic lower bound first (layers ×
   width² + vocabulary × width: refuses a 10⁹-layer config without building anything), then
   the model built on torch's meta device (shapes, no storage) and its parameters counted
   exactly → `too_big` when they will not fit at the chosen precision.
3. `check_weights_match(folder, meta_model)`: the tensor names and shapes in the safetensors
   headers (or a .bin read onto the meta device) against the model the config describes →
   `bad_weights` when a shape differs or most of the model has no weights.

Callable with any transformers config object (the GGUF path builds its config from the file's
header). Nothing here allocates tensor storage.
"""
import math
import os
from pathlib import Path

from ..errors import UserError
from ..safe_read import FileRefused, open_regular, read_json
from .devices import BYTES_PER_ELEMENT, free_memory_bytes

MAX_LAYERS = 1024        # the deepest real causal LMs have ~130; building 10⁹ layers even on meta never ends
MAX_EXPERTS = 4096       # per MoE layer
FIT_SHARE = 0.9          # of the device's free memory, as the Hub card's verdict
SAFETENSORS_HEADER_MAX = 100 * 1024 * 1024
MISSING_TOLERANCE = 0.01  # share of the parameters that may lack a same-named tensor (renamed keys aside)

# (what the UI calls it, config attribute names in the order transformers' families use them, upper bound)
_FIELDS = [
    ("layers", ("num_hidden_layers", "n_layer", "num_layers"), None),
    ("attention heads", ("num_attention_heads", "n_head", "num_heads"), 16_384),
    ("key/value heads", ("num_key_value_heads", "multi_query_group_num"), 16_384),
    ("hidden size", ("hidden_size", "n_embd", "d_model"), 1 << 20),
    ("head dim", ("head_dim",), 1 << 16),
    ("MLP width", ("intermediate_size", "n_inner", "ffn_dim"), 1 << 22),
    ("vocabulary size", ("vocab_size",), 1 << 24),
    ("context length", ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"), 1 << 27),
    ("experts", ("num_local_experts", "num_experts", "n_routed_experts"), MAX_EXPERTS),
]
_REQUIRED = ("layers", "hidden size", "vocabulary size")  # heads: a few families (Mamba, RWKV) have none


def _bad(message: str) -> UserError:
    return UserError("bad_model", f"{message} This config.json makes no sense as a model; fix it or re-download the model.", "source")


def _text_config(config):
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def check_config(config) -> dict:
    """The config's shape numbers, checked: {label: int}. Raises UserError("bad_model") naming the field."""
    text = _text_config(config)
    values = {}
    for label, names, upper in _FIELDS:
        name = next((n for n in names if getattr(text, n, None) is not None), None)
        if name is None:
            if label in _REQUIRED:
                raise _bad(f"The config gives no {label} ({' / '.join(names)}).")
            continue
        value = getattr(text, name)
        name = getattr(text, "attribute_map", {}).get(name, name)  # the key as config.json spells it (GPT-2: n_layer)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(f"{name} must be a whole number (got {str(value)[:40]!r}).")
        if value < 1:
            raise _bad(f"{name} must be at least 1 (got {value}).")
        if upper is not None and value > upper:
            raise _bad(f"{name} = {value:,} is more than any real model has (at most {upper:,}).")
        values[label] = value
    heads, hidden = values.get("attention heads"), values["hidden size"]
    if heads is not None and "head dim" not in values and hidden % heads:
        raise _bad(f"The hidden size ({hidden}) must divide evenly by the attention heads ({heads}).")
    kv = values.get("key/value heads")
    if kv is not None and heads is not None and heads % kv:
        raise _bad(f"The attention heads ({heads}) must divide evenly by the key/value heads ({kv}).")
    return values


def lower_bound_parameters(values: dict) -> int:
    """At least one width × width matrix per layer plus the token embedding: no real model has fewer."""
    hidden = values["hidden size"]
    return values["layers"] * hidden * hidden + values["vocabulary size"] * hidden


def _refuse_if_too_big(parameters: int, dtype_name: str, device: str, exact: bool) -> int:
    needed = parameters * BYTES_PER_ELEMENT[dtype_name]
    free = free_memory_bytes(device)
    if needed > FIT_SHARE * free:
        about = "" if exact else "at least "
        raise UserError("too_big", f"The config describes a model of {about}{parameters / 1e9:,.2f} billion parameters: "
                        f"{about}{needed / 2**30:,.1f} GiB at {dtype_name}, but {device} has {free / 2**30:.1f} GiB free; "
                        "pick a lower precision, another device or a smaller model.", "source")
    return needed


def build_on_meta(config, trust_remote_code: bool = False):
    """The model the config describes, on the meta device: every shape, no storage. Errors → bad_model."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    try:  # no_init_weights: random init on meta costs ~3 ms a tensor for nothing (from_pretrained does the same)
        with no_init_weights(), torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", trust_remote_code=trust_remote_code)
            model.tie_weights()  # no_init_weights skips the tying that init does: tied weights must count once
        return model
    except (MemoryError, RecursionError):
        raise _bad("Building this model's layers failed.") from None
    except Exception as exc:  # noqa: BLE001 - transformers raises anything from ZeroDivisionError to ValueError on a bad config
        raise _bad(f"transformers cannot build a model from it ({type(exc).__name__}: {str(exc)[:160]}).") from None


def check_fits(config, dtype_name: str, device: str, trust_remote_code: bool = False, report=lambda *a, **k: None):
    """Refuse a model the device cannot hold, sized from the config at `dtype_name`.
    Returns (meta_model, parameters, needed_bytes); the meta model holds no memory worth counting."""
    values = check_config(config)
    _refuse_if_too_big(lower_bound_parameters(values), dtype_name, device, exact=False)
    if values["layers"] > MAX_LAYERS:
        raise _bad(f"{values['layers']:,} layers is more than any real model has (at most {MAX_LAYERS:,}).")
    report(None, "Checking the config")
    meta = build_on_meta(config, trust_remote_code)
    report(None, "Checking the config")
    unique = {id(p): p for p in list(meta.parameters()) + list(meta.buffers())}  # tied weights count once
    parameters = sum(p.numel() for p in unique.values())
    needed = _refuse_if_too_big(parameters, dtype_name, device, exact=True)
    return meta, parameters, needed


# --- do the weight files match the config? ---

def _bad_weights(folder, message: str) -> UserError:
    return UserError("bad_weights", f"The weights in {folder} do not match its config.json: {message} "
                     "Re-download the model, or use the config that came with these weights.", "source")


def _safetensors_shapes(file: Path) -> dict:
    """Tensor name → shape from a safetensors header (8-byte length, JSON), checked against the file's size."""
    try:
        with open_regular(file, "weights") as f:
            size = os.fstat(f.fileno()).st_size
            length = int.from_bytes(f.read(8), "little")
            if length < 2 or length > SAFETENSORS_HEADER_MAX or 8 + length > size:
                raise _bad_weights(file.parent, f"{file.name} has no valid safetensors header (truncated or not safetensors).")
            import json

            header = json.loads(f.read(length))
    except FileRefused:
        raise
    except (ValueError, RecursionError):
        raise _bad_weights(file.parent, f"{file.name}'s safetensors header is not valid JSON.") from None
    if not isinstance(header, dict):
        raise _bad_weights(file.parent, f"{file.name}'s safetensors header is not a table of tensors.")
    shapes, end = {}, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            shape = tuple(int(d) for d in info["shape"])
            start, stop = (int(o) for o in info["data_offsets"])
        except (TypeError, KeyError, ValueError):
            raise _bad_weights(file.parent, f"{file.name} describes tensor {name[:80]!r} badly.") from None
        if any(d < 0 for d in shape) or not 0 <= start <= stop:
            raise _bad_weights(file.parent, f"{file.name} describes tensor {name[:80]!r} badly.")
        shapes[name], end = shape, max(end, stop)
    if 8 + length + end > size:
        raise _bad_weights(file.parent, f"{file.name} is truncated ({size:,} bytes; its header needs {8 + length + end:,}).")
    return shapes


def _bin_shapes(file: Path) -> dict:
    """A PyTorch .bin read onto the meta device (weights_only: no code runs, no storage is allocated)."""
    import torch

    try:
        with open_regular(file, "weights"):
            pass
        state = torch.load(file, map_location="meta", weights_only=True, mmap=True)
    except FileRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - torch's unpickler raises many types on a broken file
        raise _bad_weights(file.parent, f"{file.name} cannot be read ({type(exc).__name__}).") from None
    if not isinstance(state, dict):
        raise _bad_weights(file.parent, f"{file.name} does not hold a table of tensors.")
    return {str(k): tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def _shard_files(folder: Path, index_name: str) -> list[Path]:
    index = read_json(folder / index_name, "json")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise _bad_weights(folder, f"{index_name} has no weight_map.")
    names = sorted({str(v) for v in weight_map.values()})
    if any(Path(n).name != n or n in (".", "..") for n in names):
        raise _bad_weights(folder, f"{index_name} points outside the folder.")
    return [folder / n for n in names]


def checkpoint_shapes(folder) -> dict:
    """Every tensor's shape in the weight files transformers would load (safetensors first, as it does)."""
    folder = Path(folder)
    if (folder / "model.safetensors").exists():
        files, reader = [folder / "model.safetensors"], _safetensors_shapes
    elif (folder / "model.safetensors.index.json").exists():
        files, reader = _shard_files(folder, "model.safetensors.index.json"), _safetensors_shapes
    elif (folder / "pytorch_model.bin").exists():
        files, reader = [folder / "pytorch_model.bin"], _bin_shapes
    elif (folder / "pytorch_model.bin.index.json").exists():
        files, reader = _shard_files(folder, "pytorch_model.bin.index.json"), _bin_shapes
    else:
        raise UserError("bad_weights", f"{folder} has no model.safetensors or pytorch_model.bin (nor a sharded index); "
                        "copy the weights in or re-download the model.", "source")
    shapes = {}
    for file in files:
        shapes.update(reader(file))
    return shapes


def check_weights_match(folder, meta_model) -> None:
    """Refuse weights whose same-named tensors have other shapes, or that leave more than 1% of the model
    without weights (transformers would fill the gap with random numbers). Renamed or fused tensors (MoE
    experts, old names) are matched by count: the unclaimed tensors must hold at least what is missing."""
    stored = checkpoint_shapes(folder)
    prefix = getattr(meta_model, "base_model_prefix", "") or ""
    claimed, missing, total = set(), 0, 0
    for name, param in meta_model.named_parameters():  # tied weights appear once
        shape, size = tuple(param.shape), param.numel()
        total += size
        candidates = (name, name[len(prefix) + 1:] if prefix and name.startswith(prefix + ".") else None, f"{prefix}.{name}")
        found = next((c for c in candidates if c and c in stored), None)
        if found is None:
            missing += size
            continue
        if stored[found] != shape:
            raise _bad_weights(folder, f"{found[:100]} is {list(stored[found])} in the weights but {list(shape)} in the config.")
        claimed.add(found)
    unclaimed = sum(math.prod(s) for n, s in stored.items() if n not in claimed)
    if missing > MISSING_TOLERANCE * total and unclaimed < missing:
        raise _bad_weights(folder, f"the config describes {total:,} parameters, the weight files hold "
                           f"{total - missing + unclaimed:,} numbers ({100 * missing / total:.0f}% of the model has no weights).")
