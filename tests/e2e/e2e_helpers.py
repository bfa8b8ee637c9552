"""Helpers the e2e tests import (a separate module: `conftest` is not importable by name)."""
import time
from pathlib import Path


def load_model_by_clicking(p, model_dir: Path, api) -> None:
    """Pick the model in the Local list (the demo is the default; else type its folder) and press Load."""
    from backend.models.load import DEMO_MODEL_DIR

    p.tab("hub")
    if Path(model_dir) != DEMO_MODEL_DIR:
        p.fill(".hub-local input.mono", str(model_dir))
        p.click(".hub-local >> text=Use folder")
        p.wait_for_selector(".hub-local li.selected[data-source='folder']")
    else:
        p.wait_for_selector(".hub-local li.selected[data-source='demo']")
    p.click("text=Load model")
    p.wait_for_selector("#model-badge.loaded", timeout=180_000)
    assert api.model_info()["loaded"]



def wait_until(predicate, timeout=30.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
