"""The Local list: the bundled demo model, causal LMs in the Hugging Face cache, a picked folder."""
from pathlib import Path

from huggingface_hub import scan_cache_dir
from huggingface_hub.errors import CacheNotFound

from ..errors import UserError
from .causal import describe_architecture, is_causal_config, read_config
from .endpoint import cache_dir

DEMO_MODEL_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo-model"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _folder_size(folder: Path) -> int:
    # stat() follows the cache's snapshot symlinks to the blobs, so this is the real size.
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _entry(model_id: str, source: str, folder: Path, config: dict, size: int | None = None) -> dict:
    return {"id": model_id, "source": source, "path": str(folder),
            "size_bytes": _folder_size(folder) if size is None else size,
            "model_type": config.get("model_type") or describe_architecture(config)}


def demo_model() -> dict | None:
    config = read_config(DEMO_MODEL_DIR)
    return _entry("demo", "demo", DEMO_MODEL_DIR, config) if config is not None else None


def cached_models() -> list[dict]:
    """Each model repo in the HF cache whose newest snapshot holds a causal LM config and weights."""
    try:
        info = scan_cache_dir(cache_dir())  # explicit: the default argument was bound at import time
    except CacheNotFound:
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id.lower()):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        revision = max(repo.revisions, key=lambda r: r.last_modified)
        config = read_config(revision.snapshot_path)
        has_weights = any(f.file_name.endswith(_WEIGHT_SUFFIXES) for f in revision.files)
        if config is not None and has_weights and is_causal_config(config):
            out.append(_entry(repo.repo_id, "cache", revision.snapshot_path, config, revision.size_on_disk))
    return out


def check_folder(path: str) -> dict:
    """A folder the user picked: it must hold a causal LM's config.json and weights."""
    folder = Path(path).expanduser()
    try:
        is_dir = folder.is_dir()
    except OSError:  # e.g. a name too long for the file system (ENAMETOOLONG): answer "not found", not "internal"
        is_dir = False
    if not is_dir:
        raise UserError("not_found", f"No folder at {path}.", "folder")
    config = read_config(folder)
    if config is None:
        raise UserError("not_a_model", f"{folder} has no readable config.json; pick the folder that holds the "
                        "model's config.json, tokenizer and weights.", "folder")
    if not is_causal_config(config):
        raise UserError("not_causal", f"{folder} holds a {describe_architecture(config)} model, not a causal "
                        "language model; SinkVis needs a decoder-only model (e.g. GPT-2, Llama).", "folder")
    if not any(p.name.endswith(_WEIGHT_SUFFIXES) for p in folder.iterdir()):
        raise UserError("not_a_model", f"{folder} has a config.json but no weights (*.safetensors or *.bin).", "folder")
    return _entry(str(folder.resolve()), "folder", folder.resolve(), config)


def local_models(folder: str | None = None) -> list[dict]:
    models = [m for m in [demo_model()] if m] + cached_models()
    if folder:
        models.append(check_folder(folder))
    return models
