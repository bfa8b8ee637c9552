// Exports: save_export writes under ~/SinkVis-exports (desktop and browser alike);
// in the browser we also hand the file to the browser as a normal download.
import { call, mode } from "./bridge.js";
import * as status from "./status.js";

function stamp() { return new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-"); }

/** Save content (text, or base64 with encoding "base64") as filename; reports the path in the status line. */
export async function saveFile(baseName, ext, content, encoding = "text", mime = "application/octet-stream") {
  const filename = `${baseName}-${stamp()}.${ext}`;
  if (mode === "browser") download(filename, content, encoding, mime);
  const res = await call("save_export", { filename, content, encoding });
  if (res.ok) status.note(`Saved ${res.path}`);
  else if (mode === "browser") status.note(`Downloaded ${filename}`);
  return res;
}

function download(filename, content, encoding, mime) {
  const data = encoding === "base64" ? Uint8Array.from(atob(content), (c) => c.charCodeAt(0)) : content;
  const url = URL.createObjectURL(new Blob([data], { type: mime }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}

/** The canvas drawn on the app's panel colour: Chart.js canvases are transparent, and their light
 * text would vanish on a white image viewer. */
export function opaqueCanvas(canvas) {
  const out = document.createElement("canvas");
  out.width = canvas.width;
  out.height = canvas.height;
  const ctx = out.getContext("2d");
  ctx.fillStyle = getComputedStyle(document.documentElement).getPropertyValue("--panel").trim() || "#12161d";
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.drawImage(canvas, 0, 0);
  return out;
}

export function savePNG(baseName, canvas) {
  const b64 = opaqueCanvas(canvas).toDataURL("image/png").split(",")[1];
  return saveFile(baseName, "png", b64, "base64", "image/png");
}

export function saveJSON(baseName, obj) {
  return saveFile(baseName, "json", JSON.stringify(obj, null, 1), "text", "application/json");
}

/** A column whose values are objects ({kept, total}) becomes one column per field (key_kept, key_total):
 * a CSV cell holds one value, never JSON. */
export function flatColumns(rows, columns) {
  const out = [];
  for (const [key, header] of columns) {
    const obj = rows.map((r) => r[key]).find((v) => v && typeof v === "object" && !Array.isArray(v));
    if (!obj) { out.push([key, header, (r) => r[key]]); continue; }
    for (const sub of Object.keys(obj)) out.push([key + "." + sub, `${header}_${sub}`, (r) => (r[key] == null ? null : r[key][sub])]);
  }
  return out;
}

/** rows: array of objects; columns: [key] or [[key, header]]. Cells are quoted when needed. */
export function saveCSV(baseName, rows, columns) {
  const cols = flatColumns(rows, columns.map((c) => (Array.isArray(c) ? c : [c, c])));
  const cell = (v) => {
    const s = v == null ? "" : Array.isArray(v) ? v.join(" ") : typeof v === "object" ? Object.values(v).join(" ") : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [cols.map((c) => cell(c[1])).join(",")];
  for (const r of rows) lines.push(cols.map((c) => cell(c[2](r))).join(","));
  return saveFile(baseName, "csv", lines.join("\n") + "\n", "text", "text/csv");
}
