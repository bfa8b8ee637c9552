// Eviction Sim tab: run one policy or compare them all on the same trace at the same
// budget (definitions in DESIGN.md; the backend computes every metric, we only show
// them). Synthetic traces need no model; the model-trace settings are covered by the
// "Model required" overlay until a model is loaded. Below them, the Evaluate section
// (tab-evaluate.js): perplexity of the loaded model with each policy's cache applied. A row
// at the top names both sections and jumps to them; Sweeps have their own tab (tab-sweep.js).
import { call, runJob } from "./bridge.js";
import { h, fill, field, onEnter, markField } from "./dom.js";
import * as fmt from "./format.js";
import * as status from "./status.js";
import { app, on, emit } from "./state.js";
import { requireModel, onShown, showTab } from "./tabs.js";
import { Heatmap } from "./heatmap.js";
import { barChart, lineChart, setData } from "./charts.js";
import { savePNG, saveJSON, saveCSV } from "./export.js";
import { policyColour, policyDash, policyLabel, labelsOf, fade, loadLabels } from "./palette.js";
import { userMessage, fieldError } from "./fielderror.js";
import * as evaluateView from "./tab-evaluate.js";
import * as quantError from "./quant-error.js";
import * as userPolicies from "./policies.js";

export const evaluate = evaluateView;  // the Evaluate section (perplexity under eviction), for tests
export const quantErrorView = quantError.view;  // the quantization error picture (Evaluate's section), for tests

const FALLBACK_POLICIES = ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova", "oracle"]
  .map((name) => ({ name, label: name, description: "", needs_future: name === "oracle" }));

// Table columns: key, header, format, which value is best (max/min/null = not ranked).
const COLUMNS = [
  ["tokens_processed", "tokens", fmt.int, null],
  ["accesses", "accesses", fmt.int, null],
  ["hits", "hits", fmt.int, "max"],
  ["misses", "misses", fmt.int, "min"],
  ["evictions", "evictions", fmt.int, "min"],
  ["hit_rate", "hit rate", (v) => fmt.pct(v, 2), "max"],
  ["attention_recall", "recall", (v) => fmt.pct(v, 2), "max"],
  ["retained_sinks", "sinks kept", fmt.ratio, "max"],
  ["retained_heavy_hitters", "heavy kept", fmt.ratio, "max"],
  ["seconds", "seconds", (v) => fmt.fixed(v, 3), "min"],
];

// Each Api field as this tab labels it, for errors in the user's words (fielderror.js).
const FIELDS = {
  trace: { label: "Trace" }, policy: { label: "Policy" },
  cache_size: { label: "Cache size C", type: "a whole number of tokens ≥ 1" },
  sinks: { label: "Sinks S", type: "a whole number ≥ 0" }, window: { label: "Window W", type: "a whole number ≥ 0, less than C" },
  access_threshold: { label: "Access τ", type: "a weight between 0.000001 and 1, e.g. 0.01" },
  length: { label: "Length (steps)", type: "a whole number from 1 to 20,000,000" },
  sink_count: { label: "Sink count", type: "a whole number from 0 to 1,000" },
  sink_mass: { label: "Sink mass", type: "a share from 0 to 1" }, locality: { label: "Locality decay", type: "a decay from 0 to 0.99" },
  heavy_hitters: { label: "Heavy hitters", type: "a whole number from 0 to 1,000" },
  heavy_mass: { label: "Heavy mass", type: "a share from 0 to 1" },
  heavy_life: { label: "Heavy life (steps)", type: "a whole number of steps ≥ 0 (0 = for ever)" },
  background: { label: "Background", type: "a share from 0 to 1" }, seed: { label: "Seed", type: "a whole number ≥ 0" },
  text: { label: "Text" }, aggregate: { label: "Trace from" },
  layer: { label: "Layer (−1 = last)" }, head: { label: "Head (blank = mean)" },
};
// The budget on a model trace: the loaded model's shared budget (backend/defaults.py, the same C, S, W as
// Evaluate, Sweep and Retrieval) on the start of its text, a few times C long, so every policy must evict.
let modelBudget = null;   // defaults.simulate_model once a model is loaded
let ratioEdited = false;  // the user typed the heatmap's ratio: a new model's default keeps it

