// "Your policies": eviction policies written as Python rule files (docs/write-your-own-policy.md),
// shown beside the built-ins. Files in the policies folder load without asking;
// a file anywhere else runs its code only after the user confirms in the page (trust: true),
// like trust-remote-code.
// Every name, path and error comes from the user's files: inserted as text (dom.js).
import { call } from "./bridge.js";
import { h, fill, onEnter } from "./dom.js";
import * as status from "./status.js";

const ui = {};
let changed = () => {};

/** The collapsible block; onChange(listing) runs after every (re)load so the policy lists refresh. */
export function mount(onChange) {
  changed = onChange || changed;
  ui.folder = h("span", { class: "mono" });
  ui.list = h("ul", { class: "user-policy-list" });
  ui.errors = h("ul", { class: "user-policy-errors" });
  ui.note = h("div", { class: "hint" });
  ui.path = h("input", { type: "text", placeholder: "/path/to/my_policy.py", dataset: { field: "policy_file" } });
  ui.reload = h("button", { class: "btn small", onclick: reload, title: "Read the policies folder again (changed files are recompiled)" }, "Reload");
  ui.load = h("button", { class: "btn small", onclick: loadFile }, "Load file…");
  onEnter(ui.path, loadFile);
  ui.trustText = h("span", { class: "warn" });
  ui.trust = h("div", { class: "user-policy-trust hidden" }, ui.trustText, " ",
    h("button", { class: "btn small danger", onclick: loadTrusted }, "I trust it: load"),
    h("button", { class: "btn small", onclick: () => { ui.trust.classList.add("hidden"); ui.note.textContent = "Not loaded."; } }, "Cancel"));
  return h("details", { class: "user-policies", style: { overflowWrap: "anywhere" } },  // long paths wrap
    h("summary", {}, "Your policies (rule files)"),
    h("div", { class: "hint" }, "A policy is one Python file: a name, protected keys and a score rule (docs/write-your-own-policy.md). ",
      "Loading a policy file runs its code on this machine — only load files you wrote or trust. Files in the policies folder load without asking: "),
    h("div", { class: "row" }, ui.folder, ui.reload),
    ui.list, ui.errors,
    h("div", { class: "row" }, ui.path, ui.load),
    ui.trust, ui.note);
}

/** Show the listing the backend sent (eviction_policies' user_policies, or a reload's answer). */
export function render(listing, policies) {
  if (!ui.folder || !listing) return;
  ui.folder.textContent = listing.folder + (listing.folder_exists ? "" : " (does not exist yet: create it and press Reload)");
  const mine = (policies || listing.policies || []).filter((p) => p.user);
  fill(ui.list, mine.length ? mine.map((p) => h("li", { title: p.description || "" },
    h("b", {}, p.label || p.name), ` (${p.name}) — `, h("span", { class: "mono" }, p.file)))
    : h("li", { class: "hint" }, "No user policies loaded."));
  fill(ui.errors, (listing.errors || []).map((e) => h("li", { class: "err" },
    h("span", { class: "mono" }, e.file + (e.line ? `:${e.line}` : "")), ` ${e.code}: `, e.message)));
}

async function reload() {
  ui.reload.disabled = true;
  ui.note.textContent = "Loading the policy files (Numba compiles each rule)…";
  const res = await call("reload_policies");
  ui.reload.disabled = false;
  done(res, "Reloaded");
}

async function loadFile() {
  const path = ui.path.value.trim();
  if (!path) { ui.note.textContent = "Type the path of a policy file (.py) first."; return; }
  ui.trust.classList.add("hidden");
  const res = await call("load_policy_file", { path });  // a file in the policies folder needs no question
  if (!res.ok && res.error.code === "needs_trust") {  // anywhere else: ask first, in the page
    ui.trustText.textContent = `${path} is outside the policies folder. Loading it runs its Python code on this machine, `
      + "with your permissions. Load it only if you wrote it or trust it.";
    ui.trust.classList.remove("hidden");
    ui.note.textContent = "";
    return;
  }
  done(res, res.ok ? `Loaded ${res.policy.label}` : "");
}

async function loadTrusted() {
  ui.trust.classList.add("hidden");
  const res = await call("load_policy_file", { path: ui.path.value.trim(), trust: true });
  done(res, res.ok ? `Loaded ${res.policy.label}` : "");
}

function done(res, what) {
  if (!res.ok) {
    ui.note.textContent = res.error.message;
    ui.note.classList.add("err");
    status.error(res.error.message);
    return;
  }
  ui.note.classList.remove("err");
  ui.note.textContent = `${what}: ${res.policies.length} user ${res.policies.length === 1 ? "policy" : "policies"}`
    + (res.errors.length ? `, ${res.errors.length} with errors (below)` : "") + ".";
  render(res);
  changed(res);
}
