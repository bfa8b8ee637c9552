// Sweeps (their own tab): every policy × cache sizes × texts ×
// models, each cell one Simulate or Evaluate run, on this machine or an existing Ray cluster.
// The chart is the frontier people expect: x = KV memory (bytes = the model's KV bytes per
// token × C) or the compression ratio, y = perplexity / KL / hit rate / recall, a line per
// policy. The backend computes every number (backend/sweep); we only draw them. main.js mounts
// it into the Sweeps tab.
import { call } from "./bridge.js";
import { h, fill, field, markField, showRunning } from "./dom.js";
import * as fmt from "./format.js";
import * as status from "./status.js";
import { app, on } from "./state.js";
import { onShown } from "./tabs.js";
import { lineChart } from "./charts.js";
import { policyColour, policyDash, policyLabel, labelsOf } from "./palette.js";
import { savePNG, saveJSON, saveCSV } from "./export.js";
import { kvFormatSelect, chosen } from "./kv-formats.js";
import { paretoFront } from "./pareto.js";

const POLICIES = ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova", "quest", "oracle"];
// Which decode-time policies a kind offers: the oracle needs the future (traces only); Quest is Evaluate's.
const ONLY = { oracle: ["simulate"], quest: ["evaluate"] };
// y metrics: key, label, lower is better
const METRICS = {
  evaluate: [["perplexity", "perplexity", true], ["kl_vs_full", "KL from Full", true]],
  simulate: [["hit_rate", "hit rate", false], ["attention_recall", "attention recall", false]],
  retrieval: [["accuracy", "retrieval accuracy", false], ["mean_logprob", "mean log p(answer)", false]],
  prefill: [["perplexity", "continuation perplexity", true], ["kl_vs_full", "KL from Full", true]],
};
const X_AXES = [["kv_bytes", "KV memory (bytes, log)"], ["kv_tokens", "KV tokens C (log)"], ["compression_ratio", "compression ratio (share of KV evicted)"]];
const label = policyLabel;  // one label per policy on every tab (palette.js, backend/labels.py)

