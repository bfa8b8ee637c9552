// Tab switching, and the "Model required" overlay over the parts that need a loaded model.
import { h } from "./dom.js";
import { app, on } from "./state.js";

const panels = () => document.querySelectorAll(".tab-panel");
const buttons = () => document.querySelectorAll(".tabbar button");
const shownHandlers = {};

export function showTab(name) {
  buttons().forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  panels().forEach((p) => p.classList.toggle("active", p.id === "tab-" + name));
  for (const fn of shownHandlers[name] || []) fn();
}

/** Run fn each time the tab becomes visible (charts measure their size then). */
export function onShown(name, fn) { (shownHandlers[name] ||= []).push(fn); }

/**
 * Cover `target` (a positioned element) with a "Model required" overlay while no model is loaded.
 * `why` says what needs the model; `active()` may narrow it (e.g. only for a model trace).
 */
export function requireModel(target, why, active = () => true) {
  const overlay = h("div", { class: "overlay model-required" },
    h("strong", {}, "Model required"),
    h("span", {}, why),
    h("button", { class: "btn primary", onclick: () => showTab("hub") }, "Go to Model Hub"));
  target.appendChild(overlay);
  const update = () => overlay.classList.toggle("hidden", !!app.model || !active());
  on("model", update);
  update();
  return update;  // call again when `active()` may have changed
}

export function init() {
  buttons().forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
}
