"""Quick Attention past the overview's cells (issue 32): the pooled overview is drawn in the page, the pooling
toggle redraws it, and a click on a cell answers with a zoom at single tokens equal to the Api's rows."""
import numpy as np
import pytest

from test_e2e_hub import CANVAS_COLOURS

pytestmark = pytest.mark.e2e

TEXT = " ".join(["The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."] * 6)


def test_overview_is_drawn_pooled_and_a_click_zooms_to_single_tokens(loaded_page, served):
    api, _ = served
    p = loaded_page
    p.fill(".hub-attention textarea", TEXT)
    p.fill(".hub-attention input[data-field='cells']", "32")
    p.click("text=Get Attention")
    p.wait_for_function("() => window.sinkvis.hub.heatmap().grid != null", timeout=60_000)
    expected = api.attention({"text": TEXT, "cells": 32})
    assert expected["ok"] and expected["n"] > 100
    o = expected["overview"]
    hm = "window.sinkvis.hub.heatmap()"
    assert p.evaluate(f"() => {hm}.n") == len(o["row_edges"]) - 1 < expected["n"]
    assert p.evaluate(f"() => {hm}.grid.colEdges") == o["col_edges"]
    assert {0, 1, 2, 3} <= set(o["kept_columns"])  # the first keys keep a column each
    assert p.evaluate(CANVAS_COLOURS, ".hub-attention canvas") > 20
    info = p.locator(".hub-attention .attn-info").inner_text()
    assert "max pooling" in info and "click a cell to zoom" in info
    drawn_max = p.evaluate(f"() => Array.from({hm}.rows[5])")
    np.testing.assert_allclose(drawn_max, [np.nan if x is None else x for x in o["max"][5]], atol=1e-6)

    version = p.evaluate(f"() => {hm}.version")
    p.select_option(".hub-attention select[data-field='pooling']", "mean")
    p.wait_for_function(f"() => {hm}.version > {version}")
    assert "mean pooling" in p.locator(".hub-attention .attn-info").inner_text()
    drawn_mean = p.evaluate(f"() => Array.from({hm}.rows[5])")
    np.testing.assert_allclose(drawn_mean, [np.nan if x is None else x for x in o["mean"][5]], atol=1e-6)

    # Click the last row's first cell: the zoom answers in the page with one cell per token.
    box = p.locator(".hub-attention canvas.heatmap").first.bounding_box()
    geometry = p.evaluate(f"() => {{ const g = {hm}.geometry(); return {{cell: g.cell, rows: {hm}.n}}; }}")
    y = 12 + (geometry["rows"] - 0.5) * geometry["cell"]
    x = 78 + 0.5 * geometry["cell"]
    p.mouse.click(box["x"] + x, box["y"] + y)
    p.wait_for_function("() => !document.querySelector('.hub-zoom').classList.contains('hidden') && "
                        "window.sinkvis.hub.zoomHeatmap().n > 0", timeout=60_000)
    zoom = p.evaluate("() => { const z = window.sinkvis.hub.zoomHeatmap(); return {rows: z.grid.rowEdges, cols: z.grid.colEdges, "
                      "first: Array.from(z.rows[z.rows.length - 1])}; }")
    n = expected["n"]
    assert zoom["rows"][-1] == n and all(b - a == 1 for a, b in zip(zoom["rows"], zoom["rows"][1:]))
    assert zoom["cols"][0] == 0 and all(b - a == 1 for a, b in zip(zoom["cols"], zoom["cols"][1:]))
    dense = np.array(api.attention({"text": TEXT})["matrix"])  # the exact matrix of the same view
    np.testing.assert_allclose(zoom["first"], dense[n - 1, zoom["cols"][0]:zoom["cols"][-1]], atol=2e-6)
    assert "one cell per token" in p.locator(".hub-zoom .zoom-info").inner_text()