const ui = {};
let policies = FALLBACK_POLICIES;
let defaults = {};        // DEFAULTS from the backend (backend/eviction/params.py), the one table
let budgetEdited = false; // the user typed a budget: switching the trace keeps it
let last = null;          // last simulate result
let selectedPolicy = null;
let jobId = null;
let modelMatrix = null;   // {tokens, matrix, sinks, heavy} behind the dimmed heatmap
let prefillMethods = [];  // backend/compress's methods, offered in the heatmap's "Keys kept by"
let kept = null;          // {key, result, attention}: one prefill_kept job's answer for the trace's text
let keptJob = null;       // its job id while it runs (Cancel)
let keptPending = null;   // {key, answer}: the job for these settings, still on its way
let keptSeq = 0;          // a newer choice wins over an answer still on its way
// The heatmap's prefill controls, as the Api names them (fielderror.js).
const KEPT_FIELDS = {
  methods: { label: "Keys kept by" }, ratio: { label: "Ratio removed", type: "a fraction from 0 to 0.99, e.g. 0.5" },
  layer: { label: "Layer (−1 = last)" }, head: { label: "Query head", type: "a head number from 0" }, text: { label: "Text" },
};

export function init(panel) {
  ui.panel = panel;
  panel.classList.add("eviction-layout");
  const evaluateSection = evaluateView.mount();
  evaluateSection.append(quantError.mount());  // why a KV format hurts: part of Evaluate's section
  panel.append(sectionNav(evaluateSection), settingsCard(), resultsCard(), evaluateSection);
  onShown("eviction", () => { ui.bars.resize(); ui.recall.resize(); evaluateView.resize(); quantError.resize(); });
  on("defaults", applyModelDefaults);
  on("model", () => { kept = keptPending = null; if (last && last.params.trace === "model") markStale("another model was loaded since"); });
}

// Simulation and Evaluate answer different questions on one tab (they share the policies, the
// user's rule files and the budget vocabulary): this row says so and jumps to Evaluate, which
// sits below the fold; the prefill heatmap ("Keys kept by") dims the simulated trace, so it stays
// with the Simulation results.
function sectionNav(evaluateSection) {
  const jump = (target) => () => target.scrollIntoView({ behavior: "smooth", block: "start" });
  return h("nav", { class: "section-nav" },
    h("button", { class: "btn small", onclick: jump(ui.panel) }, "Simulation"),
    h("span", { class: "hint" }, "hit rate and recall of each policy on a trace (synthetic, or the model's attention) · heatmap of the keys kept"),
    h("button", { class: "btn small", onclick: jump(evaluateSection) }, "Evaluate ↓"),
    h("span", { class: "hint" }, "perplexity on the model's real KV cache"),
    h("span", { class: "spacer" }),
    h("button", { class: "btn small", onclick: () => showTab("sweep") }, "Sweeps →"));
}

export async function start() {
  evaluateView.start();
  const res = await call("eviction_policies");
  if (res.ok && res.policies && res.policies.length) policies = res.policies;
  if (res.ok && res.defaults) applyDefaults(res.defaults);
  if (res.ok && res.prefill_methods) prefillMethods = res.prefill_methods;
  await fillPolicies(res);  // loads the labels first
  fill(ui.keptBy, [h("option", { value: "" }, "the simulated policy (table row)"),
    h("optgroup", { label: "compressed at prefill (backend/compress)" }, prefillMethods.map((m) => h("option", { value: m }, policyLabel(m))))]);
  ui.policy.value = policies.some((p) => p.name === "h2o") ? "h2o" : policies[0].name;
}

async function fillPolicies(res) {
  await loadLabels();  // the user's files changed: their labels and colours first, then every view redraws
  fill(ui.policy, policies.map((p) => h("option", { value: p.name, title: p.description || "" },
    policyLabel(p.name) + (p.needs_future ? " (model trace only)" : ""))));
  if (res.ok) userPolicies.render(res.user_policies, res.policies);
  emit("policies", policies);  // the Sweeps tab offers the user's rule files too
}

// After a Reload in "Your policies" (policies.js): the list changed, the settings did not.
async function refreshPolicies() {
  const current = ui.policy.value;
  const res = await call("eviction_policies");
  if (!res.ok) return;
  policies = res.policies;
  await fillPolicies(res);
  if (policies.some((p) => p.name === current)) ui.policy.value = current;
  evaluateView.start();  // Evaluate offers the same user policies
}

// ---------- settings ----------
// The inputs show the backend's defaults (one table); the model-trace text is the bundled held-out text.
function applyDefaults(d) {
  defaults = d;
  const set = (input, key) => { if (d[key] != null) input.value = String(d[key]); };
  for (const [input, key] of [[ui.cache, "cache_size"], [ui.sinks, "sinks"], [ui.window, "window"], [ui.tau, "access_threshold"],
    [ui.length, "length"], [ui.sinkMass, "sink_mass"], [ui.locality, "locality"], [ui.heavyCount, "heavy_hitters"],
    [ui.heavyMass, "heavy_mass"], [ui.heavyLife, "heavy_life"], [ui.background, "background"], [ui.seed, "seed"]]) set(input, key);
  if (d.sinks != null) ui.sinkCount.value = String(Math.min(d.sinks, 1000));
  if (d.model_text && !ui.textEdited && !modelBudget) ui.text.value = d.model_text;
}

