// Retrieval tab: does the model still find a fact after eviction? A grid of context lengths ×
// needle depths per policy on the model's real KV cache (backend/retrieval: pass key, RULER's
// needle, several needles, or the user's own), in the streaming protocol (the context flows
// through each policy's cache, cut back to C every k tokens) or kvpress's prefill protocol
// (prefilled once with full attention, compressed once, the question appended uncompressed).
// Its own tab rather than a fourth section of Eviction Sim: the grid needs the width for one
// heatmap per policy side by side, and the "why it missed" view beside it; the backend
// computes every number, we only draw them. Fields carry data-field = the Api's names.
import { call, runJob } from "./bridge.js";
import { h, fill, field, onEnter, markField, showRunning } from "./dom.js";
import * as fmt from "./format.js";
import * as status from "./status.js";
import { app, on } from "./state.js";
import { requireModel, onShown } from "./tabs.js";
import { savePNG, saveJSON, saveCSV } from "./export.js";
import { policyColour, policyLabel, labelsOf } from "./palette.js";
import { userMessage, fieldError } from "./fielderror.js";
import { RetrievalGrids } from "./retrieval-grid.js";
import { WhyMissed } from "./retrieval-why.js";
import { kvFormatSelect } from "./kv-formats.js";

const TASKS = { pass_key: "Pass key (Landmark Attention)", needle: "Needle (RULER, one magic number)",
  multi_key: "Several needles, one asked for", custom: "Your own text, needle and question" };
const FIELDS = {
  task: { label: "Task" }, protocol: { label: "Protocol" }, policy: { label: "Policies" },
  lengths: { label: "Lengths", hint: "whole numbers of tokens separated by commas, e.g. 128, 200" },  // the backend's
  depths: { label: "Depths", hint: "shares from 0 to 1 separated by commas, e.g. 0, 0.5, 1" },        // messages say it
  cache_size: { label: "Cache size C", type: "a whole number of tokens below the shortest length" },
  ratio: { label: "Ratio removed", type: "a share from 0 to 1 (e.g. 0.75 keeps a quarter)" },
  sinks: { label: "Sinks S", type: "a whole number ≥ 0" }, window: { label: "Window W", type: "a whole number ≥ 1" },
  chunk: { label: "Chunk k", type: "a whole number ≥ 1 (1 = evict after every token)" },
  seed: { label: "Seed", type: "a whole number ≥ 0" }, chat_template: { label: "Chat template" },
  kv_format: { label: "KV format" }, intact_sinks: { label: "Intact sinks", type: "a whole number ≥ 0 (needs a KV format)" },
  haystack: { label: "Haystack" }, needle: { label: "Needle sentence" }, question: { label: "Question" }, answer: { label: "Expected answer" },
};

const ui = {};
let info = null;         // retrieval_info
let last = null;         // last result (finished, or the cells kept on Cancel: partial) + the params that made it
let shown = null;        // what the grid shows: `last`, or the running grid's cells so far
let jobId = null;
let lastJobId = null;
let presets = {};        // retrieval_info's defaults.presets: name → {task, lengths, depths, label}
const edited = new Set();  // fields the user typed in keep their value when defaults arrive

const label = policyLabel;  // one label per policy on every tab (palette.js, backend/labels.py)
const nameOf = (p) => (typeof p === "string" ? p : p.name);

export function init(panel) {
  ui.panel = panel;
  panel.classList.add("retrieval-layout");
  ui.demoNote = h("div", { class: "retrieval-demo-note hidden" });
  panel.append(ui.demoNote, h("div", { class: "retrieval-grid-layout" }, settingsCard(), resultsCard()));
  requireModel(panel, "Retrieval asks the loaded model about its context with each policy's cache applied.");
  on("model", () => { if (app.model) start(); });
  on("policies", () => start());  // user rule files (their labels are in palette.js's table by then)
  onShown("retrieval", () => ui.why.resize());
  on("defaults", (d) => {  // the shared budget (defaults.js): say that it is Evaluate's, and what differs
    ui.sharedNote.textContent = `C = ${d.budget.cache_size}, S = ${d.budget.sinks}, W = ${d.budget.window} as Evaluate and `
      + `the simulation. ${d.notes.retrieval}`;
  });
}

