"""Evaluate's KV format select end to end: the chosen format reaches the run, and the run's numbers are the Api's."""
import pytest

pytestmark = pytest.mark.e2e

EV = "window.sinkvis.eviction.evaluate"


def test_evaluate_runs_with_the_chosen_kv_format(loaded_page, served):
    api, _ = served
    p = loaded_page
    p.tab("eviction")
    p.locator("#tab-eviction .eval-section").scroll_into_view_if_needed()
    for name, value in {"max_tokens": 40, "cache_size": 8, "sinks": 2, "window": 4, "intact_sinks": 2}.items():
        p.fill(f"#tab-eviction [data-field='eval.{name}']", str(value))
    p.select_option("#tab-eviction [data-field='eval.policy']", "streaming_llm")
    assert p.locator("#tab-eviction [data-field='eval.kv_format']").input_value() == ""  # unquantized by default
    p.select_option("#tab-eviction [data-field='eval.kv_format']", "q4_0")
    p.click("#tab-eviction >> text=Run Evaluation")
    p.wait_for_function(f"() => {EV}.result() !== null", timeout=300_000)
    status = api.job_status({"job_id": p.evaluate(f"() => {EV}.jobOfResult()")})
    assert status["state"] == "done", status
    result = status["result"]
    assert result["kv_format"] == "q4_0" and result["intact_sinks"] == 2
    assert result["results"][0]["bytes_per_token"] == 6 * 2 * 32 * 2 * 4.5 / 8
    shown = p.evaluate(f"() => {EV}.result()")
    assert [r["perplexity"] for r in shown["results"]] == [r["perplexity"] for r in result["results"]]
