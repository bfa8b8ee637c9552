// Evaluate (a section of the Eviction Sim tab): run the loaded model over a text with each
// policy's cache actually applied, and show perplexity, KL vs Full Cache and the running
// perplexity over position (StreamingLLM, Fig. 3). The backend computes every number
// (backend/evaluate/run.py); we only show them. The result so far arrives with each progress poll
// (the table and curves grow while it runs) and a Cancel keeps it, marked partial. Inputs carry data-field="eval.<name>" so
// they never collide with the simulation's fields in the same tab.
import { call, runJob } from "./bridge.js";
import { h, fill, field, onEnter, markField, showRunning } from "./dom.js";
import * as fmt from "./format.js";
import * as status from "./status.js";
import { app, on } from "./state.js";
import { modelDefaults } from "./defaults.js";
import { requireModel } from "./tabs.js";
import { lineChart, setData } from "./charts.js";
import { savePNG, saveJSON, saveCSV } from "./export.js";
import { policyColour, policyDash, policyLabel, labelsOf } from "./palette.js";
import { kvFormatSelect } from "./kv-formats.js";

const FALLBACK_POLICIES = ["full", "sliding_window", "streaming_llm", "h2o", "lru", "tova", "sliding_window_recompute"];
const RECOMPUTE = "sliding_window_recompute";

// Table columns: key, header, format, ranked (lowest is best among the non-full policies).
const COLUMNS = [
  ["perplexity", "perplexity", (v) => fmt.fixed(v, 3), true],
  ["kl_vs_full", "KL vs Full", (v) => fmt.fixed(v, 4), true],
  ["tokens", "tokens", fmt.int, false],
  ["evictions", "evictions", fmt.int, false],
  ["granularity", "kept sets", (v) => v || "—", false],
  ["perplexity_within_context", "ppl within context", (v) => fmt.fixed(v, 2), false, true],
  ["perplexity_past_context", "ppl past context", (v) => fmt.fixed(v, 2), false, true],
  ["seconds", "seconds", (v) => fmt.fixed(v, 2), false],
];

const ui = {};
let policies = FALLBACK_POLICIES;
let last = null;       // last evaluate result (finished, or kept on Cancel: partial) + the params that made it
let shown = null;      // what the table and chart show: `last`, or the running job's result so far
let jobId = null;
let lastJobId = null;  // the job behind `last` (tests read its result from the Api)
let cacheEdited = false;
let tokensEdited = false;  // the user typed Max tokens (or chose the long run): a new model's defaults keep it
let estimateTimer = null;
let estimateSeq = 0;   // only the latest estimate request may write the line

const label = policyLabel;    // one label and one colour per policy on every tab (palette.js, backend/labels.py)
const colour = policyColour;

/** Build the section (the caller appends it to the Eviction tab). */
export function mount() {
  ui.section = h("section", { class: "eval-section" },
    h("div", { class: "eval-head" }, h("h2", {}, "Evaluate: perplexity under eviction"),
      h("span", { class: "hint" }, "The loaded model reads a text one token per step over each policy's real KV cache; "
        + "evicted entries are dropped, kept ones keep their K/V. H2O, TOVA and LRU decide per layer and KV head on the "
        + "model's own attention.")),
    h("div", { class: "eval-grid" }, settingsCard(), resultsCard()));
  requireModel(ui.section, "Evaluation runs the loaded model over a text with each policy's cache applied.");
  // The overlay gets its own class: ".model-required" in this tab means the model-trace settings.
  const overlay = ui.section.lastChild;
  overlay.classList.replace("model-required", "eval-model-required");
  on("model", modelChanged);
  on("defaults", applyDefaults);
  return ui.section;
}

export async function start() {
  const res = await call("evaluate_info");
  if (res.ok) {
    if (Array.isArray(res.policies) && res.policies.length) policies = res.policies;
    if (res.bundled_texts) {
      fill(ui.bundled, Object.entries(res.bundled_texts).map(([k, v]) => h("option", { value: k, title: v }, v.split(" (")[0])));
    }
  }
  fill(ui.policy, h("option", { value: "all" }, "All (real cache)"),
    h("option", { value: "all_plus" }, "All + re-computation baseline (slow)"),
    policies.map((p) => h("option", { value: p }, p === "full" ? "Full Cache only" : `${label(p)} (+ Full Cache)`)));
  ui.policy.value = "all";
  modelChanged(app.model);
  if (modelDefaults()) applyDefaults(modelDefaults());  // the bundled texts are listed now
}

