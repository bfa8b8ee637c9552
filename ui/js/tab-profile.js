// Cache Profile tab: where the KV blocks of a sequence live across GPU HBM, GPU L2
// (a modelled tier), system RAM and disk under a placement policy real serving systems
// use, and what that costs per decoded token — over the steps, and at the scrubbed step.
// The backend's tier simulator computes everything; this tab draws it, scrubs through its
// snapshots with profile_snapshot, measures this machine (profile_hardware) and runs the
// "what would it cost at scale?" scenario (profile_scenario).
import { call, runJob } from "./bridge.js";
import { h, fill, field, onEnter, markField } from "./dom.js";
import * as fmt from "./format.js";
import * as status from "./status.js";
import { app, on } from "./state.js";
import { kvFormatSelect } from "./kv-formats.js";
import { requireModel, onShown } from "./tabs.js";
import { BlockMap, TIERS } from "./blockmap.js";
import { barChart, lineChart, setData } from "./charts.js";
import { savePNG, saveJSON, saveCSV } from "./export.js";

const TIER_COLORS = ["#3ddc84", "#22d3ee", "#f2c94c", "#fb923c"];  // = the --tier-* colours in app.css
const GiB = fmt.GiB;  // the tier table edits capacities and bandwidths in GiB and GiB/s: the unit every figure here uses
const POLICY_LABELS = { lru: "LRU offload (vLLM swap, LMCache, Dynamo)", topk: "Offload + top-k fetch (Quest, InfiniGen)",
  heat: "Heat with hysteresis" };
const GPUS = [["H100", "H100 80GB"], ["H200", "H200 141GB"], ["A100", "A100 80GB"], ["L4", "L4 24GB"], ["Apple-M", "Apple M-series (unified)"]];
const MODELS = ["Llama-3.1-8B", "Qwen2.5-7B", "Mistral-7B", "SmolLM2-135M"];

const ui = {};
let presets = {};      // name → {tiers: [{capacity_bytes, bandwidth_bps, ...}]}
let policyRules = {};  // policy → the rule in words (from profile_presets)
let last = null;       // what the map and charts show: the last profile, or the last scenario's replay (last.source)
let scrubbed = null;   // the snapshot the scrubber shows (null: the final layout)
let jobId = null;
let scrubTimer = null;

export function init(panel) {
  ui.panel = panel;
  panel.classList.add("profile-layout");
  panel.append(settingsCard(), mapCard(), summaryCard());
  onShown("profile", () => { for (const c of [ui.tierChart, ui.hitChart, ui.costChart]) c.resize(); });
}

export async function start() {
  await loadPresets();
  loadHardware(false);
  on("model", () => loadPresets());  // bytes per token come from the loaded model
}

// The constrained preset is sized for this sequence (length, block size, bytes per token),
// so the presets are fetched again whenever one of those changes; that resets table edits.
// On a model trace the backend sizes it from the profiled sequence itself.
function presetKey() { return `${ui.length.value}|${ui.blockSize.value}|${app.model ? app.model.source : ""}|${ui.kvFormat.value}`; }
let presetsFor = null;
let presetsLoading = Promise.resolve();

/** Fetch presets for the current sequence; concurrent callers share one fetch. */
function loadPresets() {
  if (presetKey() === presetsFor) return presetsLoading;
  presetsFor = presetKey();
  presetsLoading = fetchPresets();
  return presetsLoading;
}

async function fetchPresets() {
  const res = await call("profile_presets", { length: Number(ui.length.value), block_size: Number(ui.blockSize.value),
    ...kvFormatParams() });
  if (!res.ok) { applyPreset(); return; }
  const keep = ui.preset.value;
  const list = res.presets || [];
  presets = {};
  for (const p of list) presets[p.name] = p;
  policyRules = res.policies || {};
  fill(ui.preset, list.map((p) => h("option", { value: p.name, title: p.description || "" }, p.label || p.name)));
  ui.preset.value = presets[keep] ? keep : "constrained";
  ui.presetInfo.textContent = res.bytes_per_token ? `${fmt.bytes(res.bytes_per_token)} of KV per token (${res.bytes_per_token_source || "model"})` : "";
  ui.gpuNote.textContent = res.gpu_note || "";
  ui.gpuNote.classList.toggle("warn", !!res.gpu_modelled);
  applyPreset();
  policyChanged();
}

