// Cache Profile tab: where the KV blocks of a sequence live across GPU HBM, GPU L2
// (a modelled tier), system RAM and disk, and what that costs per decoded token.
// The backend's tier simulator computes everything; this tab draws it and scrubs
// through its snapshots with profile_snapshot.
import { call, runJob } from "./bridge.js";
import { h, fill, field, onEnter, markField } from "./dom.js";
import * as fmt from "./format.js";
import * as status from "./status.js";
import { app, on } from "./state.js";
import { requireModel, onShown } from "./tabs.js";
import { BlockMap, TIERS } from "./blockmap.js";
import { barChart, setData } from "./charts.js";
import { savePNG, saveJSON, saveCSV } from "./export.js";

const TIER_COLORS = ["#3ddc84", "#4aa3ff", "#f2c94c", "#ff4fa3"];
const GB = 1e9;

const ui = {};
let presets = {};      // name → [{name, capacity_bytes, bandwidth_bps}]
let last = null;       // the last profile result
let jobId = null;
let scrubTimer = null;

export function init(panel) {
  ui.panel = panel;
  panel.classList.add("profile-layout");
  panel.append(settingsCard(), mapCard(), summaryCard());
  onShown("profile", () => { ui.tierChart.resize(); ui.hitChart.resize(); });
}

export async function start() {
  await loadPresets();
  on("model", () => loadPresets());  // bytes per token come from the loaded model
}

// The constrained preset is sized for this sequence (length, block size, bytes per token),
// so the presets are fetched again whenever one of those changes; that resets table edits.
function presetKey() { return `${ui.length.value}|${ui.blockSize.value}|${app.model ? app.model.source : ""}`; }
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
  const res = await call("profile_presets", { length: Number(ui.length.value), block_size: Number(ui.blockSize.value) });
  if (!res.ok) { applyPreset(); return; }
  const keep = ui.preset.value;
  const list = Array.isArray(res.presets) ? res.presets : Object.entries(res.presets || {}).map(([name, p]) => ({ name, ...p }));
  presets = {};
  for (const p of list) presets[p.name || p.id] = p;
  fill(ui.preset, list.map((p) => h("option", { value: p.name || p.id, title: p.description || "" }, p.label || p.name || p.id)));
  ui.preset.value = presets[keep] ? keep : presets.constrained ? "constrained" : list[0].name;
  ui.presetInfo.textContent = res.bytes_per_token ? `${fmt.bytes(res.bytes_per_token)} of KV per token (${res.bytes_per_token_source || "model"})` : "";
  applyPreset();
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
  ui.preset = h("select", { dataset: { field: "preset" }, onchange: applyPreset },
    h("option", { value: "constrained" }, "Constrained"), h("option", { value: "detected" }, "Detected hardware"));
  ui.tierRows = h("tbody");
  ui.text = h("textarea", { rows: 4, dataset: { field: "text" }, placeholder: "Text for the model trace" },
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world.");
  ui.model = h("div", { class: "model-settings hidden" }, ui.text);
  ui.modelOverlay = requireModel(ui.model, "A model trace uses the loaded model's attention and its KV size.");
  ui.refresh = h("button", { class: "btn primary", onclick: refresh }, "Refresh");
  ui.cancel = h("button", { class: "btn danger hidden", onclick: () => jobId && call("cancel_job", { job_id: jobId }) }, "Cancel");
  ui.progress = h("div", { class: "progress hidden" }, h("div"));
  ui.progressText = h("div", { class: "hint mono" });
  ui.presetInfo = h("div", { class: "hint mono" });
  for (const input of [ui.length, ui.blockSize]) {
    onEnter(input, refresh);
    input.addEventListener("change", () => loadPresets());
  }
  onEnter(ui.text, refresh);

  return h("div", { class: "card profile-settings" }, h("h2", {}, "Sequence"),
    h("div", { class: "form-grid" }, field("Trace", ui.trace), field("Length (tokens)", ui.length), field("Block size B", ui.blockSize)),
    ui.model,
    h("h2", { class: "sub" }, "Tiers", h("span", { class: "spacer" }), field("Preset", ui.preset, "field inline")),
    ui.presetInfo,
    h("table", { class: "data tier-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "tier"), h("th", {}, "capacity GB"), h("th", {}, "read GB/s"))), ui.tierRows),
    h("div", { class: "hint l2-note" }, "GPU L2 is a modelled tier: no real system pages KV blocks into L2. It is here to show what a cache level between HBM and the GPU cores would change."),
    h("div", { class: "row" }, ui.refresh, ui.cancel), ui.progress, ui.progressText);
}

function traceChanged() {
  ui.model.classList.toggle("hidden", ui.trace.value !== "model");
  ui.modelOverlay();
}

function tierValue(t, ...keys) { for (const k of keys) if (t[k] != null) return t[k]; return null; }

function applyPreset() {
  const p = presets[ui.preset.value];
  const tiers = (p && p.tiers) || [];
  fill(ui.tierRows, TIERS.map((name, i) => {
    const t = tiers[i] || {};
    const cap = tierValue(t, "capacity_bytes", "capacity");
    const bw = tierValue(t, "bandwidth_bps", "bandwidth_bytes_per_s", "bandwidth");
    return h("tr", {},
      h("td", {}, h("span", { class: "chip", style: { color: TIER_COLORS[i] } }, name)),
      h("td", {}, h("input", { type: "number", step: "any", min: "0", class: "cap", dataset: { field: `tiers.${i}.capacity_bytes` }, value: cap == null ? "" : String(+(cap / GB).toPrecision(4)) })),
      h("td", {}, h("input", { type: "number", step: "any", min: "0", class: "bw", dataset: { field: `tiers.${i}.bandwidth_bps` }, value: bw == null ? "" : String(+(bw / GB).toPrecision(4)) })));
  }));
}

function tiersFromTable() {
  return [...ui.tierRows.querySelectorAll("tr")].map((tr, i) => ({
    name: ["hbm", "l2", "ram", "disk"][i],
    capacity_bytes: Math.round(Number(tr.querySelector(".cap").value) * GB),
    bandwidth_bps: Math.round(Number(tr.querySelector(".bw").value) * GB),
  }));
}

// ---------- run ----------
async function refresh() {
  if (ui.trace.value === "model" && !app.model) return;
  await loadPresets();  // the table must be sized for this sequence before we read it
  const params = { trace: ui.trace.value, length: Number(ui.length.value), block_size: Number(ui.blockSize.value),
    preset: ui.preset.value, tiers: tiersFromTable() };
  if (params.trace === "model") params.text = ui.text.value;
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
  last = { ...res.result, params };
  ui.progressText.textContent = `${fmt.int(blockCount())} blocks of ${last.block_size || params.block_size} tokens`;
  render();
}

function blockCount() { return (last && last.tier && last.tier.length) || 0; }

// ---------- map + scrubber ----------
function mapCard() {
  ui.scrub = h("input", { type: "range", min: 0, max: 0, value: 0, class: "grow", oninput: scrub, disabled: true });
  ui.scrubLabel = h("span", { class: "mono scrub-label" }, "final layout");
  const body = h("div");
  const card = h("div", { class: "card profile-map" },
    h("h2", {}, "KV block map", h("span", { class: "spacer" }),
      h("span", { class: "legend-inline" }, TIERS.map((t, i) => h("span", { class: "chip", style: { color: TIER_COLORS[i] } }, t)),
        h("span", { class: "chip sink" }, "sink border"), h("span", { class: "chip heavy" }, "heavy-hitter border")),
      h("button", { class: "btn small", onclick: () => savePNG("block-map", ui.map.canvas) }, "PNG")),
    h("div", { class: "row" }, h("span", { class: "hint" }, "Step"), ui.scrub, ui.scrubLabel), body);
  ui.map = new BlockMap(body, { maxHeight: 380 });
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
    ui.map.setTiers(res.tiers || res.tier);
    ui.scrubLabel.textContent = `step ${fmt.int(res.step ?? steps[index])}${index === steps.length - 1 ? " (final)" : ""}`;
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
      h("button", { class: "btn small", onclick: () => savePNG("tier-hits", ui.hitCanvas) }, "PNG")), h("div", { class: "chart-box short" }, ui.hitCanvas)));
  ui.tierChart = barChart(ui.tierCanvas, { stacked: true, horizontal: true, xTitle: "share", scales: { x: { max: 1 } } });
  ui.hitChart = barChart(ui.hitCanvas, { legend: false, yTitle: "hits" });
  return card;
}