export function resize() { ui.chart.resize(); }

function modelChanged(model) {
  if (!model) return;
  const context = model.spec && model.spec.context_length;
  if (context) ui.cache.max = String(context - 1);
  ui.positions.querySelector("option[value='in_cache']").disabled = !(model.spec && model.spec.position_scheme === "rotary");
  if (ui.positions.selectedOptions[0] && ui.positions.selectedOptions[0].disabled) ui.positions.value = "original";
  scheduleEstimate();
}

// The shared defaults (defaults.js, backend/defaults.py): the budget and text of every view, and the tokens
// sized to about a minute on this device, with the long run one click away.
function applyDefaults(d) {
  const e = d.evaluate;
  if (!cacheEdited) {
    ui.cache.value = String(e.cache_size); ui.sinks.value = String(e.sinks); ui.window.value = String(e.window);
  }
  if (!tokensEdited) ui.maxTokens.value = String(e.max_tokens);
  if ([...ui.bundled.options].some((o) => o.value === e.text)) ui.bundled.value = e.text;
  fill(ui.sized, e.note ? [h("span", {}, e.note + " "),
    h("button", { class: "btn small", dataset: { action: "long-run" }, onclick: () => {
      ui.maxTokens.value = String(e.long_run.max_tokens); tokensEdited = true; scheduleEstimate();
    } }, `Long run (${fmt.int(e.long_run.max_tokens)} tokens)`)] : []);
  ui.sized.classList.toggle("hidden", !e.note);
  scheduleEstimate();
}

// ---------- estimate (before running: the Api measures a decode step here and scales it) ----------
function scheduleEstimate() {
  clearTimeout(estimateTimer);
  estimateSeq++;  // an answer for the old settings can no longer land
  if (ui.estimate.textContent) {  // an estimate for other settings goes at once, not when the new one arrives
    ui.estimate.classList.add("stale");
    fill(ui.estimate, h("span", {}, "Settings changed: measuring a new estimate…"));
  }
  estimateTimer = setTimeout(estimate, 500);
}

async function estimate() {
  if (!app.model || jobId !== null) return;
  const seq = ++estimateSeq;
  const res = await call("evaluate_estimate", params());
  if (seq !== estimateSeq) return;
  ui.estimate.classList.remove("stale");
  if (!res.ok) { ui.estimate.textContent = ""; return; }
  fill(ui.estimate, h("span", {}, `Estimate: ~${fmt.secs(res.seconds)} for ${fmt.int(res.steps)} steps `
      + `(${fmt.int(res.evicting_steps)} evicting) on ${res.text.name}.`),
    res.warnings.map((w) => h("div", { class: "warn" }, w)));
}

// ---------- settings ----------
function num(name, value, attrs = {}) {
  return h("input", { type: "number", value: String(value), dataset: { field: "eval." + name }, ...attrs });
}

