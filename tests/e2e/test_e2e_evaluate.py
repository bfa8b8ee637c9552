"""The Evaluate section of the Eviction tab end to end: perplexity under each policy on the loaded model."""
import pytest

pytestmark = pytest.mark.e2e

SMALL = {"max_tokens": 40, "cache_size": 8, "sinks": 2, "window": 4}
EV = "window.sinkvis.eviction.evaluate"
ESTIMATE = "document.querySelector('#tab-eviction .eval-estimate').textContent.includes('for {n} steps')"
COLOURS = """() => { const c = document.querySelector('#tab-eviction .eval-chart canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const seen = new Set(); for (let i = 0; i < d.length; i += 4 * 3) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  return seen.size; }"""


def fill_settings(p, settings):
    for name, value in settings.items():
        p.fill(f"#tab-eviction [data-field='eval.{name}']", str(value))


def test_overlay_without_a_model(fresh_page):
    p = fresh_page
    p.tab("eviction")
    p.locator("#tab-eviction .eval-section").scroll_into_view_if_needed()
    assert p.locator("#tab-eviction .eval-model-required").is_visible()


def test_evaluate_table_chart_and_cancel(loaded_page, served):
    api, _ = served
    p = loaded_page
    p.tab("eviction")
    p.locator("#tab-eviction .eval-section").scroll_into_view_if_needed()
    assert not p.locator("#tab-eviction .eval-model-required").is_visible()
    # A bad setting comes back at once and marks its own input (not the simulation's cache_size).
    fill_settings(p, {**SMALL, "cache_size": 100_000})
    p.click("#tab-eviction >> text=Run Evaluation")
    p.wait_for_selector("#tab-eviction [data-field='eval.cache_size'].invalid", timeout=30_000)
    assert "cache_size" in p.locator("#tab-eviction .eval-progress").inner_text()
    assert p.locator("#tab-eviction .invalid").count() == 1
    fill_settings(p, SMALL)
    assert p.locator("#tab-eviction [data-field='eval.policy']").input_value() == "all"
    # Before running: the measured estimate, and a warning when the text is not longer than the cache.
    p.wait_for_function("() => /Estimate: ~/.test(document.querySelector('#tab-eviction .eval-estimate').textContent)",
                        timeout=60_000)
    # Quest reads whole pages of 16 tokens: at C = 8 'all' leaves it out, and the estimate says so before Run
    p.wait_for_function("() => document.querySelector('#tab-eviction .eval-estimate').textContent"
                        ".includes('Quest is left out')", timeout=30_000)
    assert p.locator("#tab-eviction [data-field='eval.granularity']").input_value() == "per_head"
    assert p.locator("#tab-eviction [data-field='eval.positions']").input_value() == "original"
    p.click("#tab-eviction >> text=Run Evaluation")
    p.wait_for_function(f"() => {EV}.result() !== null", timeout=300_000)
    shown = p.evaluate(f"() => {EV}.result()")

    # The backend's numbers: the finished job's result, read from the Api (not through the page).
    status = api.job_status({"job_id": p.evaluate(f"() => {EV}.jobOfResult()")})
    assert status["state"] == "done", status
    expected = status["result"]
    assert [r["policy"] for r in shown["results"]] == [r["policy"] for r in expected["results"]]
    # 'all': every decode-time policy (Quest left out at C = 8, as the estimate said)
    assert [r["policy"] for r in expected["results"]] == ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova"]
    rows = p.locator("#tab-eviction .eval-table tbody tr")
    assert rows.count() == len(expected["results"])
    for i, r in enumerate(expected["results"]):
        row = rows.nth(i)
        assert row.get_attribute("data-policy") == r["policy"]
        cell = lambda key: row.locator(f"td[data-key='{key}']").inner_text().replace(" ★", "").replace(",", "")  # noqa: E731
        assert float(cell("perplexity")) == pytest.approx(r["perplexity"], abs=6e-4)
        if r["policy"] != "full":
            assert float(cell("kl_vs_full")) == pytest.approx(r["kl_vs_full"], abs=6e-5)
        assert int(cell("tokens")) == r["tokens"] == SMALL["max_tokens"] - 1
        assert int(cell("evictions")) == r["evictions"]
        assert shown["results"][i]["perplexity"] == r["perplexity"] and shown["results"][i]["kl_vs_full"] == r["kl_vs_full"]

    # The lowest perplexity and KL among the evicting policies carry the star; Full Cache never does.
    evicting = [r for r in expected["results"] if r["policy"] != "full"]
    for key in ("perplexity", "kl_vs_full"):
        best = min(r[key] for r in evicting)
        starred = p.locator(f"#tab-eviction .eval-table td.best[data-key='{key}']")
        assert starred.count() >= 1
        for k in range(starred.count()):
            policy = starred.nth(k).locator("xpath=..").get_attribute("data-policy")
            assert policy != "full"
            assert next(r[key] for r in evicting if r["policy"] == policy) == best

    # One line per policy on a drawn chart, and the position scheme is said.
    chart = p.evaluate(f"() => {EV}.chart().data.datasets.map(d => [d.label, d.data.length])")
    assert chart[-1] == ["C = 8: the cache is full", 2]  # a vertical line where the cache first fills
    chart = chart[:-1]
    assert len(chart) == len(expected["results"]) and all(n > 0 for _, n in chart)
    assert p.evaluate(COLOURS) > 8
    note = p.locator("#tab-eviction .eval-note").inner_text()
    assert expected["position_scheme"] in note and expected["eviction_mode"] in note
    # The result names the model, text and settings that produced it (not whatever is loaded now).
    info = p.locator("#tab-eviction .eval-info").inner_text()
    assert expected["model"]["source"] in info and expected["text"]["sha256"] in info and "C=8 S=2 W=4" in info
    assert "per KV head" in p.locator("#tab-eviction .eval-table tr[data-policy='h2o']").inner_text()
    with p.expect_download() as dl:
        p.click("#tab-eviction .eval-results >> text=CSV")
    assert dl.value.suggested_filename.startswith("evaluate-results-")
    # the successful run already cleared the bad-setting error from the status line (status.js)
    assert not p.locator("#st-error").is_visible()
    p.locator("#tab-eviction .eval-section").scroll_into_view_if_needed()
    p.wait_for_function(f"() => {ESTIMATE.format(n=SMALL['max_tokens'] - 1)}", timeout=60_000)
    p.shot("evaluate", docs=True)

    # Cancel a long run (the bundled text): the section stays usable and a second small run completes.
    fill_settings(p, {"max_tokens": 1024, "cache_size": 64})
    p.click("#tab-eviction >> text=Run Evaluation")
    p.wait_for_function("() => /position \\d+.*tokens\\/s.*left/.test("
                        "document.querySelector('#tab-eviction .eval-progress').textContent)", timeout=120_000)
    p.click("#tab-eviction .eval-settings >> text=Cancel")
    p.wait_for_function(f"() => !{EV}.running()", timeout=60_000)
    kept = p.evaluate(f"() => {EV}.result()")  # Cancel keeps the positions computed so far (marked partial)
    assert kept["partial"] and 0 < kept["positions_done"] < 1023
    assert p.locator("#tab-eviction .eval-progress").inner_text() == (
        f"Cancelled at position {kept['positions_done']:,} of 1,023: the partial result is kept.")
    assert p.locator("#tab-eviction >> text=Run Evaluation").is_enabled()
    fill_settings(p, {**SMALL, "max_tokens": 30})
    p.select_option("#tab-eviction [data-field='eval.policy']", "streaming_llm")
    p.click("#tab-eviction >> text=Run Evaluation")
    p.wait_for_function(f"() => {EV}.result().params.max_tokens === 30", timeout=300_000)
    again = p.evaluate(f"() => {EV}.result()")
    # Max tokens changed just before Run: the estimate catches up once the run ends (it waits for a running job)
    p.wait_for_function(f"() => {ESTIMATE.format(n=29)}", timeout=60_000)
    assert [r["policy"] for r in again["results"]] == ["full", "streaming_llm"]
    assert rows.count() == 2


