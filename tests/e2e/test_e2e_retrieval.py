"""The Retrieval tab end to end on the demo model: a small lengths × depths grid, one heatmap per policy drawn from the
result, hover, "why it missed", CSV, Cancel and a field error. Every expectation comes from the finished job's result,
read from the Api (not through the page)."""
import csv
import io

import pytest
from e2e_helpers import wait_until

pytestmark = pytest.mark.e2e

R = "window.sinkvis.retrieval"
SMALL = {"lengths": "128, 200", "depths": "0, 0.5, 1", "cache_size": "32", "sinks": "4", "window": "8", "seed": "0"}
PIXEL = """([policy, x, y]) => { const c = document.querySelector(`#tab-retrieval .rgrid[data-policy="${CSS.escape(policy)}"] canvas`);
  return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3)); }"""


def fill(p, settings):
    for name, value in settings.items():
        p.fill(f"#tab-retrieval [data-field='{name}']", str(value))


def luminance(rgb):
    r, g, b = rgb
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_overlay_without_a_model(fresh_page):
    p = fresh_page
    p.tab("retrieval")
    assert p.locator("#tab-retrieval > .overlay.model-required").is_visible()


def test_retrieval_grid_hover_why_csv_cancel(loaded_page, served, tmp_path, monkeypatch):
    import backend.api.app as app_module

    monkeypatch.setattr(app_module, "EXPORT_DIR", tmp_path / "exports")  # save_export writes here, not in ~/SinkVis-exports
    api, _ = served
    p = loaded_page
    p.tab("retrieval")
    p.wait_for_selector("#tab-retrieval .retrieval-policies input", timeout=30_000)
    assert not p.locator("#tab-retrieval > .overlay.model-required").is_visible()
    info = api.retrieval_info({})
    assert info["ok"], info
    if api.model_info()["source"] == "demo":  # the demo does not retrieve: the tab says so, and names SmolLM2
        assert info["demo_note"] and "SmolLM2" in info["demo_note"]
        note = p.locator("#tab-retrieval .retrieval-demo-note")
        assert note.is_visible() and note.inner_text() == info["demo_note"]

    # A depth outside 0..1 comes back as the backend's named error, on the Depths field only.
    p.select_option("#tab-retrieval [data-field='protocol']", "streaming")
    fill(p, {**SMALL, "depths": "0, 1.5"})
    p.click("#tab-retrieval >> text=Run grid")
    p.wait_for_selector("#tab-retrieval [data-field='depths'].invalid", timeout=30_000)
    assert p.locator("#tab-retrieval .invalid").count() == 1
    said = p.locator("#tab-retrieval .retrieval-progress").inner_text()
    assert "1.5" in said and "between 0 and 1" in said, said

    fill(p, SMALL)
    p.click("#tab-retrieval >> text=Run grid")
    p.wait_for_function(f"() => {R}.result() !== null", timeout=300_000)
    status = api.job_status({"job_id": p.evaluate(f"() => {R}.jobOfResult()")})
    assert status["state"] == "done" and status["kind"] == "retrieval", status
    result = status["result"]
    assert result["lengths"] == [128, 200] and result["depths"] == [0, 0.5, 1] and result["protocol"] == "streaming"
    assert result["chunk"] == info["defaults"]["chunk"]  # the chunk k shown by default is the one that ran
    policies = [s["policy"] for s in result["summary"]]
    assert "full" in policies and len(policies) == len(info["policies"])
    assert len(result["cells"]) == len(policies) * 2 * 3
    cell = {(c["policy"], c["length"], c["depth"]): c for c in result["cells"]}

    # One heatmap per policy, 2 lengths × 3 depths each; accuracy colours: found = the bright end, missed = the dark one.
    assert p.locator("#tab-retrieval .rgrid canvas").count() == len(policies)
    drawn = p.evaluate(f"() => {R}.grids().drawn()")
    assert len(drawn) == len(result["cells"])
    assert {(d["policy"], d["length"], d["depth"]) for d in drawn} == set(cell)
    for d in drawn:
        rgb = p.evaluate(PIXEL, [d["policy"], d["x"], d["y"]])
        found = cell[(d["policy"], d["length"], d["depth"])]["correct"]
        assert (luminance(rgb) > 180) == found and (luminance(rgb) < 80) == (not found), (d, rgb)
    # Log-probability colours: brighter wherever the right answer was more likely (one scale for all policies).
    p.select_option("#tab-retrieval [data-field='colour']", "logprob")
    shades = sorted((cell[(d["policy"], d["length"], d["depth"])]["answer_logprob"], luminance(p.evaluate(PIXEL, [d["policy"], d["x"], d["y"]])))
                    for d in drawn)
    assert shades[0][1] < shades[-1][1] or shades[0][0] == shades[-1][0]
    assert all(a[1] <= b[1] + 6 for a, b in zip(shades, shades[1:]) if b[0] - a[0] > 1e-6), shades

    # The summary table: one row per policy, the backend's accuracy.
    rows = p.locator("#tab-retrieval .retrieval-table tbody tr")
    assert rows.count() == len(policies)
    for i, s in enumerate(result["summary"]):
        assert rows.nth(i).get_attribute("data-policy") == s["policy"]
        assert rows.nth(i).locator("td[data-key='accuracy']").inner_text() == f"{s['accuracy'] * 100:.0f}%"

    # Hover a cell: the needle, the answer given and the one expected, as text.
    target = next((d for d in drawn if d["policy"] != "full"), drawn[0])
    c = cell[(target["policy"], target["length"], target["depth"])]
    canvas = p.locator(f"#tab-retrieval .rgrid[data-policy='{target['policy']}'] canvas")
    box = canvas.bounding_box()
    p.mouse.move(box["x"] + target["x"], box["y"] + target["y"])
    tip = p.locator(f"#tab-retrieval .rgrid[data-policy='{target['policy']}'] .tooltip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert f"expected: {c['expected']}" in text and c["answer"].strip() in text and c["needle"].strip() in text

    # Click it: the why-missed view shows that cell's layers × KV heads of kept needle tokens, and the attention chart.
    p.mouse.click(box["x"] + target["x"], box["y"] + target["y"])
    why = p.evaluate(f"() => {R}.why().state()")
    spec = api.model_info()["spec"]
    assert (why["policy"], why["length"], why["depth"]) == (target["policy"], target["length"], target["depth"])
    assert why["kept"] == c["needle_kept"]
    assert len(why["kept"]) == spec["layers"] and all(len(row) == spec["kv_heads"] for row in why["kept"])
    assert why["canvasWidth"] > 0
    assert why["datasets"][0]["data"] == pytest.approx(c["needle_attention"])
    if target["policy"] != "full":
        assert why["datasets"][1]["label"] == "Full Cache"
        assert why["datasets"][1]["data"] == pytest.approx(cell[("full", target["length"], target["depth"])]["needle_attention"])

    # CSV: a row per cell.
    with p.expect_download() as dl:
        p.click("#tab-retrieval .retrieval-results >> text=CSV")
    assert dl.value.suggested_filename.startswith("retrieval-cells-")
    p.wait_for_function("() => /Saved .*retrieval-cells-.*\\.csv/.test(document.getElementById('st-note').textContent)", timeout=10_000)
    assert [f.name for f in (tmp_path / "exports").glob("retrieval-cells-*.csv")] == [dl.value.suggested_filename]
    saved = tmp_path / "cells.csv"
    dl.value.save_as(saved)
    table = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert len(table) == len(result["cells"])
    assert {(r["policy"], int(r["length"]), float(r["depth"])) for r in table} == set(cell)
    # PNG: every policy's heatmap side by side on one image.
    with p.expect_download() as dl:
        p.click("#tab-retrieval .retrieval-results >> text=PNG")
    png = tmp_path / "grid.png"
    dl.value.save_as(png)
    data = png.read_bytes()
    widths = p.evaluate("() => [...document.querySelectorAll('#tab-retrieval .rgrid canvas')].map(c => c.width)")
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") >= sum(widths)
    p.select_option("#tab-retrieval [data-field='colour']", "accuracy")
    p.shot("retrieval", docs=True)

    # The prefill protocol (kvpress's) with a compression ratio: its own methods, one heatmap each.
    p.select_option("#tab-retrieval [data-field='protocol']", "prefill")
    assert p.locator("#tab-retrieval .retrieval-policies input").count() == len(info["prefill_policies"])
    p.select_option("#tab-retrieval [data-field='budget']", "ratio")
    fill(p, {"ratio": "0.75", "lengths": "128", "depths": "0, 1"})
    p.click("#tab-retrieval >> text=Run grid")
    p.wait_for_function(f"() => {R}.result().protocol === 'prefill'", timeout=300_000)
    prefill = api.job_status({"job_id": p.evaluate(f"() => {R}.jobOfResult()")})["result"]
    assert prefill["settings"]["ratio"] == 0.75 and prefill["chunk"] is None
    assert p.locator("#tab-retrieval .rgrid canvas").count() == len(prefill["summary"]) == len(info["prefill_policies"])
    assert len(p.evaluate(f"() => {R}.grids().drawn()")) == len(prefill["cells"]) == 2 * len(prefill["summary"])
    p.select_option("#tab-retrieval [data-field='protocol']", "streaming")

    # The user's own task: the haystack read from a file, an answer missing from the needle marks the answer field.
    haystack = tmp_path / "haystack.txt"
    haystack.write_text("The river ran slowly past the mill. Children played near the old bridge. " * 20)
    p.select_option("#tab-retrieval [data-field='task']", "custom")
    p.set_input_files("#tab-retrieval .retrieval-custom input[type=file]", str(haystack))
    p.wait_for_function("() => document.querySelector(\"#tab-retrieval [data-field='haystack']\").value.includes('old bridge')")
    needle = "The secret ingredient is cardamom <img src=x onerror=alert(1)>."  # user text stays text
    fill(p, {"needle": needle, "question": "What is the secret ingredient?", "answer": "saffron",
             "lengths": "128", "depths": "0.5", "cache_size": "32"})
    p.click("#tab-retrieval >> text=Run grid")
    p.wait_for_selector("#tab-retrieval [data-field='answer'].invalid", timeout=30_000)
    assert "not in the needle" in p.locator("#tab-retrieval .retrieval-progress").inner_text()
    fill(p, {"answer": "cardamom"})
    p.click("#tab-retrieval >> text=Run grid")
    p.wait_for_function(f"() => {R}.result().task === 'custom'", timeout=300_000)
    mine = p.evaluate(f"() => {R}.result()")
    assert {c["expected"] for c in mine["cells"]} == {"cardamom"} and {c["needle"] for c in mine["cells"]} == {needle}
    assert p.locator("#tab-retrieval img").count() == 0
    assert mine["params"]["haystack"] == haystack.read_text()
    p.select_option("#tab-retrieval [data-field='task']", "pass_key")

    # Cancel a longer grid: the job stops, the tab says so and stays usable.
    fill(p, {"lengths": "100, 120, 140, 160, 180, 200", "depths": "0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 1",  # 60 cells
             "chunk": "1"})
    p.click("#tab-retrieval >> text=Run grid")
    p.wait_for_function(f"() => {R}.running()", timeout=30_000)
    running = p.evaluate(f"() => {R}.currentJob()")
    p.wait_for_function("() => /Cell \\d+ of 60.*% .* left$/.test(document.querySelector('#tab-retrieval .retrieval-progress').textContent)",
                        timeout=60_000)  # which cell, how far, and the time left
    p.click("#tab-retrieval .retrieval-settings >> text=Cancel")
    wait_until(lambda: api.job_status({"job_id": running})["state"] == "cancelled", timeout=10.0)
    p.wait_for_function(f"() => !{R}.running()", timeout=30_000)
    kept = api.job_status({"job_id": running})["result"]  # the cells finished before Cancel (maybe none yet)
    said = p.locator("#tab-retrieval .retrieval-progress").inner_text()
    assert p.locator("#tab-retrieval >> text=Run grid").is_enabled()
    if kept["cells"]:  # they are shown and kept, marked partial (tests/e2e/test_e2e_results_stream.py)
        assert said == f"Cancelled after {kept['cells_done']} of 60 cells: those cells are kept."
        assert p.evaluate(f"() => {R}.result().partial") is True
    else:
        assert said == "Cancelled."
        assert p.evaluate(f"() => {R}.result().task") == "custom"  # the last finished grid stays on show


def test_sweep_kind_retrieval_plots_accuracy_against_memory(page, served, tmp_path, monkeypatch):
    """The Sweeps tab with kind retrieval: every (policy, C) cell runs the grid; y = accuracy."""
    import backend.api.app as app_module
    from backend.sweep import read_rows

    monkeypatch.setattr(app_module, "EXPORT_DIR", tmp_path)
    p = page
    p.tab("sweep")
    p.locator("#tab-sweep .sweep-section").scroll_into_view_if_needed()
    p.select_option("#tab-sweep [data-field='sweep.kind']", "retrieval")
    assert p.locator("#tab-sweep [data-field='sweep.lengths']").is_visible()
    assert not p.locator("#tab-sweep [data-field='sweep.texts']").is_visible()
    for name, value in {"models": "demo", "lengths": "96", "depths": "0, 2", "chunk": "64", "cache_sizes": "16,32",
                        "workers": "0", "out": "retrieval.jsonl"}.items():
        p.fill(f"#tab-sweep [data-field='sweep.{name}']", value)
    p.click("#tab-sweep >> text=Run Sweep")  # depth 2 is refused at once, on its own input
    p.wait_for_selector("#tab-sweep [data-field='sweep.depths'].invalid", timeout=30_000)
    p.fill("#tab-sweep [data-field='sweep.depths']", "0, 1")
    p.click("#tab-sweep >> text=Run Sweep")
    p.wait_for_function("() => window.sinkvisSweep.lastJobId !== null", timeout=300_000)
    rows = read_rows(tmp_path / "sweeps" / "retrieval.jsonl")
    evicting = [r for r in rows if r["cell"]["policy"] != "full"]
    assert {r["cell"]["kind"] for r in rows} == {"retrieval"} and len(rows) == 1 + len(evicting)
    assert {r["cell"]["cache_size"] for r in evicting} == {16, 32}
    assert all(r["metrics"]["cells"] == 2 and 0 <= r["metrics"]["accuracy"] <= 1 for r in rows)
    assert p.locator("#tab-sweep .sweep-results select").nth(2).input_value() == "accuracy"
    datasets = p.evaluate("""() => window.sinkvisSweep.ui.chart.data.datasets.map(d => ({y: d.data.map(q => q.y),
                          keys: d.data.map(q => q.row.key)}))""")
    by_key = {r["key"]: r["metrics"]["accuracy"] for r in rows}
    assert sum(len(d["y"]) for d in datasets) == len(rows)
    assert all(y == by_key[k] for d in datasets for y, k in zip(d["y"], d["keys"]))
