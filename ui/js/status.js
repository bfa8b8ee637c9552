// The status line: what the backend is doing now, the last error, the last note (e.g. a saved path).
import { onCall, mode } from "./bridge.js";

const bar = () => document.getElementById("statusbar");
const activityText = () => document.querySelector("#st-activity .st-text");
const errorNode = () => document.getElementById("st-error");
const noteNode = () => document.getElementById("st-note");

const active = new Map();  // id → label; the newest is shown
let nextId = 1;

function render() {
  const labels = [...active.values()];
  bar().classList.toggle("busy", labels.length > 0);
  activityText().textContent = labels.length ? labels[labels.length - 1] + (labels.length > 1 ? ` (+${labels.length - 1})` : "") : "Idle";
}

/** Start an activity; returns {update(label), end()}. */
export function begin(label) {
  const id = nextId++;
  active.set(id, label);
  render();
  return {
    update(text) { if (active.has(id)) { active.set(id, text); render(); } },
    end() { active.delete(id); render(); },
  };
}

export function error(message) {
  const node = errorNode();
  node.textContent = message ? "✖ " + message : "";
  node.title = message ? message + "\n(click to clear)" : "";
}

export function note(message) {
  noteNode().classList.remove("question");
  noteNode().textContent = message || "";
  noteNode().title = message || "";
}

/** A question the page is asking (run this file's code?): said as one, not as an error. */
export function question(message) {
  note("? " + message);
  noteNode().classList.add("question");
}

// Refusals that are questions to the user (the page asks them beside the control): not errors.
const QUESTIONS = new Set(["needs_trust", "needs_remote_code"]);

// Routine calls that fail in the normal course of things (polling, optional probes)
// do not deserve the error slot; everything else does.
const QUIET = new Set(["job_status", "ping", "stream_state", "evaluate_estimate", "retrieval_estimate"]);
// Calls the page makes on its own (not a user's action): their success says nothing about the error.
const READS = new Set(["app_info", "model_info", "eviction_policies", "local_models", "save_export", "stream_view",
  "evaluate_info", "evaluate_estimate", "retrieval_estimate"]);

export function init() {
  errorNode().addEventListener("click", () => error(""));
  document.getElementById("st-mode").textContent = mode === "browser" ? "browser mode" : "desktop";
  onCall(({ method, envelope }) => {
    if (QUIET.has(method)) return;
    // A later action that worked makes the old error stale: clear it rather than leave it next to good news.
    if (envelope.ok) { if (!READS.has(method)) error(""); return; }
    if (envelope.error && envelope.error.code === "cancelled") return;
    if (envelope.error && QUESTIONS.has(envelope.error.code)) { question(envelope.error.message); return; }
    error(`${method}: ${envelope.error ? envelope.error.message : "failed"}`);
  });
  render();
}
