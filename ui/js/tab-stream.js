// Live Stream tab: the model reads the prompt one token per step; each step brings
// one attention row (O(n) numbers) that is appended to the heatmap. A single promise
// chain serialises every stream call, so the timer never overlaps a step and a view
// switch never interleaves with one.
import { call } from "./bridge.js";
import { h, fill, field, onEnter, markField } from "./dom.js";
import * as fmt from "./format.js";
import * as status from "./status.js";
import { app, on } from "./state.js";
import { requireModel, onShown } from "./tabs.js";
import { Heatmap } from "./heatmap.js";
import { ScoreGrid } from "./scoregrid.js";
import { lineChart, setData, SERIES } from "./charts.js";
import { savePNG, saveJSON } from "./export.js";
import { userMessage } from "./fielderror.js";

// Each Api field as this tab labels it (errors in the user's words; heavy_fraction is typed in %).
const FIELDS = {
  prompt: { label: "Prompt" }, generate: { label: "Generate N", type: "a whole number of new tokens from 0 to 4,096" },
  temperature: { label: "Temperature", type: "a number from 0 (greedy) to 5" },
  sink_threshold: { label: "Sink threshold", type: "a mean attention from 0.001 to 1, e.g. 0.1" },
  heavy_fraction: { label: "Heavy hitters %", pct: true },
  sink_count: { label: "Sink count k", type: "a whole number of tokens from 1 to 64" },
  "view.layer": { label: "Layer" }, "view.head": { label: "Head" }, cells: { label: "History cells", type: "a whole number from 16 to 1,024" },
};

const ui = {};
const MANY_LAYERS = 8;     // above this the first-k chart shows the mean and one picked layer, not a line per layer
let chain = Promise.resolve();
let running = false;       // the timer loop is on
let started = false;       // the backend holds a stream for this page
let finished = false;      // that stream reached its end (Start then starts over)
let massHistory = [];      // [{step, mass: [per layer]}] for the live chart
let stepsSinceState = 0;

function enqueue(fn) {
  const next = chain.then(fn, fn);
  chain = next.catch(() => {});
  return next;
}

export function init(panel) {
  ui.panel = panel;
  panel.classList.add("stream-layout");
  panel.append(controlsCard(), mainCard(), sideCard());
  requireModel(panel, "The live stream runs the loaded model token by token.");
  on("model", modelChanged);
  onShown("stream", () => ui.chart && ui.chart.resize());
}