function settingsCard() {
  ui.text = h("textarea", { rows: 4, dataset: { field: "eval.text" }, placeholder: "blank = the bundled text chosen below" });
  ui.maxTokens = num("max_tokens", 1024, { min: 2, max: 8192, step: 64, title: "Tokens of the text to evaluate on",
    oninput: () => { tokensEdited = true; } });
  ui.sized = h("div", { class: "hint eval-sized hidden" });
  ui.cache = num("cache_size", 256, { min: 2, title: "Budget C: keys the cache may hold (below the model's context)",
    oninput: () => { cacheEdited = true; } });
  ui.sinks = num("sinks", 4, { min: 0, title: "S: sink tokens StreamingLLM keeps" });
  ui.window = num("window", 128, { min: 1, title: "W: recent window" });
  ui.tau = num("access_threshold", 0.01, { min: 0, max: 1, step: 0.001, title: "τ: a key is accessed when its weight ≥ τ (LRU)" });
  ui.policy = h("select", { dataset: { field: "eval.policy" } });
  ui.bundled = h("select", { dataset: { field: "eval.bundled_text" }, title: "The bundled text used when Text is blank" });
  ui.positions = h("select", { dataset: { field: "eval.positions" },
    title: "original: each key keeps the position it was computed at (as H2O evaluates). in-cache: StreamingLLM's "
      + "positions inside the cache, by re-rotating cached keys (rotary models only). Past the context a rotary "
      + "model always uses in-cache positions." },
  h("option", { value: "original" }, "original"), h("option", { value: "in_cache" }, "in-cache (StreamingLLM)"));
  ui.granularity = h("select", { dataset: { field: "eval.granularity" },
    title: "per head: H2O, TOVA and LRU keep their own C entries in every layer and KV head, as their papers do. "
      + "shared: one kept set for all heads (attention averaged over layers and heads)." },
  h("option", { value: "per_head" }, "per KV head"), h("option", { value: "shared" }, "one set for all heads"));
  ui.kvFormat = kvFormatSelect("eval.kv_format", {
    title: "Store every policy's K and V in fewer bits (quantize on insert, dequantize on read): llama.cpp's block "
      + "formats, integer k-bit, KIVI (keys per channel, values per token, the last 128 tokens in full precision) "
      + "or fp8. KL is then measured against the unquantized Full Cache." });
  ui.intact = num("intact_sinks", 0, { min: 0, title: "IntactKV: the first N positions stay in full precision "
    + "(needs a KV format)" });
  for (const input of [ui.maxTokens, ui.cache, ui.sinks, ui.window, ui.tau, ui.intact]) onEnter(input, run);
  for (const input of [ui.text, ui.maxTokens, ui.cache, ui.sinks, ui.window, ui.tau, ui.policy, ui.bundled,
    ui.positions, ui.granularity, ui.kvFormat, ui.intact]) {
    input.addEventListener("input", scheduleEstimate);
    input.addEventListener("change", scheduleEstimate);
  }

  ui.runBtn = h("button", { class: "btn primary", onclick: run }, "Run Evaluation");
  ui.cancelBtn = h("button", { class: "btn danger hidden", onclick: cancel }, "Cancel");
  ui.progress = h("div", { class: "progress hidden" }, h("div"));
  ui.progressText = h("div", { class: "hint mono eval-progress" });
  ui.estimate = h("div", { class: "hint eval-estimate" });

  return h("div", { class: "card eval-settings" }, h("h2", {}, "Evaluation"),
    field("Text", ui.text), field("Bundled text", ui.bundled),
    h("div", { class: "form-grid" }, field("Max tokens", ui.maxTokens), field("Cache size C", ui.cache),
      field("Sinks S", ui.sinks), field("Window W", ui.window), field("Access τ", ui.tau), field("Policy", ui.policy),
      field("Positions", ui.positions), field("Granularity", ui.granularity),
      field("KV format", ui.kvFormat), field("Intact sinks", ui.intact)),
    ui.sized, ui.estimate,
    h("div", { class: "row run-row" }, ui.runBtn, ui.cancelBtn),
    ui.progress, ui.progressText,
    h("div", { class: "hint eval-cost" }, "One cached decode step per token, shared by all policies (batched); "
      + "the re-computation baseline runs a forward over C + 1 tokens per token."));
}

function params() {
  const p = {
    max_tokens: Number(ui.maxTokens.value), cache_size: Number(ui.cache.value), sinks: Number(ui.sinks.value),
    window: Number(ui.window.value), access_threshold: Number(ui.tau.value),
    policy: ui.policy.value === "all" ? "all" : ui.policy.value === "all_plus" ? policies.slice() : [ui.policy.value],
    positions: ui.positions.value, granularity: ui.granularity.value,
  };
  if (ui.text.value.trim() !== "") p.text = ui.text.value;
  else if (ui.bundled.value) p.bundled_text = ui.bundled.value;
  if (ui.kvFormat.value) {
    p.kv_format = ui.kvFormat.value;
    p.intact_sinks = Number(ui.intact.value);
  }
  return p;
}

