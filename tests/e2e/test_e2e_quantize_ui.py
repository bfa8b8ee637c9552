"""Quantized caches in every view (issue 34, the UI half), end to end on the demo model: the error picture drawn
with the sinks marked and IntactKV beside it, Retrieval run in a format, a sweep over two formats whose frontier
has points of both and a Pareto front across them, the Cache Profile's bytes per token from the format. Every
expectation comes from the Api's own result or the backend's format layout."""
import pytest
from e2e_helpers import wait_until

pytestmark = pytest.mark.e2e

QE = "window.sinkvis.eviction.quantErrorView"


def test_the_format_lists_come_from_the_backend(loaded_page):
    from backend.quantize.formats import EXAMPLES

    p = loaded_page
    p.wait_for_function("() => document.querySelectorAll(\"#tab-sweep [data-field='sweep.kv_formats'] option\").length > 1")
    for select in ("#tab-eviction [data-field='eval.kv_format']", "#tab-eviction [data-field='qerr.kv_format']",
                   "#tab-retrieval [data-field='kv_format']", "#tab-sweep [data-field='sweep.kv_formats']",
                   "#tab-profile [data-field='kv_format']"):
        values = p.eval_on_selector_all(f"{select} option", "os => os.map(o => o.value)")
        assert values[1:] == list(EXAMPLES), select  # first: unquantized
    assert p.eval_on_selector_all("#tab-sweep [data-field='sweep.kv_formats'] option:checked", "os => os.map(o => o.value)") == ["none"]
    assert "kivi-2 (K 2.25 / V 3 bits)" in p.locator("#tab-retrieval [data-field='kv_format']").inner_text()


def test_error_picture_marks_the_sinks_and_what_keeping_them_intact_removes(loaded_page, served):
    api, _ = served
    p = loaded_page
    p.tab("eviction")
    p.locator("#tab-eviction .qerr").scroll_into_view_if_needed()
    qerr_format = p.locator("#tab-eviction [data-field='qerr.kv_format']")
    assert qerr_format.input_value() == "q4_0"  # not "unquantized": it has no error to draw
    p.select_option("#tab-eviction [data-field='eval.kv_format']", "q8_0")  # Evaluate's format is offered here...
    assert qerr_format.input_value() == "q8_0"
    p.select_option("#tab-eviction [data-field='qerr.kv_format']", "q4_0-rot")  # per token: 64 tokens are all stored
    p.select_option("#tab-eviction [data-field='eval.kv_format']", "int4")  # ...until one is picked here
    assert qerr_format.input_value() == "q4_0-rot"
    p.fill("#tab-eviction [data-field='qerr.max_tokens']", "64")
    p.fill("#tab-eviction [data-field='qerr.intact_sinks']", "2")
    p.click("#tab-eviction >> text=Show the error")
    p.wait_for_function(f"() => {QE}.shown !== null", timeout=300_000)
    shown = p.evaluate(f"() => {QE}.shown")
    plain, intact = shown["plain"], shown["intact"]
    assert plain["kv_format"] == intact["kv_format"] == "q4_0-rot" and plain["tokens"] == 64
    assert (plain["intact_sinks"], intact["intact_sinks"]) == (0, 2)
    # What the page drew is the Api's answer for the same request.
    again = api.quantization_error({"kv_format": "q4_0-rot", "max_tokens": 64, "bundled_text": "jargon"})
    done = wait_until(lambda: (s := api.job_status({"job_id": again["job_id"]}))["state"] not in ("queued", "running") and s,
                      timeout=300)
    assert done["state"] == "done", done
    assert done["result"]["key_error"] == plain["key_error"] and done["result"]["sinks"] == plain["sinks"]
    # The sinks are marked on the position line, at their own error.
    sinks = plain["sinks"]
    assert sinks, "the demo model has a sink at the start"
    datasets = p.evaluate(f"() => {QE}.datasets.map(d => ({{label: d.label, x: d.data.map(q => q.x), y: d.data.map(q => q.y)}}))")
    marker = next(d for d in datasets if d["label"] == "sink")
    assert marker["x"] == sinks and marker["y"] == [plain["key_error_by_position"][i] for i in sinks]
    # IntactKV: the first 2 positions carry no error any more; the rest is stored as before.
    kept = next(d for d in datasets if d["label"] == "K, 2 intact")
    assert kept["y"][:2] == [0, 0] and plain["key_error_by_position"][0] > 0
    assert kept["y"][2:] == pytest.approx(plain["key_error_by_position"][2:], abs=1e-6)
    summary = p.locator("#tab-eviction .qerr-summary").inner_text()
    assert f"position {sinks[0]}" in summary and "Keeping the first 2 intact" in summary
    # The heatmaps are drawn: one row per layer, one column per KV head, in colour.
    size = p.evaluate("() => { const c = document.querySelector(\"#tab-eviction canvas.qerr-heat[data-side='key']\"); "
                      "return [c.height, c.getContext('2d').getImageData(40, 4, 1, 1).data[3]]; }")
    assert size[0] == plain["layers"] * 16 + 18 and size[1] == 255
    p.locator("#tab-eviction .qerr").scroll_into_view_if_needed()
    p.shot("quant-error", docs=True)
    outliers = p.locator("#tab-eviction .qerr-outliers").inner_text()
    assert f"h0 [{', '.join(map(str, plain['outlier_channels'][0][0]))}]" in outliers