// ---------- settings ----------
function num(name, value, attrs = {}) {
  return h("input", { type: "number", value: String(value), dataset: { field: name }, ...attrs });
}

function settingsCard() {
  ui.trace = h("select", { dataset: { field: "trace" }, onchange: traceChanged },
    h("option", { value: "synthetic" }, "Synthetic (no model needed)"), h("option", { value: "model" }, "Model (loaded model on a text)"));
  ui.length = num("length", 100000, { min: 1, step: 1000 });
  ui.blockSize = num("block_size", 16, { min: 1 });
  ui.kvFormat = kvFormatSelect("kv_format", { title: "Store the KV in a quantized format (backend/quantize): a block "
    + "then holds the format's bytes per token, scales included, rounded up to a whole byte" });
  ui.kvFormat.addEventListener("change", () => loadPresets());
  ui.policy = h("select", { dataset: { field: "policy" }, onchange: policyChanged },
    Object.entries(POLICY_LABELS).map(([v, label]) => h("option", { value: v }, label)));
  ui.reuse = num("reuse", 16, { min: 0, title: "A block used below HBM is read there; used again within this many steps, it comes back to HBM." });
  ui.window = num("window", 16, { min: 1, title: "Recent blocks kept in HBM" });
  ui.k = num("k", 16, { min: 0, title: "Blocks fetched over the link each step" });
  ui.fetchRule = h("select", { dataset: { field: "fetch_rule" }, onchange: fetchRuleChanged },
    h("option", { value: "attention" }, "Attention mass (the trace)"), h("option", { value: "quest_bound" }, "Quest's page choice (model trace)"));
  ui.fetchHint = h("div", { class: "hint fetch-rule-hint" });
  ui.margin = num("margin", 0.5, { min: 0, step: 0.05, title: "Heat (rows of attention, decayed) a block must have above the coldest block of the tier above" });
  ui.patience = num("patience", 32, { min: 0, title: "Steps it must keep beating it before it moves" });
  ui.policyFields = {
    lru: [field("Reuse window (steps)", ui.reuse)],
    topk: [field("Window (blocks)", ui.window), field("k (blocks / step)", ui.k), field("Fetch rule", ui.fetchRule)],
    heat: [field("Margin (heat)", ui.margin), field("Patience (steps)", ui.patience)],
  };
  ui.policyGrid = h("div", { class: "form-grid" });
  ui.policyRule = h("div", { class: "hint policy-rule" });
  ui.preset = h("select", { dataset: { field: "preset" }, onchange: applyPreset },
    h("option", { value: "constrained" }, "Constrained"), h("option", { value: "detected" }, "Detected hardware"));
  ui.tierRows = h("tbody");
  ui.text = h("textarea", { rows: 4, dataset: { field: "text" }, placeholder: "Text for the model trace" },
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world.");
  ui.aggregate = h("select", { dataset: { field: "aggregate" }, onchange: () => { ui.layer.disabled = ui.aggregate.value !== "layer"; } },
    h("option", { value: "all_layers" }, "Mean over all layers"), h("option", { value: "layer" }, "One layer"));
  ui.layer = num("layer", -1, { disabled: true, title: "Layer index; −1 = the last" });
  ui.model = h("div", { class: "model-settings hidden" }, ui.text,
    h("div", { class: "form-grid" }, field("Attention", ui.aggregate), field("Layer", ui.layer)),
    h("div", { class: "hint" }, "Blocks get the model's real attention per token; the Constrained tiers are sized from the profiled sequence, not from Length."));
  ui.modelOverlay = requireModel(ui.model, "A model trace uses the loaded model's attention and its KV size.");
  ui.refresh = h("button", { class: "btn primary", onclick: refresh }, "Run profile");
  ui.cancel = h("button", { class: "btn danger hidden", onclick: () => jobId && call("cancel_job", { job_id: jobId }) }, "Cancel");
  ui.progress = h("div", { class: "progress hidden" }, h("div"));
  ui.progressText = h("div", { class: "hint mono progress-text" });
  ui.presetInfo = h("div", { class: "hint mono" });
  ui.gpuNote = h("div", { class: "hint gpu-note" });
  ui.hwButton = h("button", { class: "btn small", onclick: () => loadHardware(true) }, "Measure this machine");
  ui.hw = h("div", { class: "hw" });
  for (const input of [ui.length, ui.blockSize]) {
    onEnter(input, refresh);
    input.addEventListener("change", () => loadPresets());
  }
  for (const input of [ui.reuse, ui.window, ui.k, ui.margin, ui.patience, ui.layer]) onEnter(input, refresh);
  onEnter(ui.text, refresh);

  return h("div", { class: "card profile-settings" }, h("h2", {}, "Sequence"),
    h("div", { class: "form-grid" }, field("Trace", ui.trace), field("Length (tokens)", ui.length), field("Block size B", ui.blockSize),
      field("KV format", ui.kvFormat)),
    ui.model,
    h("h2", { class: "sub" }, "Placement"), field("Policy", ui.policy), ui.policyGrid, ui.fetchHint, ui.policyRule,
    h("h2", { class: "sub" }, "Tiers", h("span", { class: "spacer" }), field("Preset", ui.preset, "field inline")),
    ui.presetInfo, ui.gpuNote,
    h("table", { class: "data tier-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "tier"), h("th", {}, "capacity GiB"), h("th", {}, "read GiB/s"))), ui.tierRows),
    h("div", { class: "hint l2-note" }, "GPU L2 is a modelled tier: no real system pages KV blocks into L2. Only the heat rule uses it; LRU offload and top-k fetch leave it empty, as serving systems do."),
    h("div", { class: "row" }, ui.refresh, ui.cancel), ui.progress, ui.progressText,
    h("h2", { class: "sub" }, "Detected hardware", h("span", { class: "spacer" }), ui.hwButton), ui.hw);
}

function traceChanged() {
  ui.model.classList.toggle("hidden", ui.trace.value !== "model");
  ui.modelOverlay();
}

function policyChanged() {
  fill(ui.policyGrid, ui.policyFields[ui.policy.value]);
  ui.policyRule.textContent = policyRules[ui.policy.value] || "";
  fetchRuleChanged();
}

const FETCH_HINTS = {
  attention: "Fetches the k offloaded blocks with the most attention from this step's query.",
  quest_bound: "Fetches Quest's own pages: top-k by the key min/max upper bound on the model's real keys and queries (pages of 16: block size 16, model trace).",
};

function fetchRuleChanged() {
  ui.fetchHint.textContent = ui.policy.value === "topk" ? FETCH_HINTS[ui.fetchRule.value] : "";
}

function policyParams() {
  const p = { policy: ui.policy.value };
  if (p.policy === "lru") p.reuse = Number(ui.reuse.value);
  if (p.policy === "topk") Object.assign(p, { window: Number(ui.window.value), k: Number(ui.k.value), fetch_rule: ui.fetchRule.value });
  if (p.policy === "heat") Object.assign(p, { margin: Number(ui.margin.value), patience: Number(ui.patience.value) });
  return p;
}

function applyPreset() {
  const p = presets[ui.preset.value];
  const tiers = (p && p.tiers) || [];
  fill(ui.tierRows, TIERS.map((name, i) => {
    const t = tiers[i] || {};
    const cap = t.capacity_bytes, bw = t.bandwidth_bps;
    const src = t.measured_at ? `measured ${t.measured_at.slice(0, 10)}` : t.modelled ? "modelled" : "";
    const edited = (ev) => { ev.target.dataset.edited = "1"; };
    return h("tr", { title: t.note || "" },
      h("td", {}, h("span", { class: "chip", style: { color: TIER_COLORS[i] } }, name)),
      h("td", {}, h("input", { type: "number", step: "any", min: "0", class: "cap", oninput: edited, dataset: { field: `tiers.${i}.capacity_bytes` }, value: cap == null ? "" : String(+(cap / GiB).toPrecision(4)) })),
      h("td", {}, h("input", { type: "number", step: "any", min: "0", class: "bw", oninput: edited, dataset: { field: `tiers.${i}.bandwidth_bps` }, value: bw == null ? "" : String(+(bw / GiB).toPrecision(4)) }),
        src ? h("div", { class: "hint tier-src" }, src) : null));
  }));
}

/** Only the cells the user edited: the preset (sized by the backend for the sequence it profiles) fills the rest. */
function tiersFromTable() {
  return [...ui.tierRows.querySelectorAll("tr")].map((tr) => {
    const out = {};
    const cap = tr.querySelector(".cap"), bw = tr.querySelector(".bw");
    if (cap.dataset.edited) out.capacity_bytes = Math.round(Number(cap.value) * GiB);
    if (bw.dataset.edited) out.bandwidth_bps = Math.round(Number(bw.value) * GiB);
    return out;
  });
}

// ---------- measured hardware ----------
async function loadHardware(measure) {
  ui.hwButton.disabled = true;
  if (measure) ui.hw.textContent = "Measuring RAM, disk (a 256 MiB temporary file) and host→GPU copy…";
  const res = await call("profile_hardware", { measure });
  ui.hwButton.disabled = false;
  if (!res.ok) { ui.hw.textContent = res.error.message; return; }
  const m = res.measured, mod = res.modelled || {};
  const rows = [
    ["RAM read (CPU)", m && m.ram_read_bps, null],
    ["Disk read", m && m.disk_read_bps, mod.disk_bps],
    ["Host → GPU copy", m && m.host_to_device_bps, mod.pcie_bps],
    ["GPU HBM", null, mod.hbm_bandwidth_bps],
  ];
  fill(ui.hw,
    h("div", { class: "hint" + (res.gpu_modelled ? " warn" : "") }, res.gpu_note || ""),
    h("table", { class: "data hw-table" }, h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "measured"), h("th", {}, "modelled (spec)"))),
      h("tbody", {}, rows.map(([name, got, spec]) => h("tr", {}, h("td", {}, name),
        h("td", { class: "mono" }, got ? fmt.rate(got) : name === "Host → GPU copy" && m ? "no GPU" : "—"),
        h("td", { class: "mono" }, spec ? fmt.rate(spec) : "—"))))),
    h("div", { class: "hint" }, m ? `Measured ${m.measured_at.replace("T", " ")} (cached; the Detected preset uses the disk and host→GPU figures).` : "Not measured yet: the Detected preset uses public specs."));
  if (measure) { presetsFor = null; loadPresets(); }
}