// The loaded model's shared defaults (defaults.js): its budget and the start of its text for the model trace,
// and the heatmap's ratio that keeps about C keys; fields the user typed in keep their values.
function applyModelDefaults(d) {
  modelBudget = d.simulate_model;
  if (!ui.textEdited) ui.text.value = d.simulate_model.model_text;
  ui.modelNote.textContent = `C = ${modelBudget.cache_size}, S = ${modelBudget.sinks}, W = ${modelBudget.window} on `
    + `${d.text_label.split(" (")[0]}, as Evaluate, Sweep and Retrieval. ${d.notes.simulate_model}`;
  if (!ratioEdited) ui.keptRatio.value = String(d.prefill_heatmap.ratio);
  ui.keptNote.textContent = d.notes.prefill_heatmap;
  if (ui.trace.value === "model" && !budgetEdited) {
    ui.cache.value = String(modelBudget.cache_size); ui.sinks.value = String(modelBudget.sinks); ui.window.value = String(modelBudget.window);
  }
}

function num(name, value, attrs = {}) {
  return h("input", { type: "number", value: String(value), dataset: { field: name }, ...attrs });
}

function settingsCard() {
  ui.trace = h("select", { dataset: { field: "trace" }, onchange: traceChanged },
    h("option", { value: "synthetic" }, "Synthetic (no model needed)"), h("option", { value: "model" }, "Model (loaded model on a text)"));
  ui.policy = h("select", { dataset: { field: "policy" } });
  ui.cache = num("cache_size", 256, { min: 1, title: "Budget C: keys the cache may hold" });
  ui.sinks = num("sinks", 4, { min: 0, title: "S: sink tokens StreamingLLM keeps" });
  ui.window = num("window", 128, { min: 0, title: "W: recent window (H2O)" });
  ui.tau = num("access_threshold", 0.01, { min: 0, max: 1, step: 0.001, title: "τ: a key is accessed when its weight ≥ τ" });

  ui.length = num("length", 100000, { min: 1, step: 1000 });
  ui.sinkCount = num("sink_count", 4, { min: 0 });
  ui.sinkMass = num("sink_mass", 0.5, { min: 0, max: 1, step: 0.05 });
  ui.locality = num("locality", 0.8, { min: 0, max: 0.9999, step: 0.05, title: "Decay r: the key at age d gets ∝ r^d" });
  ui.heavyCount = num("heavy_hitters", 1000, { min: 0, max: 1000 });
  ui.heavyLife = num("heavy_life", 3000, { min: 0, step: 100, title: "Steps a heavy hitter stays heavy (0 = for ever)" });
  ui.heavyMass = num("heavy_mass", 0.2, { min: 0, max: 1, step: 0.05 });
  ui.background = num("background", 0.1, { min: 0, max: 1, step: 0.05 });
  ui.seed = num("seed", 0, { min: 0 });
  ui.synthetic = h("div", { class: "synthetic-settings" },
    h("div", { class: "form-grid" }, field("Length (steps)", ui.length), field("Sink count", ui.sinkCount), field("Sink mass", ui.sinkMass),
      field("Locality decay", ui.locality), field("Heavy hitters", ui.heavyCount), field("Heavy mass", ui.heavyMass),
      field("Heavy life (steps)", ui.heavyLife),
      field("Background", ui.background), field("Seed", ui.seed)));

  // Filled with the start of the loaded model's text (a few times its C) by applyModelDefaults.
  ui.text = h("textarea", { rows: 5, dataset: { field: "text" }, placeholder: "Text for the model trace: longer than the cache C, or nothing is evicted",
    oninput: () => { ui.textEdited = true; } });
  ui.aggregate = h("select", { dataset: { field: "aggregate" }, onchange: () => { ui.head.disabled = ui.aggregate.value === "all_layers"; } },
    h("option", { value: "layer" }, "one layer"), h("option", { value: "all_layers" }, "mean over all layers"));
  ui.layer = num("layer", -1, { title: "-1 = last" });
  ui.head = h("input", { type: "text", placeholder: "mean", dataset: { field: "head" } });
  ui.modelNote = h("div", { class: "hint model-defaults-note" });
  ui.model = h("div", { class: "model-settings hidden" }, ui.text, ui.modelNote,
    h("div", { class: "form-grid" }, field("Trace from", ui.aggregate), field("Layer (−1 = last)", ui.layer), field("Head (blank = mean)", ui.head)));
  ui.modelOverlay = requireModel(ui.model, "A model trace is the loaded model's attention on your text.");
  onEnter(ui.text, () => run(ui.policy.value));

  ui.runBtn = h("button", { class: "btn primary", onclick: () => run(ui.policy.value) }, "Run Simulation");
  ui.allBtn = h("button", { class: "btn", onclick: () => run("all") }, "Compare All Policies");
  ui.cancelBtn = h("button", { class: "btn danger hidden", onclick: () => jobId && call("cancel_job", { job_id: jobId }) }, "Cancel");
  ui.progress = h("div", { class: "progress hidden" }, h("div"));
  ui.progressText = h("div", { class: "hint mono" });
  for (const input of [ui.length, ui.cache, ui.sinks, ui.window, ui.tau]) onEnter(input, () => run(ui.policy.value));
  for (const input of [ui.cache, ui.sinks, ui.window]) input.addEventListener("input", () => { budgetEdited = true; });

  return h("div", { class: "card eviction-settings" }, h("h2", {}, "Simulation"),
    h("div", { class: "form-grid two" }, field("Trace", ui.trace), field("Policy", ui.policy)),
    h("h2", { class: "sub" }, "Budget"),
    h("div", { class: "form-grid" }, field("Cache size C", ui.cache), field("Sinks S", ui.sinks), field("Window W", ui.window), field("Access τ", ui.tau)),
    h("h2", { class: "sub" }, "Trace"), ui.synthetic, ui.model,
    h("div", { class: "row run-row" }, ui.runBtn, ui.allBtn, ui.cancelBtn),
    ui.progress, ui.progressText, userPolicies.mount(refreshPolicies));
}