const ui = {};
let rows = [];          // every row of the current results file
let jobId = null;
let lastJobId = null;   // tests read the finished job's summary
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function stamp() { return new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-"); }

export function mount() {
  ui.section = h("section", { class: "sweep-section" },
    h("div", { class: "sweep-head" }, h("h2", {}, "Sweep: quality against KV memory"),
      h("span", { class: "hint" }, "Every policy at many cache sizes (and texts, models): each cell is one Simulate or "
        + "Evaluate run, appended to a results file as it finishes; rerun the same file to resume.")),
    h("div", { class: "sweep-grid" }, settingsCard(), resultsCard()));
  on("model", (m) => { if (m && !ui.models.dataset.edited) ui.models.value = m.source || "demo"; });
  on("policies", showUserPolicies);
  on("defaults", applyDefaults);
  onShown("sweep", () => ui.chart.resize());
  return ui.section;
}

// The loaded model's shared defaults (defaults.js, backend/defaults.py): Evaluate's text, tokens and S, W = C/2.
function applyDefaults(d) {
  for (const [input, value] of [[ui.maxTokens, d.sweep.max_tokens], [ui.sinks, d.sweep.sinks],
    [ui.rLengths, d.retrieval.lengths.join(", ")], [ui.rDepths, d.retrieval.depths.join(", ")]]) {  // Retrieval's grid
    if (!input.dataset.edited) input.value = String(value);
  }
  ui.text.placeholder = `blank = ${d.text_label.split(" (")[0]} (the loaded model's text, as Evaluate)`;
  ui.defaultsNote.textContent = `${fmt.int(d.sweep.max_tokens)} tokens and S = ${d.sweep.sinks} as Evaluate. ${d.notes.sweep}`;
}

// This section is built when its module loads, before the labels table arrives: the built-ins' boxes get
// their label and colour here, each time the policy list (and so the table) is read.
function relabel() {
  for (const box of ui.policyBoxes.querySelectorAll("label.check:not(.user-policy)")) {
    const name = box.querySelector("input").value;
    box.querySelector(".swatch").style.background = policyColour(name);
    box.querySelector(".policy-label").textContent = label(name);
  }
}

// User policies (rule files, #17; listed by the Eviction tab): a checkbox each after the built-ins.
function showUserPolicies(all) {
  relabel();
  ui.policyBoxes.querySelectorAll("label.user-policy").forEach((n) => n.remove());
  ui.policyBoxes.append(...all.filter((p) => p.user).map((p) => h("label", { class: "check user-policy", title: p.file },
    h("input", { type: "checkbox", value: p.name, checked: true }),
    h("span", { class: "swatch", style: { background: policyColour(p.name) } }), label(p.name))));
}

// ---------- settings ----------
// Fields carry data-field="sweep.<name>" so they never collide with the simulation's fields in the same tab.
function input(name, value, attrs = {}) {
  return h("input", { value: String(value), dataset: { field: "sweep." + name }, ...attrs });
}

function mark(envelope) {
  const err = envelope && envelope.error;
  markField(ui.section, err && err.field ? { ...envelope, error: { ...err, field: "sweep." + err.field } } : envelope);
}

function settingsCard() {
  ui.models = input("models", "demo", { title: "'demo', a folder, a Hub id, or 'synthetic'; several separated by commas",
    oninput: () => { ui.models.dataset.edited = "1"; } });
  ui.kind = h("select", { dataset: { field: "sweep.kind" }, onchange: kindChanged },
    h("option", { value: "evaluate" }, "Evaluate (perplexity, KL)"), h("option", { value: "simulate" }, "Simulate (hit rate, recall)"),
    h("option", { value: "retrieval" }, "Retrieval (accuracy, log p)"),
    h("option", { value: "prefill" }, "Prefill, kvpress's protocol (perplexity, KL)"));
  // Kind retrieval: every cell (policy × C) runs this pass-key / needle grid (the Retrieval tab's, backend/retrieval).
  ui.rTask = h("select", { dataset: { field: "sweep.task" } }, h("option", { value: "pass_key" }, "pass key"),
    h("option", { value: "needle" }, "needle"), h("option", { value: "multi_key" }, "multi-key needle"));
  ui.rProtocol = h("select", { dataset: { field: "sweep.protocol" } }, h("option", { value: "streaming" }, "streaming"),
    h("option", { value: "prefill" }, "prefill (kvpress)"));
  ui.rLengths = input("lengths", "96, 144", { title: "Context lengths (tokens), separated by commas",
    oninput: () => { ui.rLengths.dataset.edited = "1"; } });
  ui.rDepths = input("depths", "0, 0.5, 1", { title: "Needle depths 0..1, separated by commas",
    oninput: () => { ui.rDepths.dataset.edited = "1"; } });
  ui.rChunk = input("chunk", 64, { type: "number", min: 1, title: "Streaming: evict every k tokens" });
  ui.retrieval = h("div", { class: "form-grid hidden" }, field("Task", ui.rTask), field("Protocol", ui.rProtocol),
    field("Lengths", ui.rLengths), field("Depths", ui.rDepths), field("Chunk k", ui.rChunk));
  ui.text = h("textarea", { rows: 3, dataset: { field: "sweep.texts" }, placeholder: "blank = the loaded model's bundled text (as Evaluate)" });
  ui.policyBoxes = h("div", { class: "sweep-policies", dataset: { field: "sweep.policies" } },
    POLICIES.map((p) => h("label", { class: "check" }, h("input", { type: "checkbox", value: p, checked: p !== "oracle" }),
      h("span", { class: "swatch" }), h("span", { class: "policy-label" }, p))));  // named by relabel()
  // Kind prefill: backend/compress's methods (listed by evaluate_info), each at every compression ratio.
  ui.prefillBoxes = h("div", { class: "sweep-policies hidden", dataset: { field: "sweep.policies" } });
  ui.ratios = input("ratios", "0.25, 0.5, 0.75, 0.9", { title: "Compression ratios: the fraction of the context removed, separated by commas" });
  ui.ratiosField = field("Ratios", ui.ratios);
  ui.ratiosField.classList.add("hidden");
  ui.sizes = input("cache_sizes", "auto", { title: "auto = 8 sizes log-spaced from 1/32 of the text to all of it; or 16,32,64,…" });
  ui.sinks = input("sinks", 4, { type: "number", min: 0, oninput: () => { ui.sinks.dataset.edited = "1"; } });
  ui.defaultsNote = h("div", { class: "hint sweep-defaults-note" });
  ui.window = input("window", "", { type: "number", min: 1, placeholder: "C/2" });
  ui.maxTokens = input("max_tokens", 512, { type: "number", min: 2, step: 64, oninput: () => { ui.maxTokens.dataset.edited = "1"; } });
  ui.workers = input("workers", "", { type: "number", min: 0, placeholder: "per core" });
  ui.ray = input("ray", "", { placeholder: "blank = this machine; auto or HOST:PORT",
    title: "Run the cells on an existing Ray cluster (ray start --head …). SinkVis never starts one." });
  ui.kvFormats = kvFormatSelect("sweep.kv_formats", { multiple: true, title: "The KV format axis (ctrl/shift-click "
    + "for several): each cell is policy × budget × format, at the format's KV bytes; unquantized = the model's dtype" });
  ui.intact = input("intact_sinks", 0, { type: "number", min: 0, title: "IntactKV: the first N positions stay in full "
    + "precision in every quantized cell" });
  ui.out = input("out", `sweep-${stamp()}.jsonl`, { title: "Results file under ~/SinkVis-exports/sweeps; an existing one is resumed" });
  ui.files = h("select", { class: "sweep-files", onchange: openFile, title: "Open an earlier sweep" }, h("option", { value: "" }, "Open…"));
  ui.runBtn = h("button", { class: "btn primary", onclick: run }, "Run Sweep");
  ui.cancelBtn = h("button", { class: "btn danger hidden", onclick: cancel }, "Cancel");
  ui.progress = h("div", { class: "progress hidden" }, h("div"));
  ui.progressText = h("div", { class: "hint mono sweep-progress" });
  return h("div", { class: "card sweep-settings" }, h("h2", {}, "Sweep settings"),
    h("div", { class: "form-grid" }, field("Models", ui.models), field("Kind", ui.kind)),
    ui.textField = field("Text", ui.text), ui.retrieval, field("Policies", h("div", {}, ui.policyBoxes, ui.prefillBoxes)),
    h("div", { class: "form-grid" }, ui.sizesField = field("Cache sizes", ui.sizes), ui.ratiosField, field("Sinks S", ui.sinks), field("Window W", ui.window),
      field("Max tokens", ui.maxTokens), field("Workers", ui.workers), field("Ray cluster", ui.ray)), ui.defaultsNote,
    h("div", { class: "form-grid kv-formats-row" }, field("KV formats", ui.kvFormats), field("Intact sinks", ui.intact)),
    h("div", { class: "form-grid" }, field("Results file", ui.out), field("Earlier sweeps", ui.files)),
    h("div", { class: "row run-row" }, ui.runBtn, ui.cancelBtn), ui.progress, ui.progressText);
}

async function kindChanged() {
  for (const [policy, kinds] of Object.entries(ONLY)) {
    const box = ui.policyBoxes.querySelector(`input[value="${policy}"]`);
    box.disabled = !kinds.includes(ui.kind.value);  // a real cache never knows the future; Quest runs in Evaluate
    box.checked = !box.disabled && policy !== "oracle";
  }
  const prefill = ui.kind.value === "prefill";
  ui.policyBoxes.classList.toggle("hidden", prefill);
  ui.prefillBoxes.classList.toggle("hidden", !prefill);
  ui.sizesField.classList.toggle("hidden", prefill);  // a prefill budget is a ratio, not C
  ui.ratiosField.classList.toggle("hidden", !prefill);
  if (prefill && !ui.prefillBoxes.childElementCount) {
    const info = await call("evaluate_info", {});
    if (info.ok) fill(ui.prefillBoxes, info.prefill_methods.map((m) => h("label", { class: "check" },
      h("input", { type: "checkbox", value: m, checked: true }),
      h("span", { class: "swatch", style: { background: policyColour(m) } }), label(m))));
  }
  ui.retrieval.classList.toggle("hidden", ui.kind.value !== "retrieval");
  ui.textField.classList.toggle("hidden", ui.kind.value === "retrieval");  // the task makes its own texts
}

const numberList = (text) => text.split(/[\s,;]+/).filter(Boolean).map(Number);

function params() {
  const boxes = ui.kind.value === "prefill" ? ui.prefillBoxes : ui.policyBoxes;
  const policies = [...boxes.querySelectorAll("input:checked")].map((i) => i.value);
  const p = {
    out: ui.out.value.trim(), kind: ui.kind.value,
    models: ui.models.value.split(",").map((s) => s.trim()).filter(Boolean),
    policies, cache_sizes: ui.sizes.value.trim() || "auto", sinks: Number(ui.sinks.value),
    max_tokens: Number(ui.maxTokens.value),
  };
  if (ui.window.value !== "") p.window = Number(ui.window.value);
  if (ui.workers.value !== "") p.workers = Number(ui.workers.value);
  if (ui.ray.value.trim()) p.ray = ui.ray.value.trim();
  const formats = chosen(ui.kvFormats);
  if (formats.length && formats.join() !== "none") Object.assign(p, { kv_formats: formats, intact_sinks: Number(ui.intact.value) });
  if (p.kind === "prefill") { p.ratios = numberList(ui.ratios.value); delete p.cache_sizes; }
  if (p.kind === "retrieval") {
    p.retrieval = { task: ui.rTask.value, protocol: ui.rProtocol.value, lengths: numberList(ui.rLengths.value),
      depths: numberList(ui.rDepths.value), chunk: Number(ui.rChunk.value) };
  } else if (p.models.length === 1 && p.models[0] === "synthetic") p.texts = [{ name: "synthetic", synthetic: { length: 100000 } }];
  else if (ui.text.value.trim()) p.texts = [{ name: "your text", text: ui.text.value }];
  return p;
}

// ---------- run ----------
async function run() {
  if (jobId !== null) return;
  const p = params();
  const started = await call("sweep_start", p);
  mark(started);
  if (!started.ok) {
    ui.progressText.textContent = started.error.message;
    ui.progressText.classList.add("err");
    return;
  }
  jobId = started.job_id;
  rows = [];
  setBusy(true);
  ui.progressText.classList.remove("err");
  const act = status.begin("Sweeping…");
  let st;
  for (;;) {
    st = await call("sweep_progress", { job_id: jobId, since: rows.length });
    if (!st.ok) break;
    if (st.rows && st.rows.length) { rows = rows.concat(st.rows); render(); }
    const text = progressLine(st);
    ui.progressText.textContent = text;
    ui.progress.firstChild.style.width = `${Math.round((st.fraction || 0) * 100)}%`;
    act.update(text);
    if (st.state !== "running") break;
    await sleep(400);
  }
  lastJobId = jobId;
  jobId = null;
  act.end();
  setBusy(false);
  listFiles();
  if (!st.ok || st.state === "error") {
    const err = st.error;
    mark({ ok: false, error: err });
    ui.progressText.textContent = err ? err.message : "The sweep failed.";
    ui.progressText.classList.add("err");
  } else if (st.state === "cancelled") {
    ui.progressText.textContent = `Cancelled after ${rows.length} cells; run the same file again to resume.`;
  } else {
    const r = st.result;
    ui.progressText.textContent = `${r.cells_total} cells (${r.written} new, ${r.cells_skipped} already in the file) `
      + `on ${r.runner} · ${fmt.secs(r.elapsed)}` + (r.notes.length ? ` · ${r.notes.length} sizes left out: ${r.notes[0].why}` : "");
  }
}

function progressLine(st) {
  const s = st.sweep;
  if (!s) return st.stage || "Starting…";
  const rate = s.cells_per_minute == null ? "—" : `${s.cells_per_minute.toFixed(1)} cells/min`;
  const left = s.seconds_left == null ? "" : ` · ${fmt.secs(s.seconds_left)} left`;
  const nodes = Object.keys(s.nodes || {}).length;
  return `${s.cells_done} / ${s.cells_todo} cells (${s.cells_skipped} already in the file) · ${rate}${left}`
    + (nodes > 1 ? ` · ${nodes} nodes` : "");
}

function cancel() {
  if (jobId) call("sweep_cancel", { job_id: jobId });
  ui.progressText.textContent = "Cancelling…";
}

function setBusy(busy) { showRunning(ui, busy); }

export async function listFiles() {
  const res = await call("sweep_results", {});
  if (!res.ok) return;
  fill(ui.files, h("option", { value: "" }, res.files.length ? "Open…" : "no sweeps yet"),
    res.files.map((f) => h("option", { value: f }, f)));
}

async function openFile() {
  const file = ui.files.value;
  if (!file) return;
  const res = await call("sweep_results", { file });
  if (!res.ok) { status.error(res.error.message); return; }
  rows = res.rows;
  ui.out.value = file;
  const lost = await restoreSettings(rows);
  ui.progressText.classList.remove("err");
  ui.progressText.textContent = `${file}: ${fmt.int(res.rows_total)} cells · the settings above are this file's`
    + (lost.length ? ` (not stored in it: ${lost.join(", ")})` : "");
  render();
}

/**
 * The settings panel takes the opened file's settings (its cells name them), so Run resumes that
 * sweep rather than mixing the file with whatever the panel held before. What a cell does not store
 * (a text's content, the retrieval grid) is returned, to say so.
 */
async function restoreSettings(fileRows) {
  const cells = fileRows.map((r) => r.cell);
  if (!cells.length) return [];
  const distinct = (f, list = cells) => [...new Set(list.map(f))];
  ui.kind.value = cells[0].kind;
  await kindChanged();  // the policy boxes and fields of that kind (prefill's methods are fetched)
  ui.models.value = distinct((c) => c.model).join(", ");
  ui.models.dataset.edited = "1";  // a model loaded later must not overwrite the file's
  const policies = new Set(distinct((c) => c.policy));
  const boxes = ui.kind.value === "prefill" ? ui.prefillBoxes : ui.policyBoxes;
  boxes.querySelectorAll("input").forEach((box) => { box.checked = policies.has(box.value); });
  const evicting = cells.filter((c) => c.policy !== "full");
  if (ui.kind.value === "prefill") ui.ratios.value = distinct((c) => c.ratio, evicting).sort((a, b) => a - b).join(", ");
  else ui.sizes.value = distinct((c) => c.cache_size, evicting).sort((a, b) => a - b).join(", ");
  const sinks = distinct((c) => c.sinks);
  if (sinks.length === 1) ui.sinks.value = String(sinks[0]);
  const halves = evicting.every((c) => c.window === Math.floor(c.cache_size / 2));  // the default, W = C/2
  const windows = distinct((c) => c.window, evicting);
  ui.window.value = halves || windows.length !== 1 ? "" : String(windows[0]);
  const maxTokens = distinct((c) => JSON.parse(c.settings || "{}").max_tokens).filter((v) => v != null);
  if (maxTokens.length === 1) ui.maxTokens.value = String(maxTokens[0]);
  const formats = distinct((c) => (c.settings ? JSON.parse(c.settings).kv_format : null) || "none");  // issue 34's axis
  for (const o of ui.kvFormats.options) o.selected = formats.includes(o.value);
  const intact = distinct((c) => JSON.parse(c.settings || "{}").intact_sinks).filter((v) => v != null);
  ui.intact.value = String(intact[0] || 0);
  const lost = [];
  if (ui.kind.value === "retrieval") {
    if ([...ui.rTask.options].some((o) => o.value === cells[0].text)) ui.rTask.value = cells[0].text;
    lost.push("the grid's lengths and depths");
  } else if (!distinct((c) => c.model).includes("synthetic")) {
    lost.push(`the text itself (the file names it: ${distinct((c) => c.text).join(", ")})`);
  }
  return lost;
}

// ---------- results ----------
function resultsCard() {
  ui.series = h("select", { onchange: render, title: "Model · text" });
  ui.x = h("select", { onchange: render }, X_AXES.map(([k, t]) => h("option", { value: k }, t)));
  ui.y = h("select", { onchange: render });
  ui.budget = h("input", { value: "", placeholder: "e.g. 1 MB, 300 KB, 64 tokens", dataset: { field: "sweep.budget" }, oninput: renderPicks });
  ui.picks = h("div", { class: "sweep-picks hint" }, "Type a memory budget to see the cell each policy would pick.");
  ui.canvas = h("canvas");
  ui.chart = lineChart(ui.canvas, { xTitle: "KV memory (bytes)", yTitle: "", scales: { x: { type: "logarithmic" }, y: { beginAtZero: false } } });
  ui.chart.options.interaction = { mode: "nearest", intersect: false };
  ui.chart.options.elements.point.radius = 3;
  ui.chart.options.plugins.tooltip.callbacks = { title: () => "", label: tooltipLines };
  // The same x ticks before any sweep is drawn (Chart.js's own read 1.00, 1.10, 1.20 …).
  ui.chart.options.scales.x.ticks = { callback: (v) => tickLabel("kv_bytes", v), autoSkip: false, maxRotation: 0 };
  ui.chart.options.scales.x.afterBuildTicks = powerOfTwoTicks;
  ui.tableBody = h("tbody", {}, h("tr", {}, h("td", { colspan: 9, class: "hint" }, "Run a sweep or open an earlier one.")));
  return h("div", { class: "sweep-results" },
    h("div", { class: "card" }, h("h2", {}, "Frontier", h("span", { class: "spacer" }),
      h("button", { class: "btn small", onclick: () => savePNG("sweep-frontier", ui.canvas) }, "PNG")),
    h("div", { class: "row" }, field("Series", ui.series), field("x", ui.x), field("y", ui.y)),
    h("div", { class: "chart-box sweep-chart" }, ui.canvas),
    h("div", { class: "row sweep-budget" }, field("Memory budget", ui.budget)), ui.picks),
    h("div", { class: "card" }, h("h2", {}, "Cells", h("span", { class: "spacer" }),
      h("button", { class: "btn small", onclick: exportCSV }, "CSV"), h("button", { class: "btn small", onclick: exportJSON }, "JSON")),
    h("div", { class: "table-wrap sweep-table-wrap" }, h("table", { class: "data sweep-table" },
      ui.tableHead = h("thead", {}, headRow("value")), ui.tableBody))));
}

function headRow(metric) {
  return h("tr", {}, ["policy", "C", "W", "KV memory", "compression", metric, "node", "seconds"].map((t) => h("th", {}, t)));
}

const seriesKey = (r) => `${r.cell.model} · ${r.cell.text}`;

function currentRows() {
  // A user policy edited between runs of one file has cells of each version (rule_sha); draw the newest.
  const latest = {};
  for (const r of rows) if (r.cell.rule_sha) latest[r.cell.policy] = r.cell.rule_sha;
  return rows.filter((r) => seriesKey(r) === ui.series.value && (!r.cell.rule_sha || latest[r.cell.policy] === r.cell.rule_sha));
}

function metricsFor(kind) { return METRICS[kind] || METRICS.evaluate; }

function render() {
  const keys = [...new Set(rows.map(seriesKey))];
  if (keys.join("\n") !== [...ui.series.options].map((o) => o.value).join("\n")) {
    const keep = ui.series.value;
    fill(ui.series, keys.map((k) => h("option", { value: k }, k)));
    if (keys.includes(keep)) ui.series.value = keep;
  }
  const shown = currentRows();
  const kind = shown.length ? shown[0].cell.kind : "evaluate";
  const metrics = metricsFor(kind);
  if (![...ui.y.options].some((o) => o.value === metrics[0][0])) {
    fill(ui.y, metrics.map(([k, t]) => h("option", { value: k }, t)));
  }
  const xKey = shown.length && shown[0].kv_bytes == null && ui.x.value === "kv_bytes" ? "kv_tokens" : ui.x.value;
  const yKey = ui.y.value;
  const byPolicy = {};  // a line per policy × KV format (one format: per policy, as before formats)
  const formats = [...new Set(shown.map(formatOf))];
  for (const r of shown) (byPolicy[r.cell.policy + "\u0000" + formatOf(r)] ||= []).push(r);
  const datasets = Object.entries(byPolicy).map(([key, list]) => ({
    label: pointName(list[0], formats.length > 1), color: policyColour(list[0].cell.policy), borderDash: policyDash(list[0].cell.policy),
    policy: list[0].cell.policy,
    pointRadius: list[0].cell.policy === "full" ? 5 : 3, showLine: list[0].cell.policy !== "full",
    pointStyle: POINT_STYLES[formats.indexOf(formatOf(list[0])) % POINT_STYLES.length],
    data: list.filter((r) => r.metrics[yKey] != null && r[xKey] != null)
      .sort((a, b) => a[xKey] - b[xKey]).map((r) => ({ x: xKey === "compression_ratio" ? r[xKey] : Math.max(r[xKey], 1e-9), y: r.metrics[yKey], row: r })),
  }));
  const lower = (metrics.find(([k]) => k === yKey) || [])[2] !== false;
  if (formats.length > 1 && xKey === "kv_bytes") {  // evicting and quantizing on one front
    datasets.push({ label: "Pareto front (all policies × formats)", color: "#e5e7eb", borderDash: [2, 2], pointRadius: 0,
      showLine: true, front: true, data: paretoFront(datasets.flatMap((d) => d.data), lower) });
  }
  ui.chart.data.datasets = datasets.map((d) => ({ borderColor: d.color, backgroundColor: d.color, ...d }));
  ui.chart.options.scales.x.type = xKey === "compression_ratio" ? "linear" : "logarithmic";
  ui.chart.options.scales.x.title.text = X_AXES.find(([k]) => k === xKey)[1];
  ui.chart.options.scales.x.ticks = { callback: (v) => tickLabel(xKey, v), autoSkip: false, maxRotation: 0 };
  ui.chart.options.scales.x.afterBuildTicks = xKey === "compression_ratio" ? undefined : powerOfTwoTicks;
  // Perplexity spans orders of magnitude (a window without sinks explodes): log y, as in StreamingLLM's plots.
  ui.chart.options.scales.y.type = yKey === "perplexity" ? "logarithmic" : "linear";
  ui.chart.options.scales.y.title = { display: true, text: (metrics.find(([k]) => k === yKey)?.[1] || yKey) + (yKey === "perplexity" ? " (log)" : "") };
  ui.chart.update();
  renderTable(shown, yKey);
  renderPicks();
}

const MAX_X_TICKS = 8;

/**
 * The log x axis ticks at powers of two (the cache sizes people pick: 64, 128 … tokens; 1 KiB,
 * 2 KiB … of KV), every 2nd or 4th one when the range is wide, so labels never overlap (Chart.js's
 * own log ticks put 1 to 9 × 10^k, labelled or not, side by side).
 */
function powerOfTwoTicks(scale) {
  const lo = Math.ceil(Math.log2(scale.min)), hi = Math.floor(Math.log2(scale.max));
  if (!isFinite(lo) || !isFinite(hi) || hi < lo) return;
  const every = Math.max(1, Math.ceil((hi - lo + 1) / MAX_X_TICKS));
  const ticks = [];
  for (let e = hi; e >= lo; e -= every) ticks.unshift({ value: 2 ** e });  // the largest always labelled
  scale.ticks = ticks;
}

/** A power of two reads as one: "512", "4 KiB", "1 MiB" (no "4.00 KiB"). */
function tickLabel(xKey, v) {
  if (xKey === "compression_ratio") return fmt.pct(v, 0);
  if (xKey !== "kv_bytes") return fmt.count(v);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${+v.toPrecision(3)} ${units[i]}`;
}

function tooltipLines(ctx) {
  const r = ctx.raw.row;
  const m = r.metrics;
  const main = r.cell.kind === "evaluate" ? `perplexity ${fmt.fixed(m.perplexity, 3)} · KL ${fmt.fixed(m.kl_vs_full, 4)}`
    : r.cell.kind === "prefill" ? `perplexity ${fmt.fixed(m.perplexity, 3)} · KL ${fmt.fixed(m.kl_vs_full, 4)}`
      + (m.note ? ` · ${m.note}` : "")
    : r.cell.kind === "retrieval" ? `accuracy ${fmt.pct(m.accuracy, 0)} of ${m.cells} · mean log p ${fmt.fixed(m.mean_logprob, 3)}`
      : `hit rate ${fmt.pct(m.hit_rate, 2)} · recall ${fmt.pct(m.attention_recall, 2)}`;
  return [`${pointName(r, true)} · ${budgetText(r)} · W = ${r.cell.window} · S = ${r.cell.sinks}`
    + (ctx.dataset.front ? " · on the Pareto front" : ""),
    `KV ${fmt.bytes(r.kv_bytes)}${r.memory_is ? " " + r.memory_is : ""} · compression ${fmt.pct(r.compression_ratio, 1)}`, main,
    `${r.tokens} tokens · node ${String(r.node).slice(0, 12)} · ${fmt.secs(r.seconds)}`];
}

// A prefill cell's budget is its ratio (of a context of cache_size tokens); the others' is C.
// A cell's KV format (issue 34): "unquantized" = the model's dtype; intact sinks said where kept.
const POINT_STYLES = ["circle", "rect", "triangle", "rectRot", "star", "crossRot"];
function formatOf(r) {
  const intact = r.kv_format && r.cell.settings ? JSON.parse(r.cell.settings).intact_sinks : 0;
  return (r.kv_format || "unquantized") + (intact ? ` +${intact} intact` : "");
}
function pointName(r, withFormat) { return label(r.cell.policy) + (withFormat ? ` · ${formatOf(r)}` : ""); }

function budgetText(r) {
  return r.cell.ratio != null ? `r = ${r.cell.ratio} of ${fmt.int(r.cell.cache_size)}` : `C = ${fmt.int(r.cell.cache_size)}`;
}

function renderTable(shown, yKey) {
  if (!shown.length) return;
  fill(ui.tableHead, headRow(yKey));
  const order = (p) => (POLICIES.includes(p) ? POLICIES.indexOf(p) : POLICIES.length);
  const sorted = [...shown].sort((a, b) => order(a.cell.policy) - order(b.cell.policy) || a.cell.policy.localeCompare(b.cell.policy)
    || a.cell.cache_size - b.cell.cache_size || (a.cell.ratio || 0) - (b.cell.ratio || 0));
  fill(ui.tableBody, sorted.map((r) => h("tr", { dataset: { policy: r.cell.policy } },
    h("td", {}, h("span", { class: "swatch", style: { background: policyColour(r.cell.policy) } }), pointName(r, r.kv_format != null)),
    h("td", {}, r.cell.ratio != null ? `r = ${r.cell.ratio}` : fmt.int(r.cell.cache_size)),
    h("td", {}, r.cell.policy === "full" ? "—" : String(r.cell.window)),
    h("td", { title: r.memory_is ? `Quest holds all ${r.memory_held_tokens} entries; this is what a step reads` : "" },
      r.kv_bytes == null ? "—" : fmt.bytes(r.kv_bytes) + (r.memory_is ? ` (${r.memory_is})` : "")), h("td", {}, fmt.pct(r.compression_ratio, 2)),
    h("td", {}, fmt.fixed(r.metrics[yKey], 4)),
    h("td", { title: String(r.node) }, String(r.node).slice(0, 10)), h("td", {}, fmt.secs(r.seconds)))));
}

/** "1.5 MB", "300 KB", "2e6", "64 tokens" → {bytes} or {tokens}; null when unreadable. */
export function parseBudget(text) {
  const m = String(text).trim().match(/^([\d.]+(?:e\d+)?)\s*(b|kb|kib|mb|mib|gb|gib|tokens?|tok)?$/i);
  if (!m) return null;
  const n = Number(m[1]);
  if (!isFinite(n) || n <= 0) return null;
  const unit = (m[2] || "b").toLowerCase();
  if (unit.startsWith("tok")) return { tokens: n };
  const scale = { b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, gib: 1024 ** 3 }[unit];
  return { bytes: n * scale };
}

/** Each policy's best cell that fits the budget (lowest perplexity/KL, highest hit rate/recall). */
export function picksAt(shown, budget, yKey, lowerIsBetter) {
  const out = [];
  const byPolicy = {};
  for (const r of shown) (byPolicy[r.cell.policy] ||= []).push(r);
  for (const [policy, list] of Object.entries(byPolicy)) {
    const fits = list.filter((r) => r.metrics[yKey] != null
      && (budget.tokens != null ? r.kv_tokens <= budget.tokens : r.kv_bytes != null && r.kv_bytes <= budget.bytes));
    if (!fits.length) { out.push({ policy, row: null }); continue; }
    fits.sort((a, b) => (lowerIsBetter ? a.metrics[yKey] - b.metrics[yKey] : b.metrics[yKey] - a.metrics[yKey]));
    out.push({ policy, row: fits[0] });
  }
  return out;
}

function renderPicks() {
  const text = ui.budget.value.trim();
  if (!text) { ui.picks.textContent = "Type a memory budget to see the cell each policy would pick."; return; }
  const budget = parseBudget(text);
  if (!budget) { fill(ui.picks, h("span", { class: "err" }, "Budget: a size like 1.5 MB, 300 KB, 2e6 (bytes) or 64 tokens.")); return; }
  const shown = currentRows();
  const yKey = ui.y.value;
  const lower = (metricsFor(shown[0] ? shown[0].cell.kind : "evaluate").find(([k]) => k === yKey) || [])[2];
  const picks = picksAt(shown, budget, yKey, lower !== false);
  const best = picks.filter((p) => p.row).sort((a, b) => (lower !== false ? 1 : -1) * (a.row.metrics[yKey] - b.row.metrics[yKey]))[0];
  fill(ui.picks, h("table", { class: "data sweep-picks-table" },
    h("thead", {}, h("tr", {}, ["at ≤ " + text, "C", "KV memory", yKey].map((t) => h("th", {}, t)))),
    h("tbody", {}, picks.map((p) => h("tr", { class: best && p === best ? "pick-best" : "", dataset: { policy: p.policy } },
      h("td", {}, h("span", { class: "swatch", style: { background: policyColour(p.policy) } }),
        p.row ? pointName(p.row, p.row.kv_format != null) : label(p.policy)),
      h("td", {}, p.row ? fmt.int(p.row.cell.cache_size) : "—"),
      h("td", {}, p.row ? fmt.bytes(p.row.kv_bytes) : "does not fit"),
      h("td", { class: best && p === best ? "best" : "" }, p.row ? fmt.fixed(p.row.metrics[yKey], 4) : "—"))))));
}

function flat(r) {
  return { model: r.cell.model, text: r.cell.text, kind: r.cell.kind, policy: r.cell.policy, label: label(r.cell.policy), cache_size: r.cell.cache_size,
    sinks: r.cell.sinks, window: r.cell.window, kv_format: r.kv_format || "", tokens: r.tokens, kv_tokens: r.kv_tokens, kv_bytes: r.kv_bytes,
    compression_ratio: r.compression_ratio, ratio: r.cell.ratio ?? "", memory_is: r.memory_is || "", ...r.metrics, node: r.node, seconds: r.seconds, key: r.key };
}

function exportCSV() {
  if (!rows.length) return;
  const flatRows = rows.map(flat);
  saveCSV("sweep", flatRows, Object.keys(flatRows[0]));
}

function exportJSON() {
  if (rows.length) saveJSON("sweep", { rows, labels: labelsOf(rows.map((r) => r.cell.policy)) });
}

// For tests and the devtools console.
export const debug = { get rows() { return rows; }, get lastJobId() { return lastJobId; }, ui };

/** Build the Sweeps tab in `panel` (main.js). */
export function init(panel) {
  panel.classList.add("sweep-layout");
  panel.append(mount());
  listFiles();
  window.sinkvisSweep = debug;
}