// ---------- run ----------
// The KV format (issue 34): the blocks hold its bytes per token; "" = the model's own dtype.
function kvFormatParams() { return ui.kvFormat.value ? { kv_format: ui.kvFormat.value } : {}; }

async function refresh() {
  if (ui.trace.value === "model" && !app.model) return;
  await loadPresets();  // the table must be sized for this sequence before we read it
  const params = { trace: ui.trace.value, length: Number(ui.length.value), block_size: Number(ui.blockSize.value),
    preset: ui.preset.value, tiers: tiersFromTable(), ...policyParams(), ...kvFormatParams() };
  if (params.trace === "model") Object.assign(params, { text: ui.text.value, aggregate: ui.aggregate.value, layer: Number(ui.layer.value) });
  ui.refresh.disabled = true;
  ui.cancel.classList.remove("hidden");
  ui.progress.classList.remove("hidden");
  const act = status.begin("Profiling KV blocks…");
  const res = await runJob("profile", params, (st) => {
    ui.progress.firstChild.style.width = `${Math.round((st.fraction || 0) * 100)}%`;
    ui.progressText.textContent = `${st.stage || ""} ${fmt.pct(st.fraction, 0)}`;
  }, (id) => { jobId = id; });
  jobId = null;
  act.end();
  ui.refresh.disabled = false;
  ui.cancel.classList.add("hidden");
  ui.progress.classList.add("hidden");
  markField(ui.panel, res);
  if (!res.ok) {
    ui.progressText.textContent = res.error.code === "cancelled" ? "Cancelled." : res.error.message;
    ui.progressText.classList.toggle("err", res.error.code !== "cancelled");
    return;
  }
  ui.progressText.classList.remove("err");
  last = { ...res.result, params, source: "profile" };
  scrubbed = null;
  ui.progressText.textContent = `${fmt.int(blockCount())} blocks of ${last.block_size} tokens · ${POLICY_LABELS[last.summary.policy]}`;
  render();
}