/** Per-tier numbers as rows, whatever shape the backend used ({tiers: [...]} or parallel arrays). */
function tierRows() {
  const s = last.summary || last;
  if (Array.isArray(s.tiers) && s.tiers.length && typeof s.tiers[0] === "object") {
    return s.tiers.map((t, i) => ({ tier: TIERS[i], blocks: t.blocks, bytes: t.bytes, hits: t.hits, capacity_bytes: t.capacity_bytes, bandwidth_bps: t.bandwidth_bps }));
  }
  return TIERS.map((tier, i) => ({ tier, blocks: (s.blocks_per_tier || [])[i], bytes: (s.bytes_per_tier || [])[i], hits: (s.hits_per_tier || [])[i] }));
}

function render() {
  const s = last.summary || last;
  ui.map.setData({ tier: last.tier, status: last.status, access: last.access_count, blockSize: last.block_size || last.params.block_size,
    nTokens: last.n_tokens ?? last.length ?? last.params.length, bytesPerToken: last.bytes_per_token ?? s.bytes_per_token });
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

  const t = s.read_seconds_per_step ?? s.read_time_per_step;
  const base = s.read_seconds_all_hbm ?? s.read_time_all_hbm;
  fill(ui.readTime,
    h("div", { class: "big mono" }, fmt.secs(t)), h("div", { class: "hint" }, "KV read time per decode step"),
    h("div", { class: "mono" }, `all in HBM: ${fmt.secs(base)}`, t && base ? h("span", { class: "ratio" }, ` · ${(t / base).toFixed(2)}× slower`) : null));
  const stats = [
    ["blocks", fmt.int(blockCount())], ["bytes / token", fmt.bytes(last.bytes_per_token ?? s.bytes_per_token)],
    ["promotions", fmt.int(s.promotions)], ["demotions", fmt.int(s.demotions)], ["bytes moved", fmt.bytes(s.bytes_moved)],
    ["total KV", fmt.bytes(rows.reduce((a, r) => a + (r.bytes || 0), 0))],
    ...rows.map((r) => [r.tier, `${fmt.int(r.blocks)} blk · ${fmt.bytes(r.bytes)}`]),
  ];
  fill(ui.stats, stats.map(([k, v]) => [h("dt", {}, k), h("dd", { title: String(v) }, String(v))]));
}

function exportCSV() { if (last) saveCSV("cache-profile-tiers", tierRows(), ["tier", "blocks", "bytes", "hits", "capacity_bytes", "bandwidth_bps"]); }
function exportJSON() { if (last) saveJSON("cache-profile", last); }

/** For tests: the block map and the last result. */
export function blockmap() { return ui.map; }
export function result() { return last; }
