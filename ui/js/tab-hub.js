// Model Hub tab: find a model (Hub search, Local list, a folder), see its info card,
// pick device/precision/token, load it with progress and Cancel, then try it with
// the Quick Attention Test. Every name, tag and card text is inserted as text.
import { call, runJob, pollJob, mode } from "./bridge.js";
import { h, fill, field, onEnter, markField } from "./dom.js";
import * as fmt from "./format.js";
import * as status from "./status.js";
import { app, on, setModel } from "./state.js";
import { showTab } from "./tabs.js";
import { Heatmap } from "./heatmap.js";
import { savePNG, saveJSON } from "./export.js";
import { userMessage, fieldError } from "./fielderror.js";

// Each Api field as this tab labels it (errors in the user's words).
const FIELDS = {
  query: { label: "Search" }, folder: { label: "Folder" }, source: { label: "Model" }, device: { label: "Device" },
  precision: { label: "Precision" }, token: { label: "HF token" }, text: { label: "Text" },
  layer: { label: "Layer (−1 = last)" }, head: { label: "Head (blank = mean)" }, cells: { label: "Cells per side" },
};

const STAGES = ["Downloading", "Loading tokenizer", "Loading weights", "Ready"];

const ui = {};            // the tab's elements, built once
let selected = null;      // {kind: "hub"|"local", id, source, path?, info?}
let loadJob = null;       // job id while a load runs
let lastAttention = null; // the attention() answer behind the heatmap
let attentionModel = null; // the model that produced it (a later model makes it stale)

export function init(panel) {
  ui.panel = panel;
  panel.classList.add("hub-layout");
  panel.append(h("div", { class: "hub-col" }, searchCard(), localCard()), modelCard(), attentionCard(), ui.zoomBox);
  on("model", renderLoaded);
  on("model", (model) => {
    if (lastAttention && model && model.source !== attentionModel) markAttentionStale("from the previous model");
    ui.heatmap.empty.textContent = model ? "Type a text and press Get Attention to draw the heatmap."
      : "Load a model, then Get Attention to draw the heatmap.";
  });
}

/** Called once app_info is known: devices, precisions, token. */
export async function start(info) {
  fillDevices(info);
  renderToken(info && info.token);
  await refreshLocal();
  // `make run` starts loading the demo model as the window opens (main.py): show that load here.
  const jobs = await call("running_jobs");
  const job = jobs.ok && (jobs.jobs || []).find((j) => j.kind === "load");
  if (job) load(job.job_id);
}

// ---------- search ----------
function searchCard() {
  ui.query = h("input", { type: "text", placeholder: "Search the Hub, e.g. gpt2, llama, qwen", class: "grow", dataset: { field: "query" } });
  ui.searchBtn = h("button", { class: "btn", onclick: search }, "Search");
  ui.searchHint = h("div", { class: "hint" }, "Text-generation models, most downloaded first.");
  ui.results = h("ul", { class: "list results" }, h("li", { class: "empty" }, "No search yet."));
  onEnter(ui.query, search);
  return h("div", { class: "card hub-search" }, h("h2", {}, "Hugging Face Hub"),
    h("div", { class: "row" }, ui.query, ui.searchBtn), ui.searchHint, ui.results);
}

async function search() {
  const act = status.begin("Searching the Hub…");
  ui.searchBtn.disabled = true;
  const res = await call("hub_search", { query: ui.query.value.trim(), limit: 30 });
  ui.searchBtn.disabled = false;
  act.end();
  markField(ui.panel, res);
  if (!res.ok) {
    ui.searchHint.className = "hint err";
    ui.searchHint.textContent = res.error.message;
    return;
  }
  ui.searchHint.className = res.offline ? "hint warn" : "hint";
  ui.searchHint.textContent = res.offline
    ? (res.message || "The Hub is not reachable; local models still work.")
    : `${res.models.length} models${res.message ? " — " + res.message : ""}`;
  fill(ui.results, res.models.length ? res.models.map(resultItem) : h("li", { class: "empty" }, "No models found."));
}