function blockCount() { return (last && last.tier && last.tier.length) || 0; }

// ---------- map + scrubber + cost over the steps ----------
function mapCard() {
  ui.scrub = h("input", { type: "range", min: 0, max: 0, value: 0, class: "grow", oninput: scrub, disabled: true });
  ui.scrubLabel = h("span", { class: "mono scrub-label" }, "final layout");
  const body = h("div");
  ui.costCanvas = h("canvas");
  ui.mapSource = h("div", { class: "hint map-source" });
  const card = h("div", { class: "card profile-map" },
    h("h2", {}, "KV block map", h("span", { class: "spacer" }),
      h("span", { class: "legend-inline" }, TIERS.map((t, i) => h("span", { class: "chip", style: { color: TIER_COLORS[i] } }, t)),
        h("span", { class: "chip sink" }, "sink border"), h("span", { class: "chip heavy" }, "heavy-hitter border")),
      h("button", { class: "btn small", onclick: () => savePNG("block-map", ui.map.canvas) }, "PNG")),
    ui.mapSource, h("div", { class: "row" }, h("span", { class: "hint" }, "Step"), ui.scrub, ui.scrubLabel), body,
    h("h2", { class: "sub" }, "Cost per decode step over the run", h("span", { class: "spacer" }),
      h("button", { class: "btn small", onclick: () => savePNG("cost-over-steps", ui.costCanvas) }, "PNG")),
    h("div", { class: "chart-box cost-chart" }, ui.costCanvas),
    h("div", { class: "hint" }, "Each point is the mean over a stretch of steps (at most 512 points). Dense attention reads every block where it lives; top-k fetch reads the sinks, the window and k blocks."));
  ui.map = new BlockMap(body, { maxHeight: 340, empty: "Run profile (left) or a scenario at scale (right) to place the KV blocks." });
  // A linear step axis: round ticks (0, 5,000, 10,000), not the buckets' midpoints (3418, 6738) as labels.
  ui.costChart = lineChart(ui.costCanvas, { xTitle: "decode step", yTitle: "KV read time (ms / step)",
    scales: { x: { type: "linear", beginAtZero: true, ticks: { maxTicksLimit: 9, includeBounds: false } } } });
  // A right-hand axis for bytes moved (charts.js themes x and y only).
  ui.costChart.options.scales.y1 = { position: "right", beginAtZero: true, title: { display: true, text: "moved (MiB / step)" },
    grid: { drawOnChartArea: false } };
  return card;
}

