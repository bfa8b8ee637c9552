"""Live Stream tab end to end: Step, Start, Stop, Reset on the loaded model; markers match the backend."""
import pytest

pytestmark = pytest.mark.e2e

PROMPT = "In the beginning the Universe was created. This has made a lot of people very angry."
N = "() => window.sinkvis.stream.heatmap().n"
PIXELS = """() => { const c = document.querySelector('#tab-stream canvas.heatmap');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 0; for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i] + 3 * d[i + 1] + 7 * d[i + 2]) | 0; return h; }"""


def test_stream_controls_markers_and_views(loaded_page, served):
    api, _ = served
    p = loaded_page
    p.tab("stream")
    assert not p.locator("#tab-stream .model-required").is_visible()
    p.fill("#tab-stream textarea", PROMPT)
    p.fill("#tab-stream input[type=range]", "50")

    p.click("#tab-stream button[data-action=step]")  # no stream yet: starts paused and takes one step
    p.wait_for_function(f"{N} === 1", timeout=60_000)
    p.click("#tab-stream button[data-action=step]")
    p.wait_for_function(f"{N} === 2", timeout=60_000)

    p.click("#tab-stream button[data-action=start]")  # resumes after the two steps
    p.wait_for_function(f"{N} >= 10", timeout=60_000)
    p.click("#tab-stream button[data-action=stop]")
    p.wait_for_function("() => !window.sinkvis.stream.isRunning()")
    p.wait_for_timeout(400)  # a step in flight lands; then nothing more
    n = p.evaluate(N)
    p.wait_for_timeout(500)
    assert p.evaluate(N) == n >= 10

    # Markers sit where the backend says, for the view on screen (last layer, mean over heads).
    layers = api.model_info()["spec"]["layers"]
    view = api.stream_view({"layer": layers - 1, "head": None})
    assert view["ok"] and len(view["rows"]) == n
    marks = p.evaluate("() => window.sinkvis.stream.heatmap().markers()")
    assert marks["sinks"] == sorted(s["position"] for s in view["sinks"])
    assert marks["heavy"] == sorted(view["heavy_hitters"])
    assert marks["heavy"], "the heavy-hitter set is never empty at 10% of ≥ 10 keys"
    assert p.locator("#tab-stream .sink-table tbody tr").count() >= 1
    p.shot("stream", docs=True)

    # Switching the head redraws from history (same rows count, different picture).
    before = p.evaluate(PIXELS)
    version = p.evaluate("() => window.sinkvis.stream.heatmap().version")
    p.select_option("#tab-stream select[data-field='view.head']", "0")
    p.wait_for_function(f"() => window.sinkvis.stream.heatmap().version > {version}", timeout=30_000)
    assert p.evaluate(N) == n
    assert p.evaluate(PIXELS) != before

    p.click("#tab-stream button[data-action=reset]")
    p.wait_for_function(f"{N} === 0", timeout=30_000)
    assert "Reset" in p.locator("#tab-stream .stream-info").inner_text()


def test_stream_prompt_markup_is_text(loaded_page):
    p = loaded_page
    p.tab("stream")
    p.fill("#tab-stream textarea", "<img src=x onerror=alert(1)> hello")
    p.click("#tab-stream button[data-action=step]")
    p.wait_for_function(f"{N} === 1", timeout=60_000)
    p.click("#tab-stream button[data-action=step]")
    p.wait_for_function(f"{N} === 2", timeout=60_000)
    assert p.locator("img").count() == 0
    assert "<img" in "".join(p.evaluate("() => window.sinkvis.stream.heatmap().labels()")) or p.evaluate(N) == 2


def test_stream_past_its_cells_draws_the_pooled_history(loaded_page, served):
    """History cells below the context (issue 32): every step redraws its row bin from the pooled history the
    backend holds, and a view switch redraws all of it; the cells are the backend's (max pooling)."""
    api, _ = served
    p = loaded_page
    p.tab("stream")
    p.fill("#tab-stream textarea", PROMPT + " " + PROMPT)
    p.fill("#tab-stream input[data-field='cells']", "32")
    p.fill("#tab-stream input[type=range]", "50")
    p.click("#tab-stream button[data-action=start]")
    p.wait_for_function("() => window.sinkvis.stream.heatmap().grid != null && window.sinkvis.stream.heatmap().n >= 4",
                        timeout=60_000)
    p.click("#tab-stream button[data-action=stop]")
    p.wait_for_function("() => !window.sinkvis.stream.isRunning()")
    p.wait_for_timeout(400)  # a step in flight lands
    assert p.evaluate("() => window.sinkvis.stream.heatmap().grid.rowEdges.length") == 33  # 256 tokens in 32 row bins
    layers = api.model_info()["spec"]["layers"]
    view = api.stream_view({"layer": layers - 1, "head": None})
    assert view["ok"] and view["rows"] is None and view["cells"]["row_edges"][-1] >= view["position"]
    drawn = p.evaluate("() => { const h = window.sinkvis.stream.heatmap(); return {n: h.n, cols: h.grid.colEdges, "
                       "rows: h.rows.map((r) => Array.from(r, (x) => (Number.isNaN(x) ? null : x)))}; }")
    assert drawn["cols"] == view["cells"]["col_edges"] and drawn["cols"][:5] == [0, 1, 2, 3, 4]
    assert drawn["n"] == len(view["cells"]["max"]) >= 4
    for got, want in zip(drawn["rows"], view["cells"]["max"]):
        assert [g is None for g in got] == [w is None for w in want]
        assert max(abs(g - w) for g, w in zip(got, want) if w is not None) < 1e-5
    # Switching the head redraws the whole pooled history of that view.
    version = p.evaluate("() => window.sinkvis.stream.heatmap().version")
    p.select_option("#tab-stream select[data-field='view.head']", "0")
    p.wait_for_function(f"() => window.sinkvis.stream.heatmap().version > {version}", timeout=30_000)
    head0 = api.stream_view({"layer": layers - 1, "head": 0})["cells"]["max"]
    last = p.evaluate("() => { const h = window.sinkvis.stream.heatmap(); return Array.from(h.rows[h.n - 1], (x) => (Number.isNaN(x) ? null : x)); }")
    assert max(abs(g - w) for g, w in zip(last, head0[-1]) if w is not None) < 1e-5
