"""Simulate on a model trace past 2,048 tokens (issue 32): the page says the trace is compact and what it folded,
and the heatmap shows the long trace as the overview (the dense per-token picture stops at 1,024 tokens)."""
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture
def smollm2_page(open_page, smollm2_api):
    return open_page(smollm2_api)


def test_a_long_model_trace_says_what_it_folded(smollm2_page, smollm2_api):
    from backend.defaults import bundled_text

    tokenizer = smollm2_api._state.model.tokenizer
    text = tokenizer.decode(tokenizer(bundled_text("alice"), add_special_tokens=False)["input_ids"][:2100])
    p = smollm2_page
    p.click(".tabbar button[data-tab='eviction']")
    p.select_option("#tab-eviction select[data-field='trace']", "model")
    p.fill("#tab-eviction textarea[data-field='text']", text)
    p.select_option("#tab-eviction select[data-field='policy']", "streaming_llm")
    p.click("#tab-eviction >> text=Run Simulation")
    p.wait_for_function("() => { const r = window.sinkvis.eviction.result(); return r && r.trace && r.trace.approximation; }",
                        timeout=300_000)
    info = p.locator("#tab-eviction .hint.mono", has_text="compact trace").inner_text()
    assert "256 largest weights a row" in info and "folded mass mean" in info and "⚠" not in info
    p.wait_for_function("() => window.sinkvis.eviction.heatmap().grid !== null", timeout=300_000)
    assert "overview" in p.locator("#tab-eviction .kept-hint").inner_text()
    # the overview dims a cell once every key in it was evicted: StreamingLLM evicts whole old ranges, keeps the sinks
    dims = p.evaluate("""() => { const h = window.sinkvis.eviction.heatmap(); if (!h.evictedAt) return null;
        const gone = h.columnEvicted(); return {evicted: gone.filter((x) => x !== Infinity).length, first_kept: gone[0] === Infinity,
        cols: gone.length}; }""")
    assert dims is not None and 0 < dims["evicted"] < dims["cols"]
    assert dims["first_kept"]  # the first column holds a sink: never evicted