// Dragging fires many input events: fetch only the latest position, a beat later.
function scrub() {
  clearTimeout(scrubTimer);
  scrubTimer = setTimeout(async () => {
    const index = Number(ui.scrub.value);
    const steps = last.snapshot_steps || [];
    const res = await call("profile_snapshot", { index });
    if (!res.ok) return;
    ui.map.setTiers(res.tiers);
    scrubbed = res;
    ui.scrubLabel.textContent = `step ${fmt.int(res.step)}${index === steps.length - 1 ? " (final)" : ""}`;
    renderHeadline();
  }, 60);
}

// ---------- summary ----------
function summaryCard() {
  ui.tierCanvas = h("canvas");
  ui.hitCanvas = h("canvas");
  ui.stats = h("dl", { class: "kv" });
  ui.readTime = h("div", { class: "read-time" });
  const card = h("div", { class: "profile-summary" },
    h("div", { class: "card" }, h("h2", {}, "Cost per decode step", h("span", { class: "spacer" }),
      h("button", { class: "btn small", onclick: exportCSV }, "CSV"), h("button", { class: "btn small", onclick: exportJSON }, "JSON")),
    ui.readTime, ui.stats),
    h("div", { class: "card" }, h("h2", {}, "Blocks and bytes per tier", h("span", { class: "spacer" }),
      h("button", { class: "btn small", onclick: () => savePNG("tiers", ui.tierCanvas) }, "PNG")), h("div", { class: "chart-box short" }, ui.tierCanvas)),
    h("div", { class: "card" }, h("h2", {}, "Hits per tier", h("span", { class: "spacer" }),
      h("button", { class: "btn small", onclick: () => savePNG("tier-hits", ui.hitCanvas) }, "PNG")), h("div", { class: "chart-box short" }, ui.hitCanvas)),
    scenarioCard());
  ui.tierChart = barChart(ui.tierCanvas, { stacked: true, horizontal: true, xTitle: "share", scales: { x: { max: 1 } } });
  ui.hitChart = barChart(ui.hitCanvas, { legend: false, yTitle: "hits" });
  return card;
}

