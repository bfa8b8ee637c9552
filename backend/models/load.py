"""Load a causal LM for attention extraction: resolve the source, check it, load it eager.

Attention weights only exist with the eager implementation (SDPA and flash kernels
never materialise them), so every model is loaded with attn_implementation="eager"; a
LoadedModel then routes it through SinkVis's attention function, which is that same eager
attention until a job taps it (backend/attention/seam.py).
A failed load raises UserError and leaves whatever was loaded before untouched:
the caller swaps the new model in only after this returns.
"""
import re
from pathlib import Path

from ..errors import UserError
from ..safe_read import FileRefused, read_json
from .bundled import ALIAS, HOW_TO_GET, smollm2_path, smollm2_present
from .config_check import check_fits, check_weights_match
from .devices import BYTES_PER_ELEMENT, resolve_device, resolve_precision
from .gguf_load import gguf_in_folder, load_gguf
from .loaded import LoadedModel
from .pretrained import load_tokenizer, load_weights
from .spec import config_spec, kv_bytes_per_token
from .weights_progress import reporting

DEMO_MODEL_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo-model"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$|^[A-Za-z0-9][\w.\-]*$")


def resolve_source(source: str, token: str | None, report, check_config=None) -> tuple[Path, str]:
    """'demo' → the bundled model; 'smollm2' → the real GGUF one; a .gguf file or a folder → itself; else a Hub id
    (downloaded; `check_config(folder)` may refuse it from its config.json before the weights are fetched)."""
    if source == ALIAS:
        if not smollm2_present():
            raise UserError("smollm2_missing", f"SmolLM2 is not on this machine ({smollm2_path()}); {HOW_TO_GET}.", "source")
        return smollm2_path(), ALIAS
    if source == "demo":
        if not (DEMO_MODEL_DIR / "config.json").is_file():
            raise UserError("demo_missing", f"The bundled demo model is missing from {DEMO_MODEL_DIR}; run `python tools/train_demo_model.py`.", "source")
        return DEMO_MODEL_DIR, "demo"
    path = Path(source).expanduser()
    try:
        is_dir = path.is_dir()
        # any non-folder .gguf path: the header reader refuses what is not a regular file (a FIFO…) by name
        is_gguf = path.name.lower().endswith(".gguf") and path.exists() and not is_dir
    except OSError:  # e.g. a name too long for the file system (ENAMETOOLONG): answer "not found", not "internal"
        is_dir = is_gguf = False
    if is_gguf:
        return path, str(path)
    if is_dir:
        gguf = None if (path / "config.json").is_file() else gguf_in_folder(path)
        if gguf is not None:
            return gguf, str(gguf)
        if not (path / "config.json").is_file():
            raise UserError("not_a_model", f"{path} has no config.json and no .gguf file; pick the folder that holds the model's "
                            "config and weights, or a .gguf file.", "source")
        return path, str(path)
    if source.startswith(("/", "~", ".", "\\")) or (len(source) > 1 and source[1] == ":"):
        raise UserError("not_found", f"Folder {source} does not exist.", "source")
    if not _HUB_ID.match(source) or ".." in source:
        raise UserError("bad_input", f"{source[:80]!r} is neither a folder nor a Hub id like 'owner/name'.", "source")
    from ..hub.download import download_model

    report(0.0, "Downloading")

    def scaled(fraction=None, stage=None, **extra):  # the download is the first half of the bar
        report(None if fraction is None else 0.5 * fraction, stage, **extra)

    return Path(download_model(source, token, scaled, check_config)), source


def read_config(path: Path, trust_remote_code: bool):
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig

    try:
        raw = read_json(path / "config.json", "config")  # bounded, regular file only (a /dev/zero link is refused)
    except FileRefused as exc:
        code = "unreadable" if exc.reason == "permission" else "bad_config"
        raise UserError(code, f"config.json in {path}: {exc.message}", "source") from None
    if not isinstance(raw, dict):
        raise UserError("bad_config", f"config.json in {path} is not a JSON object; re-download the model.", "source")
    if raw.get("auto_map") and not trust_remote_code:
        raise UserError(
            "needs_remote_code",
            "This model ships its own Python code (auto_map in config.json). Loading it runs that code on your machine: "
            "turn on 'Trust remote code' only if you trust its authors.", "trust_remote_code")
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except StrictDataclassError as exc:  # a field of the wrong type (n_layer = 2.5): named, not "internal"
        raise UserError("bad_model", f"config.json in {path} makes no sense as a model ({str(exc)[:200]}).", "source") from None
    except (ValueError, KeyError, OSError, TypeError, AttributeError) as exc:
        raise UserError("bad_config", f"transformers cannot read this config ({str(exc)[:200]}); it may need a newer transformers or 'Trust remote code'.", "source") from None
    if not _is_causal(config, raw):
        arch = ", ".join(raw.get("architectures") or [raw.get("model_type", "?")])
        raise UserError("not_causal", f"{arch} is not a causal language model; SinkVis needs a decoder (…ForCausalLM / …LMHeadModel).", "source")
    return config


def _is_causal(config, raw: dict) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    archs = raw.get("architectures") or []
    if archs:
        return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def load_model(source: str, device: str = "auto", precision: str = "auto", trust_remote_code: bool = False,
               token: str | None = None, report=lambda *a, **k: None) -> LoadedModel:
    with reporting(report):  # Cancel acts inside transformers' per-tensor loops too (weights_progress.py)
        return _load_model(source, device, precision, trust_remote_code, token, report)


def _load_model(source, device, precision, trust_remote_code, token, report) -> LoadedModel:
    def fits_before_download(folder: Path):  # a Hub model too big for the device is refused before gigabytes move
        if not trust_remote_code:  # remote code arrives with the other files: checked after the download
            target = resolve_device(device)
            check_fits(read_config(folder, False), resolve_precision(precision, target), target)

    path, label = resolve_source(source, token, report, fits_before_download)
    if path.name.lower().endswith(".gguf"):
        return load_gguf(path, label, device, precision, report)
    report(0.55, "Reading config")
    config = read_config(path, trust_remote_code)
    device = resolve_device(device)
    dtype_name = resolve_precision(precision, device)
    # Sized from the config, before anything is allocated; weights that do not match it are refused (config_check.py).
    meta_model, _, _ = check_fits(config, dtype_name, device, trust_remote_code, report)
    check_weights_match(path, meta_model)
    del meta_model
    spec = config_spec(config)

    report(0.6, "Loading tokenizer")
    tokenizer = load_tokenizer(path, trust_remote_code)
    report(0.7, "Loading weights")
    model = load_weights(path, dtype_name, device, trust_remote_code)
    report(0.98, "Ready")

    params = sum(p.numel() for p in model.parameters())
    bpe = BYTES_PER_ELEMENT[dtype_name]
    spec.update(parameters=int(params), weights_bytes=int(sum(p.numel() * p.element_size() for p in model.parameters())),
                kv_bytes_per_token=kv_bytes_per_token(spec, bpe))
    return LoadedModel(model=model, tokenizer=tokenizer, source=label, device=device, dtype=dtype_name, spec=spec)
