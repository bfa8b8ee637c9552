"""Shared fixtures: a fresh Api, the Api with the demo model loaded, a model built from a real config."""
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Measured hardware (backend/profile/hardware.py) is cached here, not in the user's ~/.cache/sinkvis.
os.environ.setdefault("SINKVIS_CACHE_DIR", tempfile.mkdtemp(prefix="sinkvis-cache-"))
# Exports (save_export, sweep results) of a test that does not pick its own folder: never ~/SinkVis-exports.
os.environ.setdefault("SINKVIS_EXPORT_DIR", tempfile.mkdtemp(prefix="sinkvis-exports-"))

from backend.api import Api  # noqa: E402
from backend.models.load import DEMO_MODEL_DIR  # noqa: E402

try:  # the local Hub-compatible server (tests/conftest_hub.py)
    from conftest_hub import *  # noqa: F401,F403,E402
except ImportError:
    pass


from helpers import load, save_tiny_gpt2, wait_job  # noqa: E402,F401 - shared with test modules

# The test models are tiny: one torch thread runs them faster than two fighting over two cores
# (a 13-token forward took 0.59 s with 2 threads on a busy machine, 0.04 s with 1).
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def api():
    instance = Api()
    yield instance
    instance._state.jobs.cancel_all()


@pytest.fixture(scope="session")
def demo_api():
    """One Api with the bundled demo model loaded, shared by read-only tests."""
    if not (DEMO_MODEL_DIR / "config.json").is_file():
        pytest.fail(f"bundled demo model missing at {DEMO_MODEL_DIR}")
    instance = Api()
    status = load(instance, "demo")
    assert status["state"] == "done", status
    yield instance
    instance._state.jobs.cancel_all()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer GPT-2 built from a real config, random init, with the demo model's tokenizer."""
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def smollm2_api():
    """One Api with the real SmolLM2-135M-Instruct (GGUF Q4_1, dequantized to fp32 on the CPU) loaded.

    Loads once per test session (~15–20 s on a busy 2-core machine); share it read-only.
    The GGUF comes from `make` set-up / tools/fetch_smollm2.py (backend/models/bundled.py).
    """
    from backend.models.bundled import HOW_TO_GET, smollm2_path, smollm2_present

    if not smollm2_present():
        pytest.fail(f"SmolLM2 GGUF missing at {smollm2_path()}: {HOW_TO_GET}")
    instance = Api()
    status = load(instance, "smollm2", device="cpu", precision="fp32")
    assert status["state"] == "done", status
    yield instance
    instance._state.jobs.cancel_all()