function tierRows() {
  return last.summary.tiers.map((t, i) => ({ tier: TIERS[i], blocks: t.blocks, bytes: t.bytes, hits: t.hits,
    capacity_bytes: t.capacity_bytes, bandwidth_bps: t.bandwidth_bps }));
}

/** Which run the map and charts show, in words (the profile's sequence or the scenario's). */
function sourceLine() {
  if (last.source === "scenario") {
    const sc = last.scenario;
    return `Scale scenario: ${sc.model.name}, ${fmt.int(sc.context)} tokens on ${sc.gpu.name} (${fmt.int(blockCount())} blocks of ${last.block_size} tokens)`;
  }
  const p = last.params;
  const what = p.trace === "model" ? `model trace (${fmt.int(last.n_tokens)} tokens)` : `synthetic trace, ${fmt.int(last.n_tokens)} tokens`;
  return `Profile: ${what}, ${presetLabel(last.summary.preset)} preset (${fmt.int(blockCount())} blocks of ${last.block_size} tokens)`;
}

function presetLabel(name) { return (presets[name] && presets[name].label) || name; }

/**
 * Where the "N× slower" comes from. The Constrained preset sizes every tier as a share of this
 * sequence's KV, so bytes per token cancel out of the ratio: it is the same for every model.
 */
function headlineSource() {
  const s = last.summary;
  if (last.source === "scenario") {
    const sc = last.scenario;
    return `From the scale scenario: ${sc.model.name} on ${sc.gpu.name}, HBM after ${fmt.bytes(sc.weights_bytes)} of weights, `
      + "then host RAM and disk: this model's and this GPU's figure.";
  }
  const desc = (presets[s.preset] && presets[s.preset].description) || "";
  if (s.preset === "constrained") {
    return `From the Constrained preset (${desc}). Every tier is a share of the KV, so the model's size cancels out: `
      + `this ratio is the same for every model${s.trace === "model" ? " (only the trace's attention moves it)" : ""}. `
      + "For a real GPU: the Detected hardware preset, or “What would it cost at scale?”.";
  }
  return `From the ${presetLabel(s.preset)} preset (${desc}): real capacities, so it changes with the model's KV size.`;
}