/** Ask the backend what it offers for the loaded model (tasks, policies, defaults, the demo note). */
export async function start() {
  const res = await call("retrieval_info", {});
  if (!res.ok) { ui.progressText.textContent = res.error.message; return; }
  info = res;
  if (Array.isArray(res.tasks) && res.tasks.length) {
    const current = ui.task.value;
    const about = res.task_descriptions || {};
    fill(ui.task, res.tasks.map((t) => h("option", { value: nameOf(t), title: about[nameOf(t)] || "" }, TASKS[nameOf(t)] || nameOf(t))));
    if (current && [...ui.task.options].some((o) => o.value === current)) ui.task.value = current;
  }
  applyDefaults(res.defaults || {});
  ui.demoNote.textContent = res.demo_note || "";
  ui.demoNote.classList.toggle("hidden", !res.demo_note);
  taskChanged();
}

// The streaming protocol runs every Evaluate policy (user rule files included); the prefill protocol
// the prefill-time methods (backend/compress). A policy ticked or not keeps its tick across the switch.
const ticked = new Map();

function fillPolicies() {
  for (const b of ui.policies.querySelectorAll("input")) ticked.set(b.value, b.checked);
  const list = (info && (ui.protocol.value === "prefill" ? info.prefill_policies : info.policies)) || [];
  scheduleEstimate();
  fill(ui.policies, list.length ? list.map((p) => {
    const name = nameOf(p);
    return h("label", { class: "check", title: p.description || "" },
      h("input", { type: "checkbox", value: name, checked: ticked.has(name) ? ticked.get(name) : true, onchange: scheduleEstimate }),
      h("span", { class: "swatch", style: { background: policyColour(name) } }), label(name));
  }) : h("span", { class: "hint" }, `No policies for the ${ui.protocol.value} protocol in this build.`));
}

function applyDefaults(d) {
  const set = (input, key, show = (v) => String(v)) => {
    if (d[key] != null && !edited.has(input.dataset.field)) input.value = show(d[key]);
  };
  const list = (v) => (Array.isArray(v) ? v.join(", ") : String(v));
  set(ui.task, "task"); set(ui.protocol, "protocol"); set(ui.lengths, "lengths", list); set(ui.depths, "depths", list);
  set(ui.cache, "cache_size"); set(ui.ratio, "ratio"); set(ui.sinks, "sinks"); set(ui.window, "window");
  set(ui.chunk, "chunk"); set(ui.seed, "seed");
  if (d.chat_template != null && !edited.has("chat_template")) ui.chat.checked = !!d.chat_template;
  presets = d.presets || {};
  fill(ui.preset, Object.entries(presets).map(([k, p]) => h("option", { value: k }, k === "default"
    ? `sized for this device (${p.lengths.map(fmt.int).join(", ")} × ${p.depths.length} depths)` : p.label)));
  ui.preset.value = "default";
  ui.presetField.classList.toggle("hidden", Object.keys(presets).length < 2);
  protocolChanged();
}

// Presets (backend/defaults.py): the grid sized for this device by default; the model's whole context and a
// RULER-style needle at 4k are a choice, not the default (on a CPU they run for many minutes).
function presetChosen() {
  const p = presets[ui.preset.value];
  if (!p) return;
  ui.task.value = p.task; ui.lengths.value = p.lengths.join(", "); ui.depths.value = p.depths.join(", ");
  for (const name of ["task", "lengths", "depths"]) edited.add(name);
  taskChanged();
}

// ---------- settings ----------
function input(name, value, attrs = {}) {
  const node = h("input", { value: String(value), dataset: { field: name }, ...attrs });
  node.addEventListener("input", () => { edited.add(name); scheduleEstimate(); });
  onEnter(node, run);
  return node;
}