function resultItem(m) {
  const li = h("li", { onclick: () => selectHub(m, li) },
    h("div", { class: "name", title: m.id }, m.id),
    h("div", { class: "meta" },
      h("span", {}, "↓ " + fmt.count(m.downloads)), h("span", {}, "♥ " + fmt.count(m.likes)),
      m.pipeline_tag ? h("span", {}, m.pipeline_tag) : null,
      m.gated ? h("span", { class: "tag gated" }, "gated") : null,
      (m.tags || []).filter((t) => !t.includes(":")).slice(0, 4).map((t) => h("span", { class: "tag" }, t))));
  return li;
}

// ---------- local ----------
function localCard() {
  ui.local = h("ul", { class: "list local" }, h("li", { class: "empty" }, "Looking for local models…"));
  ui.folderHint = h("div", { class: "hint err folder-hint hidden" });
  ui.folder = h("input", { type: "text", class: "grow mono", placeholder: "/path/to/model-folder", dataset: { field: "folder" } });
  const browse = h("button", { class: "btn", title: "Native folder dialog (desktop window only)", onclick: pickFolder }, "Browse…");
  const use = h("button", { class: "btn", onclick: () => useFolder(ui.folder.value.trim()) }, "Use folder");
  if (mode === "browser") { browse.disabled = true; browse.title = "No file dialog in browser mode: type the path"; }
  onEnter(ui.folder, () => useFolder(ui.folder.value.trim()));
  return h("div", { class: "card hub-local" },
    h("h2", {}, "Local models", h("span", { class: "spacer" }), h("button", { class: "btn small", onclick: () => refreshLocal() }, "Rescan")),
    ui.local, h("div", { class: "row" }, ui.folder, browse, use), ui.folderHint);
}

async function refreshLocal(folder) {
  const res = await call("local_models", folder ? { folder } : {});
  markField(ui.panel, res);
  ui.folderHint.classList.add("hidden");
  if (!res.ok) {
    // A bad folder is one bad entry, not a reason to lose the list: say so under the folder box.
    const msg = userMessage(res.error, FIELDS);
    if (folder) { ui.folderHint.textContent = msg; ui.folderHint.classList.remove("hidden"); }
    else fill(ui.local, h("li", { class: "empty" }, msg));
    status.error(msg);
    return null;
  }
  const items = res.models.map((m) => {
    const li = h("li", { onclick: () => selectLocal(m, li) },
      h("div", { class: "name", title: m.path }, m.source === "demo" ? "demo — bundled demo model" : m.id),
      h("div", { class: "meta" }, h("span", { class: "tag" }, m.source), m.model_type ? h("span", {}, m.model_type) : null,
        m.format === "gguf" ? h("span", { class: "tag gguf" }, `GGUF ${m.quantization || ""}`) : null,  // #11: read from the file's header
        m.parameters ? h("span", {}, `${fmt.count(m.parameters)} params`) : null,
        h("span", {}, fmt.bytes(m.size_bytes)), h("span", { class: "mono", title: m.path }, shortPath(m.path))),
      m.error ? h("div", { class: "hint warn" }, m.error) : null);
    li.dataset.source = m.source;
    return li;
  });
  fill(ui.local, items.length ? items : h("li", { class: "empty" }, "No local models found."));
  if (!selected && res.models.length) {  // the demo model is the default choice
    const i = Math.max(0, res.models.findIndex((m) => m.source === "demo"));
    selectLocal(res.models[i], items[i]);
  }
  return res.models;
}

function shortPath(p) { return p && p.length > 42 ? "…" + p.slice(-41) : p || ""; }

async function pickFolder() {
  const res = await call("pick_folder");
  if (res.ok && res.path) { ui.folder.value = res.path; useFolder(res.path); }
}

async function useFolder(path) {
  if (!path) { showFolderError("type the path of a model folder (config.json and weights), or use Browse…"); return; }
  const models = await refreshLocal(path);
  if (!models) {  // nothing valid is selected now: Load must not quietly load the previous choice
    selected = null;
    markSelected(null);
    ui.infoTitle.textContent = "—";
    fill(ui.infoKv);
    fill(ui.infoMemory, h("span", { class: "hint" }, "Pick a model in a list, or fix the folder."));
    resetLoadProgress();
    return;
  }
  const m = models.find((x) => x.source === "folder") || { id: path, source: "folder", path };
  const li = [...ui.local.children].find((n) => n.dataset.source === "folder");
  selectLocal(m, li);
}

