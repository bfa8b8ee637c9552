// "Why it hurts: the picture" (issue 34), a card in Evaluate's section of the Eviction Sim tab: the error a
// KV format puts on each layer × KV head's K and V (heatmaps on one scale), and on each position (a line), with
// the sinks marked on the line and K's outlier channels listed with their share, next to the same format with
// the first S tokens kept intact (IntactKV: K's heatmap and dashed lines), so one sees what keeping them removes. The backend computes every number (Api
// `quantization_error`, backend/quantize/error.py): two runs, plain and intact; we only draw them.
import { call, runJob } from "./bridge.js";
import { h, fill, field, markField, showRunning } from "./dom.js";
import * as fmt from "./format.js";
import * as status from "./status.js";
import { app } from "./state.js";
import { lineChart, setData } from "./charts.js";
import { cssColor } from "./colormap.js";
import { kvFormatSelect, kvFormats } from "./kv-formats.js";

const ui = {};
let jobId = null;
let shown = null;  // {plain, intact}: the two results drawn (tests read them)

export function mount() {
  ui.format = kvFormatSelect("qerr.kv_format", { title: "The format whose error is drawn" });
  kvFormats().then(() => { if (!ui.format.value) ui.format.value = "q4_0"; });  // unquantized has no error to draw
  ui.format.addEventListener("change", () => { ui.format.dataset.edited = "1"; });
  // Evaluate's format (a select in the same section, tab-evaluate.js) is offered here until this one is picked by hand.
  document.addEventListener("change", (ev) => {
    if (ev.target.dataset && ev.target.dataset.field === "eval.kv_format" && ev.target.value && !ui.format.dataset.edited) {
      ui.format.value = ev.target.value;
    }
  });
  ui.intact = h("input", { type: "number", min: 0, value: "4", dataset: { field: "qerr.intact_sinks" },
    title: "IntactKV: the second run keeps positions 0..S−1 in full precision (0: no comparison)" });
  ui.maxTokens = h("input", { type: "number", min: 2, max: 2048, value: "256", dataset: { field: "qerr.max_tokens" } });
  ui.runBtn = h("button", { class: "btn primary", onclick: run }, "Show the error");
  ui.cancelBtn = h("button", { class: "btn danger hidden", onclick: () => jobId && call("cancel_job", { job_id: jobId }) }, "Cancel");
  ui.progress = h("div", { class: "progress hidden" }, h("div"));
  ui.note = h("div", { class: "hint mono qerr-note" });
  ui.summary = h("div", { class: "qerr-summary" });
  ui.keys = h("canvas", { class: "qerr-heat", dataset: { side: "key" } });
  ui.values = h("canvas", { class: "qerr-heat", dataset: { side: "value" } });
  ui.keysIntact = h("canvas", { class: "qerr-heat", dataset: { side: "key-intact" } });
  ui.keysIntactTitle = h("div", { class: "hint" });
  ui.outliers = h("div", { class: "hint mono qerr-outliers" });
  ui.canvas = h("canvas");
  ui.chart = lineChart(ui.canvas, { xTitle: "position (tokens)", yTitle: "relative error (mean over layers, KV heads)",
    scales: { x: { type: "linear", min: 0 } } });
  ui.chart.options.plugins.tooltip.callbacks = { label: (c) => `${c.dataset.label}: ${fmt.fixed(c.parsed.y, 4)}` };
  ui.section = h("div", { class: "card qerr" },
    h("h2", {}, "Why it hurts: the quantization error picture"),
    h("div", { class: "hint" }, "One text's K and V stored in the format, layer by layer, exactly as the quantized cache "
      + "stores them: ‖stored − exact‖ / ‖exact‖ per layer × KV head and per position (not carried through later "
      + "layers: Evaluate measures that). ▲ marks the sinks; the second run keeps the first S tokens intact."),
    h("div", { class: "form-grid" }, field("KV format", ui.format), field("Intact sinks S", ui.intact),
      field("Max tokens", ui.maxTokens)),
    h("div", { class: "row run-row" }, ui.runBtn, ui.cancelBtn), ui.progress, ui.note, ui.summary,
    h("div", { class: "row qerr-heats" }, h("div", {}, h("div", { class: "hint" }, "K error, layer (rows) × KV head"), ui.keys),
      h("div", {}, h("div", { class: "hint" }, "V error, layer (rows) × KV head"), ui.values),
      ui.keysIntactBox = h("div", { class: "hidden" }, ui.keysIntactTitle, ui.keysIntact)),
    ui.scale = h("div", { class: "hint qerr-scale" }), ui.outliers, h("div", { class: "chart-box qerr-chart" }, ui.canvas));
  return ui.section;
}

function params(intact) {
  const p = { kv_format: ui.format.value, max_tokens: Number(ui.maxTokens.value), intact_sinks: intact };
  if (app.model && app.model.source === "demo") p.bundled_text = "jargon";
  return p;
}

async function run() {
  if (!app.model || jobId !== null) return;
  const intact = Number(ui.intact.value);
  showRunning(ui, true);
  const act = status.begin("Measuring the quantization error…");
  const runs = intact > 0 ? [0, intact] : [0];
  const out = [];
  for (const [i, s] of runs.entries()) {
    const res = await runJob("quantization_error", params(s), (st) => {
      ui.progress.firstChild.style.width = `${Math.round(((i + (st.fraction || 0)) / runs.length) * 100)}%`;
      ui.note.textContent = `${i ? `${s} intact sinks: ` : ""}${st.stage || "…"}`;
    }, (id) => { jobId = id; });
    jobId = null;
    markField(ui.section, res.ok || !res.error || !res.error.field ? res : { ...res, error: { ...res.error, field: "qerr." + res.error.field } });
    if (!res.ok) {
      ui.note.textContent = res.error.code === "cancelled" ? "Cancelled." : res.error.message;
      break;
    }
    out.push(res.result);
  }
  act.end();
  showRunning(ui, false);
  if (out.length !== runs.length) return;
  shown = { plain: out[0], intact: out[1] || null };
  ui.note.textContent = `${out[0].kv_format} · ${fmt.int(out[0].tokens)} tokens of ${out[0].text.name} · `
    + `${fmt.int(out[0].bytes_per_token)} bytes per token`;
  draw();
}