def test_retrieval_runs_in_a_format_and_says_so(loaded_page, served):
    api, _ = served
    p = loaded_page
    p.tab("retrieval")
    p.wait_for_selector("#tab-retrieval .retrieval-policies input", timeout=30_000)
    p.select_option("#tab-retrieval [data-field='protocol']", "streaming")
    for name, value in {"lengths": "96", "depths": "0.5", "cache_size": "32", "sinks": "4", "window": "8", "seed": "0",
                        "intact_sinks": "4"}.items():
        p.fill(f"#tab-retrieval [data-field='{name}']", value)
    p.select_option("#tab-retrieval [data-field='kv_format']", "q8_0")
    p.click("#tab-retrieval >> text=Run grid")
    p.wait_for_function("() => window.sinkvis.retrieval.result() !== null", timeout=300_000)
    status = api.job_status({"job_id": p.evaluate("() => window.sinkvis.retrieval.jobOfResult()")})
    assert status["state"] == "done", status
    result = status["result"]
    assert result["kv_format"] == "q8_0" and result["settings"]["intact_sinks"] == 4
    spec = api._state.model.spec
    assert result["bytes_per_token"] == spec["layers"] * spec["kv_heads"] * spec["head_dim"] * 2 * 8.5 / 8
    assert "KV q8_0, 4 intact" in p.locator("#tab-retrieval .retrieval-info").inner_text()