function render() {
  const s = last.summary;
  ui.mapSource.textContent = sourceLine();
  ui.map.setData({ tier: last.tier, status: last.status, access: last.access_count, blockSize: last.block_size,
    nTokens: last.n_tokens, bytesPerToken: last.bytes_per_token });
  const steps = last.snapshot_steps || [];
  ui.scrub.max = String(Math.max(0, steps.length - 1));
  ui.scrub.value = ui.scrub.max;
  ui.scrub.disabled = steps.length < 2;
  ui.scrubLabel.textContent = steps.length ? `step ${fmt.int(steps[steps.length - 1])} (final)` : "final layout";

  const rows = tierRows();
  const sum = (k) => rows.reduce((a, r) => a + (r[k] || 0), 0) || 1;
  const blocksTotal = sum("blocks"), bytesTotal = sum("bytes");
  setData(ui.tierChart, ["blocks", "bytes"], rows.map((r, i) => ({
    label: TIERS[i], data: [(r.blocks || 0) / blocksTotal, (r.bytes || 0) / bytesTotal], color: TIER_COLORS[i],
  })), "bar");
  setData(ui.hitChart, TIERS, [{ label: "hits", data: rows.map((r) => r.hits || 0), colors: TIER_COLORS }], "bar");

  const tl = last.timeline;
  const xs = tl.first_step.map((a, i) => (a + tl.last_step[i]) / 2);
  const points = (values, scale) => values.map((v, i) => ({ x: xs[i], y: v * scale }));
  ui.costChart.options.scales.x.max = last.n_tokens;
  setData(ui.costChart, [], [
    { label: `KV read time (${s.policy})`, data: points(tl.read_seconds, 1e3), color: "#f2c94c" },
    { label: "all in HBM", data: points(tl.all_hbm_seconds, 1e3), color: "#3ddc84", borderDash: [4, 3] },
    { label: "bytes moved (MiB / step)", data: points(tl.moved_bytes, 1 / fmt.MiB), color: "#e5e7eb", yAxisID: "y1" },
  ]);
  renderHeadline();
  const stats = [
    ["policy", POLICY_LABELS[s.policy]], ["settings", Object.entries(s.policy_settings).map(([k, v]) => `${k} ${v}`).join(", ")],
    ["blocks", fmt.int(blockCount())], ["bytes / token", fmt.bytes(s.bytes_per_token)], ["total KV", fmt.bytes(s.kv_bytes)],
    ["bytes moved", `${fmt.bytes(s.bytes_moved)} (${s.moved_over_kv.toFixed(2)}× the KV)`],
    ["promotions", fmt.int(s.promotions)], ["demotions", fmt.int(s.demotions)],
    ...(s.policy === "topk" ? [["fetched", fmt.bytes(s.bytes_fetched)]] : []),
    ["read / step", `${fmt.bytes(s.read_bytes_per_step)} (mean)`],
    ...rows.map((r, i) => [r.tier, s.tiers[i].unused ? "not used by this policy" : `${fmt.int(r.blocks)} blk · ${fmt.bytes(r.bytes)}`]),
  ];
  fill(ui.stats, stats.map(([k, v]) => [h("dt", {}, k), h("dd", { title: String(v) }, String(v))]));
}

/** The headline: the mean over the run, and the value at the scrubbed step — each labelled as such. */
function renderHeadline() {
  const s = last.summary;
  const at = scrubbed;
  fill(ui.readTime,
    h("div", { class: "big mono headline-mean" }, fmt.secs(s.read_seconds_per_step)),
    h("div", { class: "hint" }, "KV read time per decode step — mean over all steps of the run"),
    h("div", { class: "mono" }, `all in HBM (mean): ${fmt.secs(s.read_seconds_all_hbm)}`,
      h("span", { class: "ratio" }, ` · ${s.read_time_ratio.toFixed(2)}× ${s.read_time_ratio >= 1 ? "slower" : "faster"}`)),
    h("div", { class: "hint headline-source" }, headlineSource()),
    at ? h("div", { class: "mono headline-step" }, `at step ${fmt.int(at.step)} (scrubbed): ${fmt.secs(at.read_seconds)} vs ${fmt.secs(at.all_hbm_seconds)} all in HBM; moved ${fmt.bytes(at.moved_bytes)} that step`)
      : h("div", { class: "hint headline-step" }, "Drag the step scrubber to see the cost at one step."));
}

function exportCSV() { if (last) saveCSV("cache-profile-tiers", tierRows(), ["tier", "blocks", "bytes", "hits", "capacity_bytes", "bandwidth_bps"]); }
function exportJSON() { if (last) saveJSON("cache-profile", last); }

// ---------- what would it cost at scale? ----------
let scenarioLast = null;

