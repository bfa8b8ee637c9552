"""Eviction Sim and Cache Profile tabs end to end."""
import pytest

pytestmark = pytest.mark.e2e


def test_compare_all_policies_on_a_synthetic_trace(page):
    """No model needed: the synthetic trace is not behind the overlay."""
    page.tab("eviction")
    page.fill("#tab-eviction input[data-field='length']", "20000")
    page.click("#tab-eviction >> text=Compare All Policies")
    page.wait_for_function("() => window.sinkvis.eviction.result() !== null", timeout=120_000)
    result = page.evaluate("() => window.sinkvis.eviction.result()")
    rows = page.locator("#tab-eviction .results-table tbody tr")
    assert rows.count() == len(result["results"]) >= 5
    assert page.locator("#tab-eviction td.best").count() >= 4  # the best of each ranked column is marked
    hit_rates = [r["hit_rate"] for r in result["results"]]
    best_row = rows.nth(hit_rates.index(max(hit_rates)))
    assert "best" in best_row.locator("td").nth(6).get_attribute("class")
    page.shot("eviction", docs=True)


def test_model_trace_dims_evicted_keys(loaded_page):
    p = loaded_page
    p.tab("eviction")
    p.select_option("#tab-eviction select[data-field='trace']", "model")
    assert not p.locator("#tab-eviction .model-required").is_visible()
    p.fill("#tab-eviction input[data-field='cache_size']", "16")
    p.fill("#tab-eviction input[data-field='sinks']", "2")
    p.fill("#tab-eviction input[data-field='window']", "8")
    p.click("#tab-eviction >> text=Compare All Policies")
    p.wait_for_function("() => window.sinkvis.eviction.result() && window.sinkvis.eviction.result().params.trace === 'model'",
                        timeout=120_000)
    p.wait_for_function("() => window.sinkvis.eviction.heatmap().n > 0", timeout=60_000)
    assert p.locator("#tab-eviction .eviction-heatmap").is_visible()
    p.locator("#tab-eviction .results-table tbody tr[data-policy='sliding_window']").click()
    dimmed = p.evaluate("() => (window.sinkvis.eviction.heatmap().evictedAt || []).filter(x => x != null && x >= 0).length")
    assert dimmed > 0
    p.shot("eviction-model")


def test_block_map_hover_shows_the_backend_values(page):
    page.tab("profile")
    page.fill("#tab-profile input[data-field='length']", "20000")
    page.click("#tab-profile >> text=Refresh")
    page.wait_for_function("() => window.sinkvis.profile.result() !== null", timeout=120_000)
    result = page.evaluate("() => window.sinkvis.profile.result()")
    assert "modelled tier" in page.locator("#tab-profile .l2-note").inner_text()
    # The constrained preset is sized for this length, so the blocks spill over every tier.
    assert len(set(result["tier"])) == 4
    box = page.locator("#tab-profile canvas.blockmap").bounding_box()
    page.mouse.move(box["x"] + 3, box["y"] + 3)  # block 0: holds token 0, a sink, pinned to HBM
    tip = page.locator("#tab-profile .tooltip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    b = page.evaluate("() => window.sinkvis.profile.blockmap().hovered")
    assert f"block {b}\n" in text
    assert f"accesses {result['access_count'][b]:,}" in text
    tiers = ["GPU HBM", "GPU L2 (modelled)", "System RAM", "Disk"]
    assert f"tier {tiers[result['tier'][b]]}" in text
    page.shot("profile", docs=True)