// ---------- controls ----------
function controlsCard() {
  ui.prompt = h("textarea", { rows: 2, dataset: { field: "prompt" }, placeholder: "Prompt to stream (Enter starts, Shift+Enter = new line)" },
    "In the beginning the Universe was created. This has made a lot of people very angry and been widely regarded as a bad move.");
  ui.generate = num("generate", 0, 0, 4096, 1, "New tokens to generate after the prompt");
  ui.temperature = num("temperature", 0, 0, 5, 0.1, "0 = greedy");
  ui.interval = h("input", { type: "range", min: 50, max: 1000, step: 10, value: 150 });
  ui.intervalOut = h("span", { class: "mono interval-out" }, "150 ms");
  ui.interval.addEventListener("input", () => { ui.intervalOut.textContent = ui.interval.value + " ms"; });
  ui.threshold = num("sink_threshold", 0.1, 0.001, 1, 0.01, "A key is a sink when its mean received attention ≥ this");
  ui.heavy = num("heavy_fraction", 10, 0, 100, 1, "Heavy hitters: the top X% of keys by accumulated attention (H2O)");
  ui.sinkCount = num("sink_count", 4, 1, 64, 1, "k: the first k tokens whose attention mass the chart tracks");
  ui.cells = num("cells", 256, 16, 1024, 1, "History cells per side: a context longer than this keeps its past rows pooled to this many row and key ranges (bounded memory)");
  ui.layer = h("select", { dataset: { field: "view.layer" }, onchange: changeView });
  ui.head = h("select", { dataset: { field: "view.head" }, onchange: changeView });
  ui.scale = h("select", { onchange: () => ui.heatmap.setScale(ui.scale.value) }, ["sqrt", "linear", "log"].map((s) => h("option", {}, s)));

  // Stop pauses; Start resumes a paused stream and starts over after Reset or at the end.
  ui.startBtn = h("button", { class: "btn primary", onclick: startOrResume, dataset: { action: "start" } }, "▶ Start");
  ui.stopBtn = h("button", { class: "btn", onclick: stop, disabled: true, dataset: { action: "stop" }, title: "Pause; Start resumes" }, "❚❚ Stop");
  ui.stepBtn = h("button", { class: "btn", onclick: stepOnce, dataset: { action: "step" } }, "Step");
  ui.resetBtn = h("button", { class: "btn danger", onclick: reset, dataset: { action: "reset" }, title: "Forget this stream; Start then begins at token 1" }, "Reset");
  // Always takes its line (shown or not), so the buttons below do not jump when it appears.
  ui.settingsNote = h("div", { class: "hint settings-note off" }, "The prompt and these settings belong to the running stream: Reset to change them.");
  onEnter(ui.prompt, startOrResume);

  return h("div", { class: "card stream-controls" },
    h("div", { class: "row" }, h("div", { class: "grow" }, ui.prompt),
      h("div", { class: "form-grid stream-numbers" },
        field("Generate N", ui.generate), field("Temperature", ui.temperature),
        field("Sink threshold", ui.threshold), field("Heavy hitters %", ui.heavy), field("Sink count k", ui.sinkCount), field("History cells", ui.cells))),
    ui.settingsNote,
    h("div", { class: "row" }, ui.startBtn, ui.stopBtn, ui.stepBtn, ui.resetBtn,
      h("label", { class: "field inline" }, "Interval", ui.interval, ui.intervalOut),
      h("span", { class: "grow" }),
      field("Layer", ui.layer, "field inline"), field("Head", ui.head, "field inline"), field("Scale", ui.scale, "field inline"),
      h("button", { class: "btn small", onclick: () => savePNG("stream-heatmap", ui.heatmap.canvas) }, "PNG"),
      h("button", { class: "btn small", onclick: exportJSON }, "JSON")));
}

function num(name, value, min, max, step, title) {
  return h("input", { type: "number", value: String(value), min: String(min), max: String(max), step: String(step), title, dataset: { field: name } });
}

// The settings a stream was started with are fixed for it (the backend marks sinks as it goes):
// while a stream is open they are disabled and say so, instead of being silently ignored.
function lockSettings() {
  const locked = started && !finished;
  for (const input of [ui.prompt, ui.generate, ui.temperature, ui.threshold, ui.heavy, ui.sinkCount, ui.cells]) {
    input.disabled = locked;
  }
  ui.settingsNote.classList.toggle("off", !locked);
  ui.startBtn.textContent = locked && !running ? "▶ Resume" : "▶ Start";
  ui.startBtn.title = locked ? "Resume where the stream paused" : "Start from the first token";
}

function startOrResume() {
  if (running) return;
  if (started && !finished) play();   // Stop paused it: go on from the next token
  else startStream();
}

function mainCard() {
  ui.info = h("div", { class: "hint mono stream-info" }, "Press Start to stream the prompt.");
  const body = h("div");
  const card = h("div", { class: "card stream-main" }, h("h2", {}, "Attention, one row per step"), ui.info, body);
  ui.heatmap = new Heatmap(body, { maxHeight: () => Math.max(360, window.innerHeight - 250), emptyText: "The heatmap grows here, one query row per step." });
  return card;
}

