// One label and one colour per policy and prefill method, for every chart, table swatch, legend,
// grid and export. The table is the backend's (backend/labels.py, Api policy_labels): built-ins
// fixed, a user's rule or prefill file its LABEL and a colour derived from its name, so the window
// and the browser draw the same. main.js loads it before the tabs start; the Eviction tab reads it
// again when the user's files change, before it tells the other tabs (the "policies" event).
//
//   import { policyLabel, policyColour, policyDash, policyStyle, labelsOf, fade } from "./palette.js";
import { call } from "./bridge.js";

let table = {};
const UNKNOWN = "#9ca3af";  // a name the table lacks (a results file's rule that is not loaded): grey, its name

/** Fetch the table (at boot and after the user's files change). */
export async function loadLabels() {
  const res = await call("policy_labels");
  if (res.ok) table = res.labels;
  document.body.dataset.labels = String(Object.keys(table).length);  // tests wait for this
  return table;
}

/** The whole table, name → {label, colour, dash, user} (tests and the colours legend read it). */
export function labelTable() { return table; }

/** What a policy or prefill method is called on every tab. */
export function policyLabel(name) { return table[name] ? table[name].label : String(name); }

/** Its colour, the same on every tab. */
export function policyColour(name) { return table[name] ? table[name].colour : UNKNOWN; }

/** Line dash: the reference dashed, the oracle dotted, the rest mostly solid. */
export function policyDash(name) { return table[name] ? table[name].dash : []; }

/** Chart.js dataset fields for a policy's line: {label, color, borderDash}. */
export function policyStyle(name) {
  return { label: policyLabel(name), color: policyColour(name), borderDash: policyDash(name) };
}

/** {name: {label, colour}} for the policies an export names, so a saved JSON reads as the page did. */
export function labelsOf(names) {
  return Object.fromEntries([...new Set(names)].map((n) => [n, { label: policyLabel(n), colour: policyColour(n) }]));
}

/** "#rrggbb" with alpha a (0..1) as rgba(), e.g. for a policy's second bar. */
export function fade(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}
