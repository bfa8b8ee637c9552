"""The shell and the Model Hub in headless Chromium against the real Api (browser mode)."""
import json
import os

import pytest

from e2e_helpers import load_model_by_clicking

pytestmark = pytest.mark.e2e

XSS = "<img src=x onerror=alert(1)>"

# Distinct colours in the plot area of a canvas: a drawn heatmap has many, a blank one one or two.
CANVAS_COLOURS = """(sel) => {
  const c = document.querySelector(sel);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < d.length; i += 4 * 7) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  return seen.size;
}"""


def test_shell_renders_and_tabs_switch(page):
    assert page.title() == "SinkVis"
    tabs = page.locator(".tabbar button").all_inner_texts()
    assert tabs == ["Model Hub", "Live Stream", "Eviction Sim", "Retrieval", "Sweeps", "Cache Profile"]
    for name in ("stream", "eviction", "retrieval", "sweep", "profile", "hub"):
        page.tab(name)
        assert page.locator(f"#tab-{name}").is_visible()
        assert page.locator(".tab-panel.active").count() == 1
    assert page.locator("#st-mode").inner_text() == "browser mode"
    # The secret left the address bar once read.
    assert "secret=" not in page.url


def test_model_required_overlay_until_loaded(fresh_page):
    p = fresh_page
    p.tab("stream")
    assert p.locator("#tab-stream > .model-required").is_visible()
    p.tab("eviction")  # the synthetic trace needs no model: no overlay until the model trace is picked
    assert not p.locator("#tab-eviction .model-required").is_visible()
    p.select_option("#tab-eviction select[data-field='trace']", "model")
    assert p.locator("#tab-eviction .model-required").is_visible()
    p.click("#tab-eviction .model-required >> text=Go to Model Hub")
    assert p.locator("#tab-hub").is_visible()


def test_load_by_clicking_and_quick_attention(page, served, model_dir):
    api, _ = served
    load_model_by_clicking(page, model_dir, api)
    assert page.locator(".loaded-model dd").count() > 8  # the spec table is filled
    assert "Type a text" in page.locator(".hub-attention .empty-viz").inner_text()  # no "Load a model" once loaded
    text = "The quick brown fox jumps over the lazy dog."
    page.fill(".hub-attention textarea", text)
    page.press(".hub-attention textarea", "Enter")  # Enter submits
    page.wait_for_function("() => window.sinkvis.hub.heatmap().n > 0", timeout=60_000)
    assert page.evaluate(CANVAS_COLOURS, ".hub-attention canvas") > 20
    expected = api.attention({"text": text})
    assert expected["ok"]
    assert page.evaluate("() => window.sinkvis.hub.heatmap().labels()") == expected["tokens"]
    page.hover(".hub-attention canvas", position={"x": 120, "y": 60})
    tip = page.locator(".hub-attention .tooltip")
    assert tip.is_visible() and "weight" in tip.inner_text()
    page.shot("hub", docs=True)


def test_exports_show_the_saved_path(loaded_page):
    p = loaded_page
    p.fill(".hub-attention textarea", "Export me.")
    p.click("text=Get Attention")
    p.wait_for_function("() => window.sinkvis.hub.heatmap().n > 0", timeout=60_000)
    with p.expect_download() as dl:
        p.click(".hub-attention >> text=Matrix JSON")
    assert dl.value.suggested_filename.startswith("attention-matrix-")
    folder = os.environ["SINKVIS_EXPORT_DIR"]  # tests/conftest.py: a temporary folder, not ~/SinkVis-exports
    p.wait_for_function(f"() => document.getElementById('st-note').textContent.includes({json.dumps(folder)})")


def test_injected_markup_renders_as_text(loaded_page):
    p = loaded_page
    p.fill(".hub-attention textarea", XSS)
    p.click("text=Get Attention")
    p.wait_for_function("() => window.sinkvis.hub.heatmap().n > 0 && window.sinkvis.hub.heatmap().labels().join('').includes('img')",
                        timeout=60_000)
    # A user-typed folder path comes back inside an error message: still text.
    p.fill(".hub-local input.mono", "/nonexistent/" + XSS)
    p.click(".hub-local >> text=Use folder")
    p.fill(".hub-search input", XSS)
    p.press(".hub-search input", "Enter")
    p.wait_for_timeout(1500)
    assert p.locator("img").count() == 0
    assert not p.dialogs
