// Errors in the user's words: the backend names a field as the Api spells it ("heavy_fraction",
// "cache_size") in the Api's units (a share 0–1); the user sees a label ("Heavy hitters %") and
// types a percentage. Each tab passes a map  field → {label, pct?, type?}  and gets back a message
// that names the field as the UI labels it, in the UI's units, and says what to type.

/**
 * fields: { api_name: { label: "Cache size C", pct: true?, type: "a whole number ≥ 1"? } }
 * Returns the message to show (the backend's, reworded when the field is one of ours).
 */
export function userMessage(error, fields) {
  if (!error) return "";
  const f = fields[error.field];
  if (!f) return relabel(error.message || "", fields);
  if (f.pct) return `${f.label}: type a percentage from 0 to 100.`;
  const msg = relabel(error.message || "", fields);
  return f.type && !msg.includes("type ") ? `${msg} Type ${f.type}.` : msg;
}

// Replace each Api field name in the message by the UI's label (longest names first, so
// "sink_count" is not half-replaced by "sink"). Names like cache_size are replaced wherever they
// stand as a word; a plain word ("window", "layer") only where it starts the message, since
// it also occurs in ordinary prose ("besides the window").
function relabel(message, fields) {
  let out = message;
  for (const name of Object.keys(fields).sort((a, b) => b.length - a.length)) {
    const esc = name.replace(/[.]/g, "\\.");
    const re = /[_.]/.test(name) ? new RegExp(`(^|[^\\w.])${esc}(?!\\w)`, "g") : new RegExp(`^()${esc}(?!\\w)`);
    out = out.replace(re, (_, pre) => `${pre}“${fields[name].label}”`);
  }
  return out;
}

/** A check done in the page before any call: {ok:false, error:{code, message, field}} in user words. */
export function fieldError(field, fields, what) {
  const f = fields[field] || { label: field };
  return { ok: false, error: { code: "bad_input", field, message: `${f.label}: ${what}` } };
}