function settingsCard() {
  ui.task = h("select", { dataset: { field: "task" }, onchange: () => { edited.add("task"); taskChanged(); } },
    Object.entries(TASKS).map(([v, t]) => h("option", { value: v }, t)));
  ui.haystack = h("textarea", { rows: 5, dataset: { field: "haystack" }, placeholder: "Paste the text the needle is hidden in, or open a file" });
  ui.file = h("input", { type: "file", accept: ".txt,.md,text/plain", onchange: readFile });
  ui.needle = input("needle", "", { type: "text", placeholder: "The secret ingredient is cardamom." });
  ui.question = input("question", "", { type: "text", placeholder: "What is the secret ingredient?" });
  ui.answer = input("answer", "", { type: "text", placeholder: "cardamom" });
  ui.custom = h("div", { class: "retrieval-custom hidden" }, field("Haystack", ui.haystack),
    h("div", { class: "row" }, ui.file, h("span", { class: "hint" }, "a text file is read into the box above")),
    field("Needle sentence (inserted at each depth)", ui.needle), field("Question", ui.question),
    field("Expected answer (must occur in the needle)", ui.answer));
  ui.protocol = h("select", { dataset: { field: "protocol" }, onchange: () => { edited.add("protocol"); protocolChanged(); },
    title: "streaming: the context flows through each policy's cache (evicting every k tokens). prefill (kvpress): "
      + "the context is prefilled with full attention and compressed once; the question is never compressed." },
  h("option", { value: "streaming" }, "streaming"), h("option", { value: "prefill" }, "prefill (kvpress)"));
  ui.budget = h("select", { dataset: { field: "budget" }, onchange: protocolChanged },
    h("option", { value: "cache_size" }, "cache size C"), h("option", { value: "ratio" }, "ratio removed"));
  ui.cache = input("cache_size", 32, { type: "number", min: 1, title: "C: KV entries kept per layer and KV head" });
  ui.ratio = input("ratio", 0.5, { type: "number", min: 0, max: 1, step: 0.05, title: "The fraction of the context's KV removed (kvpress's compression ratio)" });
  ui.chunk = input("chunk", 1, { type: "number", min: 1, title: "k: prefill k tokens, then cut the cache back to C (1 = after every token)" });
  ui.sinks = input("sinks", 4, { type: "number", min: 0, title: "S: sink tokens StreamingLLM keeps" });
  ui.window = input("window", 16, { type: "number", min: 1, title: "W: recent window H2O and TOVA protect" });
  ui.seed = input("seed", 0, { type: "number", min: 0, title: "Seeds the filler, the keys and the values" });
  ui.preset = h("select", { dataset: { field: "preset" }, onchange: presetChosen,
    title: "Grids to start from: lengths × depths (and the task for the RULER needle)" });
  ui.presetField = field("Grid", ui.preset);
  ui.sharedNote = h("div", { class: "hint retrieval-defaults-note" });
  ui.lengths = input("lengths", "128, 200", { type: "text", title: "Context lengths in tokens, separated by commas" });
  ui.depths = input("depths", "0, 0.25, 0.5, 0.75, 1", { type: "text", title: "Where the needle sits: 0 = start, 1 = end of the context" });
  ui.chat = h("input", { type: "checkbox", dataset: { field: "chat_template" }, onchange: () => edited.add("chat_template") });
  ui.policies = h("div", { class: "retrieval-policies", dataset: { field: "policy" } });
  ui.kvFormat = kvFormatSelect("kv_format", { title: "Store every policy's K and V in fewer bits (backend/quantize); "
    + "Full Cache's too" });
  ui.intact = input("intact_sinks", 0, { type: "number", min: 0, title: "IntactKV: the first N positions stay in full "
    + "precision (needs a KV format)" });
  ui.runBtn = h("button", { class: "btn primary", onclick: run }, "Run grid");
  ui.cancelBtn = h("button", { class: "btn danger hidden", onclick: cancel }, "Cancel");
  ui.progress = h("div", { class: "progress hidden" }, h("div"));
  ui.progressText = h("div", { class: "hint mono retrieval-progress" });
  ui.estimate = h("div", { class: "hint retrieval-estimate" });
  ui.cacheField = field("Cache size C", ui.cache);
  ui.ratioField = field("Ratio removed", ui.ratio);
  ui.chunkField = field("Chunk k", ui.chunk);
  ui.budgetField = field("Budget as", ui.budget);
  return h("div", { class: "card retrieval-settings" }, h("h2", {}, "Retrieval grid"),
    field("Task", ui.task), ui.custom,
    h("div", { class: "form-grid" }, field("Protocol", ui.protocol), ui.chunkField, ui.budgetField,
      ui.cacheField, ui.ratioField, field("Sinks S", ui.sinks), field("Window W", ui.window), field("Seed", ui.seed),
      field("KV format", ui.kvFormat), field("Intact sinks", ui.intact)),
    ui.sharedNote, ui.presetField, field("Lengths (tokens)", ui.lengths), field("Depths (0 = start … 1 = end)", ui.depths),
    h("label", { class: "check" }, ui.chat, "Chat template (the model's own; off = plain text)"),
    field("Policies", ui.policies), ui.estimate,
    h("div", { class: "row run-row" }, ui.runBtn, ui.cancelBtn), ui.progress, ui.progressText);
}

