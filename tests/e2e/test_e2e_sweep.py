"""The Sweeps tab end to end: a real sweep run from the page, its chart and
table drawn from the results file, a bad setting marked, the budget pick, CSV export."""
import json

import pytest

pytestmark = pytest.mark.e2e

SW = "window.sinkvisSweep"


def set_field(p, name, value):
    p.fill(f"#tab-sweep [data-field='sweep.{name}']", str(value))


def test_sweep_runs_and_draws_the_frontier(page, served, tmp_path, monkeypatch):
    import backend.api.app as app_module
    from backend.sweep import read_rows

    monkeypatch.setattr(app_module, "EXPORT_DIR", tmp_path)
    p = page
    p.tab("sweep")
    p.locator("#tab-sweep .sweep-section").scroll_into_view_if_needed()
    set_field(p, "models", "synthetic")
    p.select_option("#tab-sweep [data-field='sweep.kind']", "simulate")
    set_field(p, "workers", 0)
    set_field(p, "out", "e2e.jsonl")
    set_field(p, "cache_sizes", "32,abc")  # refused at once, and its own input is marked
    p.click("#tab-sweep >> text=Run Sweep")
    p.wait_for_selector("#tab-sweep [data-field='sweep.cache_sizes'].invalid", timeout=30_000)
    assert "cache_sizes" in p.locator("#tab-sweep .sweep-progress").inner_text()
    set_field(p, "cache_sizes", "32,128,512")
    p.click("#tab-sweep >> text=Run Sweep")
    p.wait_for_function(f"() => {SW}.lastJobId !== null", timeout=180_000)
    rows = read_rows(tmp_path / "sweeps" / "e2e.jsonl")
    assert len(rows) == 1 + 5 * 3  # Full once; five policies at three sizes
    shown = p.evaluate(f"() => {SW}.rows")
    assert sorted(r["key"] for r in shown) == sorted(r["key"] for r in rows)
    assert "16 cells (16 new" in p.locator("#tab-sweep .sweep-progress").inner_text()
    # The chart: a line per policy, each point a cell's hit rate from the file.
    datasets = p.evaluate(f"""() => {SW}.ui.chart.data.datasets.map(d => ({{label: d.label, y: d.data.map(q => q.y),
                              keys: d.data.map(q => q.row.key)}}))""")
    assert len(datasets) == 6
    by_key = {r["key"]: r["metrics"]["hit_rate"] for r in rows}
    assert all(y == by_key[k] for d in datasets for y, k in zip(d["y"], d["keys"]))
    assert p.locator("#tab-sweep .sweep-table tbody tr").count() == 16
    # The budget: each policy's best cell with at most 128 tokens of KV (synthetic: no bytes per token).
    p.fill("#tab-sweep [data-field='sweep.budget']", "128 tokens")
    picks = p.locator("#tab-sweep .sweep-picks-table tbody tr")
    assert picks.count() == 6
    best_h2o = max((r for r in rows if r["cell"]["policy"] == "h2o" and r["kv_tokens"] <= 128),
                   key=lambda r: r["metrics"]["hit_rate"])
    h2o_row = picks.filter(has_text="H2O").inner_text()
    assert str(best_h2o["cell"]["cache_size"]) in h2o_row and f"{best_h2o['metrics']['hit_rate']:.4f}" in h2o_row
    assert "does not fit" in picks.filter(has_text="Full Cache").inner_text()
    p.click("#tab-sweep .sweep-results >> text=CSV")
    p.wait_for_function("() => /Saved .*sweep-.*\\.csv/.test(document.getElementById('st-note').textContent)", timeout=10_000)
    csv = next(tmp_path.glob("sweep-*.csv")).read_text().splitlines()
    assert len(csv) == 17 and csv[0].startswith("model,text,kind,policy,label,cache_size")
    p.locator("#tab-sweep .sweep-section").scroll_into_view_if_needed()
    p.shot("sweep")
    assert json.dumps(shown)  # plain data, nothing the page could not serialise


def test_prefill_sweep_offers_the_prefill_methods_and_ratios(page, served, tmp_path, monkeypatch):
    """Kind prefill (kvpress's protocol): the method boxes come from backend/compress, the ratios replace
    the cache sizes, and the chart and table show each method at each ratio from the file."""
    import backend.api.app as app_module
    from backend.compress.plan import METHODS
    from backend.sweep import read_rows

    from helpers import ROOT

    monkeypatch.setattr(app_module, "EXPORT_DIR", tmp_path)
    p = page
    p.tab("sweep")
    p.locator("#tab-sweep .sweep-section").scroll_into_view_if_needed()
    set_field(p, "models", "demo")
    p.select_option("#tab-sweep [data-field='sweep.kind']", "prefill")
    boxes = "#tab-sweep .sweep-policies:not(.hidden) input"
    p.wait_for_function(f"() => document.querySelectorAll(\"{boxes}\").length >= {len(METHODS)}", timeout=10_000)
    assert not p.locator("#tab-sweep [data-field='sweep.cache_sizes']").is_visible()
    for name in p.eval_on_selector_all(boxes, "els => els.map(e => e.value)"):
        if name not in ("full", "streaming_llm", "knorm"):
            p.uncheck(f"{boxes}[value='{name}']")
    text = (ROOT / "assets" / "eval" / "jargon-heldout.txt").read_text(encoding="utf-8")[:420]
    p.fill("#tab-sweep [data-field='sweep.texts']", text)
    set_field(p, "ratios", "0.5, 1.5")  # refused: a ratio is a fraction removed
    set_field(p, "workers", 0)
    set_field(p, "out", "prefill.jsonl")
    p.click("#tab-sweep >> text=Run Sweep")
    p.wait_for_selector("#tab-sweep [data-field='sweep.ratios'].invalid", timeout=30_000)
    set_field(p, "ratios", "0.5, 0.75")
    p.click("#tab-sweep >> text=Run Sweep")
    p.wait_for_function(f"() => {SW}.lastJobId !== null", timeout=180_000)
    rows = read_rows(tmp_path / "sweeps" / "prefill.jsonl")
    assert len(rows) == 1 + 2 * 2 and {r["cell"]["kind"] for r in rows} == {"prefill"}
    datasets = p.evaluate(f"() => {SW}.ui.chart.data.datasets.map(d => d.data.map(q => [q.row.key, q.y]))")
    by_key = {r["key"]: r["metrics"]["perplexity"] for r in rows}
    assert len(datasets) == 3 and all(y == by_key[k] for d in datasets for k, y in d)
    table = p.locator("#tab-sweep .sweep-table tbody")
    assert table.locator("tr").count() == 5 and "r = 0.75" in table.inner_text()
