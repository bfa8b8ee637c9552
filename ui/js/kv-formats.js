// The KV formats every settings form offers (Evaluate, Retrieval, Sweeps, Cache Profile, the error
// picture). One source of truth: the backend's list (backend/quantize/formats.py, Api `kv_formats`),
// asked for once; each select is filled when it arrives.
import { call } from "./bridge.js";
import { h, fill } from "./dom.js";

let asked = null;

/** [{name, bits: [K, V]}], from the backend once; [] (and asked again next time) when the call fails. */
export function kvFormats() {
  asked ||= call("kv_formats").then((res) => {
    if (res.ok) return res.formats;
    asked = null;
    return [];
  });
  return asked;
}

const NOTES = { "q8_0-rot": "rotated, llama.cpp's default", "q4_0-rot": "rotated, llama.cpp's default",
  "int4-channel": "per channel", "fp8-e4m3-head": "per-head scale" };

/** "q4_0 (4.5 bits)", "kivi-2 (K 2.25 / V 3 bits)": bits per value, scales included. */
export function formatLabel(f) {
  const [k, v] = f.bits;
  const bits = k === v ? `${k} bits` : `K ${k} / V ${v} bits`;
  return `${f.name} (${NOTES[f.name] ? NOTES[f.name] + ", " : ""}${bits})`;
}

/**
 * A select of the formats, data-field=`dataField`. Single: "" = unquantized (the model's dtype) first.
 * multiple: the sweep's axis, "none" = unquantized, selected by default.
 */
export function kvFormatSelect(dataField, { multiple = false, title = "" } = {}) {
  const none = () => h("option", { value: multiple ? "none" : "", selected: true }, "unquantized (the model's dtype)");
  const select = h("select", { dataset: { field: dataField }, multiple, title, size: multiple ? 5 : null }, none());
  kvFormats().then((list) => {
    const keep = [...select.selectedOptions].map((o) => o.value);
    fill(select, none(), list.map((f) => h("option", { value: f.name }, formatLabel(f))));
    for (const o of select.options) o.selected = keep.includes(o.value);
  });
  return select;
}

/** A multi-select's chosen formats as the sweep's kv_formats ("none" = unquantized). */
export function chosen(select) {
  return [...select.selectedOptions].map((o) => o.value);
}