function traceChanged() {
  const model = ui.trace.value === "model";
  ui.synthetic.classList.toggle("hidden", model);
  ui.model.classList.toggle("hidden", !model);
  ui.modelOverlay();
  if (!budgetEdited) {  // each trace gets a budget that makes the policies evict
    const b = model && modelBudget ? modelBudget : { cache_size: defaults.cache_size ?? 256, sinks: defaults.sinks ?? 4, window: defaults.window ?? 128 };
    ui.cache.value = String(b.cache_size); ui.sinks.value = String(b.sinks); ui.window.value = String(b.window);
  }
  markStale("the trace changed");
}

/** Old results stay on screen but say they are old (a failed run, another model, other settings). */
function markStale(why) {
  if (!last) return;
  ui.stale.textContent = `⚠ These results are from an earlier run (${why}); run again to update them.`;
  ui.stale.classList.remove("hidden");
  ui.panel.querySelector(".eviction-results").classList.add("stale");
}

function clearStale() {
  ui.stale.classList.add("hidden");
  ui.panel.querySelector(".eviction-results").classList.remove("stale");
}

function params(policy) {
  const p = {
    trace: ui.trace.value, policy, cache_size: Number(ui.cache.value), sinks: Number(ui.sinks.value),
    window: Number(ui.window.value), access_threshold: Number(ui.tau.value),
  };
  if (p.trace === "synthetic") {
    Object.assign(p, {
      length: Number(ui.length.value), sink_count: Number(ui.sinkCount.value), sink_mass: Number(ui.sinkMass.value),
      locality: Number(ui.locality.value), heavy_hitters: Number(ui.heavyCount.value), heavy_mass: Number(ui.heavyMass.value),
      heavy_life: Number(ui.heavyLife.value), background: Number(ui.background.value), seed: Number(ui.seed.value),
    });
  } else {
    const head = ui.head.value.trim();
    const one = ui.aggregate.value === "layer" && head !== "";  // a head given means that head, not the layer mean
    Object.assign(p, { text: ui.text.value, layer: Number(ui.layer.value), head: head === "" ? null : Number(head),
      aggregate: one ? "head" : ui.aggregate.value });
  }
  return p;
}

// Checks the page can make before any call, in the user's words.
function precheck() {
  if (ui.trace.value !== "model") return null;
  const head = ui.head.value.trim();
  if (head !== "" && ui.aggregate.value === "layer" && !/^\d+$/.test(head)) {
    const heads = app.model && app.model.spec ? app.model.spec.heads : null;
    return fieldError("head", FIELDS, `type a head number${heads ? ` from 0 to ${heads - 1}` : ""}, or leave it blank for the mean over heads (got “${head}”).`);
  }
  return null;
}

function showError(res) {
  const msg = userMessage(res.error, FIELDS);
  ui.progressText.textContent = msg;
  ui.progressText.classList.add("err");
  status.error(msg);
  markField(ui.panel, res);
}