function scenarioCard() {
  ui.scModel = h("select", { dataset: { field: "model" } }, MODELS.map((m) => h("option", { value: m }, m)), h("option", { value: "other" }, "Other: a .gguf file or a Hub id…"));
  ui.scOther = h("input", { type: "text", class: "hidden", placeholder: "/path/model.gguf or org/name", dataset: { field: "model" } });
  ui.scFetch = h("input", { type: "checkbox" });
  ui.scFetchLabel = h("label", { class: "hint hidden" }, ui.scFetch, " fetch the Hub id's config.json (network)");
  ui.scModel.addEventListener("change", () => { const other = ui.scModel.value === "other"; ui.scOther.classList.toggle("hidden", !other); ui.scFetchLabel.classList.toggle("hidden", !other); });
  ui.scContext = num("context", 131072, { min: 1, max: 1048576, step: 1024 });
  ui.scGpu = h("select", { dataset: { field: "gpu" } }, GPUS.map(([v, label]) => h("option", { value: v }, label)));
  ui.scRun = h("button", { class: "btn", onclick: runScenario }, "Run scenario");
  ui.scOut = h("div", { class: "scenario-out" });
  onEnter(ui.scContext, runScenario);
  onEnter(ui.scOther, runScenario);
  return h("div", { class: "card scenario" }, h("h2", {}, "What would it cost at scale?"),
    h("div", { class: "form-grid" }, field("Model", ui.scModel), field("Context (tokens)", ui.scContext), field("GPU", ui.scGpu)),
    ui.scOther, ui.scFetchLabel,
    h("div", { class: "hint" }, "Replays a synthetic trace shaped like the loaded model's attention (sink mass, locality, heavy hitters measured on a text) at this length, with the placement policy above."),
    h("div", { class: "row" }, ui.scRun), ui.scOut);
}

async function runScenario() {
  const model = ui.scModel.value === "other" ? ui.scOther.value.trim() : ui.scModel.value;
  const params = { model, context: Number(ui.scContext.value), gpu: ui.scGpu.value, block_size: Number(ui.blockSize.value),
    fetch_config: ui.scModel.value === "other" && ui.scFetch.checked, ...policyParams() };
  ui.scRun.disabled = true;
  ui.scOut.textContent = "Running…";
  const act = status.begin("Scenario at scale…");
  const res = await runJob("profile_scenario", params, (st) => { ui.scOut.textContent = `${st.stage || ""} ${fmt.pct(st.fraction, 0)}`; });
  act.end();
  ui.scRun.disabled = false;
  markField(ui.panel, res);
  if (!res.ok) { ui.scOut.textContent = res.error.message; ui.scOut.classList.add("err"); return; }
  ui.scOut.classList.remove("err");
  scenarioLast = res.result;
  const s = res.result.scenario, r = res.result.replay;
  // Drawn like a profile (block map, scrubber, tiers, hits, cost over the steps): the backend keeps
  // the replay's snapshots for profile_snapshot.
  last = { ...res.result, summary: r, params: { ...params, trace: "synthetic" }, source: "scenario" };
  scrubbed = null;
  render();
  const rows = [
    ["model", `${s.model.name} (${s.model.source})`], ["KV / token", `${fmt.bytes(s.bytes_per_token)} (${s.dtype})`],
    ["KV at context", fmt.bytes(s.kv_bytes)], ["weights", fmt.bytes(s.weights_bytes)], ["GPU", s.gpu.name],
    ["HBM runs out at", `${fmt.int(s.hbm_runs_out_at_tokens)} tokens${s.fits_in_hbm ? " (this context fits)" : " (this context does not fit)"}`],
    ...r.tiers.map((t, i) => [TIERS[i], t.unused ? "not used" : `${fmt.int(t.blocks)} blk · ${fmt.bytes(t.bytes)}`]),
    ["bytes moved", `${fmt.bytes(r.bytes_moved)} (${r.moved_over_kv.toFixed(2)}× the KV)`],
    ["read / step (mean)", `${fmt.secs(r.read_seconds_per_step)} vs ${fmt.secs(r.read_seconds_all_hbm)} all in HBM`],
    ["trace shape", s.shape_source],
    ...(res.result.note ? [["fetch rule", res.result.note]] : []),
  ];
  fill(ui.scOut, h("div", { class: "hint" }, "Drawn in the block map and the charts; the sizes:"),
    h("dl", { class: "kv" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { title: String(v) }, String(v))])));
}

/** For tests: the block map, the last result, the last scenario, the cost chart. */
export function blockmap() { return ui.map; }
export function result() { return last; }
export function scenario() { return scenarioLast; }
export function costChart() { return ui.costChart; }