function sideCard() {
  ui.chartCanvas = h("canvas");
  ui.massLayer = h("select", { class: "mass-layer hidden", dataset: { field: "mass_layer" }, title: "Many layers: the mean over layers, and one layer", onchange: renderMassChart });
  ui.gridBox = h("div");
  ui.recommended = h("div", { class: "recommended" });
  ui.sinkTable = h("tbody");
  const card = h("div", { class: "stream-side" },
    h("div", { class: "card" }, h("h2", {}, "Mass on the first k tokens, by layer", h("span", { class: "spacer" }), ui.massLayer,
      h("button", { class: "btn small", onclick: () => ui.chart && savePNG("stream-sink-mass", ui.chartCanvas) }, "PNG")),
    h("div", { class: "chart-box" }, ui.chartCanvas)),
    h("div", { class: "card" }, h("h2", {}, "Sink score, layers × heads", h("span", { class: "spacer" }),
      h("button", { class: "btn small", onclick: () => savePNG("stream-sink-grid", ui.grid.canvas) }, "PNG")), ui.gridBox, ui.recommended),
    h("div", { class: "card" }, h("h2", {}, "Sinks in this view"),
      h("table", { class: "data sink-table" }, h("thead", {}, h("tr", {}, h("th", {}, "pos"), h("th", { class: "left" }, "token"), h("th", {}, "score"), h("th", {}, "since step"))), ui.sinkTable)));
  ui.grid = new ScoreGrid(ui.gridBox, { describe: (l, hd, v) => `layer ${l} head ${hd}\nmean attention on token 0: ${v == null ? "—" : v.toFixed(3)}`,
    legend: "colour = mean attention on token 0 (sqrt scale)" });
  ui.chart = lineChart(ui.chartCanvas, { xTitle: "step", yTitle: "mass on first k", scales: { y: { max: 1 } } });
  return card;
}

// ---------- model + view ----------
function modelChanged(model) {
  stop();
  started = false;
  finished = false;
  const spec = (model && model.spec) || {};
  const layers = spec.layers || 0, heads = spec.heads || 0;
  fill(ui.layer, h("option", { value: "all" }, "all (mean)"),
    Array.from({ length: layers }, (_, i) => h("option", { value: String(i), selected: i === layers - 1 }, String(i))));
  fill(ui.head, h("option", { value: "" }, "mean"), Array.from({ length: heads }, (_, i) => h("option", { value: String(i) }, String(i))));
  view();  // the new layer list starts on one layer: the Head list is usable again
  fill(ui.massLayer, h("option", { value: "" }, "mean of layers"),
    Array.from({ length: layers }, (_, i) => h("option", { value: String(i) }, `mean + layer ${i}`)));
  ui.massLayer.classList.toggle("hidden", layers <= MANY_LAYERS);
  clearViews(model ? "Press Start to stream the prompt." : "Load a model to stream.");
  lockSettings();
}

function view() {
  const layer = ui.layer.value === "all" ? "all" : Number(ui.layer.value || -1);
  ui.head.disabled = layer === "all";  // the all-layers view is a mean over every head
  return { layer, head: layer === "all" || ui.head.value === "" ? null : Number(ui.head.value) };
}

function clearViews(message) {
  ui.lastStep = null;
  ui.heatmap.clear();
  massHistory = [];
  setData(ui.chart, [], []);
  ui.grid.set([]);
  fill(ui.sinkTable);
  ui.recommended.textContent = "";
  ui.info.textContent = message;
}

// Switching layer/head redraws from the stored history: no model run.
function changeView() {
  const v = view();
  if (!started) return;
  enqueue(async () => {
    const res = await call("stream_view", v);
    if (!res.ok) return;
    const sinks = res.sinks.map((s) => s.position);
    if (res.cells) {  // a context longer than the cells: the pooled history, max of each cell
      ui.heatmap.setGrid({ tokens: res.tokens, rowEdges: res.cells.row_edges, colEdges: res.cells.col_edges, cells: res.cells.max,
                           sinks, heavy: res.heavy_hitters, pooling: "max" });
    } else {
      ui.heatmap.setData({ tokens: res.tokens, rows: res.rows, sinks, heavy: res.heavy_hitters });
    }
    renderSinkTable(res.sinks);
    if (ui.lastStep) renderInfo(ui.lastStep, res.sinks, res.heavy_hitters);  // this view's counts, not the previous one's
  });
}

