// One colour per eviction policy, used by every chart, table swatch and legend that shows
// policies (Eviction Sim, Evaluate, Sweeps, custom policies). The hues stay clear of the
// header legend's data colours — sink pink, heavy-hitter blue, the tier green/yellow — and
// of the control accent (violet), so a policy line never reads as "sinks" or "HBM".
//
//   import { policyColour, policyDash, policyStyle, fade } from "./palette.js";

export const POLICY_COLOURS = {
  full: "#e5e7eb",            // light grey, dashed: the reference
  sliding_window: "#ff9f43",  // orange
  streaming_llm: "#2dd4bf",   // teal
  h2o: "#f87171",             // coral red
  lru: "#a3e635",             // lime
  tova: "#e879f9",            // orchid
  oracle: "#94a3b8",          // slate, dotted: the bound, not a policy you can run
};

// Custom or future policies take these in order of first appearance (stable per name).
const EXTRA = ["#fdba74", "#67e8f9", "#d9f99d", "#fda4af", "#c7d2fe", "#fcd34d"];
const assigned = new Map();

/** The colour of a policy, the same on every tab for the whole session. */
export function policyColour(name) {
  if (POLICY_COLOURS[name]) return POLICY_COLOURS[name];
  if (!assigned.has(name)) assigned.set(name, EXTRA[assigned.size % EXTRA.length]);
  return assigned.get(name);
}

/** Line dash of a policy: the reference dashed, the oracle dotted, the rest solid. */
export function policyDash(name) {
  return name === "full" ? [5, 3] : name === "oracle" ? [2, 3] : [];
}

/** Chart.js dataset fields for a policy's line: {color, borderDash}. */
export function policyStyle(name) {
  return { color: policyColour(name), borderDash: policyDash(name) };
}

/** "#rrggbb" with alpha a (0..1) as rgba(), e.g. for a policy's second bar. */
export function fade(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}