function showFolderError(what) {
  const res = fieldError("folder", FIELDS, what);
  markField(ui.panel, res);
  ui.folderHint.textContent = res.error.message;
  ui.folderHint.classList.remove("hidden");
}

// ---------- selection + info card ----------
function markSelected(li) {
  ui.panel.querySelectorAll(".list li.selected").forEach((n) => n.classList.remove("selected"));
  if (li) li.classList.add("selected");
}

// The load progress ("Ready", stages, a load error) belongs to the last load: hide it once the
// selection moves to another model.
function resetLoadProgress() {
  ui.progress.classList.add("hidden");
  ui.stages.classList.add("hidden");
  ui.loadDetail.textContent = "";
  ui.loadDetail.className = "hint mono load-detail";
}

function selectLocal(m, li) {
  if (!selected || selected.id !== m.id) resetLoadProgress();
  markSelected(li);
  // `load` is what load_model takes ("demo", "smollm2", a folder or a .gguf file; docs/api.md)
  selected = { kind: "local", id: m.id, source: m.load || (m.source === "demo" ? "demo" : m.path), path: m.path, local: m };
  renderInfo();
  if (m.format === "gguf" && !m.error) fetchGgufInfo();
}

/** #11: a GGUF's card — the memory it takes once dequantized to the chosen precision (the verdict uses that). */
async function fetchGgufInfo() {
  const want = selected;
  const res = await call("gguf_info", { path: want.source === "smollm2" ? "smollm2" : want.path, device: ui.device.value, precision: ui.precision.value });
  if (selected !== want) return;
  want.info = res.ok ? res : null;
  renderInfo(res.ok ? null : res.error.message);
}

async function selectHub(m, li) {
  if (!selected || selected.id !== m.id) resetLoadProgress();
  markSelected(li);
  selected = { kind: "hub", id: m.id, source: m.id, summary: m };
  renderInfo();
  await fetchHubInfo();
}

async function fetchHubInfo() {
  if (selected && selected.kind === "local" && selected.local.format === "gguf" && !selected.local.error) return fetchGgufInfo();
  if (!selected || selected.kind !== "hub") return;
  const want = selected;
  fill(ui.infoMemory, h("span", { class: "hint" }, "Asking the Hub…"));
  const res = await call("hub_model_info", { repo_id: want.id, device: ui.device.value, precision: ui.precision.value });
  if (selected !== want) return;  // the user clicked something else meanwhile
  want.info = res.ok ? res : null;
  renderInfo(res.ok ? null : res.error.message);
}