// ---------- run ----------
async function run(policy) {
  if (ui.trace.value === "model" && !app.model) return;
  const bad = precheck();
  if (bad) { showError(bad); markStale("the last run failed"); return; }
  const p = params(policy);
  ui.progressText.classList.remove("err");
  setBusy(true);
  const act = status.begin(policy === "all" ? "Comparing all policies…" : `Simulating ${policy}…`);
  const res = await runJob("simulate", p, (st) => {
    ui.progress.firstChild.style.width = `${Math.round((st.fraction || 0) * 100)}%`;
    const text = `${st.stage || ""} ${fmt.pct(st.fraction, 0)} · ${fmt.secs(st.elapsed)}`;
    ui.progressText.textContent = text;
    act.update("Simulating: " + text);
  }, (id) => { jobId = id; });
  jobId = null;
  act.end();
  setBusy(false);
  markField(ui.panel, res);
  if (!res.ok) {
    if (res.error.code === "cancelled") { ui.progressText.textContent = "Cancelled."; ui.progressText.classList.remove("err"); }
    else showError(res);
    markStale(res.error.code === "cancelled" ? "the last run was cancelled" : "the last run failed");
    return;
  }
  ui.progressText.classList.remove("err");
  clearStale();
  last = { ...res.result, params: p };
  const total = last.results.reduce((s, r) => s + (r.seconds || 0), 0);
  ui.progressText.textContent = `${last.results.length} ${last.results.length === 1 ? "policy" : "policies"} · ${fmt.secs(total)} simulated`;
  for (const f of last.failed || []) {  // a user policy whose rule failed; the others' results stand
    ui.progressText.textContent += ` · ${f.label} failed: ${f.error.message}`;
    ui.progressText.classList.add("err");
  }
  renderFitNote();
  selectedPolicy = last.results.some((r) => r.policy === selectedPolicy) ? selectedPolicy : last.results[last.results.length - 1].policy;
  renderResults();
  await renderModelHeatmap();
}

// A trace no longer than C never fills the cache: every policy keeps everything. Say so.
function renderFitNote() {
  const n = (last.trace && (last.trace.length ?? last.trace.n)) || 0;
  const c = last.params.cache_size;
  const fits = n > 0 && n <= c;
  ui.fitNote.classList.toggle("hidden", !fits);
  ui.fitNote.textContent = fits ? `Nothing can be evicted: the ${last.params.trace === "model" ? "text" : "trace"} is ${fmt.int(n)} tokens and `
    + `the cache holds C = ${fmt.int(c)}, so every policy keeps every key. Use a ${last.params.trace === "model" ? "longer text" : "longer trace"} `
    + `or a cache size below ${fmt.int(n)}.` : "";
}

function setBusy(busy) {
  ui.runBtn.disabled = ui.allBtn.disabled = busy;
  ui.cancelBtn.classList.toggle("hidden", !busy);
  ui.progress.classList.toggle("hidden", !busy);
  if (busy) ui.progress.firstChild.style.width = "0%";
}

// ---------- results ----------
function resultsCard() {
  ui.tableHead = h("thead", {}, h("tr", {}, h("th", {}, "policy"), COLUMNS.map(([, label]) => h("th", {}, label))));
  ui.tableBody = h("tbody", {}, h("tr", {}, h("td", { colspan: COLUMNS.length + 1, class: "hint" }, "Run a simulation to see results.")));
  ui.barCanvas = h("canvas");
  ui.recallCanvas = h("canvas");
  ui.traceInfo = h("div", { class: "hint mono" });
  ui.fitNote = h("div", { class: "hint warn fit-note hidden" });
  ui.stale = h("div", { class: "hint warn stale-note hidden" });
  const heatBody = h("div");
  ui.heatCard = h("div", { class: "card eviction-heatmap hidden" },
    h("h2", {}, "Model trace: evicted keys dimmed", h("span", { class: "spacer" }), h("span", { class: "hint heat-policy" }),
      h("button", { class: "btn small", onclick: () => savePNG("eviction-heatmap", ui.heatmap.canvas) }, "PNG")),
    keptControls(), heatBody);
  ui.heatmap = new Heatmap(heatBody, { maxHeight: 560 });

  const card = h("div", { class: "eviction-results" },
    h("div", { class: "card" }, h("h2", {}, "Results", h("span", { class: "spacer" }),
      h("button", { class: "btn small", onclick: exportCSV }, "CSV"), h("button", { class: "btn small", onclick: exportJSON }, "JSON")),
    ui.stale, ui.traceInfo, ui.fitNote, h("div", { class: "table-wrap" }, h("table", { class: "data results-table" }, ui.tableHead, ui.tableBody)),
    h("div", { class: "hint" }, "★ best in column · click a row to choose the policy shown in the heatmap")),
    h("div", { class: "chart-pair" },
      h("div", { class: "card" }, h("h2", {}, "Hit rate (solid) and recall (faded)", h("span", { class: "spacer" }),
        h("button", { class: "btn small", onclick: () => savePNG("eviction-bars", ui.barCanvas) }, "PNG")), h("div", { class: "chart-box" }, ui.barCanvas)),
      h("div", { class: "card" }, h("h2", {}, "Attention recall over time", h("span", { class: "spacer" }),
        h("button", { class: "btn small", onclick: () => savePNG("eviction-recall", ui.recallCanvas) }, "PNG")), h("div", { class: "chart-box" }, ui.recallCanvas))),
    ui.heatCard);
  ui.bars = barChart(ui.barCanvas, { yTitle: "share", scales: { y: { max: 1 } }, legend: false });
  ui.recall = lineChart(ui.recallCanvas, { xTitle: "step", yTitle: "recall", scales: { x: { type: "linear" }, y: { max: 1 } } });
  return card;
}