// ---------- run ----------
async function run() {
  if (!app.model || jobId !== null || ui.runBtn.disabled) return;
  const p = params();
  setBusy(true);
  ui.progressText.classList.remove("err");
  ui.progressText.textContent = "Starting…";
  const act = status.begin("Evaluating…");
  let total = null;
  const res = await runJob("evaluate", p, (st) => {
    const tokens = st.tokens || total;
    ui.progress.firstChild.style.width = `${Math.round((st.fraction || 0) * 100)}%`;
    const where = st.position != null && tokens && /^Evaluating/.test(st.stage || "") ? ` · position ${fmt.int(st.position)} / ${fmt.int(tokens)}` : "";
    const left = st.seconds_left != null ? `${fmt.secs(st.seconds_left)} left` : "measuring the time left…";
    const speed = st.tokens_per_second ? ` · ${fmt.fixed(st.tokens_per_second, 1)} tokens/s · ${left}` : "";
    const text = `${st.stage || ""}${where}${speed} · ${fmt.pct(st.fraction, 0)} · ${fmt.secs(st.elapsed)}`;
    ui.progressText.textContent = text;
    act.update(text);
    if (st.partial && st.partial.results) { shown = { ...st.partial, params: p }; render(); }  // the curves so far
  }, (id) => { jobId = id; });
  const finished = jobId;
  jobId = null;
  act.end();
  setBusy(false);
  scheduleEstimate();  // settings edited during the run got no estimate (estimate() waits for the job)
  markField(ui.section, res.ok || !res.error || !res.error.field ? res : { ...res, error: { ...res.error, field: "eval." + res.error.field } });
  if (!res.ok) {
    const cancelled = res.error.code === "cancelled";
    const result = cancelled && res.status && res.status.result;  // Cancel keeps the positions computed so far
    const kept = result && result.positions_done > 0 ? result : null;
    ui.progressText.textContent = !cancelled ? res.error.message : !kept ? "Cancelled."
      : `Cancelled at position ${fmt.int(kept.positions_done)} of ${fmt.int(kept.positions_total)}: the partial result is kept.`;
    ui.progressText.classList.toggle("err", !cancelled);
    if (kept) { last = { ...kept, params: p }; lastJobId = finished; }
    if (last) { shown = last; render(); }  // a failed run's partial curves give way to the last result
    return;
  }
  last = shown = { ...res.result, params: p };  // the result names its own model, text and settings
  lastJobId = finished;
  const seconds = last.results.reduce((s, r) => s + (r.seconds || 0), 0);
  ui.progressText.textContent = `${fmt.int(last.tokens)} tokens · ${last.results.length} policies · ${fmt.secs(seconds)}`;
  ui.progressText.classList.remove("err");
  for (const f of last.failed || []) {  // a user policy whose rule failed (rule_nan, rule_timeout); the others' results stand
    ui.progressText.textContent += ` · ${f.policy} failed: ${f.error.message}`;
    ui.progressText.classList.add("err");
  }
  render();
}

function cancel() {
  if (jobId) call("cancel_job", { job_id: jobId });
  ui.progressText.textContent = "Cancelling…";
}

function setBusy(busy) { showRunning(ui, busy); }