function modelCard() {
  ui.infoTitle = h("div", { class: "info-title mono" }, "—");
  ui.infoKv = h("dl", { class: "kv" });
  ui.infoMemory = h("div", { class: "memory" });
  ui.infoCard = h("div", { class: "card-excerpt hidden" });

  ui.device = h("select", { dataset: { field: "device" }, onchange: fetchHubInfo });
  ui.precision = h("select", { dataset: { field: "precision" }, onchange: fetchHubInfo },
    ["auto", "fp16", "bf16", "fp32"].map((p) => h("option", { value: p }, p === "auto" ? "Auto (fp16 GPU / fp32 CPU)" : p)));
  ui.tokenState = h("span", { class: "token-state" });
  ui.tokenInput = h("input", { type: "password", placeholder: "paste hf_… for this session", class: "grow", autocomplete: "off", dataset: { field: "token" } });
  const setTok = h("button", { class: "btn", onclick: setToken }, "Use");
  onEnter(ui.tokenInput, setToken);
  ui.trust = h("input", { type: "checkbox", onchange: () => ui.trustWarn.classList.toggle("hidden", !ui.trust.checked) });
  ui.trustWarn = h("div", { class: "hint warn hidden" },
    "⚠ Trust remote code runs Python from the model repository on this machine. Only enable it for repositories you trust.");

  ui.loadBtn = h("button", { class: "btn primary", onclick: load }, "Load model");
  ui.cancelBtn = h("button", { class: "btn danger hidden", onclick: cancelLoad }, "Cancel");
  ui.progress = h("div", { class: "progress hidden" }, h("div"));
  ui.stages = h("div", { class: "stages hidden" }, STAGES.map((s) => h("span", { dataset: { stage: s } }, s)));
  ui.loadDetail = h("div", { class: "hint mono load-detail" });

  ui.loaded = h("div", { class: "loaded-model" });
  ui.actions = h("div", { class: "row quick-actions" },
    h("span", { class: "hint" }, "Quick actions:"),
    h("button", { class: "btn small", onclick: () => showTab("stream") }, "Live Stream →"),
    h("button", { class: "btn small", onclick: () => showTab("eviction") }, "Eviction Sim →"),
    h("button", { class: "btn small", onclick: () => showTab("retrieval") }, "Retrieval →"),
    h("button", { class: "btn small", onclick: () => showTab("sweep") }, "Sweeps →"),
    h("button", { class: "btn small", onclick: () => showTab("profile") }, "Cache Profile →"));

  return h("div", { class: "card hub-model" },
    h("h2", {}, "Selected model"), ui.infoTitle, ui.infoKv, ui.infoMemory, ui.infoCard,
    h("div", { class: "form-grid load-settings" },
      field("Device", ui.device), field("Precision", ui.precision)),
    h("div", { class: "row token-row" }, h("span", { class: "hint" }, "HF token"), ui.tokenState),
    h("div", { class: "row" }, ui.tokenInput, setTok),
    h("label", { class: "field inline" }, ui.trust, "Trust remote code"), ui.trustWarn,
    h("div", { class: "row" }, ui.loadBtn, ui.cancelBtn, h("div", { class: "grow" }, ui.progress)),
    ui.stages, ui.loadDetail,
    h("h2", { class: "sub" }, "Loaded model"), ui.loaded, ui.actions);
}

function renderInfo(errorMessage) {
  if (!selected) return;
  ui.infoTitle.textContent = selected.id;
  ui.infoTitle.title = selected.id;
  const rows = [];
  if (selected.kind === "local") {
    const m = selected.local;
    rows.push(["source", m.source], ["path", m.path], ["type", m.model_type || "—"], ["size", fmt.bytes(m.size_bytes)]);
    fill(ui.infoMemory);
    if (m.format === "gguf") {  // #11: from the GGUF header; memory = parameters × the dequantized precision
      const i = selected.info || m;
      rows.push(["format", `GGUF ${i.quantization || "?"} → dequantized on load`], ["parameters", i.parameters ? fmt.count(i.parameters) : "—"],
        ["layers × heads", i.layers ? `${i.layers} × ${i.heads} (${i.kv_heads} KV)` : "—"], ["context", i.context_length ? fmt.int(i.context_length) : "—"]);
      const mem = selected.info && selected.info.memory;
      if (errorMessage || m.error) fill(ui.infoMemory, h("span", { class: "hint err" }, errorMessage || m.error));
      else if (mem) {
        fill(ui.infoMemory, h("span", {}, "memory after dequantization "),
          h("span", { class: "verdict " + (mem.verdict || "unknown") }, mem.verdict ? mem.verdict.replace(/_/g, " ") : (mem.reason || "unknown")),
          h("span", { class: "hint memory-need" }, memoryNeed(mem)));
      }
    }
    ui.infoCard.classList.add("hidden");
  } else {
    const i = selected.info || {};
    const s = selected.summary || {};
    rows.push(["author", i.author || s.author || "—"], ["downloads", fmt.int(i.downloads ?? s.downloads)],
      ["likes", fmt.int(i.likes ?? s.likes)], ["pipeline", i.pipeline_tag || s.pipeline_tag || "—"],
      ["gated", String(i.gated ?? s.gated ?? "—")], ["size", fmt.bytes(i.size_bytes)],
      ["parameters", i.parameters ? fmt.count(i.parameters) : "—"],
      ["tags", (i.tags || s.tags || []).slice(0, 12).join(", ") || "—"]);
    const mem = i.memory;
    if (errorMessage) fill(ui.infoMemory, h("span", { class: "hint err" }, errorMessage));
    else if (mem) {
      fill(ui.infoMemory, h("span", {}, "memory "),
        // verdict is null when the size is unknown (docs/api.md): say so instead of throwing.
        h("span", { class: "verdict " + (mem.verdict || "unknown") }, mem.verdict ? mem.verdict.replace(/_/g, " ") : (mem.reason || "unknown")),
        h("span", { class: "hint memory-need" }, memoryNeed(mem)));
    }
    ui.infoCard.textContent = i.card_excerpt || "";
    ui.infoCard.classList.toggle("hidden", !i.card_excerpt);
  }
  fill(ui.infoKv, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { title: String(v) }, String(v))]));
}

