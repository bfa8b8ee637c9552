// Attention heatmap on a <canvas>: X = keys, Y = queries, one pixel per cell in an
// offscreen image that is scaled up (no smoothing) into the visible canvas, so an
// n×n matrix never becomes n² DOM nodes and a live stream appends one row at a time.
// Pink vertical lines mark sinks, blue ones heavy hitters; an optional per-key
// `evictedAt` step dims a key's cells from the step it was evicted on. A model with learned
// sink logits (gpt-oss) gives part of every row to no key at all: `learnedSink` draws that
// share as one more column right of the keys, so each row visibly adds up to 1.
// Past a few hundred tokens the picture is an overview (`setGrid`): cells of query ranges × key
// ranges, pooled by the backend (max or mean), where a sink's column keeps a cell of its own; a
// click on a cell hands its ranges to `onCell` (the Quick Attention Test zooms there).
import { LUT, scaler, cssColor } from "./colormap.js";
import { tokenLabel } from "./format.js";
import { h } from "./dom.js";

const MARGIN = { left: 78, top: 12, right: 46, bottom: 70 };
const MAX_CELL = 26;       // px; a 10-token prompt should not fill the screen
const LEARNED_SINK_WIDTH = 18;  // px: the learned-sink column (12) and the gap before it
const DIM = 0.22;          // brightness of cells whose key was already evicted
const MASKED = [11, 14, 19];  // above the diagonal (future keys): page background, not "zero"

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

export class Heatmap {
  constructor(container, { maxHeight = 560, scale = "sqrt", emptyText = "No attention yet." } = {}) {
    this.maxHeight = maxHeight;
    this.scale = scale;
    this.version = 0;
    this.canvas = h("canvas", { class: "heatmap" });
    this.tip = h("div", { class: "tooltip hidden" });
    this.empty = h("div", { class: "empty-viz" }, emptyText);
    this.root = h("div", { class: "viz heatmap-viz" }, this.canvas, this.tip, this.empty);
    container.appendChild(this.root);
    this.clear();
    this.canvas.addEventListener("mousemove", (ev) => this.hover(ev));
    this.canvas.addEventListener("mouseleave", () => this.tip.classList.add("hidden"));
    this.canvas.addEventListener("click", (ev) => this.click(ev));
    this.onCell = null;  // (ranges {q0, q1, k0, k1}) => void: set by a view that zooms on click
    new ResizeObserver(() => this.render()).observe(this.root);
  }

  clear() {
    this.tokens = [];
    this.rows = [];
    this.sinks = new Set();
    this.heavy = new Set();
    this.evictedAt = null;
    this.grid = null;
    this.allocate(64);
    this.render();
  }

  /** Replace everything. rows[t] = attention of query t over keys 0..t (longer rows are cut at t). */
  setData({ tokens, rows, sinks = [], heavy = [], evictedAt = null, learnedSink = null }) {
    this.tokens = tokens.map(String);
    this.learnedSink = learnedSink ? Float32Array.from(learnedSink) : null;
    this.rows = rows.map((r, t) => Float32Array.from(r.slice(0, t + 1)));
    this.sinks = new Set(sinks);
    this.heavy = new Set(heavy);
    this.evictedAt = evictedAt;
    this.maskWhy = null;
    this.grid = null;
    this.repaintAll();
  }

  /** An overview or a zoom: cells[i][j] over queries rowEdges[i]..rowEdges[i+1]-1 and keys
   *  colEdges[j]..colEdges[j+1]-1 (null: no key at or before those queries). tokens: every token
   *  (labels, tooltips); sinks and heavy: key positions; pooling: "max" or "mean", said in the tooltip. */
  setGrid({ tokens, rowEdges, colEdges, cells, sinks = [], heavy = [], pooling = "max", learnedSink = null }) {
    this.tokens = tokens.map(String);
    this.grid = { rowEdges, colEdges, pooling };
    this.rows = cells.map((r) => Float32Array.from(r, (x) => (x == null ? NaN : x)));
    this.learnedSink = learnedSink ? Float32Array.from(learnedSink) : null;
    this.sinks = new Set(sinks);
    this.heavy = new Set(heavy);
    this.evictedAt = null;
    this.maskWhy = null;
    this.repaintAll();
  }

