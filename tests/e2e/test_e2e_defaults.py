"""The shared defaults in the page (issue 33, items 2 and 6), with SmolLM2 on the CPU: every view shows the
model's one budget; Evaluate says it is sized to about a minute and its Long run button sets the 1,024
tokens; Retrieval offers the model's-context and RULER presets without making them the default."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # ignored by git, as conftest's Page.shot


@pytest.fixture
def smollm2_page(open_page, smollm2_api):
    return open_page(smollm2_api)


def value(p, selector):
    return p.locator(selector).input_value()


def test_every_view_starts_from_the_models_defaults(smollm2_page, smollm2_api):
    p = smollm2_page
    d = smollm2_api.defaults()
    b, e = d["budget"], d["evaluate"]
    assert (b["cache_size"], b["window"], d["text"]) == (128, 64, "alice") and e["max_tokens"] < 1024 and e["note"]
    p.click(".tabbar button[data-tab='eviction']")
    # Evaluate: the budget, the sized tokens, the note; Long run sets the long run's tokens.
    p.wait_for_function("() => document.querySelector('.eval-sized') && "
                        "!document.querySelector('.eval-sized').classList.contains('hidden')", timeout=60_000)
    field = "#tab-eviction input[data-field='eval.{}']"
    assert [value(p, field.format(k)) for k in ("cache_size", "sinks", "window", "max_tokens")] == \
        [str(b["cache_size"]), str(b["sinks"]), str(b["window"]), str(e["max_tokens"])]
    assert p.locator("#tab-eviction select[data-field='eval.bundled_text']").input_value() == "alice"
    sized = p.locator("#tab-eviction .eval-sized")
    assert "about a minute" in sized.inner_text() and "Long run" in sized.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    p.locator("#tab-eviction .eval-settings").screenshot(path=str(ARTIFACTS / "evaluate-sized-note.png"))
    sized.locator("button[data-action='long-run']").click()
    assert value(p, field.format("max_tokens")) == "1024"
    # The model trace: the same budget on the start of the same text; the heatmap's ratio keeps about C.
    p.select_option("#tab-eviction select[data-field='trace']", "model")
    assert [value(p, f"#tab-eviction input[data-field='{k}']") for k in ("cache_size", "sinks", "window")] == \
        [str(b["cache_size"]), str(b["sinks"]), str(b["window"])]
    assert value(p, "#tab-eviction textarea[data-field='text']") == d["simulate_model"]["model_text"]
    assert "Alice" in p.locator("#tab-eviction .model-defaults-note").inner_text()
    assert value(p, "#tab-eviction .kept-controls input[data-field='ratio']") == str(d["prefill_heatmap"]["ratio"])
    assert f"C = {b['cache_size']}" in p.locator("#tab-eviction .kept-defaults-note").inner_text()
    # Sweep: Evaluate's tokens and sinks, Retrieval's grid.
    p.click(".tabbar button[data-tab='sweep']")
    assert value(p, "#tab-sweep [data-field='sweep.max_tokens']") == str(d["sweep"]["max_tokens"])
    assert value(p, "#tab-sweep [data-field='sweep.lengths']") == ", ".join(map(str, d["retrieval"]["lengths"]))
    # Retrieval: the budget, the device-sized grid by default, the presets one choice away.
    p.click(".tabbar button[data-tab='retrieval']")
    p.wait_for_selector("#tab-retrieval select[data-field='preset'] option[value='ruler_4k']", state="attached")
    r = d["retrieval"]
    assert [value(p, f"#tab-retrieval [data-field='{k}']") for k in ("cache_size", "sinks", "window")] == \
        [str(b["cache_size"]), str(b["sinks"]), str(b["window"])]
    assert value(p, "#tab-retrieval [data-field='lengths']") == ", ".join(map(str, r["lengths"])) == "256, 512, 1024"
    assert value(p, "#tab-retrieval select[data-field='preset']") == "default"
    p.select_option("#tab-retrieval select[data-field='preset']", "model_context")
    assert value(p, "#tab-retrieval [data-field='lengths']") == "1024, 2048, 4096, 8128"
    p.select_option("#tab-retrieval select[data-field='preset']", "ruler_4k")
    assert value(p, "#tab-retrieval [data-field='lengths']") == "4096"
    assert value(p, "#tab-retrieval [data-field='task']") == "needle"