/** "needs 615.8 MiB (513.1 MiB of weights at 4 B/parameter × 1.2 …) of 12.0 GiB on cpu": why it is more than the weights. */
function memoryNeed(mem) {
  const parts = mem.weights_bytes != null
    ? ` (${fmt.bytes(mem.weights_bytes)} of weights at ${mem.bytes_per_element} B/parameter × ${mem.overhead} for the runtime's buffers, activations and a short KV cache)`
    : "";
  return ` needs ${fmt.bytes(mem.needed_bytes)}${parts} of ${fmt.bytes(mem.available_bytes)} on ${mem.device}`;
}

// ---------- device, precision, token ----------
function fillDevices(info) {
  const devices = (info && info.devices) || [{ id: "auto", label: "Auto", available: true }, { id: "cpu", label: "CPU", available: true }];
  fill(ui.device, devices.map((d) => h("option", {
    value: d.id, disabled: !d.available, title: d.reason || "",
  }, d.label + (d.available ? (d.memory_bytes ? ` · ${fmt.bytes(d.memory_bytes)}` : "") : ` — ${d.reason || "unavailable"}`))));
}

function renderToken(tok) {
  if (tok && tok.present) {
    fill(ui.tokenState, h("span", { class: "ok" }, "✔ "), h("span", { class: "mono" }, `${tok.masked || "hf_…"}`),
      h("span", { class: "hint" }, ` from ${tok.source}`));
  } else {
    fill(ui.tokenState, h("span", { class: "hint" }, "none — public models only"));
  }
}

async function setToken() {
  const res = await call("set_token", { token: ui.tokenInput.value });
  ui.tokenInput.value = "";  // never keep the secret in the page longer than needed
  markField(ui.panel, res);
  if (res.ok) { renderToken(res.token); status.note("Token set for this session"); }
}

// ---------- load ----------
/** Load the selected model, or follow a load already running (jobId: the one main.py started). */
async function load(jobId) {
  if (typeof jobId !== "string") jobId = null;
  if (!selected) {
    const msg = "Pick a model first: the demo model, a local folder or a Hub result.";
    status.error(msg);
    ui.loadDetail.textContent = msg;
    ui.loadDetail.className = "hint mono load-detail err";
    return;
  }
  ui.loadBtn.disabled = true;
  ui.cancelBtn.classList.remove("hidden");
  ui.progress.classList.remove("hidden");
  ui.stages.classList.remove("hidden");
  delete ui.stages.dataset.downloaded;  // this load has not downloaded anything yet
  ui.loadDetail.textContent = "";
  const act = status.begin(`Loading ${selected.id}…`);
  const onProgress = (st) => showProgress(st, act);
  if (jobId) loadJob = jobId;
  const res = jobId ? await pollJob(jobId, onProgress) : await runJob("load_model", {
    source: selected.source, device: ui.device.value, precision: ui.precision.value, trust_remote_code: ui.trust.checked,
  }, onProgress, (id) => { loadJob = id; });
  loadJob = null;
  act.end();
  ui.loadBtn.disabled = false;
  ui.cancelBtn.classList.add("hidden");
  if (!res.ok && res.error.code === "needs_remote_code") return askTrust(res.error.message);
  markField(ui.panel, res);
  if (!res.ok) {
    ui.progress.classList.add("hidden");
    ui.loadDetail.textContent = res.error.code === "cancelled" ? "Cancelled; the previous model stays loaded." : userMessage(res.error, FIELDS);
    ui.loadDetail.className = "hint mono load-detail " + (res.error.code === "cancelled" ? "" : "err");
    return;
  }
  showProgress({ fraction: 1, stage: "Ready" }, act);
  ui.loadDetail.className = "hint mono load-detail";
  const info = await call("model_info");
  setModel(info.ok ? info : { loaded: true, ...res.result });
  status.note(`Loaded ${selected.id}`);
}

