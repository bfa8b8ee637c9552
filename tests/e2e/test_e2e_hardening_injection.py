"""Untrusted content renders as text everywhere: Hub names, tags and card text from the local Hub
(tests/hub_server.py serves <script>/onerror payloads), tokens of a hostile prompt in the Live Stream
and the Eviction model-trace heatmap, and a folder path echoed in an error. The page must create no
<img>/<script>/<iframe> element beyond its own and open no dialog (an alert = injected script ran)."""
import pytest

pytestmark = pytest.mark.e2e

PAYLOADS = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", "\"><svg onload=alert(3)>",
            "<iframe src=javascript:alert(4)>"]
PROMPT = "Hello " + " and ".join(PAYLOADS) + " bye."
ELEMENTS = """() => ({img: document.querySelectorAll('img').length, script: document.querySelectorAll('script').length,
  iframe: document.querySelectorAll('iframe').length, svg: document.querySelectorAll('svg[onload]').length,
  handlers: document.querySelectorAll('[onerror],[onload]').length})"""


def test_hostile_payloads_render_as_text_in_every_view(loaded_page, hub_env):
    p = loaded_page
    before = p.evaluate(ELEMENTS)
    assert before["handlers"] == 0

    # Hub search results: names, authors and tags from the Hub.
    p.tab("hub")
    p.fill(".hub-search input", "xss")
    p.press(".hub-search input", "Enter")
    p.wait_for_function("() => document.querySelectorAll('.hub-search .results li .name').length >= 2", timeout=30_000)
    results = p.locator(".hub-search .results").inner_text()
    assert "<img src=x onerror=alert(1)>" in results and "<script>alert(1)</script>" in results  # shown as text
    for i in range(p.locator(".hub-search .results li").count()):  # every result's info card, hostile ones included
        p.locator(".hub-search .results li").nth(i).click()
        p.wait_for_timeout(400)

    # The info card of a real repo whose card text carries an onerror payload (the excerpt drops tags; what is
    # left goes in as text).
    p.fill(".hub-search input", "tiny-gpt2")
    p.press(".hub-search input", "Enter")
    p.wait_for_selector(".hub-search .results li >> text=sinkvis/tiny-gpt2", timeout=30_000)
    p.click(".hub-search .results li >> text=sinkvis/tiny-gpt2")
    p.wait_for_function("() => document.querySelector('.card-excerpt') && "
                        "document.querySelector('.card-excerpt').textContent.includes('random GPT-2')", timeout=30_000)

    # trust_remote_code: the warning appears only when the switch is on.
    warn = p.locator(".hub-model .hint.warn", has_text="Trust remote code runs Python")
    assert not warn.is_visible()
    p.locator(".hub-model label", has_text="Trust remote code").locator("input").check()
    assert warn.is_visible() and "repositories you trust" in warn.inner_text()
    p.locator(".hub-model label", has_text="Trust remote code").locator("input").uncheck()
    assert not warn.is_visible()

    # A folder path echoed back in an error message.
    p.fill(".hub-local input.mono", "/nonexistent/" + PAYLOADS[0])
    p.click(".hub-local >> text=Use folder")
    p.wait_for_timeout(500)

    # Tokens of a hostile prompt: the Live Stream.
    p.tab("stream")
    p.fill("#tab-stream textarea", PROMPT)
    p.click("#tab-stream >> text=Start")
    p.wait_for_function("() => window.sinkvis.stream.heatmap().n >= 12", timeout=60_000)
    p.click("#tab-stream >> text=Stop")
    p.wait_for_function("() => !window.sinkvis.stream.isRunning()")
    labels = "".join(p.evaluate("() => window.sinkvis.stream.heatmap().labels()"))
    assert "<" in labels and "img" in labels

    # The same tokens as the Eviction tab's model-trace heatmap labels.
    p.tab("eviction")
    p.select_option("#tab-eviction select[data-field='trace']", "model")
    p.fill("#tab-eviction textarea[data-field='text']", PROMPT)
    p.fill("#tab-eviction input[data-field='cache_size']", "16")
    p.fill("#tab-eviction input[data-field='sinks']", "2")
    p.fill("#tab-eviction input[data-field='window']", "8")
    p.click("#tab-eviction >> text=Compare All Policies")
    p.wait_for_function("() => window.sinkvis.eviction.heatmap().n > 0 && "
                        "window.sinkvis.eviction.heatmap().labels().join('').includes('script')", timeout=120_000)
    p.hover("#tab-eviction canvas.heatmap", position={"x": 60, "y": 60})  # the tooltip shows a token as text
    p.wait_for_timeout(300)

    after = p.evaluate(ELEMENTS)
    assert after == before, f"elements created from untrusted text: {before} → {after}"
    assert not p.dialogs and not p.errors
