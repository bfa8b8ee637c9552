"""Issue #14, a newcomer's pass: defaults that show something, no stale state, errors in the
user's words, readable at 1024 × 700, and an app that opens with the demo model ready.

Every test drives the real UI in Chromium against the real Api (demo model, or a 12-layer GPT-2
built from a real config with a 2,048-token context where many layers / a long context matter).
"""
import csv
import io
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from e2e_helpers import wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

R = "window.sinkvis.eviction.result()"
RESULT = f"() => {R}"
STREAM_N = "() => window.sinkvis.stream.heatmap().n"


# ---------- fixtures: a page on its own Api with a 12-layer, 2,048-context model ----------
def _save_wide_gpt2(folder: Path) -> Path:
    """12 layers (more than the 8 the first-k chart draws one line each for), context 2,048 (over the
    Quick Attention limit of 1,024), random init, the demo model's tokenizer."""
    import shutil

    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from backend.models.load import DEMO_MODEL_DIR

    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (DEMO_MODEL_DIR / name).is_file():
            shutil.copy(DEMO_MODEL_DIR / name, folder / name)
    vocab = len(AutoTokenizer.from_pretrained(folder))
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=12, n_head=2, n_embd=32, n_positions=2048, vocab_size=vocab,
                               bos_token_id=0, eos_token_id=0)).save_pretrained(folder)
    return folder


def _wait_job(api, started, timeout=120):
    assert started.get("ok"), started
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = api.job_status({"job_id": started["job_id"]})
        if st["state"] != "running":
            return st
        time.sleep(0.05)
    raise AssertionError("job did not finish")


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """(api, url, model folder): an Api of its own with the 12-layer model loaded."""
    from backend.api import Api
    from backend.serve import make_server

    folder = _save_wide_gpt2(tmp_path_factory.mktemp("wide-gpt2"))
    api = Api()
    assert _wait_job(api, api.load_model({"source": str(folder), "device": "cpu"}))["state"] == "done"
    server, url = make_server(api, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield api, url, folder
    server.shutdown()
    server.server_close()
    api._state.jobs.cancel_all(wait=5.0)


class _Page:
    """A Playwright page that records JS errors, with the tab switch the shared fixtures' page has."""

    def __init__(self, page):
        self.page, self.errors = page, []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def __getattr__(self, name):
        return getattr(self.page, name)

    def tab(self, name):
        self.page.click(f".tabbar button[data-tab='{name}']")
        self.page.wait_for_selector(f"#tab-{name}.active")

    def shot(self, name):  # a test artifact, like the shared fixtures' pages (test-artifacts/ is ignored)
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        self.page.screenshot(path=str(ROOT / "test-artifacts" / f"{name}.png"))


def _open(browser, url, width=1500, height=920):
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1, accept_downloads=True)
    p = _Page(context.new_page())
    p.goto(url)
    p.wait_for_selector("body[data-ready='1']", timeout=60_000)
    return context, p


@pytest.fixture()
def wide_page(browser, wide):
    context, p = _open(browser, wide[1])
    p.wait_for_selector("#model-badge.loaded", timeout=30_000)
    yield p
    context.close()
    assert not p.errors, f"JavaScript errors: {p.errors}"


def _download_text(p, click):
    with p.expect_download() as dl:
        click()
    return Path(dl.value.path()).read_bytes()