function taskChanged() { ui.custom.classList.toggle("hidden", ui.task.value !== "custom"); scheduleEstimate(); }

function protocolChanged() {
  const prefill = ui.protocol.value === "prefill";
  if (!prefill) ui.budget.value = "cache_size";
  // streaming keeps C entries (a ratio has no meaning while the context grows) and evicts every k tokens
  ui.budgetField.classList.toggle("hidden", !prefill);
  ui.chunkField.classList.toggle("hidden", prefill);
  ui.cacheField.classList.toggle("hidden", ui.budget.value !== "cache_size");
  ui.ratioField.classList.toggle("hidden", ui.budget.value !== "ratio");
  fillPolicies();
}

function readFile() {
  const file = ui.file.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => { ui.haystack.value = String(reader.result); edited.add("haystack"); };
  reader.readAsText(file);
}

// Lists typed with commas; a token that is not a number is reported here, in the user's words.
function numbers(name, text) {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  const bad = parts.find((s) => !isFinite(Number(s)));
  if (!parts.length || bad !== undefined) {
    return fieldError(name, FIELDS, bad === undefined ? "type at least one value." : `“${bad}” is not a number; type ${FIELDS[name].hint}.`);
  }
  return parts.map(Number);
}

function params() {
  const lengths = numbers("lengths", ui.lengths.value);
  if (lengths.error) return lengths;
  const depths = numbers("depths", ui.depths.value);
  if (depths.error) return depths;
  const policy = [...ui.policies.querySelectorAll("input:checked")].map((b) => b.value);
  if (!policy.length) return fieldError("policy", FIELDS, "tick at least one policy.");
  const p = { task: ui.task.value, protocol: ui.protocol.value, policy, lengths, depths, sinks: Number(ui.sinks.value),
    window: Number(ui.window.value), seed: Number(ui.seed.value), chat_template: ui.chat.checked };
  if (p.protocol === "streaming") p.chunk = Number(ui.chunk.value);
  if (p.protocol === "prefill" && ui.budget.value === "ratio") p.ratio = Number(ui.ratio.value);
  else p.cache_size = Number(ui.cache.value);
  if (ui.kvFormat.value) Object.assign(p, { kv_format: ui.kvFormat.value, intact_sinks: Number(ui.intact.value) });
  if (p.task === "custom") Object.assign(p, { haystack: ui.haystack.value, needle: ui.needle.value, question: ui.question.value, answer: ui.answer.value });
  return p;
}

// ---------- estimate (before Run: the Api times a cell's forwards on this model and device, × the cells) ----------
let estimateTimer = null;
let estimateSeq = 0;  // only the latest request may write the line

function scheduleEstimate() {
  if (!ui.estimate) return;
  clearTimeout(estimateTimer);
  estimateSeq++;
  if (ui.estimate.textContent) {  // an estimate for other settings goes at once
    ui.estimate.classList.add("stale");
    ui.estimate.textContent = "Settings changed: measuring a new estimate…";
  }
  estimateTimer = setTimeout(estimate, 600);
}

async function estimate() {
  if (!app.model || jobId !== null) return;
  const p = params();
  const seq = ++estimateSeq;
  const res = p.error ? null : await call("retrieval_estimate", p);
  if (seq !== estimateSeq) return;
  ui.estimate.classList.remove("stale");
  if (!res || !res.ok) { ui.estimate.textContent = ""; return; }
  const per = Object.entries(res.seconds_per_cell).map(([L, s]) => `${fmt.int(Number(L))} tokens ${fmt.secs(s)}`).join(", ");
  ui.estimate.textContent = `Estimate: ~${fmt.secs(res.seconds)} for ${res.cells} cells (a cell, measured here: ${per}).`;
  ui.estimate.classList.toggle("warn", res.seconds > 120);
}