/** The model ships its own code: a question for the user (run it?), not an error. */
function askTrust(message) {
  ui.progress.classList.add("hidden");
  ui.stages.classList.add("hidden");
  status.question(message);
  fill(ui.loadDetail, h("span", {}, message + " "),
    h("button", { class: "btn small danger", onclick: () => { ui.trust.checked = true; ui.trustWarn.classList.remove("hidden"); load(); } },
      "Trust remote code and load"));
  ui.loadDetail.className = "hint load-detail question";
}

function showProgress(st, act) {
  ui.progress.firstChild.style.width = `${Math.round((st.fraction || 0) * 100)}%`;
  const idx = STAGES.indexOf(st.stage);
  if (st.stage === "Downloading") ui.stages.dataset.downloaded = "1";
  // A local model (a folder, a GGUF file) never downloads: its Downloading stage is skipped, not done (green).
  const skipped = (name) => name === "Downloading" && !ui.stages.dataset.downloaded;
  ui.stages.querySelectorAll("span").forEach((s, i) => {
    s.className = idx < 0 ? "" : skipped(STAGES[i]) ? "skipped" : i < idx ? "done" : i === idx ? "current" : "";
    s.title = skipped(STAGES[i]) && idx > i ? "Nothing to download: the model is on this machine" : "";
  });
  let detail = st.stage || "";
  if (st.stage === "Downloading" && st.bytes_total) {
    detail += ` ${fmt.bytes(st.bytes_done)} / ${fmt.bytes(st.bytes_total)} · ${fmt.pct(st.bytes_done / st.bytes_total, 0)} · ${fmt.rate(st.speed_bps)}`;
  }
  if (st.stage === "Loading weights" && st.note) detail += ` (${st.note})`;  // #11: "dequantizing Q4_1 to float32"
  ui.loadDetail.textContent = detail;
  act.update(`Loading model: ${detail}`);
}

async function cancelLoad() {
  if (loadJob) await call("cancel_job", { job_id: loadJob });
}

function renderLoaded(model) {
  if (!model) { fill(ui.loaded, h("div", { class: "hint" }, "No model loaded yet. The demo model works offline.")); return; }
  const s = model.spec || {};
  const rows = [
    ["source", model.source], ["device", model.device], ["dtype", model.dtype], ["type", s.model_type],
    ["format", s.format === "gguf" ? `GGUF ${s.quantization}, dequantized to ${s.dequantized_to}` : null],
    ["layers", s.layers], ["heads", s.heads], ["KV heads", s.kv_heads], ["hidden", s.hidden_size], ["head dim", s.head_dim],
    ["vocab", fmt.int(s.vocab_size)], ["context", fmt.int(s.context_length)], ["parameters", fmt.count(s.parameters)],
    ["weights", fmt.bytes(s.weights_bytes)], ["KV / token", fmt.bytes(s.kv_bytes_per_token)], ["positions", s.position_scheme],
  ].filter(([, v]) => v != null && v !== "");
  fill(ui.loaded, h("dl", { class: "kv kv-2col" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { title: String(v) }, String(v))])));
}

