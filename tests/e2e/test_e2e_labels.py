"""One label and one colour per policy on every view (issue 33, item 4), read from the rendered page:
Eviction Sim (table, bar chart, recall chart, policy list, "Keys kept by"), Evaluate (table, chart),
Retrieval (grid titles, table, policy list), Sweeps (frontier, table, policy lists), with a user rule
(examples/policies/h2o_decay.py) and a user prefill file (examples/policies/snapkv.py) beside the built-ins.
The page's answer must be the backend's table (backend/labels.py)."""
import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from e2e_helpers import wait_until
from helpers import wait_job

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # as conftest's Page.shot (ignored by git)

# Every place on the page that shows a policy, as (view, policy, label, colour): the colour normalised to #rrggbb.
COLLECT = """(view) => {
  const hex = (c) => { c = String(c || '').trim(); if (c.startsWith('#')) return c.toLowerCase();
    const m = c.match(/rgba?\\((\\d+),\\s*(\\d+),\\s*(\\d+)/); if (!m) return c;
    return '#' + m.slice(1, 4).map((x) => Number(x).toString(16).padStart(2, '0')).join(''); };
  const swatch = (el) => { const s = el.querySelector('.swatch'); if (!s) return null;
    return s.offsetWidth > 0 ? hex(getComputedStyle(s).backgroundColor) : 'not drawn'; };
  const text = (el) => el.textContent.trim();
  const out = [];
  const add = (where, policy, label, colour) => out.push({view: where, policy, label, colour});
  const panel = document.querySelector(view.panel);
  for (const sel of view.rows || []) for (const tr of panel.querySelectorAll(sel)) {
    const td = tr.querySelector('td'); add(sel, tr.dataset.policy, text(td), swatch(td)); }
  for (const sel of view.boxes || []) for (const lab of panel.querySelectorAll(sel)) {
    const input = lab.querySelector('input'); add(sel, input.value, text(lab), swatch(lab)); }
  for (const sel of view.titles || []) for (const box of panel.querySelectorAll(sel)) {
    const t = box.querySelector('.rgrid-title'); add(sel, box.dataset.policy, text(t), swatch(t)); }
  for (const sel of view.options || []) for (const o of panel.querySelectorAll(sel)) {
    if (o.value) add(sel, o.value, text(o).replace(/ \\(model trace only\\)$/, ''), null); }
  for (const [name, chart] of Object.entries(view.charts || {})) {
    const c = eval(chart); if (!c) continue;
    for (const d of c.data.datasets) if (d.policy) add(name, d.policy, d.label, hex(d.borderColor));
  }
  return out; }"""


def tab(p, name: str):
    p.click(f".tabbar button[data-tab='{name}']")
    p.wait_for_selector(f"#tab-{name}.active")


@pytest.fixture
def labelled(open_page, tmp_path, monkeypatch):
    """A page on its own Api with the demo model loaded and two user files in its policies folder."""
    import backend.api.app as app_module
    from backend.api import Api

    folder = tmp_path / "policies"
    folder.mkdir()
    for name in ("h2o_decay.py", "snapkv.py"):  # an eviction rule, a prefill (score) file
        shutil.copy(EXAMPLES / name, folder / name)
    monkeypatch.setenv("SINKVIS_POLICY_DIR", str(folder))
    monkeypatch.setattr(app_module, "EXPORT_DIR", tmp_path / "exports")  # the sweep's results file
    api = Api()
    assert wait_job(api, api.load_model({"source": "demo", "device": "cpu"})["job_id"])["state"] == "done"
    yield open_page(api), api
    api._state.jobs.cancel_all(wait=30)
    if api._state.policies is not None:
        api._state.policies.unpublish()  # Evaluate's list is process-wide: leave it as it was