function numeric(v) {
  if (v == null) return null;
  if (Array.isArray(v)) return v[1] ? v[0] / v[1] : null;
  if (typeof v === "object") { const x = v.kept ?? v.x ?? v.retained, y = v.total ?? v.y; return y ? x / y : null; }
  return typeof v === "number" ? v : null;
}


function renderResults() {
  const rows = last.results;
  // The best of a column as it is shown: every row that reads the same ("0.000 s") gets the star,
  // not the one whose unshown digits happened to be smaller.
  const best = {};
  for (const [key, , f, dir] of COLUMNS) {
    if (!dir || rows.length < 2) continue;
    const vals = rows.map((r) => numeric(r[key])).filter((v) => v != null);
    if (vals.length) best[key] = f(dir === "max" ? Math.max(...vals) : Math.min(...vals));
  }
  fill(ui.tableBody, rows.map((r) => {
    const tr = h("tr", { class: r.policy === selectedPolicy ? "selected" : "", onclick: () => selectPolicy(r.policy) },
      h("td", { title: r.policy }, h("span", { class: "swatch", style: { background: policyColour(r.policy) } }), policyLabel(r.policy)),
      COLUMNS.map(([key, , f]) => {
        const v = numeric(r[key]);
        return h("td", { class: best[key] != null && v != null && f(v) === best[key] ? "best" : "", dataset: { key } }, f(r[key]));
      }));
    tr.dataset.policy = r.policy;
    return tr;
  }));
  const tr = last.trace || {};
  const n = tr.length ?? tr.n;
  ui.traceInfo.textContent = [tr.kind || last.params.trace, n != null ? `${fmt.int(n)} tokens` : null,
    `C=${last.params.cache_size} S=${last.params.sinks} W=${last.params.window} τ=${last.params.access_threshold}`,
    tr.sink_count != null ? `${tr.sink_count} sink tokens (mean received ≥ ${tr.sink_threshold ?? 0.1})` : null,
    tr.heavy_k != null ? `${tr.heavy_k} heavy hitters` : null, compactNote(tr.approximation)].filter(Boolean).join(" · ");

  // One colour per policy (palette.js), the same as in Evaluate and Sweeps: hit rate solid, recall faded.
  setData(ui.bars, rows.map((r) => policyLabel(r.policy)), [
    { label: "hit rate", data: rows.map((r) => r.hit_rate), colors: rows.map((r) => policyColour(r.policy)) },
    { label: "attention recall", data: rows.map((r) => r.attention_recall), colors: rows.map((r) => fade(policyColour(r.policy), 0.45)) },
  ], "bar");
  setData(ui.recall, [], rows.map((r) => ({
    label: policyLabel(r.policy), data: timelinePoints(r.timeline), color: policyColour(r.policy), borderDash: policyDash(r.policy),
    policy: r.policy,
  })));
}

// A model trace past 2,048 tokens is compact (backend/eviction/traces.py): say what it folded, and warn when τ
// is low enough to miss accesses to folded keys.
function compactNote(a) {
  if (!a) return null;
  const note = `compact trace: ${fmt.int(a.keys_per_row)} largest weights a row; folded mass mean ` +
    `${a.folded_mass_mean.toFixed(4)}, max ${a.folded_mass_max.toFixed(4)}; largest folded weight ${a.largest_folded_weight.toPrecision(3)}`;
  return a.warning ? `${note} · ⚠ ${a.warning}` : note;
}

// The timeline may come as {step: [], recall: []} or as [{step, recall}].
function timelinePoints(tl) {
  if (!tl) return [];
  if (Array.isArray(tl)) return tl.map((p) => ({ x: p.step, y: p.recall }));
  return (tl.step || []).map((s, i) => ({ x: s, y: tl.recall[i] }));
}

