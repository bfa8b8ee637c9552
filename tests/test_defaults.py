"""One set of budget and text defaults per model, below the services (issue 33, items 2 and 6): every view
starts from the same C, S, W and text; Evaluate is sized to about a minute on the device in use; the
services read the bundled texts from backend/defaults.py, never from the Api facade above them."""
import ast
from pathlib import Path

import pytest

from backend.defaults import (BUNDLED_TEXTS, LONG_RUN_TOKENS, PREFILL_SINKS, PREFILL_WINDOW, budget, bundled_text,
                              evaluate_defaults, retrieval_grid, step_seconds, sweep_texts)
from helpers import ROOT

SMOLLM2 = {"context_length": 8192, "parameters": 134_515_008, "layers": 30}  # SmolLM2-135M's spec
DEMO = {"context_length": 256, "parameters": 3_150_000, "layers": 4}


def _imports(path: Path) -> set[str]:
    return imports_of(path.read_text(encoding="utf-8"), ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1]))


def imports_of(source: str, package: str) -> set[str]:
    """Every module a file in `package` imports, relative imports resolved."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[:len(parts) - node.level + 1] if node.level else []
            out.add(".".join(base + ([node.module] if node.module else [])))
            out.update(".".join(base + [a.name]) for a in node.names if not node.module)
    return out


@pytest.mark.parametrize("service", ["retrieval", "sweep", "evaluate", "eviction", "compress", "profile"])
def test_no_service_imports_the_api(service):
    """The Api is the facade over the services: a service that reaches up into it (as needle.py once did for the
    bundled texts) breaks that direction."""
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.startswith("backend.api"))
                 for p in (ROOT / "backend" / service).rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_defaults_module_sits_below_every_service():
    mine = _imports(ROOT / "backend" / "defaults.py")
    assert not {m for m in mine if m.startswith("backend.") and m not in ("backend.defaults",)}, mine


def test_the_import_check_sees_a_relative_import_into_the_api():
    """The check above must be able to fail: what needle.py once did is caught, lazily inside a function too."""
    source = "def pool():\n    from ..api.evaluate import BUNDLED_TEXTS\n    from .. import api\n"
    assert {"backend.api.evaluate", "backend.api"} <= imports_of(source, "backend.retrieval")


def test_one_budget_for_every_view(demo_api):
    d = demo_api.defaults()
    assert d["ok"] and d["loaded"]
    b = d["budget"]
    assert b == budget(256) == {"cache_size": 64, "sinks": 4, "window": 32}
    for view in ("simulate_model", "evaluate", "sweep", "retrieval"):
        assert {k: d[view][k] for k in b} == b, view
    assert d["prefill_heatmap"]["cache_size"] == b["cache_size"]  # S and W: the prefill methods' own, said in a note
    assert (d["prefill_heatmap"]["sinks"], d["prefill_heatmap"]["window"]) == (PREFILL_SINKS, PREFILL_WINDOW)
    assert d["evaluate"]["text"] == d["sweep"]["text"] == d["text"] == "jargon"
    # The other Api calls serve the same numbers.
    ev, rt = demo_api.evaluate_info()["defaults"], demo_api.retrieval_info()["defaults"]
    assert {k: ev[k] for k in b} == b and {k: rt[k] for k in b} == b
    assert ev["max_tokens"] == d["evaluate"]["max_tokens"]
    # The model trace's text is the same text, a few times C long; the heatmap's ratio keeps about C of it.
    trace = d["simulate_model"]
    assert bundled_text("jargon").startswith(trace["model_text"][:200])
    assert 2 * b["cache_size"] < trace["tokens"] <= 256
    kept = round(trace["tokens"] * (1 - d["prefill_heatmap"]["ratio"]))
    assert abs(kept - b["cache_size"]) <= 0.05 * trace["tokens"]
    assert d["notes"]["prefill_heatmap"] and d["notes"]["retrieval"]


def test_the_api_defaults_say_so_without_a_model(api):
    assert api.defaults() == {"ok": True, "loaded": False}


def test_evaluate_is_sized_to_a_minute_on_a_cpu_and_offers_the_long_run():
    cpu = evaluate_defaults("smollm2", SMOLLM2, "cpu", 2)
    assert cpu["text"] == "alice" and (cpu["cache_size"], cpu["window"]) == (128, 64)
    assert 2 * 128 < cpu["max_tokens"] < LONG_RUN_TOKENS and 40 <= cpu["seconds"] <= 75
    assert cpu["long_run"]["max_tokens"] == LONG_RUN_TOKENS and cpu["long_run"]["seconds"] > 3 * cpu["seconds"]
    assert "about a minute" in cpu["note"] and "1,024" in cpu["note"]
    # Twice the threads: twice the tokens' worth of steps; a GPU or the tiny demo model: the long run is a minute.
    assert evaluate_defaults("smollm2", SMOLLM2, "cpu", 4)["max_tokens"] > cpu["max_tokens"]
    for spec, device in ((SMOLLM2, "cuda"), (DEMO, "cpu")):
        quick = evaluate_defaults("x", spec, device, 2)
        assert quick["max_tokens"] == LONG_RUN_TOKENS and quick["note"] is None
    # A model ten times larger on the same CPU gets fewer tokens, never fewer than C + a little.
    big = evaluate_defaults("x", {**SMOLLM2, "parameters": 1_350_000_000}, "cpu", 2)
    assert big["max_tokens"] < cpu["max_tokens"] and big["max_tokens"] >= 2 * 128 + 32
    assert step_seconds(SMOLLM2["parameters"], 30, "cpu", 2) == pytest.approx(0.27, rel=0.05)  # measured, see module


def test_retrieval_grid_and_presets():
    cpu, gpu = retrieval_grid(8192, "cpu"), retrieval_grid(8192, "cuda")
    assert len(cpu["lengths"]) * len(cpu["depths"]) < len(gpu["lengths"]) * len(gpu["depths"])
    assert max(cpu["lengths"]) <= 1024
    presets = cpu["presets"]
    assert presets["model_context"]["lengths"] == [1024, 2048, 4096, 8192 - 64]  # capped at the context
    assert presets["ruler_4k"]["task"] == "needle" and presets["ruler_4k"]["lengths"] == [4096]
    assert presets["default"]["lengths"] == cpu["lengths"]  # not the long presets by default on a CPU
    demo = retrieval_grid(256, "cpu")
    assert set(demo["presets"]) == {"default"} and max(demo["lengths"]) < 256


def test_a_sweep_without_texts_reads_the_first_models_text():
    assert sweep_texts(["demo"]) == [{"name": BUNDLED_TEXTS["jargon"][0], "text": bundled_text("jargon")}]
    assert sweep_texts(["smollm2", "demo"])[0]["name"] == BUNDLED_TEXTS["alice"][0]
    with pytest.raises(KeyError, match="one of jargon, alice"):
        bundled_text("nope")