def test_default_run_on_the_demo_goes_past_its_context(loaded_page, served):
    """Evaluate's defaults on the bundled Llama: 1,024 tokens, 4× its 256-token context, C = 64. The table adds the
    within / past columns, the chart marks where the context ends, and Full Cache's running perplexity bends there."""
    api, _ = served
    assert api.model_info()["source"] == "demo"
    p = loaded_page
    p.tab("eviction")
    p.locator("#tab-eviction .eval-section").scroll_into_view_if_needed()
    for name, value in {"max_tokens": "1024", "cache_size": "64", "sinks": "4", "window": "32"}.items():
        assert p.input_value(f"#tab-eviction [data-field='eval.{name}']") == value, name
    p.click("#tab-eviction >> text=Run Evaluation")
    p.wait_for_function(f"() => {EV}.result() !== null", timeout=300_000)
    result = api.job_status({"job_id": p.evaluate(f"() => {EV}.jobOfResult()")})["result"]
    by = {r["policy"]: r for r in result["results"]}
    assert result["tokens"] == 1024 and result["context_length"] == 256
    assert by["full"]["perplexity_past_context"] > 2 * by["streaming_llm"]["perplexity_past_context"]
    heads = p.locator("#tab-eviction .eval-table thead th").all_inner_texts()
    assert "ppl within context" in heads and "ppl past context" in heads
    past = p.locator("#tab-eviction .eval-table tr[data-policy='full'] td[data-key='perplexity_past_context']")
    assert float(past.inner_text().replace(",", "")) == pytest.approx(by["full"]["perplexity_past_context"], abs=6e-3)
    marker = p.evaluate(f"() => {EV}.chart().data.datasets.filter(d => d.label === 'context 256').map(d => d.data)")
    assert len(marker) == 1 and [pt["x"] for pt in marker[0]] == [256, 256]
    full = next(r for r in result["results"] if r["policy"] == "full")["curve"]
    at = lambda x: full["perplexity"][min(range(len(full["position"])), key=lambda k: abs(full["position"][k] - x))]  # noqa: E731
    assert at(1023) > 1.5 * at(255)  # the running perplexity climbs once past the context
    p.wait_for_function(f"() => {ESTIMATE.format(n='1,023')}", timeout=60_000)  # the estimate is back after the run
    p.locator("#tab-eviction .eval-results").scroll_into_view_if_needed()
    p.shot("evaluate-past-context", docs=True)