def _png_pixel(data: bytes, x: int, y: int) -> tuple:
    """RGBA of one pixel of an 8-bit RGBA, non-interlaced PNG (what canvas.toDataURL writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, _, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 6), "expected 8-bit RGBA"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, prev = zlib.decompress(idat), width * 4, bytearray(width * 4)
    for row in range(y + 1):  # undo the per-row filters (PNG spec, section 9) up to row y
        f = raw[row * (stride + 1)]
        line = bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            a, b = (line[i - 4] if i >= 4 else 0), prev[i]
            c = prev[i - 4] if i >= 4 else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
    return tuple(prev[x * 4:x * 4 + 4])


# ---------- 1. defaults that show something ----------
def test_synthetic_defaults_separate_the_policies(page):
    """Out of the box, H2O, LRU and TOVA differ (they all scored 100% with 16 everlasting heavy hitters)."""
    page.tab("eviction")
    assert page.input_value("#tab-eviction input[data-field='heavy_hitters']") == "1000"  # from the backend's DEFAULTS
    assert page.input_value("#tab-eviction input[data-field='heavy_life']") == "3000"
    page.click("#tab-eviction >> text=Compare All Policies")
    page.wait_for_function(f"() => {R} !== null", timeout=120_000)
    rates = {r["policy"]: r["hit_rate"] for r in page.evaluate(RESULT)["results"]}
    assert len({round(rates[k], 4) for k in ("h2o", "lru", "tova", "streaming_llm", "sliding_window")}) == 5, rates
    assert rates["sliding_window"] < rates["streaming_llm"] < rates["h2o"] < rates["lru"] < 1.0
    page.shot("newcomer-eviction-synthetic")


def test_model_trace_default_text_evicts_and_a_short_text_says_why_not(loaded_page):
    p = loaded_page
    p.tab("eviction")
    p.select_option("#tab-eviction select[data-field='trace']", "model")
    assert p.input_value("#tab-eviction input[data-field='cache_size']") == "64"  # the model-trace budget
    assert p.input_value("#tab-eviction textarea[data-field='text']").startswith(":mouse elbow")  # the held-out text
    p.click("#tab-eviction >> text=Compare All Policies")
    p.wait_for_function(f"() => {R} && {R}.params.trace === 'model'", timeout=120_000)
    res = p.evaluate(RESULT)
    assert res["trace"]["length"] >= 3 * 64  # several times C (≈ 250 tokens, inside the 256 context)
    by = {r["policy"]: r for r in res["results"]}
    assert by["sliding_window"]["evictions"] > 0 and by["h2o"]["hit_rate"] < 1.0
    assert not p.locator("#tab-eviction .fit-note").is_visible()
    assert res["trace"]["heavy_k"] < res["trace"]["length"] / 4  # not a wall of heavy-hitter lines
    # A text within C: say that nothing can be evicted, and what to change.
    p.fill("#tab-eviction textarea[data-field='text']", "A short text of a few words.")
    p.click("#tab-eviction >> text=Compare All Policies")
    p.wait_for_function(f"() => {R}.params.text.startsWith('A short')", timeout=120_000)
    note = p.locator("#tab-eviction .fit-note")
    assert note.is_visible() and "Nothing can be evicted" in note.inner_text() and "C = 64" in note.inner_text()
    p.shot("newcomer-eviction-fit-note")


# ---------- 2. Live Stream: Stop pauses, Start resumes; settings locked while open ----------
MIN_N = """() => { window.__minN = window.sinkvis.stream.heatmap().n;
  clearInterval(window.__minTimer);
  window.__minTimer = setInterval(() => { window.__minN = Math.min(window.__minN, window.sinkvis.stream.heatmap().n); }, 5); }"""


def test_stream_stop_pauses_and_start_resumes(loaded_page, served):
    api, _ = served
    p = loaded_page
    p.tab("stream")
    p.click("#tab-stream button[data-action=reset]")
    p.fill("#tab-stream input[type=range]", "50")
    p.click("#tab-stream button[data-action=start]")
    p.wait_for_function(f"{STREAM_N} >= 6", timeout=60_000)
    # While the stream is open its settings are locked, and say so (they were silently ignored).
    assert p.locator("#tab-stream input[data-field='sink_threshold']").is_disabled()
    assert p.locator("#tab-stream input[data-field='heavy_fraction']").is_disabled()
    assert p.locator("#tab-stream .settings-note").is_visible()
    p.click("#tab-stream button[data-action=stop]")
    p.wait_for_function("() => !window.sinkvis.stream.isRunning()")
    p.wait_for_timeout(300)
    n = p.evaluate(STREAM_N)
    assert p.locator("#tab-stream button[data-action=start]").inner_text().endswith("Resume")
    p.evaluate(MIN_N)
    p.click("#tab-stream button[data-action=start]")  # resumes: the heatmap never goes back to row 0
    p.wait_for_function(f"{STREAM_N} >= {n + 3}", timeout=60_000)
    p.click("#tab-stream button[data-action=stop]")
    p.wait_for_function("() => !window.sinkvis.stream.isRunning()")
    p.wait_for_timeout(300)
    assert p.evaluate("() => window.__minN") >= n
    state = api.stream_state()
    assert state["active"] and state["position"] == p.evaluate(STREAM_N)  # one stream, not a restart
    # Reset, then Start: from the first token, with the settings editable again.
    p.click("#tab-stream button[data-action=reset]")
    p.wait_for_function(f"{STREAM_N} === 0")
    assert p.locator("#tab-stream input[data-field='sink_threshold']").is_enabled()
    assert p.locator("#tab-stream button[data-action=start]").inner_text().endswith("Start")
    p.click("#tab-stream button[data-action=start]")
    p.wait_for_function(f"{STREAM_N} >= 1", timeout=60_000)
    p.click("#tab-stream button[data-action=stop]")
    p.wait_for_function("() => !window.sinkvis.stream.isRunning()")
    assert api.stream_state()["tokens"][0] == p.evaluate("() => window.sinkvis.stream.heatmap().labels()[0]")


# ---------- 3. count tokens before the forward ----------
def test_quick_attention_counts_tokens_first(wide_page, wide):
    api = wide[0]
    p = wide_page
    text = "The quick brown fox jumps over the lazy dog. " * 120
    n = len(api._state.model.tokenizer(text)["input_ids"])
    context = api._state.model.context_length
    assert n > context == 2048  # Quick Attention takes the whole context (issue 32); past it, it says so at once
    p.fill(".hub-attention textarea", text)
    started = time.perf_counter()
    p.click("text=Get Attention")
    p.wait_for_function("() => document.querySelector('.hub-attention .attn-info').classList.contains('err')", timeout=60_000)
    msg = p.locator(".hub-attention .attn-info").inner_text()
    assert f"{n:,} tokens but the model's context is {context:,}" in msg, msg
    assert time.perf_counter() - started < 10


# ---------- 4. errors in the user's words ----------
def test_errors_name_the_field_as_labelled_in_its_units(loaded_page):
    p = loaded_page
    # Live Stream: 150 in a % field.
    p.tab("stream")
    p.click("#tab-stream button[data-action=reset]")
    p.wait_for_function(f"{STREAM_N} === 0")
    p.fill("#tab-stream input[data-field='heavy_fraction']", "150")
    p.click("#tab-stream button[data-action=start]")
    p.wait_for_function("() => document.querySelector('#tab-stream .stream-info').textContent.includes('Heavy hitters %')")
    msg = p.locator("#tab-stream .stream-info").inner_text()
    assert "0 to 100" in msg and "heavy_fraction" not in msg and "1.5" not in msg
    assert "Heavy hitters %" in p.locator("#st-error").inner_text()
    p.shot("newcomer-stream-error")
    p.fill("#tab-stream input[data-field='heavy_fraction']", "10")
    # Eviction Sim: a bad window, and head "abc" on a model trace.
    p.tab("eviction")
    p.select_option("#tab-eviction select[data-field='trace']", "synthetic")
    p.fill("#tab-eviction input[data-field='window']", "999")
    p.click("#tab-eviction >> text=Run Simulation")
    p.wait_for_function("() => document.querySelector('#tab-eviction .eviction-settings .hint.mono').classList.contains('err')")
    msg = p.locator("#tab-eviction .eviction-settings .hint.mono").inner_text()
    assert "“Window W”" in msg and "“Cache size C”" in msg and "cache_size" not in msg, msg
    p.fill("#tab-eviction input[data-field='window']", "128")
    p.select_option("#tab-eviction select[data-field='trace']", "model")
    p.fill("#tab-eviction input[data-field='head']", "abc")
    p.click("#tab-eviction >> text=Run Simulation")
    msg = p.locator("#tab-eviction .eviction-settings .hint.mono").inner_text()
    assert msg.startswith("Head (blank = mean): type a head number from 0 to 5"), msg
    p.fill("#tab-eviction input[data-field='head']", "")
    # Model Hub: head "abc" showed nothing at all.
    p.tab("hub")
    p.fill(".hub-attention input[data-field='head']", "abc")
    p.click("text=Get Attention")
    msg = p.locator(".hub-attention .attn-info").inner_text()
    assert "Head (blank = mean)" in msg and "abc" in msg
    p.fill(".hub-attention input[data-field='head']", "")


# ---------- 5. stale state ----------
def test_errors_clear_on_success_and_old_results_say_they_are_old(loaded_page):
    p = loaded_page
    p.tab("hub")
    p.fill(".hub-attention input[data-field='head']", "abc")
    p.click("text=Get Attention")
    assert p.locator("#st-error").inner_text() != ""
    p.fill(".hub-attention input[data-field='head']", "")
    p.click("text=Get Attention")
    p.wait_for_function("() => !document.querySelector('.hub-attention .attn-info').classList.contains('err')", timeout=60_000)
    assert p.locator("#st-error").inner_text() == ""  # a later success clears the old error
    # Error and activity text keep their own boxes (no running into each other).
    boxes = p.evaluate("""() => ['#st-activity', '#st-error', '#st-note'].map(s => document.querySelector(s).getBoundingClientRect())
                           .filter(r => r.width > 0).map(r => [r.left, r.right])""")
    assert all(a[1] <= b[0] + 0.5 for a, b in zip(boxes, boxes[1:]))

    # Eviction: a failed run, then a long run: the progress text is not red while it runs.
    p.tab("eviction")
    p.select_option("#tab-eviction select[data-field='trace']", "synthetic")
    p.click("#tab-eviction >> text=Run Simulation")
    p.wait_for_function(f"() => {R} !== null", timeout=120_000)
    assert not p.evaluate("() => window.sinkvis.eviction.isStale()")
    p.fill("#tab-eviction input[data-field='cache_size']", "0")
    p.click("#tab-eviction >> text=Run Simulation")
    p.wait_for_function("() => window.sinkvis.eviction.isStale()")
    assert "earlier run" in p.locator("#tab-eviction .stale-note").inner_text()
    p.fill("#tab-eviction input[data-field='cache_size']", "256")
    p.fill("#tab-eviction input[data-field='length']", "20000000")
    p.click("#tab-eviction >> text=Run Simulation")
    p.wait_for_function("() => document.querySelector('#tab-eviction .eviction-settings .hint.mono').textContent.includes('%')",
                        timeout=60_000)
    assert "err" not in p.get_attribute("#tab-eviction .eviction-settings .hint.mono", "class")
    p.click("#tab-eviction .eviction-settings >> text=Cancel")
    p.wait_for_function("() => document.querySelector('#tab-eviction .eviction-settings .hint.mono').textContent === 'Cancelled.'",
                        timeout=60_000)
    p.fill("#tab-eviction input[data-field='length']", "100000")


def test_bad_folder_keeps_the_list_and_load_does_not_reload_the_old_choice(wide_page, wide):
    api, _, folder = wide
    p = wide_page
    before = api.model_info()["source"]
    items = p.locator(".hub-local li").count()
    p.fill(".hub-local input.mono", "/nonexistent/folder")
    p.click(".hub-local >> text=Use folder")
    p.wait_for_selector(".hub-local .folder-hint:not(.hidden)")
    assert p.locator(".hub-local li").count() == items  # the list is still there
    assert p.locator(".hub-local li.selected").count() == 0
    p.click("text=Load model")
    assert "Pick a model first" in p.locator(".load-detail").inner_text()
    time.sleep(0.3)
    assert api.running_jobs()["jobs"] == [] and api.model_info()["source"] == before
    # Load a folder: "Ready"; then pick another model: the old "Ready" goes.
    p.fill(".hub-local input.mono", str(folder))
    p.click(".hub-local >> text=Use folder")
    p.wait_for_selector(".hub-local li.selected[data-source='folder']")
    p.click("text=Load model")
    p.wait_for_selector(".stages span.current[data-stage='Ready']", timeout=60_000)
    p.click(".hub-local li[data-source='demo']")
    assert not p.locator(".stages").is_visible() and p.locator(".load-detail").inner_text() == ""


def test_model_change_marks_results_stale_and_reenables_the_head_list(wide_page, wide):
    _, _, folder = wide
    p = wide_page
    p.tab("eviction")
    p.select_option("#tab-eviction select[data-field='trace']", "model")
    p.click("#tab-eviction >> text=Run Simulation")
    p.wait_for_function(f"() => {R} && {R}.params.trace === 'model'", timeout=120_000)
    assert not p.evaluate("() => window.sinkvis.eviction.isStale()")
    p.tab("stream")
    p.select_option("#tab-stream select[data-field='view.layer']", "all")
    assert p.locator("#tab-stream select[data-field='view.head']").is_disabled()
    p.tab("hub")  # load a model through the UI (the same folder again)
    p.fill(".hub-local input.mono", str(folder))
    p.click(".hub-local >> text=Use folder")
    p.wait_for_selector(".hub-local li.selected[data-source='folder']")
    p.click("text=Load model")
    p.wait_for_selector(".stages span.current[data-stage='Ready']", timeout=60_000)
    p.wait_for_function("() => window.sinkvis.eviction.isStale()")
    assert "another model" in p.locator("#tab-eviction .stale-note").text_content()
    assert p.locator("#tab-stream select[data-field='view.head']").is_enabled()


# ---------- 6. readable with many layers, small windows, exports ----------
def test_many_layers_first_k_chart_is_mean_and_one_layer(wide_page):
    p = wide_page
    p.tab("stream")
    p.click("#tab-stream button[data-action=reset]")
    p.fill("#tab-stream textarea", "one two three four five six seven eight nine ten")
    for _ in range(3):
        p.click("#tab-stream button[data-action=step]")
    # The 2,048-token context is pooled into cells (heatmap().n counts row cells then): count the steps.
    p.wait_for_function("() => window.sinkvis.stream.stepsShown() >= 3", timeout=60_000)
    labels = p.evaluate("() => window.sinkvis.stream.massChart().data.datasets.map(d => d.label)")
    assert len(labels) <= 4 and any("mean of 12 layers" in x for x in labels), labels
    p.select_option("#tab-stream select[data-field='mass_layer']", "7")
    labels = p.evaluate("() => window.sinkvis.stream.massChart().data.datasets.map(d => d.label)")
    assert "layer 7" in labels
    p.click("#tab-stream button[data-action=reset]")


def test_key_labels_thin_and_policy_colours_are_one_palette(loaded_page):
    p = loaded_page
    p.tab("eviction")
    p.select_option("#tab-eviction select[data-field='trace']", "model")
    p.click("#tab-eviction >> text=Compare All Policies")
    p.wait_for_function(f"() => {R} && {R}.params.trace === 'model'", timeout=120_000)
    p.wait_for_function("() => window.sinkvis.eviction.heatmap().n > 0", timeout=60_000)
    hm = p.evaluate("""() => { const h = window.sinkvis.eviction.heatmap(); const g = h.geometry();
                       return {labels: h.keyLabels, size: g.size, marked: h.sinks.size + h.heavy.size}; }""")
    assert hm["marked"] >= 20
    assert hm["labels"] <= hm["size"] / 10 + 1  # at least font + 2 px apart
    colours = p.evaluate("""async () => { const pal = await import('/js/palette.js');
        const ds = window.sinkvis.eviction.result().results.map(r => r.policy);
        const chart = Chart.getChart(document.querySelectorAll('#tab-eviction .chart-pair canvas')[1]);
        const css = (n) => getComputedStyle(document.documentElement).getPropertyValue(n).trim();
        return {policies: ds, lines: chart.data.datasets.map(d => d.borderColor), want: ds.map(pal.policyColour),
                avoid: [css('--sink'), css('--heavy'), css('--tier-hbm'), css('--tier-ram'), css('--accent')]}; }""")
    assert colours["lines"] == colours["want"]
    assert not set(c.lower() for c in colours["want"]) & set(c.lower() for c in colours["avoid"])
    assert len(set(colours["want"])) == len(colours["want"])
    # Exports: the PNG on the app's background (not transparent), the CSV one value per cell.
    png = _download_text(p, lambda: p.click("#tab-eviction .chart-pair .card:nth-child(2) >> text=PNG"))
    r, g, b, a = _png_pixel(png, 1, 1)
    assert a == 255 and (r, g, b) == (0x12, 0x16, 0x1d)
    rows = list(csv.reader(io.StringIO(_download_text(p, lambda: p.click("#tab-eviction >> text=CSV")).decode())))
    assert "retained_sinks_kept" in rows[0] and "retained_heavy_hitters_total" in rows[0]
    assert not any(cell.startswith(("{", "[")) for row in rows for cell in row)
    assert len(rows) == 1 + len(colours["policies"])


def test_evaluate_table_fits_and_uses_the_policy_palette(loaded_page):
    """The Evaluate table's last column ("seconds") is on screen, and its chart uses the same policy colours (its
    policy lines: the C marker is a grey line of its own)."""
    p = loaded_page
    p.tab("eviction")
    for name, value in (("max_tokens", "96"), ("cache_size", "32"), ("sinks", "4"), ("window", "16")):
        p.fill(f"#tab-eviction input[data-field='eval.{name}']", value)
    p.click("#tab-eviction >> text=Run Evaluation")
    p.wait_for_function("() => window.sinkvis.eviction.evaluate.result() !== null && !window.sinkvis.eviction.evaluate.running()",
                        timeout=180_000)
    for width in (1500, 1024):
        p.set_viewport_size({"width": width, "height": 920 if width > 1024 else 700})
        p.wait_for_timeout(200)
        fit = p.evaluate("""() => { const t = document.querySelector('.eval-table'), w = t.parentElement;
            const last = t.querySelector('thead th:last-child'); const r = last.getBoundingClientRect(), b = w.getBoundingClientRect();
            return {text: last.textContent, right: r.right, box: b.right, scroll: t.scrollWidth, client: w.clientWidth}; }""")
        assert fit["text"] == "seconds" and fit["right"] <= fit["box"] + 0.5 and fit["scroll"] <= fit["client"], (width, fit)
    colours = p.evaluate("""async () => { const pal = await import('/js/palette.js');
        const c = window.sinkvis.eviction.evaluate.chart();
        const names = window.sinkvis.eviction.evaluate.result().results.map(r => r.policy);
        return {got: c.data.datasets.filter(d => d.policy).map(d => d.borderColor), want: names.map(pal.policyColour)}; }""")
    assert colours["got"] == colours["want"]


CONTRAST = """() => {
  const lum = (c) => { const m = c.match(/\\d+/g).map(Number).slice(0, 3).map(v => v / 255)
      .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4); return 0.2126 * m[0] + 0.7152 * m[1] + 0.0722 * m[2]; };
  const rgb = (css) => { const d = document.createElement('div'); d.style.color = css; document.body.appendChild(d);
      const c = getComputedStyle(d).color; d.remove(); return c; };
  const v = (n) => getComputedStyle(document.documentElement).getPropertyValue(n).trim();
  const ratio = (a, b) => { const [x, y] = [lum(rgb(a)), lum(rgb(b))].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  return { chart: ratio(Chart.defaults.color, v('--panel')), faint: ratio(v('--faint'), v('--panel')),
           faint2: ratio(v('--faint'), v('--panel-2')), muted: ratio(v('--muted'), v('--panel')) };
}"""

OVERLAPS = """(root) => {
  // checkVisibility also leaves out the content of a closed <details> (laid out, never drawn).
  const vis = (e) => { const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && e.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true }); };
  const els = [...document.querySelectorAll(`${root} button, ${root} input, ${root} select, ${root} textarea, ${root} label`)]
    .filter(vis);
  const out = [];
  for (let i = 0; i < els.length; i++) for (let j = i + 1; j < els.length; j++) {
    const a = els[i], b = els[j];
    if (a.contains(b) || b.contains(a)) continue;
    const p = a.getBoundingClientRect(), q = b.getBoundingClientRect();
    const w = Math.min(p.right, q.right) - Math.max(p.left, q.left), h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
    if (w > 1 && h > 1) out.push(`${a.tagName}.${a.className}[${(a.textContent || a.dataset.field || '').trim().slice(0, 20)}] × `
      + `${b.tagName}.${b.className}[${(b.textContent || b.dataset.field || '').trim().slice(0, 20)}]`);
  }
  return out;
}"""


def test_small_window_nothing_wraps_or_overlaps(browser, served, loaded_page):
    """1024 × 700 (the window's minimum): one-line tab names, the whole model badge, a block-map
    header of at most two lines, readable axis titles, and no control over another on any tab."""
    context, p = _open(browser, served[1], 1024, 700)
    try:
        p.wait_for_selector("#model-badge.loaded", timeout=30_000)
        heights = p.evaluate("() => [...document.querySelectorAll('.tabbar button')].map(b => b.getClientRects().length && "
                             "document.createRange && (() => { const r = document.createRange(); r.selectNodeContents(b); "
                             "return r.getClientRects().length; })())")
        assert heights == [1] * 6, heights  # each tab name on one line
        badge = p.evaluate("() => { const b = document.getElementById('model-badge'); return [b.scrollWidth, b.clientWidth]; }")
        assert badge[0] <= badge[1], badge
        c = p.evaluate(CONTRAST)
        assert min(c.values()) >= 4.5, c
        for tab in ("hub", "stream", "eviction", "retrieval", "sweep", "profile"):
            p.tab(tab)
            p.wait_for_timeout(150)
            bad = p.evaluate(OVERLAPS, f"#tab-{tab}") + p.evaluate(OVERLAPS, ".topbar")
            assert not bad, f"{tab}: {bad[:5]}"
            if tab == "profile":
                h2 = p.evaluate("() => { const h = document.querySelector('#tab-profile .profile-map > h2'); "
                                "return [h.getBoundingClientRect().height, parseFloat(getComputedStyle(h).lineHeight) || 16]; }")
                assert h2[0] < 3 * 18, h2  # one or two lines, not three
            p.shot(f"newcomer-1024-{tab}")
        assert not p.errors, p.errors
    finally:
        context.close()


# ---------- 8. start-up: `make run` opens with the demo model ready ----------
def test_app_starts_with_the_demo_model_loaded(browser):
    """main.py --serve (the same start-up as the window) loads the demo model with no click."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SINKVIS_NO_DEMO", None)
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []

        def url():
            line = proc.stdout.readline()
            lines.append(line)
            m = re.search(r"(http://127\.0\.0\.1:\d+/\S*)", line)
            return m.group(1) if m else (proc.poll() is not None and AssertionError("".join(lines)))

        found = wait_until(url, timeout=60)
        assert isinstance(found, str), found
        context = browser.new_context(viewport={"width": 1500, "height": 920})
        page = context.new_page()
        page.goto(found)
        page.wait_for_selector("#model-badge.loaded", timeout=60_000)  # no click
        assert page.locator("#model-badge").inner_text().startswith("demo")
        assert "demo" in page.locator(".loaded-model").inner_text()
        context.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
