"""Results that arrive as they are computed (issue 33, items 2, 3 and 5), in the real page on the demo model: the
Retrieval grid fills in cell by cell and Cancel keeps the cells done; Evaluate draws its curves while it runs, Cancel
keeps them (marked partial) and the chart plots each policy over Full Cache, starts the plain view after a warm-up
and marks C; the Sweep frontier gets its points as cells finish. Each expectation is read from the page's own
objects (the chart's scales, the grid's drawn cells) and from the job's status in the Api."""
import csv
import io

import pytest
from e2e_helpers import wait_until

pytestmark = pytest.mark.e2e

R = "window.sinkvis.retrieval"
EV = "window.sinkvis.eviction.evaluate"
SW = "window.sinkvisSweep"


def running_jobs(api, kind):
    return [j for j in api._state.jobs.running() if j.kind == kind]


def test_retrieval_grid_fills_in_while_running_and_cancel_keeps_the_cells(loaded_page, served, tmp_path, monkeypatch):
    import backend.api.app as app_module

    monkeypatch.setattr(app_module, "EXPORT_DIR", tmp_path / "exports")
    api, _ = served
    p = loaded_page
    p.tab("retrieval")
    p.wait_for_selector("#tab-retrieval .retrieval-policies input", timeout=30_000)
    p.select_option("#tab-retrieval [data-field='protocol']", "streaming")
    # chunk 1 (evict after every token) on 3 × 3 cells: slow enough that the first cells land long before the last
    for name, value in {"lengths": "96, 144, 192", "depths": "0, 0.5, 1", "cache_size": "16", "sinks": "4",
                        "window": "8", "chunk": "1"}.items():
        p.fill(f"#tab-retrieval [data-field='{name}']", value)
    # Before Run: the measured estimate for these settings, a time per cell for each length.
    p.wait_for_function("() => /^Estimate: ~.* for 9 cells .*96 tokens.*144 tokens.*192 tokens/"
                        ".test(document.querySelector('#tab-retrieval .retrieval-estimate').textContent)", timeout=60_000)
    # Editing a setting marks the old estimate stale at once.
    p.fill("#tab-retrieval [data-field='chunk']", "2")
    assert "Settings changed" in p.locator("#tab-retrieval .retrieval-estimate").inner_text()
    p.fill("#tab-retrieval [data-field='chunk']", "1")
    p.wait_for_function("() => /^Estimate: ~/.test(document.querySelector('#tab-retrieval .retrieval-estimate').textContent)",
                        timeout=60_000)
    p.click("#tab-retrieval >> text=Run grid")
    p.wait_for_function(f"() => {R}.shownResult() && {R}.shownResult().partial && {R}.shownResult().cells.length > 0",
                        timeout=120_000)
    (job,) = running_jobs(api, "retrieval")
    assert job.state == "running" and p.evaluate(f"() => {R}.running()")
    drawn = p.evaluate(f"() => {R}.grids().drawn()")
    filled = [d for d in drawn if d["value"] is not None]
    assert 0 < len(filled) < len(drawn) == 9 * len({d["policy"] for d in drawn})
    assert {(d["length"], d["depth"]) for d in filled} >= {(96, 0)}  # lengths outer, depths inner: the first cell first
    assert p.locator("#tab-retrieval .retrieval-info").inner_text().startswith("PARTIAL: ")
    p.shot("retrieval-filling-in", docs=True)
    p.click("#tab-retrieval .retrieval-settings >> text=Cancel")
    wait_until(lambda: api.job_status({"job_id": job.id})["state"] == "cancelled", timeout=15.0)
    p.wait_for_function(f"() => !{R}.running()", timeout=30_000)
    kept = api.job_status({"job_id": job.id})["result"]
    assert kept["partial"] is True and 1 <= kept["cells_done"] < 9
    said = p.locator("#tab-retrieval .retrieval-progress").inner_text()
    assert said == f"Cancelled after {kept['cells_done']} of 9 cells: those cells are kept.", said
    shown = p.evaluate(f"() => {R}.result()")
    assert shown["partial"] and shown["cells"] == kept["cells"]
    drawn = p.evaluate(f"() => {R}.grids().drawn()")
    assert sum(d["value"] is not None for d in drawn) == len(kept["cells"])
    with p.expect_download() as dl:
        p.click("#tab-retrieval .retrieval-results >> text=CSV")
    assert dl.value.suggested_filename.startswith("retrieval-cells-partial-")
    saved = tmp_path / "cells.csv"
    dl.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert len(rows) == len(kept["cells"]) and {r["partial"] for r in rows} == {f"partial: {kept['cells_done']} of 9 cells"}