// ---------- run ----------
function showError(res) {
  const err = { ...res.error, field: res.error.field && String(res.error.field).replace(/[[.].*$/, "") };  // "depths[2]" → depths
  const msg = userMessage(err, FIELDS);
  ui.progressText.textContent = msg;
  ui.progressText.classList.add("err");
  status.error(msg);
  markField(ui.panel, { ...res, error: err });
}

async function run() {
  if (!app.model || jobId !== null || ui.runBtn.disabled) return;
  const p = params();
  if (p.error) { showError(p); return; }
  markField(ui.panel, null);
  ui.progressText.classList.remove("err");
  ui.progressText.textContent = "Starting…";
  showRunning(ui, true);
  const act = status.begin("Retrieval grid…");
  let drawnCells = -1;
  const res = await runJob("retrieval", p, (st) => {
    ui.progress.firstChild.style.width = `${Math.round((st.fraction || 0) * 100)}%`;
    const left = st.seconds_left != null ? ` · ${fmt.secs(st.seconds_left)} left` : "";
    const text = `${st.stage || ""} · ${fmt.pct(st.fraction, 0)} · ${fmt.secs(st.elapsed)}${left}`;
    ui.progressText.textContent = text;
    act.update(text);
    if (st.partial && st.partial.cells_done !== drawnCells) {  // a cell finished: draw the grid so far
      drawnCells = st.partial.cells_done;
      shown = { ...st.partial, params: p };
      render();
    }
  }, (id) => { jobId = id; });
  const finished = jobId;
  jobId = null;
  act.end();
  showRunning(ui, false);
  scheduleEstimate();  // settings edited during the run got no estimate
  if (!res.ok) {
    const result = res.error.code === "cancelled" && res.status && res.status.result;
    const kept = result && result.cells.length ? result : null;  // the cells done so far, if any
    if (kept) { last = { ...kept, params: p }; lastJobId = finished; }
    if (last) { shown = last; render(); }
    if (res.error.code === "cancelled") {
      ui.progressText.textContent = kept ? `Cancelled after ${kept.cells_done} of ${kept.cells_total} cells: those cells are kept.`
        : "Cancelled.";
      ui.progressText.classList.remove("err");
    } else showError(res);
    return;
  }
  last = shown = { ...res.result, params: p };
  lastJobId = finished;
  const n = last.lengths.length * last.depths.length;
  ui.progressText.textContent = `${n} cells × ${last.cells.length / n} policies · ${fmt.secs(last.seconds)}`;
  render();
}

function cancel() {
  if (jobId) call("cancel_job", { job_id: jobId });
  ui.progressText.textContent = "Cancelling…";
}

// ---------- results ----------
function resultsCard() {
  ui.mode = h("select", { dataset: { field: "colour" }, onchange: () => ui.grids.setMode(ui.mode.value) },
    h("option", { value: "accuracy" }, "colour: found / missed"), h("option", { value: "logprob" }, "colour: log p(answer)"));
  ui.info = h("div", { class: "hint mono retrieval-info" });
  ui.gridBox = h("div", { class: "retrieval-heatmaps" });
  ui.tableBody = h("tbody", {}, h("tr", {}, h("td", { colspan: 4, class: "hint" }, "Run a grid to see results.")));
  ui.notes = h("div", { class: "retrieval-notes" });
  ui.whyBox = h("div", { class: "retrieval-why" });
  const card = h("div", { class: "retrieval-results" },
    h("div", { class: "card" }, h("h2", {}, "Found, by length and depth", h("span", { class: "spacer" }), ui.mode,
      h("button", { class: "btn small", onclick: () => shown && !running() && savePNG(shown.partial ? "retrieval-grid-partial" : "retrieval-grid", ui.grids.toCanvas()) }, "PNG"),
      h("button", { class: "btn small", onclick: exportCSV }, "CSV"), h("button", { class: "btn small", onclick: exportJSON }, "JSON")),
    ui.info, ui.gridBox, ui.notes),
    h("div", { class: "card" }, h("h2", {}, "Accuracy by policy"),
      h("table", { class: "data retrieval-table" }, h("thead", {}, h("tr", {}, h("th", {}, "policy"), h("th", {}, "found"),
        h("th", {}, "accuracy"), h("th", {}, "mean log p(answer)"))), ui.tableBody)),
    h("div", { class: "card" }, h("h2", {}, "Why it missed"), ui.whyBox));
  ui.grids = new RetrievalGrids(ui.gridBox, { label, onPick: pick });
  ui.why = new WhyMissed(ui.whyBox, { label });
  return card;
}

function pick(policy, length, depth) {
  ui.grids.mark(policy, length, depth);
  ui.why.open(shown, length, depth, policy);
}

function render() {
  const s = shown.settings || {};
  ui.info.textContent = [shown.partial ? `PARTIAL: ${shown.cells_done} of ${shown.cells_total} cells` : null,
    shown.model && shown.model.source, `task ${shown.task}`, `${shown.protocol}`
    + (shown.chunk != null ? ` k=${shown.chunk}` : ""), s.cache_size != null ? `C=${s.cache_size}` : null,
  s.ratio != null ? `ratio ${s.ratio}` : null, s.sinks != null ? `S=${s.sinks}` : null, s.window != null ? `W=${s.window}` : null,
  s.seed != null ? `seed ${s.seed}` : null, s.chat_template ? "chat template" : null, kvText(shown), `${fmt.secs(shown.seconds)}`]
    .filter(Boolean).join(" · ")
    + (shown.model && shown.model.sliding_window_note ? `\n${shown.model.sliding_window_note}` : "");
  ui.info.classList.toggle("partial", !!shown.partial);
  ui.grids.setMode(ui.mode.value);
  ui.grids.set(shown);  // cells not run yet stay blank ("not run" on hover)
  fill(ui.tableBody, (shown.summary || []).map((r) => {
    const mine = shown.cells.filter((c) => c.policy === r.policy);
    return h("tr", { dataset: { policy: r.policy }, class: r.policy === "full" ? "reference" : "" },
      h("td", {}, h("span", { class: "swatch", style: { background: policyColour(r.policy) } }), label(r.policy)),
      h("td", { dataset: { key: "found" } }, `${mine.filter((c) => c.correct).length} / ${mine.length}`),
      h("td", { dataset: { key: "accuracy" } }, fmt.pct(r.accuracy, 0)),
      h("td", { dataset: { key: "mean_logprob" } }, fmt.fixed(r.mean_logprob, 3)));
  }));
  const notes = [...new Set(shown.cells.filter((c) => c.note).map((c) => `${label(c.policy)}: ${c.note}`))];
  fill(ui.notes, notes.map((n) => h("div", { class: "hint warn" }, n)));
  const first = shown.cells.find((c) => c.policy !== "full" && !c.correct) || shown.cells[0];
  if (first && !running()) pick(first.policy, first.length, first.depth);  // not while cells keep arriving
}

// The cache's format and its bytes per token (every result says it; unquantized: the model's dtype).
function kvText(r) {
  if (r.bytes_per_token == null) return null;
  const intact = r.settings && r.settings.intact_sinks ? `, ${r.settings.intact_sinks} intact` : "";
  return `KV ${r.kv_format || "unquantized"}${intact} (${fmt.bytes(r.bytes_per_token)}/token)`;
}

const CSV_COLUMNS = ["length", "depth", "policy", "label", "correct", "answer_logprob", "answer", "expected", "needle", "needle_tokens",
  "needle_attention", "note"];

// Cells kept from a cancelled grid are exported as such: in the file name and on every row.
function exportCSV() {
  if (!last || running()) return;
  const partial = last.partial ? `partial: ${last.cells_done} of ${last.cells_total} cells` : "";
  saveCSV(last.partial ? "retrieval-cells-partial" : "retrieval-cells",
    last.cells.map((c) => ({ ...c, label: label(c.policy), note: c.note || "", partial })), CSV_COLUMNS.concat(["partial"]));
}

function exportJSON() {
  if (!last || running()) return;
  const { params: request, ...result } = last;
  saveJSON(last.partial ? "retrieval-results-partial" : "retrieval-results",
    { request, ...result, labels: labelsOf(result.cells.map((c) => c.policy)) });
}

/** For tests. */
export function result() { return last; }
export function shownResult() { return shown; }
export function running() { return jobId !== null; }
export function currentJob() { return jobId; }
export function jobOfResult() { return lastJobId; }
export function grids() { return ui.grids; }
export function why() { return ui.why; }