// ---------- quick attention test ----------
function attentionCard() {
  ui.text = h("textarea", { rows: 3, dataset: { field: "text" }, placeholder: "Text to run through the model" },
    "The quick brown fox jumps over the lazy dog. Attention sinks soak up the attention that has nowhere else to go.");
  ui.layer = h("input", { type: "number", value: "-1", step: "1", dataset: { field: "layer" }, title: "-1 = last layer" });
  ui.head = h("input", { type: "text", placeholder: "mean", dataset: { field: "head" }, title: "blank = mean over heads" });
  ui.scale = h("select", { onchange: () => { ui.heatmap.setScale(ui.scale.value); ui.zoom.setScale(ui.scale.value); } },
    ["sqrt", "linear", "log"].map((s) => h("option", { value: s }, s)));
  // Past CELLS tokens the heatmap is an overview of pooled cells: max keeps every sink and spike visible,
  // mean shows where the mass goes. Sink columns keep a cell of their own either way.
  ui.pooling = h("select", { dataset: { field: "pooling" }, onchange: drawAttention, title: "how a cell of many tokens is drawn" },
    [["max", "max pooling"], ["mean", "mean pooling"]].map(([v, t]) => h("option", { value: v }, t)));
  ui.cells = h("input", { type: "number", value: "256", min: "16", max: "1024", step: "1", dataset: { field: "cells" },
    title: "the overview's cells per side: a longer text is pooled to this many query and key ranges" });
  ui.attnBtn = h("button", { class: "btn primary", onclick: getAttention }, "Get Attention");
  ui.attnInfo = h("div", { class: "hint mono attn-info" });
  ui.attnStale = h("div", { class: "hint warn attn-stale hidden" });
  onEnter(ui.text, getAttention);
  onEnter(ui.layer, getAttention);
  onEnter(ui.head, getAttention);
  const body = h("div", { class: "attn-body" });
  const card = h("div", { class: "card hub-attention" },
    h("h2", {}, "Quick Attention Test", h("span", { class: "spacer" }),
      h("button", { class: "btn small", onclick: () => lastAttention && savePNG("attention", ui.heatmap.canvas) }, "PNG"),
      h("button", { class: "btn small", onclick: exportMatrix }, "Matrix JSON")),
    ui.text,
    h("div", { class: "row" }, field("Layer (−1 = last)", ui.layer, "field inline"), field("Head (blank = mean)", ui.head, "field inline"),
      field("Scale", ui.scale, "field inline"), field("Cells per side", ui.cells, "field inline"), field("Pooling", ui.pooling, "field inline"), h("span", { class: "grow" }), ui.attnBtn),
    ui.attnInfo, ui.attnStale, body);
  ui.heatmap = new Heatmap(body, { maxHeight: 620, emptyText: "Load a model, then Get Attention to draw the heatmap." });
  ui.heatmap.onCell = zoomTo;
  ui.zoomInfo = h("div", { class: "hint mono zoom-info" });
  ui.zoomBox = h("div", { class: "card hub-zoom hidden" },  // its own card: the Quick Attention card keeps one heatmap
    h("h2", {}, "Zoom", h("span", { class: "spacer" }),
      h("button", { class: "btn small", onclick: () => ui.zoomBox.classList.add("hidden") }, "Close")), ui.zoomInfo);
  ui.zoom = new Heatmap(ui.zoomBox, { maxHeight: 560, emptyText: "Click a cell of the overview to zoom there." });
  return card;
}

async function getAttention() {
  const headRaw = ui.head.value.trim();
  const params = { text: ui.text.value, layer: Number(ui.layer.value === "" ? -1 : ui.layer.value), head: headRaw === "" ? null : Number(headRaw),
                   cells: Number(ui.cells.value || 256) };
  if (headRaw !== "" && !/^\d+$/.test(headRaw)) {
    const heads = app.model && app.model.spec ? app.model.spec.heads : null;
    return showAttentionError(fieldError("head", FIELDS,
      `type a head number${heads ? ` from 0 to ${heads - 1}` : ""}, or leave it blank for the mean over heads (got “${headRaw}”).`));
  }
  ui.attnBtn.disabled = true;
  const act = status.begin("Running attention…");
  const res = await call("attention", params);
  act.end();
  ui.attnBtn.disabled = false;
  if (!res.ok) return showAttentionError(res);
  markField(ui.panel, res);
  ui.attnInfo.classList.remove("err");
  ui.attnStale.classList.add("hidden");
  lastAttention = res;
  attentionModel = app.model && app.model.source;
  ui.zoomBox.classList.add("hidden");
  drawAttention();
}

/** One cell per token while the text fits the overview (the exact matrix); past it, the pooled overview. */
function pooled(res) { return res.overview.row_edges.length - 1 < res.n || res.overview.col_edges.length - 1 < res.n; }

