"""Helpers the test modules share (import as `from helpers import ...`; conftest is ambiguous with tests/e2e)."""
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL_DIR = ROOT / "assets" / "demo-model"


def wait_job(api, job_id, timeout=300.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = api.job_status({"job_id": job_id})
        assert status["ok"], status
        if status["state"] != "running":
            return status
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def load(api, source="demo", **params) -> dict:
    started = api.load_model({"source": str(source), **params})
    assert started["ok"], started
    return wait_job(api, started["job_id"])


def save_tiny_gpt2(folder: Path, qk_scale: float = 1.0) -> Path:
    """A 2-layer GPT-2 built from a real config (random init) with the demo model's tokenizer.

    qk_scale multiplies the query/key/value projection: ×1000 pushes q·k past fp16's range.
    """
    import shutil

    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (DEMO_MODEL_DIR / name).is_file():
            shutil.copy(DEMO_MODEL_DIR / name, folder / name)
    vocab = len(AutoTokenizer.from_pretrained(folder))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=128, vocab_size=vocab,
                                       bos_token_id=0, eos_token_id=0))
    if qk_scale != 1.0:
        with torch.no_grad():
            for block in model.transformer.h:
                block.attn.c_attn.weight.mul_(qk_scale)
    model.save_pretrained(folder)
    return folder