// ---------- results ----------
function resultsCard() {
  ui.tableBody = h("tbody", {}, h("tr", {}, h("td", { colspan: COLUMNS.length + 1, class: "hint" }, "Run an evaluation to see results.")));
  ui.headRow = h("tr", {}, h("th", {}, "policy"), COLUMNS.filter((c) => !c[4]).map(([, head]) => h("th", {}, head)));
  ui.info = h("div", { class: "hint mono eval-info" });
  ui.note = h("div", { class: "eval-note hidden" });
  ui.canvas = h("canvas");
  ui.chart = lineChart(ui.canvas, {
    xTitle: "position (tokens)", yTitle: "running perplexity ÷ Full Cache's",
    scales: { x: { type: "linear", min: 1 }, y: { type: "linear", beginAtZero: false } },
  });
  ui.view = h("select", { dataset: { field: "eval.view" }, onchange: () => shown && render(),
    title: "÷ Full Cache: each policy's running perplexity over Full Cache's at the same position (exactly 1 until the "
      + "cache fills at C). Running perplexity: from position min(C, 64) on, as the first positions' averages span "
      + "orders of magnitude." },
  h("option", { value: "vs_full" }, "÷ Full Cache"), h("option", { value: "perplexity" }, "running perplexity (log)"));
  return h("div", { class: "eval-results" },
    h("div", { class: "card" }, h("h2", {}, "Perplexity by policy", h("span", { class: "spacer" }),
      h("button", { class: "btn small", onclick: exportCSV }, "CSV"), h("button", { class: "btn small", onclick: exportJSON }, "JSON")),
    ui.info,
    h("div", { class: "table-wrap" }, h("table", { class: "data eval-table" },
      h("thead", {}, ui.headRow), ui.tableBody)),
    h("div", { class: "hint" }, "★ lowest among the evicting policies · KL = mean KL(Full ‖ policy) of the next-token distributions"),
    ui.note),
    h("div", { class: "card" }, h("h2", {}, "Running perplexity over position", h("span", { class: "spacer" }), ui.view,
      h("button", { class: "btn small", onclick: () => savePNG("evaluate-perplexity", ui.canvas) }, "PNG")),
    h("div", { class: "chart-box eval-chart" }, ui.canvas)));
}

function bestValues(rows) {
  const best = {};
  const ranked = rows.filter((r) => r.policy !== "full");
  for (const [key, , , rankedCol] of COLUMNS) {
    if (!rankedCol) continue;
    const vals = ranked.map((r) => r[key]).filter((v) => typeof v === "number" && isFinite(v));
    if (vals.length >= 1 && ranked.length >= 1) best[key] = Math.min(...vals);
  }
  return best;
}

// Columns marked optional (5th entry) only when some result has them (texts past the context).
const shownColumns = (rows) => COLUMNS.filter((c) => !c[4] || rows.some((r) => r[c[0]] != null));

function render() {
  const rows = shown.results;
  const columns = shownColumns(rows);
  fill(ui.headRow, h("th", {}, "policy"), columns.map(([, head]) => h("th", {}, head)));
  const best = rows.filter((r) => r.policy !== "full").length >= 2 ? bestValues(rows) : {};
  fill(ui.tableBody, rows.map((r, i) => {
    const tr = h("tr", { class: r.policy === "full" ? "reference" : "" },
      h("td", { title: r.policy }, h("span", { class: "swatch", style: { background: colour(r.policy) } }), label(r.policy)),
      columns.map(([key, , f]) => {
        const v = r[key];
        const isBest = best[key] != null && r.policy !== "full" && typeof v === "number" && Math.abs(v - best[key]) < 1e-12;
        const text = r.policy === "full" && key === "kl_vs_full" ? "reference" : f(v);
        return h("td", { class: isBest ? "best" : "", dataset: { key } }, text);
      }));
    tr.dataset.policy = r.policy;
    return tr;
  }));
  const p = shown.params;
  const s = shown.settings || p;
  const text = shown.text || {};
  ui.info.textContent = [shown.partial ? `PARTIAL: positions 1–${fmt.int(shown.positions_done)} of ${fmt.int(shown.positions_total)}` : "",
    shown.model ? shown.model.source : "", `${fmt.int(shown.tokens)} tokens`,
    `context ${fmt.int(shown.context_length)}`, `C=${s.cache_size} S=${s.sinks} W=${s.window} τ=${s.access_threshold}`,
    shown.granularity === "shared" ? "one kept set for all heads" : "per KV head",
    `${text.name || ""}${text.sha256 ? " · sha256 " + text.sha256 : ""}`].filter(Boolean).join(" · ");
  ui.info.classList.toggle("partial", !!shown.partial);
  const full = rows.find((r) => r.policy === "full");
  fill(ui.note,
    h("div", {}, h("b", {}, "Positions: "), shown.position_scheme || "—"),
    h("div", {}, h("b", {}, "Eviction: "), shown.eviction_mode || "—"),
    shown.note ? h("div", { class: "warn" }, h("b", {}, "Stopped: "), shown.note) : null,
    shown.model && shown.model.sliding_window_note
      ? h("div", {}, h("b", {}, "Sliding-window layers: "), shown.model.sliding_window_note) : null,
    full && full.note ? h("div", { class: "warn" }, h("b", {}, "Full Cache: "), full.note) : null,
    rows.filter((r) => r.policy !== "full" && r.note).map((r) => h("div", { class: "warn" }, h("b", {}, label(r.policy) + ": "), r.note)));
  ui.note.classList.remove("hidden");
  setData(ui.chart, [], curves(rows, s.cache_size));
}