// ---------- run ----------
async function startStream(playAfter = true) {
  stop();
  if (!app.model) return;
  await enqueue(async () => {
    const res = await call("stream_start", {
      prompt: ui.prompt.value, generate: Number(ui.generate.value), temperature: Number(ui.temperature.value),
      sink_threshold: Number(ui.threshold.value), heavy_fraction: Number(ui.heavy.value) / 100,
      sink_count: Number(ui.sinkCount.value), cells: Number(ui.cells.value), view: view(),
    });
    markField(ui.panel, res);
    if (!res.ok) { showError(res); started = false; return; }
    started = true;
    finished = false;
    const cells = res.cells ? ` pooled to ${res.cells.row_edges.length - 1} × ${res.cells.col_edges.length - 1} cells (max pooling; `
      + `the first ${fmt.int(Number(ui.sinkCount.value))} keys keep a column each)` : "";
    clearViews(`${res.prompt_tokens} prompt tokens${res.generate ? ` + ${res.generate} to generate` : ""} · up to ${fmt.int(res.max_tokens)} tokens · history${cells} ${fmt.bytes(res.history_bytes)}`
      + (res.note ? ` · ${res.note}` : ""));  // #11: a prompt past the context streams up to it, and says so
    // Past the cells the heatmap is the pooled history; each step redraws the row bin it lands in.
    if (res.cells) ui.heatmap.setGrid({ tokens: [], rowEdges: res.cells.row_edges, colEdges: res.cells.col_edges, cells: [], pooling: "max" });
    ui.cutNote = res.note ? ` · prompt cut to its first ${fmt.int(res.prompt_tokens)} of ${fmt.int(res.prompt_tokens_given)} tokens` : "";
    ui.total = res.prompt_tokens + (res.generate || 0);
  });
  lockSettings();
  if (started && playAfter) play();
}

function play() {
  running = true;
  ui.startBtn.disabled = true;
  ui.stopBtn.disabled = false;
  lockSettings();
  ui.activity = status.begin("Streaming…");
  loop();
}

// One step per tick; the next tick is scheduled only after this one finished.
async function loop() {
  if (!running) return;
  const t0 = performance.now();
  const more = await enqueue(() => step(1));
  if (!more) { stop(); return; }
  if (running) setTimeout(loop, Math.max(0, Number(ui.interval.value) - (performance.now() - t0)));
}

function stop() {
  running = false;
  if (ui.startBtn) { ui.startBtn.disabled = false; ui.stopBtn.disabled = true; lockSettings(); }
  if (ui.activity) { ui.activity.end(); ui.activity = null; }
  if (started) enqueue(refreshState);
}

async function stepOnce() {
  stop();
  if (!started || finished) await startStream(false);  // Step with no stream: start it paused, then take one step
  await enqueue(() => step(1));
  await enqueue(refreshState);
}

async function reset() {
  stop();
  await enqueue(async () => {
    await call("stream_reset");
    started = false;
    finished = false;
    clearViews("Reset. Press Start to stream the prompt from its first token.");
    lockSettings();
  });
}

/** One stream_step call; returns true while there is more to stream. */
async function step(n) {
  if (!started) return false;
  const v = view();
  const res = await call("stream_step", { steps: n, view: v });
  if (!res.ok) {
    if (res.error.code === "no_stream") { started = false; clearViews(res.error.message); }
    showError(res);
    lockSettings();
    return false;
  }
  for (const s of res.steps) {
    if (s.cells_row) ui.heatmap.setCellRow(s.cells_row.row, s.cells_row.max, s.token);
    else ui.heatmap.appendRow(s.row, s.token);
  }
  ui.heatmap.setMarkers(res.sinks.map((s) => s.position), res.heavy_hitters);
  renderSinkTable(res.sinks);
  if (res.steps.length) {
    const last = res.steps[res.steps.length - 1];
    massHistory.push({ step: last.position, mass: res.sink_mass_by_layer });
    renderMassChart();
    ui.lastStep = last;
    renderInfo(last, res.sinks, res.heavy_hitters);
  }
  if (++stepsSinceState >= 8) { stepsSinceState = 0; await refreshState(); }
  if (res.done) {
    finished = true;
    ui.doneNote = (res.message || "done") + " · Start streams it again from the first token";
    ui.info.textContent += " · " + ui.doneNote;
    lockSettings();
    return false;
  }
  return true;
}

