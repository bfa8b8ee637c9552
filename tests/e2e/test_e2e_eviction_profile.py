"""Eviction Sim tab end to end (the Cache Profile tab: test_e2e_profile.py)."""
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


# The Cache Profile tab's end-to-end tests are in test_e2e_profile.py.