function drawAttention() {
  const res = lastAttention;
  if (!res) return;
  const sinks = (res.sinks || []).map((s) => s.position);
  const o = res.overview;
  ui.pooling.disabled = !pooled(res);
  if (!pooled(res)) {
    ui.heatmap.setData({ tokens: res.tokens, rows: res.matrix, sinks, learnedSink: res.learned_sink });
  } else {
    ui.heatmap.setGrid({ tokens: res.tokens, rowEdges: o.row_edges, colEdges: o.col_edges, cells: o[ui.pooling.value], sinks,
                         pooling: ui.pooling.value, learnedSink: o.learned_sink });
  }
  const sinkText = (res.sinks || []).slice(0, 12).map((s) => `${s.position}:${JSON.stringify(s.token)} ${fmt.fixed(s.score, 2)}`).join("  ")
    + ((res.sinks || []).length > 12 ? ` … ${res.sinks.length} in all` : "");
  const view = res.layer == null ? "mean over all layers and heads" : `layer ${res.layer} · ${res.head == null ? "mean over heads" : "head " + res.head}`;
  const cells = pooled(res)
    ? ` · overview ${o.row_edges.length - 1} × ${o.col_edges.length - 1} cells, ${ui.pooling.value} pooling (keys ${o.kept_columns.slice(0, 8).join(", ")}`
      + `${o.kept_columns.length > 8 ? " …" : ""} keep a column each) · click a cell to zoom`
    : "";
  ui.attnInfo.textContent = `${fmt.int(res.n)} tokens · ${view} · ${fmt.secs(res.seconds)}${cells}`
    + (sinkText ? ` · sinks ${sinkText}` : " · no sinks above threshold")
    + (res.learned_sink ? ` · learned sink ${fmt.fixed(res.learned_sink_mean, 2)} of each row (mean)` : "");
}

const ZOOM = 256;  // tokens per side of a zoom: one cell per token

/** A click on an overview cell: the ZOOM × ZOOM tokens around it, every cell one query × one key. */
async function zoomTo(c) {
  const res = lastAttention;
  if (!res) return;
  const centre = (a, b) => Math.floor((a + b) / 2);
  const q0 = Math.max(0, Math.min(res.n - ZOOM, centre(c.q0, c.q1) - ZOOM / 2));
  const q1 = Math.min(res.n, q0 + ZOOM);
  const k0 = Math.max(0, Math.min(q1 - 1, Math.min(res.n - ZOOM, centre(c.k0, c.k1) - ZOOM / 2)));
  const k1 = Math.min(res.n, k0 + ZOOM);
  const act = status.begin("Zooming…");
  const z = await call("attention_zoom", { q0, q1, k0, k1, cells: ZOOM, keep_columns: res.overview.kept_columns });
  act.end();
  if (!z.ok) return showAttentionError(z);
  ui.zoomBox.classList.remove("hidden");
  ui.zoom.setGrid({ tokens: res.tokens, rowEdges: z.row_edges, colEdges: z.col_edges, cells: z.max,
                    sinks: (res.sinks || []).map((s) => s.position), pooling: "max" });
  ui.zoomInfo.textContent = `Zoom: queries ${z.q0}–${z.q1 - 1} × keys ${z.k0}–${z.k1 - 1}, one cell per token · ${fmt.secs(z.seconds)}`;
}

function showAttentionError(res) {
  markField(ui.panel, res);
  const msg = userMessage(res.error, FIELDS);
  ui.attnInfo.textContent = msg;
  ui.attnInfo.classList.add("err");
  status.error(msg);
  if (lastAttention) markAttentionStale("from the previous run");
}

function markAttentionStale(why) {
  ui.attnStale.textContent = `⚠ The heatmap below is ${why}; Get Attention to update it.`;
  ui.attnStale.classList.remove("hidden");
}

function exportMatrix() {
  if (!lastAttention) return;
  const { tokens, token_ids, layer, head, n, matrix, overview, sinks, learned_sink } = lastAttention;
  saveJSON("attention-matrix", { model: app.model && app.model.source, tokens, token_ids, layer, head, n, sinks, learned_sink,
                                 ...(matrix ? { matrix } : { overview }) });
}

/** For tests and debugging: the heatmap behind the Quick Attention Test. */
export function heatmap() { return ui.heatmap; }
/** For tests: the zoom heatmap under it. */
export function zoomHeatmap() { return ui.zoom; }