  /** Cell index along an axis holding token position p (grid mode), or p itself. */
  cellOf(edges, p) {
    if (!edges) return p;
    let lo = 0, hi = edges.length - 2;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (edges[mid] <= p) lo = mid; else hi = mid - 1; }
    return p >= edges[0] && p < edges[edges.length - 1] ? lo : -1;
  }

  /** A cell's label: its token when it holds one, else its range of positions. */
  rangeLabel(edges, i) {
    if (!edges) return tokenLabel(this.tokens[i], 10);
    const a = edges[i], b = edges[i + 1] - 1;
    return a === b ? tokenLabel(this.tokens[a], 10) : `${a}–${b}`;
  }

  /** Live stream: query t = tokens.length sees keys 0..t, and its token becomes key t. */
  appendRow(row, token) {
    const t = this.rows.length;
    if (this.tokens.length <= t) this.tokens.push(String(token));
    const data = Float32Array.from(row.slice(0, t + 1));
    this.rows.push(data);
    if (t + 1 > this.cap) this.grow();
    this.paintRow(t);
    this.render();
  }

  /** Live stream on a grid (setGrid first): row bin r's cells now read `values` (the bin being filled is
   *  redrawn in place until the next one starts); token: the newest query's token, for labels and tooltips. */
  setCellRow(r, values, token) {
    if (token != null) this.tokens.push(String(token));
    this.rows[r] = Float32Array.from(values, (x) => (x == null ? NaN : x));
    if (this.rows.length > this.cap) this.grow();
    this.paintRow(r);
    this.render();
  }

  setMarkers(sinks = [], heavy = []) {
    this.sinks = new Set(sinks);
    this.heavy = new Set(heavy);
    this.render();
  }

  /** evictedAt[k] = step at which key k was evicted (null/-1: never); those cells are dimmed.
   *  why: the tooltip's line for a dimmed key instead of "key evicted at step …" (prefill compression). */
  setMask(evictedAt, why = null) { this.evictedAt = evictedAt; this.maskWhy = why; this.repaintAll(); }

  /** On a grid: per key column, the step by which every key in it was evicted (Infinity if one never was),
   *  so a cell dims when all its keys are gone before its first query: the overview's form of the mask. */
  columnEvicted() {
    const { colEdges } = this.grid;
    return colEdges.slice(0, -1).map((k0, j) => {
      let last = -1;
      for (let k = k0; k < colEdges[j + 1]; k++) {
        const ev = this.evictedAt[k];
        if (ev == null || ev < 0) return Infinity;
        last = Math.max(last, ev);
      }
      return last;
    });
  }
  setScale(scale) { this.scale = scale; this.repaintAll(); }

  /** The raw token strings on the axes (what the labels are drawn from). */
  labels() {
    if (!this.grid) return this.tokens.slice();
    return this.rows.map((_, i) => this.rangeLabel(this.grid.rowEdges, i));
  }
  get n() { return this.rows.length; }
  markers() { return { sinks: [...this.sinks].sort((a, b) => a - b), heavy: [...this.heavy].sort((a, b) => a - b) }; }

  // ---- offscreen image: one pixel per (query, key) ----
  allocate(cap) {
    this.cap = cap;
    this.img = document.createElement("canvas");
    this.img.width = this.img.height = cap;
    this.ictx = this.img.getContext("2d");
  }

  grow() {
    const old = this.img;
    let cap = this.cap;
    while (cap < this.rows.length) cap *= 2;
    this.allocate(cap);
    this.ictx.drawImage(old, 0, 0);
  }

  repaintAll() {
    this.version = (this.version || 0) + 1;  // tests wait on this to know a redraw happened
    this.gone = null;  // the grid's per-column eviction steps, recomputed for this mask
    let cap = 64;
    const cols = this.grid ? this.grid.colEdges.length - 1 : 0;
    while (cap < Math.max(this.rows.length, cols)) cap *= 2;
    this.allocate(cap);
    for (let t = 0; t < this.rows.length; t++) this.paintRow(t);
    this.render();
  }

  paintRow(t) {
    const row = this.rows[t];
    const width = Math.max(1, Math.min(row.length, this.cap));
    if (this.grid) return this.paintCells(t, row, width);
    const px = this.ictx.createImageData(width, 1);
    const f = scaler(this.scale);
    for (let k = 0; k < width; k++) {
      const w = row[k];
      const idx = Math.max(0, Math.min(255, Math.round(f(Math.max(0, Math.min(1, w || 0))) * 255))) * 3;
      const ev = this.evictedAt ? this.evictedAt[k] : null;
      const dim = ev != null && ev >= 0 && t >= ev ? DIM : 1;
      px.data[k * 4] = LUT[idx] * dim;
      px.data[k * 4 + 1] = LUT[idx + 1] * dim;
      px.data[k * 4 + 2] = LUT[idx + 2] * dim;
      px.data[k * 4 + 3] = 255;
    }
    this.ictx.putImageData(px, 0, t);
  }

  paintCells(t, row, width) {
    const px = this.ictx.createImageData(width, 1);
    const f = scaler(this.scale);
    const gone = this.evictedAt ? (this.gone ||= this.columnEvicted()) : null;
    const first = this.grid.rowEdges[t];
    for (let k = 0; k < width; k++) {
      const w = row[k];
      const dim = gone && gone[k] <= first ? DIM : 1;
      const rgb = Number.isNaN(w) ? MASKED : (() => {
        const idx = Math.max(0, Math.min(255, Math.round(f(Math.max(0, Math.min(1, w))) * 255))) * 3;
        return [LUT[idx] * dim, LUT[idx + 1] * dim, LUT[idx + 2] * dim];
      })();
      px.data.set([rgb[0], rgb[1], rgb[2], 255], k * 4);
    }
    this.ictx.putImageData(px, 0, t);
  }

  // ---- visible canvas ----
  geometry() {
    const cols = this.grid ? this.grid.colEdges.length - 1 : Math.max(1, this.tokens.length, this.rows.length);
    const n = Math.max(1, cols, this.rows.length);
    const width = this.root.clientWidth;
    const maxHeight = typeof this.maxHeight === "function" ? this.maxHeight() : this.maxHeight;
    const strip = this.learnedSink ? LEARNED_SINK_WIDTH : 0;  // the learned-sink column and its gap
    const avail = Math.min(width - MARGIN.left - MARGIN.right - strip, maxHeight - MARGIN.top - MARGIN.bottom);
    const size = Math.max(40, Math.min(avail, n * MAX_CELL));
    return { n, cols, size, cell: size / n, strip, width: Math.min(width, MARGIN.left + size + strip + MARGIN.right),
             height: MARGIN.top + size + MARGIN.bottom };
  }

  render() {
    const hasData = this.rows.length > 0;
    this.empty.classList.toggle("hidden", hasData);
    this.canvas.classList.toggle("hidden", !hasData);
    if (!hasData || this.root.clientWidth === 0) return;
    const g = this.geometry();
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(g.width * dpr);
    this.canvas.height = Math.round(g.height * dpr);
    this.canvas.style.width = g.width + "px";
    this.canvas.style.height = g.height + "px";
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = css("--panel") || "#12161d";
    ctx.fillRect(0, 0, g.width, g.height);
    const { left: L, top: T } = MARGIN;

    // Future keys (above the diagonal) in the background colour, then the image on top.
    ctx.fillStyle = `rgb(${MASKED.join(",")})`;
    ctx.fillRect(L, T, g.size, g.size);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.img, 0, 0, g.cols, this.rows.length, L, T, g.cols * g.cell, this.rows.length * g.cell);

    this.drawLearnedSink(ctx, g);
    this.drawMarkers(ctx, g);
    this.drawLabels(ctx, g);
    this.drawColorbar(ctx, g);
  }

  drawLearnedSink(ctx, g) {
    if (!this.learnedSink) return;
    const { left: L, top: T } = MARGIN;
    const x = L + g.size + 4;
    const f = scaler(this.scale);
    for (let t = 0; t < this.rows.length; t++) {
      ctx.fillStyle = cssColor(f(Math.max(0, Math.min(1, this.learnedSink[t] || 0))));
      ctx.fillRect(x, T + t * g.cell, LEARNED_SINK_WIDTH - 6, Math.max(1, g.cell));
    }
    ctx.save();
    ctx.translate(x + (LEARNED_SINK_WIDTH - 6) / 2, T + g.size + 5);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillStyle = css("--sink");
    ctx.font = `10px ${css("--mono")}`;
    ctx.fillText("learned sink", 0, 0);
    ctx.restore();
  }

  drawMarkers(ctx, g) {
    const { left: L, top: T } = MARGIN;
    const lw = Math.max(1, Math.min(2, g.cell * 0.18));
    for (const [set, color] of [[this.heavy, css("--heavy")], [this.sinks, css("--sink")]]) {
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = lw;
      ctx.globalAlpha = 0.9;
      ctx.beginPath();
      for (const p of set) {
        const k = this.cellOf(this.grid && this.grid.colEdges, p);
        if (k < 0 || k >= g.cols) continue;
        const x = L + (k + 0.5) * g.cell;
        ctx.moveTo(x, T);
        ctx.lineTo(x, T + g.size);
      }
      ctx.stroke();
      ctx.globalAlpha = 1;
      for (const p of set) {  // a tick above the plot so thin markers are findable
        const k = this.cellOf(this.grid && this.grid.colEdges, p);
        if (k < 0 || k >= g.cols) continue;
        const x = L + (k + 0.5) * g.cell;
        ctx.fillRect(x - 2, T - 7, 4, 5);
      }
    }
  }

  drawLabels(ctx, g) {
    const { left: L, top: T } = MARGIN;
    const font = Math.max(8, Math.min(11, g.cell * 0.8));
    const every = Math.max(1, Math.ceil((font + 2) / g.cell));
    ctx.font = `${font}px ${css("--mono")}`;
    ctx.textBaseline = "middle";
    const muted = css("--muted");
    // Queries on the left.
    ctx.textAlign = "right";
    for (let i = 0; i < this.rows.length; i += every) {
      ctx.fillStyle = muted;
      ctx.fillText(this.rangeLabel(this.grid && this.grid.rowEdges, i), L - 5, T + (i + 0.5) * g.cell);
    }
    // Keys below, rotated, thinned like the queries so labels never pile up (500 tokens, 50 heavy
    // hitters): sinks claim a slot first, then heavy hitters, then every `every`-th key.
    const gap = font + 2;
    const taken = [];
    const free = (x) => !taken.some((y) => Math.abs(x - y) < gap);
    const colEdges = this.grid && this.grid.colEdges;
    const draw = (j, colour) => {  // j: a column (a key, or a cell of keys on a grid)
      const x = L + (j + 0.5) * g.cell;
      if (j < 0 || j >= (colEdges ? g.cols : this.tokens.length) || !free(x)) return;
      taken.push(x);
      ctx.save();
      ctx.translate(x, T + g.size + 5);
      ctx.rotate(-Math.PI / 2);
      ctx.fillStyle = colour;
      ctx.fillText(this.rangeLabel(colEdges, j), 0, 0);
      ctx.restore();
    };
    const column = (p) => this.cellOf(colEdges, p);
    const marked = new Set([...this.sinks, ...this.heavy].map(column));
    for (const p of [...this.sinks].sort((a, b) => a - b)) draw(column(p), css("--sink"));
    for (const p of [...this.heavy].sort((a, b) => a - b)) if (!this.sinks.has(p)) draw(column(p), css("--heavy"));
    for (let j = 0; j < g.cols; j += every) if (!marked.has(j)) draw(j, muted);
    this.keyLabels = taken.length;  // for tests: how many key labels were drawn
    ctx.textAlign = "left";
    ctx.fillStyle = css("--muted");  // axis titles at ≥ 4.5:1 on the panel
    ctx.fillText("keys →", L, g.height - 6);
    ctx.save();
    ctx.translate(10, T + g.size / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.fillText("queries →", 0, 0);
    ctx.restore();
  }

  drawColorbar(ctx, g) {
    const x = MARGIN.left + g.size + g.strip + 10;
    const T = MARGIN.top;
    for (let y = 0; y < g.size; y++) {
      ctx.fillStyle = cssColor(1 - y / g.size);
      ctx.fillRect(x, T + y, 9, 1.5);
    }
    ctx.fillStyle = css("--muted");
    ctx.font = `10px ${css("--mono")}`;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText("1", x + 12, T);
    ctx.textBaseline = "bottom";
    ctx.fillText(this.scale === "log" ? "1e-4" : "0", x + 12, T + g.size);
    ctx.textBaseline = "middle";
    ctx.fillText(this.scale, x + 12, T + g.size / 2);
  }

  hover(ev) {
    const g = this.geometry();
    const rect = this.canvas.getBoundingClientRect();
    const x = ev.clientX - rect.left - MARGIN.left;
    const y = ev.clientY - rect.top - MARGIN.top;
    const q = Math.floor(y / g.cell);
    const k = Math.floor(x / g.cell);
    if (this.learnedSink && x >= g.size + 4 && x < g.size + g.strip && y >= 0 && q < this.rows.length) {
      this.showTip(ev, [`query ${q}  ${JSON.stringify(this.tokens[q] ?? "")}`,
        `learned sink ${this.learnedSink[q].toFixed(4)}`, "the model's own sink logit: no key, never evicted"]);
      return;
    }
    if (this.grid) return this.hoverCell(ev, q, k, x, y, g);
    if (x < 0 || y < 0 || q >= this.rows.length || k >= g.n || k > q) {
      this.tip.classList.add("hidden");
      return;
    }
    const w = this.rows[q][k];
    const lines = [
      `query ${q}  ${JSON.stringify(this.tokens[q] ?? "")}`,
      `key   ${k}  ${JSON.stringify(this.tokens[k] ?? "")}`,
      `weight ${w == null ? "—" : w.toFixed(4)}`,
    ];
    if (this.sinks.has(k)) lines.push("key is a sink");
    if (this.heavy.has(k)) lines.push("key is a heavy hitter");
    const ev2 = this.evictedAt ? this.evictedAt[k] : null;
    if (ev2 != null && ev2 >= 0) lines.push(this.maskWhy || `key evicted at step ${ev2}`);
    this.showTip(ev, lines);
  }

  /** The cell under the pointer on a grid: {q, k, q0, q1, k0, k1}, or null off the cells or on a future one. */
  cellAt(ev) {
    const g = this.geometry();
    const rect = this.canvas.getBoundingClientRect();
    const x = ev.clientX - rect.left - MARGIN.left, y = ev.clientY - rect.top - MARGIN.top;
    const q = Math.floor(y / g.cell), k = Math.floor(x / g.cell);
    if (!this.grid || x < 0 || y < 0 || q >= this.rows.length || k >= g.cols || Number.isNaN(this.rows[q][k])) return null;
    const { rowEdges, colEdges } = this.grid;
    return { q, k, q0: rowEdges[q], q1: rowEdges[q + 1], k0: colEdges[k], k1: colEdges[k + 1] };
  }

  hoverCell(ev) {
    const c = this.cellAt(ev);
    if (!c) { this.tip.classList.add("hidden"); return; }
    const span = (a, b) => (b - a === 1 ? `${a}  ${JSON.stringify(this.tokens[a] ?? "")}` : `${a}–${b - 1} (${b - a} tokens)`);
    const lines = [`query ${span(c.q0, c.q1)}`, `key   ${span(c.k0, c.k1)}`];
    const w = this.rows[c.q][c.k];
    const single = c.q1 - c.q0 === 1 && c.k1 - c.k0 === 1;
    lines.push(single ? `weight ${w.toFixed(4)}` : `${this.grid.pooling} weight ${w.toFixed(4)}`);
    for (let p = c.k0; p < c.k1; p++) if (this.sinks.has(p)) lines.push(`key ${p} is a sink`);
    if (this.evictedAt) {
      const gone = c.k1 - c.k0 === 1 ? this.evictedAt[c.k0] : this.columnEvicted()[c.k];
      if (gone != null && gone >= 0 && gone !== Infinity) {
        lines.push(this.maskWhy ? `${c.k1 - c.k0 === 1 ? "" : "every "}${this.maskWhy}` : `${c.k1 - c.k0 === 1 ? "key" : "every key here"} evicted by step ${gone}`);
      }
    }
    if (this.onCell && !single) lines.push("click to zoom to single tokens");
    this.showTip(ev, lines);
  }

  click(ev) {
    const c = this.cellAt(ev);
    if (c && this.onCell) this.onCell(c);
  }

  showTip(ev, lines) {
    this.tip.textContent = lines.join("\n");
    this.tip.classList.remove("hidden");
    const left = ev.clientX - this.root.getBoundingClientRect().left + 14;
    const top = ev.clientY - this.root.getBoundingClientRect().top + 14;
    this.tip.style.left = Math.min(left, this.root.clientWidth - 260) + "px";
    this.tip.style.top = top + "px";
  }
}
