"""Issue 33, item 9 ("small things"), each on the real page: the Live Stream's header, sink-grid
tooltip and colour scale and its steady button row; the Model Hub's status words and memory need;
the seconds column's stars; the Sweeps table, ticks and an older file's settings."""
import pytest

pytestmark = pytest.mark.e2e

N = "() => window.sinkvis.stream.heatmap().n"
VIEWPORT = {"width": 1500, "height": 920}  # conftest's


def _y(p, selector):
    return p.locator(selector).bounding_box()["y"]


def test_stream_header_grid_tooltip_scale_and_steady_buttons(loaded_page, served):
    api, _ = served
    p = loaded_page
    p.tab("stream")
    p.click("#tab-stream button[data-action=reset]")
    p.wait_for_function(f"{N} === 0")
    before = _y(p, "#tab-stream button[data-action=step]")
    assert not p.locator("#tab-stream .settings-note").is_visible()
    for i in range(1, 13):
        p.click("#tab-stream button[data-action=step]")
        p.wait_for_function(f"{N} === {i}", timeout=60_000)
    assert p.locator("#tab-stream .settings-note").is_visible()  # "locked until Reset" …
    assert _y(p, "#tab-stream button[data-action=step]") == before  # … and the buttons did not move

    # The header counts the view on screen: switch to a layer whose sink count differs from the last's.
    layers = api.model_info()["spec"]["layers"]
    counts = {l: len(api.stream_view({"layer": l, "head": None})["sinks"]) for l in range(layers)}
    other = next(l for l in range(layers) if counts[l] != counts[layers - 1])
    sinks = lambda n: f"· {n} sink{'' if n == 1 else 's'} ·"
    p.wait_for_function(f"() => document.querySelector('#tab-stream .stream-info').textContent.includes('{sinks(counts[layers - 1])}')")
    version = p.evaluate("() => window.sinkvis.stream.heatmap().version")
    p.select_option("#tab-stream select[data-field='view.layer']", str(other))
    p.wait_for_function(f"() => window.sinkvis.stream.heatmap().version > {version}", timeout=30_000)
    p.wait_for_function(f"() => document.querySelector('#tab-stream .stream-info').textContent.includes('{sinks(counts[other])}')")

    # The sink grid has a colour scale: the colormap's ends are the grid's colours of 0 and 1.
    p.wait_for_function("() => window.sinkvis.stream.sinkGrid().values.length > 0", timeout=30_000)
    legend = p.locator("#tab-stream .grid-legend")
    assert legend.is_visible() and "mean attention on token 0" in legend.inner_text()
    bar = p.evaluate("() => document.querySelector('#tab-stream .grid-legend-bar').style.background")
    low, high = p.evaluate("() => [window.sinkvis.stream.sinkGrid().colour(0), window.sinkvis.stream.sinkGrid().colour(1)]")
    assert bar.replace(" ", "").find(low.replace(" ", "")) < bar.replace(" ", "").find(high.replace(" ", ""))
    ticks = p.evaluate("""() => [...document.querySelectorAll('#tab-stream .grid-legend-ticks span')]
        .map(s => [s.textContent, s.style.left])""")
    assert ["0.25", "50%"] in ticks and ticks[0][0] == "0" and ticks[-1] == ["1", "100%"]  # sqrt scale

    # The tooltip of the bottom-right cell stays inside the window, and goes when the pointer does.
    canvas = p.locator("#tab-stream .scoregrid canvas").bounding_box()
    p.mouse.move(canvas["x"] + canvas["width"] - 7, canvas["y"] + canvas["height"] - 7)
    tip = p.locator("#tab-stream .scoregrid .tooltip")
    tip.wait_for(state="visible")
    box = tip.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"]
    assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"]
    assert f"layer {len(counts) - 1} head" in tip.inner_text()
    p.mouse.move(5, 5)
    tip.wait_for(state="hidden")
    p.mouse.move(canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2)
    tip.wait_for(state="visible")
    p.evaluate("() => window.sinkvis.stream.sinkGrid().set(window.sinkvis.stream.sinkGrid().values)")  # new values
    tip.wait_for(state="hidden")  # the card described the old ones: it does not stay behind
    p.click("#tab-stream button[data-action=reset]")