/** The header: where the stream is, and the sinks and heavy hitters of the view on screen. */
function renderInfo(last, sinks, heavy) {
  ui.info.textContent = `token ${last.position + 1}${ui.total ? " / " + ui.total : ""} · ${JSON.stringify(last.token)}${last.generated ? " (generated)" : ""}`
    + ` · step ${fmt.secs(last.step_seconds)} · ${fmt.plural(sinks.length, "sink")} · ${fmt.plural(heavy.length, "heavy hitter")}${ui.cutNote || ""}`
    + (finished ? ` · ${ui.doneNote}` : "");
}

async function refreshState() {
  if (!started) return;
  const st = await call("stream_state");
  if (!st.ok || !st.active) return;
  ui.grid.set(st.sink_grid);
  ui.recommended.textContent = st.recommended_sinks_note ? `Recommended sink count: ${st.recommended_sinks_note}`
    : `Recommended sink count for this model: ${st.recommended_sinks} (per layer: ${(st.recommended_sinks_by_layer || []).join(" ")})`;
}

function renderSinkTable(sinks) {
  fill(ui.sinkTable, sinks.length ? sinks.map((s) => h("tr", {},
    h("td", {}, String(s.position)), h("td", { class: "tok" }, JSON.stringify(s.token)), h("td", {}, fmt.fixed(s.score, 3)),
    h("td", {}, s.since_step == null ? "—" : String(s.since_step))))
    : h("tr", {}, h("td", { colspan: 4, class: "hint" }, "No key above the sink threshold yet.")));
}

function renderMassChart() {
  const layers = massHistory.length ? massHistory[massHistory.length - 1].mass.length : 0;
  // Thin the history so a 4,000-step stream still redraws quickly.
  const stride = Math.ceil(massHistory.length / 600);
  const pts = massHistory.filter((_, i) => i % stride === 0 || i === massHistory.length - 1);
  if (layers <= MANY_LAYERS) {
    setData(ui.chart, pts.map((p) => p.step), Array.from({ length: layers }, (_, l) => ({
      label: "L" + l, data: pts.map((p) => p.mass[l]), color: SERIES[l % SERIES.length],
    })));
    return;
  }
  // 30 layers would need a 4-row legend and repeat colours: the mean over layers, its min–max
  // band, and the one layer picked in the list above the chart.
  const mean = pts.map((p) => p.mass.reduce((a, b) => a + b, 0) / p.mass.length);
  const sets = [
    { label: "max over layers", data: pts.map((p) => Math.max(...p.mass)), color: "rgba(229,231,235,.25)", borderWidth: 0, fill: "+1", backgroundColor: "rgba(229,231,235,.10)" },
    { label: "min over layers", data: pts.map((p) => Math.min(...p.mass)), color: "rgba(229,231,235,.25)", borderWidth: 0 },
    { label: `mean of ${layers} layers`, data: mean, color: "#e5e7eb" },
  ];
  const picked = ui.massLayer.value;
  if (picked !== "") sets.push({ label: "layer " + picked, data: pts.map((p) => p.mass[Number(picked)]), color: SERIES[0] });
  setData(ui.chart, pts.map((p) => p.step), sets);
}

/** The stream's error, naming the field as this tab labels it, in its units. */
function showError(res) {
  const msg = userMessage(res.error, FIELDS);
  ui.info.textContent = msg;
  status.error(msg);
}

async function exportJSON() {
  if (!started) return;
  const res = await enqueue(() => call("stream_export", view()));
  if (res.ok) { const { ok, ...data } = res; saveJSON("stream", data); }
}

/** For tests: the stream heatmap, the sink grid and whether the timer runs. */
export function sinkGrid() { return ui.grid; }
export function heatmap() { return ui.heatmap; }
export function isRunning() { return running; }
export function massChart() { return ui.chart; }
export function stepsShown() { return massHistory.length; }  // tokens streamed so far (pooled or not)