function selectPolicy(name) {
  selectedPolicy = name;
  if (ui.keptBy.value) { ui.keptBy.value = ""; drawTrace(); }  // a row is a simulated policy: back to its trace
  ui.tableBody.querySelectorAll("tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.policy === name));
  applyMask();
}

async function renderModelHeatmap() {
  const isModel = last.params.trace === "model";
  ui.heatCard.classList.toggle("hidden", !isModel);
  if (!isModel) return;
  const tr = last.trace || {};
  if (tr.matrix && tr.tokens) modelMatrix = { tokens: tr.tokens, matrix: tr.matrix };
  else {  // the same view through the attention call: same model, text, layer and head
    const all = last.params.aggregate === "all_layers";
    const res = await call("attention", { text: last.params.text, layer: last.params.layer, head: all ? null : last.params.head,
      aggregate: all ? "all_layers" : "layer" });
    if (!res.ok) return;
    modelMatrix = { tokens: res.tokens, matrix: res.matrix, overview: res.overview };  // matrix: null past 1,024 tokens
  }
  Object.assign(modelMatrix, { sinks: tr.sink_positions || [], heavy: tr.heavy_hitter_positions || [] });
  ui.keptBy.value = "";  // a new run shows its own policy first
  if (last.params.aggregate === "layer" || last.params.aggregate === "head") {  // the prefill view starts on the trace's layer/head
    ui.keptLayer.value = String(last.params.layer);
    ui.keptHead.value = String(last.params.head ?? 0);
  }
  drawTrace();
}

function drawTrace() {
  ui.keptHint.textContent = "";
  const o = modelMatrix.overview;
  if (!modelMatrix.matrix && o) {  // a long trace: the Quick Attention overview (max per cell); no per-key dimming on cells
    ui.heatmap.setGrid({ tokens: modelMatrix.tokens, rowEdges: o.row_edges, colEdges: o.col_edges, cells: o.max,
      sinks: modelMatrix.sinks, heavy: modelMatrix.heavy, pooling: "max" });
    ui.keptHint.textContent = `${fmt.int(modelMatrix.tokens.length)} tokens: the overview (largest weight per cell); ` +
      "a cell dims once every key in it was evicted";
    applyMask();
    return;
  }
  ui.heatmap.setData({ tokens: modelMatrix.tokens, rows: modelMatrix.matrix, sinks: modelMatrix.sinks, heavy: modelMatrix.heavy });
  applyMask();
}

function applyMask() {
  if (!last || last.params.trace !== "model" || !modelMatrix || ui.keptBy.value) return;
  const r = last.results.find((x) => x.policy === selectedPolicy);
  ui.panel.querySelector(".heat-policy").textContent = r ? `${policyLabel(r.policy)}: ${fmt.int(r.evictions)} evictions` : "";
  ui.heatmap.setMask(r && r.evicted_at ? r.evicted_at : null);
}

// ---------- keys kept at prefill (backend/compress on the trace's text) ----------
function keptControls() {
  ui.keptBy = h("select", { dataset: { field: "methods" }, onchange: showKept,
    title: "Dim the keys a simulated policy evicted, or those a prefill compression method does not keep" });
  ui.keptRatio = num("ratio", 0.5, { min: 0, max: 0.99, step: 0.05, title: "Fraction of the text's keys removed (kvpress's compression_ratio)",
    oninput: () => { ratioEdited = true; } });
  ui.keptNote = h("div", { class: "hint kept-defaults-note" });
  ui.keptLayer = num("layer", -1, { title: "-1 = last" });
  ui.keptHead = num("head", 0, { min: 0, title: "Query head; the kept set is its KV head's (grouped-query attention)" });
  for (const input of [ui.keptRatio, ui.keptLayer, ui.keptHead]) { input.addEventListener("change", showKept); onEnter(input, showKept); }
  ui.keptCancel = h("button", { class: "btn small danger hidden", onclick: () => keptJob && call("cancel_job", { job_id: keptJob }) }, "Cancel");
  ui.keptHint = h("div", { class: "hint kept-hint" });
  ui.keptBox = h("div", { class: "kept-controls" },
    h("div", { class: "form-grid" }, field("Keys kept by", ui.keptBy), field("Ratio removed", ui.keptRatio),
      field("Layer (−1 = last)", ui.keptLayer), field("Query head", ui.keptHead)), ui.keptNote, ui.keptCancel, ui.keptHint);
  return ui.keptBox;
}

// One job compresses the text with every method at once, so switching the method redraws at once
// (and a switch while it runs waits for the same job); another ratio, layer or head (or text, or
// model) cancels a job still running for the old settings and runs a new prefill.
async function showKept() {
  if (!last || last.params.trace !== "model" || !modelMatrix) return;
  const method = ui.keptBy.value;
  if (!method) { markField(ui.keptBox, null); drawTrace(); return; }
  const p = { text: last.params.text, methods: "all", ratio: Number(ui.keptRatio.value), layer: Number(ui.keptLayer.value),
    head: Number(ui.keptHead.value) };
  const key = JSON.stringify(p);
  const seq = ++keptSeq;
  if (!kept || kept.key !== key) {
    if (!keptPending || keptPending.key !== key) {
      if (keptJob) call("cancel_job", { job_id: keptJob });
      keptPending = { key, answer: fetchKept(p) };
    }
    const pending = keptPending;
    const res = await pending.answer;
    if (keptPending === pending) keptPending = null;
    if (seq !== keptSeq) return;  // the user chose again meanwhile
    markField(ui.keptBox, res);
    if (!res.ok) {
      ui.keptHint.textContent = res.error.code === "cancelled" ? "Cancelled." : userMessage(res.error, KEPT_FIELDS);
      ui.keptHint.classList.toggle("err", res.error.code !== "cancelled");
      return;
    }
    kept = { key, ...res };
  }
  drawKept(method);
}

/** The prefill_kept job's result and, for the same text, layer and head, the attention matrix it dims. */
async function fetchKept(p) {
  ui.keptHint.classList.remove("err");
  ui.keptCancel.classList.remove("hidden");
  let id = null;
  const res = await runJob("prefill_kept", p, (st) => {
    if (keptJob === id) ui.keptHint.textContent = `${st.stage || ""} ${fmt.pct(st.fraction, 0)} · ${fmt.secs(st.elapsed)}`;
  }, (started) => { id = keptJob = started; });
  if (keptJob === id) { keptJob = null; ui.keptCancel.classList.add("hidden"); }
  if (!res.ok) return res;
  if (keptJob === null) ui.keptHint.textContent = "Reading this layer's and head's attention…";
  const attention = await call("attention", { text: p.text, layer: p.layer, head: p.head, aggregate: "layer" });
  return attention.ok ? { ok: true, result: res.result, attention } : attention;
}

function drawKept(method) {
  const name = policyLabel(method);
  const r = kept.result.methods.find((x) => x.method === method);
  const s = kept.result.settings, n = kept.result.n;
  const keep = new Set(r.kept);
  // This layer/head's own sinks (the attention call finds them); the trace's markers belong to its layer/head.
  const a = kept.attention, sinks = a.sinks.map((x) => x.position);
  if (a.matrix) ui.heatmap.setData({ tokens: a.tokens, rows: a.matrix, sinks });
  else ui.heatmap.setGrid({ tokens: a.tokens, rowEdges: a.overview.row_edges, colEdges: a.overview.col_edges,
    cells: a.overview.max, sinks, pooling: "max" });  // past 1,024 tokens: the overview, a cell dims when none of its keys is kept
  // Step 0 for every key not kept: the set is fixed once the prompt is prefilled, so every query row dims it.
  ui.heatmap.setMask(Array.from({ length: n }, (_, k) => (keep.has(k) ? -1 : 0)), `key not kept by ${name} at prefill`);
  ui.panel.querySelector(".heat-policy").textContent = `${name}: ${fmt.int(keep.size)} of ${fmt.int(n)} keys kept`;
  ui.keptHint.classList.remove("err");
  ui.keptHint.textContent = `Compression at prefill: ${name} keeps a fixed set of keys once the text is prefilled, so every query `
    + `row dims the same columns. Layer ${s.layer}, query head ${s.head} (its KV head ${s.kv_head}), ratio ${s.ratio}: `
    + `${fmt.int(keep.size)} of ${fmt.int(n)} keys kept here; ${fmt.fixed(r.memory_tokens, 1)} per (layer, KV head) on average.`
    + (r.note ? ` ${r.note}` : "");
}

// One number per cell: {kept, total} ratios become two columns (no JSON inside a CSV cell).
const CSV_COLUMNS = ["policy", "label", "tokens_processed", "accesses", "hits", "misses", "evictions", "hit_rate", "attention_recall",
  "retained_sinks_kept", "retained_sinks_total", "retained_heavy_hitters_kept", "retained_heavy_hitters_total", "kept", "seconds"];

function split(v) {
  if (Array.isArray(v)) return [v[0], v[1]];
  if (v && typeof v === "object") return [v.kept ?? v.x ?? v.retained, v.total ?? v.y];
  return [v, ""];
}

function flatRows() {
  return last.results.map((r) => {
    const row = { policy: r.policy, label: policyLabel(r.policy) };
    for (const [key] of COLUMNS) row[key] = r[key];
    for (const key of ["retained_sinks", "retained_heavy_hitters"]) [row[key + "_kept"], row[key + "_total"]] = split(r[key]);
    row.kept = Array.isArray(r.kept) ? r.kept.length : r.kept;
    return row;
  });
}

function exportCSV() {
  if (!last) return;
  saveCSV("eviction-results", flatRows(), CSV_COLUMNS);
}

function exportJSON() {
  if (!last) return;
  saveJSON("eviction-results", { settings: last.params, trace: last.trace, results: last.results,
    labels: labelsOf(last.results.map((r) => r.policy)) });
}

/** For tests. */
export function result() { return last; }
export function isStale() { return !ui.stale.classList.contains("hidden"); }
export function heatmap() { return ui.heatmap; }
export function keptResult() { return kept && kept.result; }