def test_evaluate_draws_curves_while_running_and_marks_c(loaded_page, served):
    api, _ = served
    p = loaded_page
    p.tab("eviction")
    p.locator("#tab-eviction .eval-section").scroll_into_view_if_needed()
    C = 64
    for name, value in {"max_tokens": "1024", "cache_size": str(C), "sinks": "4", "window": "32"}.items():
        p.fill(f"#tab-eviction [data-field='eval.{name}']", value)
    p.select_option("#tab-eviction [data-field='eval.policy']", "all")
    p.wait_for_function("() => /^Estimate: ~/.test(document.querySelector('#tab-eviction .eval-estimate').textContent)",
                        timeout=60_000)
    p.fill("#tab-eviction [data-field='eval.window']", "16")  # a changed setting: the old estimate is marked at once
    assert p.locator("#tab-eviction .eval-estimate").inner_text() == "Settings changed: measuring a new estimate…"
    p.fill("#tab-eviction [data-field='eval.window']", "32")
    p.click("#tab-eviction >> text=Run Evaluation")
    # The curves so far, drawn while the job still runs, past the point where the cache first fills.
    p.wait_for_function(f"() => {EV}.shownResult() && {EV}.shownResult().partial "
                        f"&& {EV}.shownResult().positions_done > 3 * {C}", timeout=180_000)
    (job,) = running_jobs(api, "evaluate")
    assert p.evaluate(f"() => {EV}.running()")
    lengths = p.evaluate(f"() => {EV}.chart().data.datasets.filter(d => !/^C = |^context/.test(d.label)).map(d => d.data.length)")
    assert lengths and all(n > 0 for n in lengths)
    progress = p.locator("#tab-eviction .eval-progress").inner_text()
    assert " left" in progress or "measuring the time left" in progress, progress
    p.click("#tab-eviction .eval-settings >> text=Cancel")
    wait_until(lambda: api.job_status({"job_id": job.id})["state"] == "cancelled", timeout=30.0)
    p.wait_for_function(f"() => !{EV}.running()", timeout=30_000)
    kept = api.job_status({"job_id": job.id})["result"]
    assert kept["partial"] and 3 * C < kept["positions_done"] < 1023
    assert p.locator("#tab-eviction .eval-progress").inner_text() == (
        f"Cancelled at position {kept['positions_done']:,} of 1,023: the partial result is kept.")
    assert p.locator("#tab-eviction .eval-info").inner_text().startswith(f"PARTIAL: positions 1–{kept['positions_done']:,}")
    assert p.locator("#tab-eviction .eval-table tbody tr").count() == len(kept["results"])

    # The default view: each policy over Full Cache, so the y range is the ratios', and C is marked at C.
    by = {r["policy"]: r["curve"] for r in kept["results"]}
    ratios = [y for c in by.values() for y in c["vs_full"]]
    scale = p.evaluate(f"() => {{ const s = {EV}.chart().scales.y; return {{min: s.min, max: s.max, type: s.type}}; }}")
    assert scale["type"] == "linear" and scale["min"] <= min(ratios) and max(ratios) <= scale["max"] <= max(ratios) * 1.5
    marker = p.evaluate(f"() => {EV}.chart().data.datasets.filter(d => d.label.startsWith('C = {C}')).map(d => d.data)")
    assert len(marker) == 1 and [pt["x"] for pt in marker[0]] == [C, C]
    assert by["sliding_window"]["vs_full"][-1] > 1.0  # window attention diverged after C

    # The plain running perplexity: after a warm-up of min(C, 64) positions, so the first positions' averages (an
    # average of a few tokens: 10⁶ on SmolLM2, ~100 here) no longer set the axis; its y range is the values from there.
    p.select_option("#tab-eviction [data-field='eval.view']", "perplexity")
    after = [y for c in by.values() for x, y in zip(c["position"], c["perplexity"]) if x >= C]
    before = [y for c in by.values() for x, y in zip(c["position"], c["perplexity"]) if x < C]
    assert max(before) > max(after)  # this text's first positions would have set the axis
    scale = p.evaluate(f"() => {{ const s = {EV}.chart().scales.y; return {{min: s.min, max: s.max, type: s.type}}; }}")
    assert scale["type"] == "logarithmic"
    assert min(after) * 0.5 <= scale["min"] <= min(after) and max(after) <= scale["max"] < max(before), (scale, after)
    xs = p.evaluate(f"() => {EV}.chart().data.datasets.filter(d => !/^C = |^context/.test(d.label)).flatMap(d => d.data.map(q => q.x))")
    assert min(xs) >= C
    marker = p.evaluate(f"() => {EV}.chart().data.datasets.filter(d => d.label.startsWith('C = {C}')).map(d => d.data)")
    assert [pt["x"] for pt in marker[0]] == [C, C]
    p.locator("#tab-eviction .eval-results").scroll_into_view_if_needed()
    p.shot("evaluate-partial-warmup", docs=True)
    p.select_option("#tab-eviction [data-field='eval.view']", "vs_full")
    p.shot("evaluate-partial-vs-full", docs=True)


def test_sweep_frontier_gets_points_as_cells_finish(page, served, tmp_path, monkeypatch):
    import backend.api.app as app_module

    monkeypatch.setattr(app_module, "EXPORT_DIR", tmp_path)
    api, _ = served
    p = page
    p.tab("sweep")
    p.locator("#tab-sweep .sweep-section").scroll_into_view_if_needed()
    for name, value in {"models": "demo", "workers": "0", "out": "stream.jsonl", "cache_sizes": "16,32,48,64,96,128",
                        "max_tokens": "256"}.items():
        p.fill(f"#tab-sweep [data-field='sweep.{name}']", value)
    p.select_option("#tab-sweep [data-field='sweep.kind']", "evaluate")
    p.click("#tab-sweep >> text=Run Sweep")
    # The first cell size's points are on the frontier while the sweep still runs.
    p.wait_for_function(f"() => {SW}.ui.chart.data.datasets.some(d => d.data.length > 0)", timeout=180_000)
    running = running_jobs(api, "sweep")
    points = p.evaluate(f"() => {SW}.ui.chart.data.datasets.reduce((n, d) => n + d.data.length, 0)")
    rows = p.evaluate(f"() => {SW}.rows.length")
    assert running and 0 < points and rows < 1 + 6 * 6, (points, rows)  # not every cell yet: Full once + 6 × 6
    p.click("#tab-sweep .sweep-settings >> text=Cancel")
    p.wait_for_function(f"() => {SW}.lastJobId !== null", timeout=60_000)
