// Boot: wire the frame (tabs, status line), build each tab, then ask the backend what it has.
import { call } from "./bridge.js";
import { loadLabels } from "./palette.js";
import "./defaults.js";  // reads every view's defaults when a model loads ("defaults" event)
import * as status from "./status.js";
import * as tabs from "./tabs.js";
import { app, on, setModel } from "./state.js";
import * as hub from "./tab-hub.js";
import * as stream from "./tab-stream.js";
import * as eviction from "./tab-eviction.js";
import * as profile from "./tab-profile.js";
import * as retrieval from "./tab-retrieval.js";
import * as sweep from "./tab-sweep.js";

function renderBadge(model) {
  const badge = document.getElementById("model-badge");
  badge.classList.toggle("loaded", !!model);
  badge.textContent = model ? `${shortName(model.source)} · ${model.device} · ${model.dtype}` : "no model";
  badge.title = model ? String(model.source) : "Load a model on the Model Hub";
}

function shortName(source) {
  const s = String(source || "");
  return s.length > 40 ? "…" + s.slice(-39) : s;
}

async function boot() {
  status.init();
  tabs.init();
  on("model", renderBadge);
  hub.init(document.getElementById("tab-hub"));
  stream.init(document.getElementById("tab-stream"));
  eviction.init(document.getElementById("tab-eviction"));
  profile.init(document.getElementById("tab-profile"));
  retrieval.init(document.getElementById("tab-retrieval"));
  sweep.init(document.getElementById("tab-sweep"));
  setModel(null);
  // Every view's policy labels and colours (backend/labels.py), before the tabs fill their lists. Not before the
  // inits above: they run at once, so the tabs' sections stand in order before sweep.js appends its own.
  await loadLabels();

  const act = status.begin("Connecting to the backend…");
  const info = await call("app_info");
  act.end();
  app.info = info.ok ? info : null;
  await hub.start(app.info);
  const model = info.ok && info.model && info.model.ok ? info.model : await call("model_info");
  if (model.ok) setModel(model);
  eviction.start && eviction.start();
  profile.start && profile.start();
  document.body.dataset.ready = "1";  // tests wait for this
}

// For tests and debugging in the devtools console.
window.sinkvis = { call, app, hub, stream, eviction, profile, retrieval, sweep, tabs };
boot();