def test_one_label_and_one_colour_per_policy_on_every_view(labelled, tmp_path):
    p, api = labelled
    table = api.policy_labels()["labels"]
    seen = []
    tab(p, "eviction")
    p.wait_for_selector("#tab-eviction select[data-field='policy'] option[value='h2o_decay']", state="attached")

    # Eviction Sim: every policy on a synthetic trace, the user rule among them.
    p.fill("#tab-eviction input[data-field='length']", "20000")
    p.click("#tab-eviction >> text=Compare All Policies")
    p.wait_for_function("() => window.sinkvis.eviction.result() && window.sinkvis.eviction.result().results"
                        ".some(r => r.policy === 'h2o_decay')", timeout=180_000)
    seen += p.evaluate(COLLECT, {"panel": "#tab-eviction", "rows": [".results-table tbody tr[data-policy]"],
                                 "options": ["select[data-field='policy'] option", "select[data-field='methods'] option"],
                                 "charts": {"recall chart": "Chart.getChart(panel.querySelectorAll('.chart-pair canvas')[1])"}})
    bars = p.evaluate("""() => { const c = Chart.getChart(document.querySelectorAll('#tab-eviction .chart-pair canvas')[0]);
        const names = window.sinkvis.eviction.result().results.map(r => r.policy);
        return names.map((policy, i) => ({view: 'bar chart', policy, label: c.data.labels[i],
                                          colour: c.data.datasets[0].backgroundColor[i].toLowerCase()})); }""")
    seen += bars

    # Evaluate: the loaded model over a short text, every policy (the user rule included).
    for name, value in (("max_tokens", "80"), ("cache_size", "24"), ("sinks", "4"), ("window", "12")):
        p.fill(f"#tab-eviction input[data-field='eval.{name}']", value)
    p.click("#tab-eviction >> text=Run Evaluation")
    p.wait_for_function("() => window.sinkvis.eviction.evaluate.result() !== null && "
                        "!window.sinkvis.eviction.evaluate.running()", timeout=300_000)
    seen += p.evaluate(COLLECT, {"panel": "#tab-eviction", "rows": [".eval-table tbody tr[data-policy]"],
                                 "charts": {"evaluate chart": "window.sinkvis.eviction.evaluate.chart()"}})
    # Its exports name each policy by the same label (CSV column, JSON map), as save_export wrote them.
    exports = tmp_path / "exports"
    for kind in ("CSV", "JSON"):
        p.click(f"#tab-eviction .eval-results >> text={kind}")
        wait_until(lambda: list(exports.glob(f"evaluate-results-*.{kind.lower()}")), timeout=30)
    rows = list(csv.DictReader(io.StringIO(next(exports.glob("evaluate-results-*.csv")).read_text())))
    seen += [{"view": "evaluate CSV", "policy": r["policy"], "label": r["label"], "colour": None} for r in rows]
    saved = json.loads(next(exports.glob("evaluate-results-*.json")).read_text())["labels"]
    seen += [{"view": "evaluate JSON", "policy": k, "label": v["label"], "colour": v["colour"]} for k, v in saved.items()]

    # Sweeps: a small synthetic sweep in this process; its policy lists, frontier and table.
    tab(p, "sweep")
    sweep = "#tab-sweep [data-field='sweep.{}']"
    p.fill(sweep.format("models"), "synthetic")
    p.select_option(sweep.format("kind"), "simulate")
    p.fill(sweep.format("workers"), "0")
    p.fill(sweep.format("cache_sizes"), "32,128")
    p.fill(sweep.format("out"), "labels.jsonl")
    p.click("#tab-sweep >> text=Run Sweep")
    p.wait_for_function("() => window.sinkvisSweep.lastJobId !== null && window.sinkvisSweep.rows"
                        ".some(r => r.cell.policy === 'h2o_decay')", timeout=300_000)
    seen += p.evaluate(COLLECT, {"panel": "#tab-sweep", "rows": [".sweep-table tbody tr[data-policy]"],
                                 "boxes": [".sweep-policies label.check"],
                                 "charts": {"frontier": "window.sinkvisSweep.ui.chart"}})
    p.select_option(sweep.format("kind"), "prefill")  # the prefill methods' boxes, the user file among them
    p.wait_for_selector("#tab-sweep .sweep-policies input[value='snapkv_file']", state="attached")
    seen += p.evaluate(COLLECT, {"panel": "#tab-sweep", "boxes": [".sweep-policies:not(.hidden) label.check"]})

    # Retrieval: one cell, every streaming policy.
    tab(p, "retrieval")
    p.wait_for_selector("#tab-retrieval .retrieval-policies input[value='h2o_decay']", state="attached")
    for name, value in {"lengths": "96", "depths": "0.5", "cache_size": "32", "sinks": "4", "window": "16"}.items():
        p.fill(f"#tab-retrieval [data-field='{name}']", value)
    p.click("#tab-retrieval >> text=Run grid")
    p.wait_for_function("() => window.sinkvis.retrieval.result() !== null && !window.sinkvis.retrieval.running()",
                        timeout=300_000)
    seen += p.evaluate(COLLECT, {"panel": "#tab-retrieval", "rows": [".retrieval-results tbody tr[data-policy]"],
                                 "boxes": [".retrieval-policies label.check"], "titles": [".rgrid[data-policy]"]})
    p.select_option("#tab-retrieval [data-field='protocol']", "prefill")
    p.wait_for_selector("#tab-retrieval .retrieval-policies input[value='snapkv_file']", state="attached")
    seen += p.evaluate(COLLECT, {"panel": "#tab-retrieval", "boxes": [".retrieval-policies label.check"]})

    # Every view that showed a policy used the table's label and colour, and only those.
    views = {s["view"] for s in seen}
    assert len(views) >= 12, views
    by_policy = {}
    for s in seen:
        entry = by_policy.setdefault(s["policy"], {"labels": set(), "colours": set(), "views": set()})
        entry["labels"].add(s["label"])
        entry["views"].add(s["view"])
        if s["colour"]:
            entry["colours"].add(s["colour"])
    assert set(by_policy) <= set(table)
    wrong = [s for s in seen if s["label"] != table[s["policy"]]["label"]
             or s["colour"] not in (None, table[s["policy"]]["colour"])]
    assert wrong == [], wrong  # the view, the policy and what it showed instead of the table's label and colour
    for name, got in by_policy.items():
        assert got["labels"] == {table[name]["label"]} and got["colours"] == {table[name]["colour"]}, (name, got)
    for name in ("full", "sliding_window", "streaming_llm", "h2o", "lru", "tova", "h2o_decay", "snapkv_file"):
        assert name in by_policy, name
    assert by_policy["h2o_decay"]["labels"] == {"H2O, decay 0.99"}  # the rule's LABEL, not its NAME
    assert len(by_policy["h2o_decay"]["views"]) >= 8, by_policy["h2o_decay"]["views"]
    assert by_policy["sliding_window"]["labels"] == {"Sliding Window"}
    colours = {name: next(iter(got["colours"])) for name, got in by_policy.items() if got["colours"]}
    assert len(set(colours.values())) == len(colours), colours  # no two policies share a colour
    SHOTS.mkdir(exist_ok=True)
    p.screenshot(path=str(SHOTS / "policy-labels-retrieval.png"))
