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

export function savePNG(baseName, canvas) {
  const b64 = canvas.toDataURL("image/png").split(",")[1];
  return saveFile(baseName, "png", b64, "base64", "image/png");
}

export function saveJSON(baseName, obj) {
  return saveFile(baseName, "json", JSON.stringify(obj, null, 1), "text", "application/json");
}

/** rows: array of objects; columns: [key] or [[key, header]]. Cells are quoted when needed. */
export function saveCSV(baseName, rows, columns) {
  const cols = columns.map((c) => (Array.isArray(c) ? c : [c, c]));
  const cell = (v) => {
    const s = v == null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [cols.map((c) => cell(c[1])).join(",")];
  for (const r of rows) lines.push(cols.map((c) => cell(r[c[0]])).join(","));
  return saveFile(baseName, "csv", lines.join("\n") + "\n", "text", "text/csv");
}
