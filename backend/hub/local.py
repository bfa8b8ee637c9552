"""The Local list: the bundled demo model, SmolLM2 (real, GGUF), causal LMs and GGUF files in the
Hugging Face cache, GGUF files in LM Studio's models folders, a picked folder or .gguf file.

GGUF entries are described from the file's header (backend/models/gguf.py: no tensor data
read, milliseconds each): name, architecture, quantization, parameters, size. A GGUF whose
header cannot be read is still listed, with `error` saying why, so a broken download shows.
"""
import os
from pathlib import Path

from huggingface_hub import scan_cache_dir
from huggingface_hub.errors import CacheNotFound

from ..errors import UserError
from .causal import describe_architecture, is_causal_config, read_config
from .endpoint import cache_dir

DEMO_MODEL_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo-model"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# LM Studio keeps models as <folder>/<publisher>/<repo>/<file>.gguf; SINKVIS_GGUF_DIRS (os.pathsep-separated)
# replaces these two (tests point it at a temporary folder).
LMSTUDIO_DIRS = ("~/.lmstudio/models", "~/.cache/lm-studio/models")
_SCAN_DEPTH = 4        # folders below a models folder that are searched for .gguf files
_SCAN_MAX_FILES = 200  # GGUF files listed per models folder


def _folder_size(folder: Path) -> int:
    # stat() follows the cache's snapshot symlinks to the blobs, so this is the real size.
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _entry(model_id: str, source: str, folder: Path, config: dict, size: int | None = None) -> dict:
    return {"id": model_id, "source": source, "path": str(folder), "load": "demo" if source == "demo" else str(folder),
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
        for f in sorted(revision.files, key=lambda f: f.file_name):  # GGUF repos: each file is a model
            if f.file_name.lower().endswith(".gguf"):
                out.append(gguf_entry(f.file_path, "cache", f"{repo.repo_id}/{f.file_name}"))
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


# ---- GGUF -------------------------------------------------------------------------------------
def gguf_entry(file: Path, source: str, model_id: str | None = None) -> dict:
    """One GGUF file as a Local-list entry, described from its header; `load` is what load_model takes."""
    from ..errors import UserError
    from ..models.gguf import read_header

    entry = {"id": model_id or file.stem, "source": source, "path": str(file), "load": str(file), "format": "gguf"}
    try:
        summary = read_header(file).summary()
    except UserError as exc:
        try:
            size = file.stat().st_size
        except OSError:
            size = 0
        return {**entry, "size_bytes": size, "model_type": "gguf", "error": exc.message}
    return {**entry, **summary, "model_type": summary["architecture"]}


def smollm2_entry() -> dict:
    """SmolLM2 next to the demo model; when it was never fetched, an entry that says how to get it."""
    from ..models.bundled import ALIAS, FILE_NAME, HOW_TO_GET, LABEL, SIZE_BYTES, smollm2_path, smollm2_present

    if smollm2_present():
        entry = gguf_entry(smollm2_path(), "smollm2", LABEL)
        return {**entry, "load": ALIAS}
    return {"id": LABEL, "source": "smollm2", "path": str(smollm2_path()), "load": ALIAS, "format": "gguf",
            "missing": True, "size_bytes": SIZE_BYTES, "model_type": "llama", "quantization": "Q4_1",
            "error": f"Not on this machine yet ({FILE_NAME}): {HOW_TO_GET}."}


def _gguf_files(root: Path) -> list[Path]:
    """.gguf files under root, at most _SCAN_DEPTH folders down and _SCAN_MAX_FILES of them, sorted."""
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name.lower())
        except OSError:
            return
        for e in entries:
            if len(found) >= _SCAN_MAX_FILES:
                return
            try:
                if e.name.lower().endswith(".gguf") and e.is_file():
                    found.append(Path(e.path))
                elif depth < _SCAN_DEPTH and e.is_dir() and not e.name.startswith("."):
                    walk(Path(e.path), depth + 1)
            except OSError:
                continue

    walk(root, 0)
    return found


def lmstudio_dirs() -> list[Path]:
    override = os.environ.get("SINKVIS_GGUF_DIRS")
    names = override.split(os.pathsep) if override is not None else LMSTUDIO_DIRS
    return [Path(n).expanduser() for n in names if n]


def lmstudio_models() -> list[dict]:
    """GGUF files in LM Studio's models folders; id = the path below the models folder (publisher/repo/file)."""
    out = []
    for root in lmstudio_dirs():
        for file in _gguf_files(root):
            out.append(gguf_entry(file, "lmstudio", str(file.relative_to(root))))
    return out


def folder_entries(path: str) -> list[dict]:
    """A folder or file the user picked: a .gguf file, a folder of GGUF files (each listed), or a model folder."""
    target = Path(path).expanduser()
    try:
        is_file = target.is_file()
        is_dir = target.is_dir()
    except OSError:
        is_file = is_dir = False
    if is_file and target.name.lower().endswith(".gguf"):
        return [gguf_entry(target.resolve(), "folder")]
    if is_dir and not (target / "config.json").is_file():
        ggufs = _gguf_files(target)
        if ggufs:
            return [gguf_entry(f.resolve(), "folder", str(f.relative_to(target))) for f in ggufs]
    return [check_folder(path)]


def local_models(folder: str | None = None) -> list[dict]:
    models = [m for m in [demo_model()] if m] + [smollm2_entry()] + cached_models() + lmstudio_models()
    if folder:
        models.extend(folder_entries(folder))
    return models