// The first positions' running perplexity is an average of a few tokens (10⁶ at position 1): on one log axis it
// flattened the divergence after C to a few pixels (issue 33). So the default view is each policy over Full Cache
// (the backend's curve.vs_full, exactly 1 until the cache fills), and the plain view starts after a warm-up.
const WARMUP = 64;

function curves(rows, C) {
  const ratio = ui.view.value === "vs_full" && rows.every((r) => !r.curve || !r.curve.position.length || r.curve.vs_full);
  const from = ratio ? 1 : Math.min(WARMUP, C || WARMUP);
  const lines = rows.map((r, i) => ({
    label: label(r.policy), color: colour(r.policy), borderDash: policyDash(r.policy), policy: r.policy,
    data: ((r.curve && r.curve.position) || []).map((x, k) => ({ x, y: (ratio ? r.curve.vs_full : r.curve.perplexity)[k] }))
      .filter((pt) => pt.x >= from),
  }));
  ui.chart.options.scales.y.type = ratio ? "linear" : "logarithmic";
  ui.chart.options.scales.y.title.text = ratio ? "running perplexity ÷ Full Cache's" : `running perplexity (log, from position ${from})`;
  ui.chart.options.scales.x.min = from;
  // the whole run's positions: a growing (partial) result keeps its axis while its curves extend
  ui.chart.options.scales.x.max = shown.positions_total || (rows[0] && rows[0].tokens) || undefined;
  return lines.concat(marker(lines, C, `C = ${C}: the cache is full`, "#c0c4cc"),
    shown.tokens > shown.context_length ? marker(lines, shown.context_length, `context ${fmt.int(shown.context_length)}`, "#8a8f98") : []);
}

// A vertical line at position x, as high as the curves: where the cache first fills (C; every policy equals Full
// Cache before it) and, for a text past the context, where the context ends (Full Cache's curve bends there).
function marker(lines, x, text, color) {
  const ys = lines.flatMap((d) => d.data.map((p) => p.y)).filter((y) => y > 0 && isFinite(y));
  if (!x || !ys.length) return [];
  return [{ label: text, color, borderDash: [2, 3], borderWidth: 1,
    data: [{ x, y: Math.min(...ys) }, { x, y: Math.max(...ys) }] }];
}

// A partial result (a cancelled run) is exported as such: in the file name and on every row.
const exportName = () => (last.partial ? "evaluate-results-partial" : "evaluate-results");

function flatRows() {
  const partial = last.partial ? `partial: ${last.positions_done} of ${last.positions_total} positions` : "";
  return last.results.map((r) => ({ policy: r.policy, label: label(r.policy), perplexity: r.perplexity, kl_vs_full: r.kl_vs_full,
    tokens: r.tokens, evictions: r.evictions, granularity: r.granularity, seconds: r.seconds, note: r.note || "", partial }));
}

function exportCSV() {
  if (!last || running()) return;
  saveCSV(exportName(), flatRows(), ["policy", "label", "perplexity", "kl_vs_full", "tokens", "evictions", "granularity",
    "seconds", "note", "partial"]);
}

function exportJSON() {
  if (!last || running()) return;
  const { params: request, ...result } = last;
  saveJSON(exportName(), { request, ...result, labels: labelsOf(result.results.map((r) => r.policy)) });
}

/** For tests. */
export function result() { return last; }
export function shownResult() { return shown; }
export function chart() { return ui.chart; }
export function running() { return jobId !== null; }
export function jobOfResult() { return lastJobId; }
