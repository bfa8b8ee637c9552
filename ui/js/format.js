// Number formatting shared by every tab, so a byte count or a rate reads the same everywhere.

// One unit family everywhere, sizes and rates alike: binary (KiB, MiB, GiB: what memory is
// counted in), so a size and the rate it moves at read in the same units (NVMe Gen4's "7 GB/s"
// reads 6.52 GiB/s).
function scaled(n, base, units) {
  if (n == null || !isFinite(n)) return "—";
  let i = 0;
  while (Math.abs(n) >= base && i < units.length - 1) { n /= base; i++; }
  return `${n.toFixed(i === 0 ? 0 : Math.abs(n) < 10 ? 2 : 1)} ${units[i]}`;
}

export function bytes(n) { return scaled(n, 1024, ["B", "KiB", "MiB", "GiB", "TiB"]); }

export function count(n) {
  if (n == null || !isFinite(n)) return "—";
  const abs = Math.abs(n);
  if (abs >= 1e9) return (n / 1e9).toFixed(2) + "B";
  if (abs >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (abs >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n));
}

/** "1 sink", "3 sinks": n and the word, plural unless n is 1. */
export function plural(n, word, many = word + "s") { return `${int(n)} ${n === 1 ? word : many}`; }
export function int(n) { return n == null || !isFinite(n) ? "—" : Math.round(n).toLocaleString("en-US"); }
export function pct(x, digits = 1) { return x == null || !isFinite(x) ? "—" : (x * 100).toFixed(digits) + "%"; }
export function fixed(x, digits = 3) { return x == null || !isFinite(x) ? "—" : Number(x).toFixed(digits); }
export function secs(s) {
  if (s == null || !isFinite(s)) return "—";
  if (s < 1e-3) return (s * 1e6).toFixed(0) + " µs";
  if (s < 1) return (s * 1e3).toFixed(1) + " ms";
  return s.toFixed(2) + " s";
}
export function rate(bps) { return bytes(bps) + (bps == null || !isFinite(bps) ? "" : "/s"); }
export const GiB = 2 ** 30, MiB = 2 ** 20;

/** A token as a label: visible whitespace, bounded length. */
export function tokenLabel(tok, max = 10) {
  const s = String(tok ?? "").replace(/\n/g, "⏎").replace(/\t/g, "⇥").replace(/ /g, "␣");
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

/** "x / y" metrics may come as [x, y], {x, y} or a number. */
export function ratio(v) {
  if (v == null) return "—";
  if (Array.isArray(v)) return `${v[0]} / ${v[1]}`;
  if (typeof v === "object") return `${v.kept ?? v.x ?? v.retained ?? "?"} / ${v.total ?? v.y ?? "?"}`;
  return typeof v === "number" && v <= 1 ? pct(v) : String(v);
}