def test_sweep_over_two_formats_draws_both_and_one_pareto_front(loaded_page, served, tmp_path, monkeypatch):
    import backend.api.app as app_module
    from backend.sweep import read_rows

    monkeypatch.setattr(app_module, "EXPORT_DIR", tmp_path)
    p = loaded_page
    p.tab("sweep")
    p.locator("#tab-sweep .sweep-section").scroll_into_view_if_needed()
    p.select_option("#tab-sweep [data-field='sweep.kind']", "evaluate")
    for policy in ("sliding_window", "h2o", "lru", "tova", "quest"):
        p.uncheck(f"#tab-sweep .sweep-policies input[value='{policy}']")
    for name, value in {"models": "demo", "cache_sizes": "16", "sinks": "2", "max_tokens": "48", "workers": "0",
                        "out": "formats.jsonl"}.items():
        p.fill(f"#tab-sweep [data-field='sweep.{name}']", value)
    p.select_option("#tab-sweep [data-field='sweep.kv_formats']", ["none", "q4_0"])
    p.click("#tab-sweep >> text=Run Sweep")
    p.wait_for_function("() => window.sinkvisSweep.lastJobId !== null", timeout=300_000)
    rows = read_rows(tmp_path / "sweeps" / "formats.jsonl")
    assert sorted((r["cell"]["policy"], r["kv_format"] or "") for r in rows) == [
        ("full", ""), ("full", "q4_0"), ("streaming_llm", ""), ("streaming_llm", "q4_0")]
    datasets = p.evaluate("""() => window.sinkvisSweep.ui.chart.data.datasets.map(d => ({label: d.label, front: !!d.front,
                          points: d.data.map(q => [q.x, q.y, q.row.key])}))""")
    lines = [d for d in datasets if not d["front"]]
    by_key = {r["key"]: r for r in rows}
    assert sorted(d["label"] for d in lines) == ["Full Cache · q4_0", "Full Cache · unquantized",
                                                 "StreamingLLM · q4_0", "StreamingLLM · unquantized"]
    for d in lines:  # each point is its cell: x its KV bytes, y its perplexity
        for x, y, key in d["points"]:
            assert (x, y) == (by_key[key]["kv_bytes"], by_key[key]["metrics"]["perplexity"])
            assert d["label"].endswith(by_key[key]["kv_format"] or "unquantized")
    # The front: the cells no other cell beats on both KV bytes and perplexity, across both families.
    front = next(d for d in datasets if d["front"])
    cells = [(r["kv_bytes"], r["metrics"]["perplexity"], r["key"]) for r in rows]
    expected = sorted(c for c in cells if not any(o[0] <= c[0] and o[1] < c[1] or o[0] < c[0] and o[1] <= c[1] for o in cells))
    assert sorted(tuple(q) for q in front["points"]) == expected
    assert "q4_0" in p.locator("#tab-sweep .sweep-table").inner_text()
    # The budget picks name the format of the cell each policy would pick.
    full_q4 = next(r for r in rows if r["cell"]["policy"] == "full" and r["kv_format"] == "q4_0")
    p.fill("#tab-sweep [data-field='sweep.budget']", f"{full_q4['kv_bytes'] + 1} B")
    assert "Full Cache · q4_0" in p.locator("#tab-sweep .sweep-picks-table").inner_text()
    p.shot("sweep-formats", docs=True)
    # Opening the file again sets the panel to its formats (so Run resumes the same sweep).
    p.select_option("#tab-sweep [data-field='sweep.kv_formats']", ["none"])
    p.select_option("#tab-sweep .sweep-files", "formats.jsonl")
    p.wait_for_function("() => document.querySelector('#tab-sweep .sweep-progress').textContent.startsWith('formats.jsonl')")
    chosen = p.eval_on_selector_all("#tab-sweep [data-field='sweep.kv_formats'] option:checked", "os => os.map(o => o.value)")
    assert chosen == ["none", "q4_0"]


def test_cache_profile_bytes_per_token_follow_the_format(page, served):
    api, _ = served
    from backend.profile import kv_bytes
    from backend.quantize import kv_format

    p = page
    p.tab("profile")
    p.fill("#tab-profile input[data-field='length']", "4096")

    def run(fmt):
        p.select_option("#tab-profile select[data-field='kv_format']", fmt)
        p.evaluate("() => { window.__before = window.sinkvis.profile.result(); }")
        p.click("#tab-profile >> text=Run profile")
        p.wait_for_function("() => { const r = window.sinkvis.profile.result(); return r && r !== window.__before; }",
                            timeout=120_000)
        return p.evaluate("() => window.sinkvis.profile.result()")

    loaded = api._state.model
    plain = run("")
    assert plain["bytes_per_token"] == kv_bytes.for_loaded(loaded)[0]
    quantized = run("q4_0")
    assert quantized["bytes_per_token"] == kv_bytes.for_format(loaded, kv_format("q4_0"))[0]
    assert quantized["bytes_per_token"] < plain["bytes_per_token"] / 3
    assert "with its KV in q4_0" in p.get_by_text("of KV per token").inner_text()  # the presets are sized for it