const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
const flat = (grid) => grid.flat();

function draw() {
  const { plain, intact } = shown;
  const top = Math.max(...flat(plain.key_error), ...flat(plain.value_error), 1e-9);
  heat(ui.keys, plain.key_error, top);
  heat(ui.values, plain.value_error, top);
  ui.keysIntactBox.classList.toggle("hidden", !intact);
  if (intact) {  // the same scale: what keeping the first S intact takes off each head
    ui.keysIntactTitle.textContent = `K error with the first ${intact.intact_sinks} intact`;
    heat(ui.keysIntact, intact.key_error, top);
  }
  ui.scale.textContent = `colour (viridis, square root): 0 dark → ${fmt.fixed(top, 3)} bright, one scale for K and V`;
  const sinks = plain.sinks;
  const atSinks = (r) => (sinks.length ? mean(sinks.map((i) => r.key_error_by_position[i])) : null);
  const lines = [
    `Sinks: ${sinks.length ? sinks.map((i) => "position " + i).join(", ") : "none detected (mean received attention ≥ 0.10)"}.`,
    `K error at the sinks ${fmt.fixed(atSinks(plain), 3)} against ${fmt.fixed(mean(plain.key_error_by_position), 3)} `
      + `over all positions; the sinks carry ${fmt.pct(mean(flat(plain.sink_error_share)), 1)} of K's squared error, `
      + `the ${plain.outlier_channels[0][0].length} loudest channels ${fmt.pct(mean(flat(plain.outlier_channel_error_share)), 1)}.`,
  ];
  if (intact) {
    lines.push(`Keeping the first ${intact.intact_sinks} intact: mean K error ${fmt.fixed(mean(flat(plain.key_error)), 4)} → `
      + `${fmt.fixed(mean(flat(intact.key_error)), 4)}, V ${fmt.fixed(mean(flat(plain.value_error)), 4)} → `
      + `${fmt.fixed(mean(flat(intact.value_error)), 4)}; at the sinks ${fmt.fixed(atSinks(plain), 3)} → ${fmt.fixed(atSinks(intact), 3)}.`);
  }
  fill(ui.summary, lines.map((t) => h("div", {}, t)));
  fill(ui.outliers, h("div", {}, "K's outlier channels (largest mean |K|) per layer, KV head: share of K's squared error"),
    plain.outlier_channels.map((heads, l) => h("div", {}, `L${l}: ` + heads.map((ch, kv) =>
      `h${kv} [${ch.join(", ")}] ${fmt.pct(plain.outlier_channel_error_share[l][kv], 1)}`).join(" · "))));
  const xs = (arr) => arr.map((y, x) => ({ x, y }));
  const datasets = [
    { label: `K, ${plain.kv_format}`, data: xs(plain.key_error_by_position), color: "#4aa3ff" },
    { label: `V, ${plain.kv_format}`, data: xs(plain.value_error_by_position), color: "#3ddc84" },
  ];
  if (intact) {
    datasets.push({ label: `K, ${intact.intact_sinks} intact`, data: xs(intact.key_error_by_position), color: "#b48cff", borderDash: [4, 3] },
      { label: `V, ${intact.intact_sinks} intact`, data: xs(intact.value_error_by_position), color: "#2dd4bf", borderDash: [4, 3] });
  }
  datasets.push({ label: "sink", data: sinks.map((i) => ({ x: i, y: plain.key_error_by_position[i] })), color: "#ff4fa3",
    showLine: false, pointStyle: "triangle", pointRadius: 7, clip: false });  // a sink at position 0 sits on the axis
  setData(ui.chart, [], datasets);
}

/** A layers × KV heads grid, viridis (square root) scaled to `top`, the value written in each cell. */
function heat(canvas, grid, top) {
  const rows = grid.length, cols = grid[0].length;
  const cw = Math.max(48, Math.floor(240 / cols)), ch = 16, left = 34;
  canvas.width = left + cols * cw;
  canvas.height = rows * ch + 18;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.font = "10px monospace";
  g.textBaseline = "middle";
  for (let l = 0; l < rows; l++) {
    g.fillStyle = "#9aa4b2";
    g.fillText(`L${l}`, 2, l * ch + ch / 2);
    for (let kv = 0; kv < cols; kv++) {
      const v = grid[l][kv];
      g.fillStyle = cssColor(Math.sqrt(v / top));
      g.fillRect(left + kv * cw, l * ch, cw - 1, ch - 1);
      g.fillStyle = v / top > 0.5 ? "#000" : "#fff";
      g.fillText(fmt.fixed(v, 3), left + kv * cw + 3, l * ch + ch / 2);
    }
  }
  g.fillStyle = "#9aa4b2";
  for (let kv = 0; kv < cols; kv++) g.fillText(`h${kv}`, left + kv * cw + 3, rows * ch + 9);
}

export function resize() { ui.chart.resize(); }

// Tests read what was drawn.
export const view = { get shown() { return shown; }, get datasets() { return ui.chart.data.datasets; } };
