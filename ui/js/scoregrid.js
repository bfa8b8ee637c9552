// A small matrix of scores (e.g. layers × heads sink scores) as coloured cells on a
// canvas, same colormap as the heatmap, with a hover readout. Values may be null.
// Options for other grids (Retrieval's lengths × depths): named rows/columns instead of
// "L0", "H0"; a linear colour scale; a click handler and a marked cell; a colour scale under
// the grid (`legend`: what the colour measures).
import { cssColor, scaler } from "./colormap.js";
import { h } from "./dom.js";
import { placeTip, hideTipWhenAway } from "./tooltip.js";

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

export class ScoreGrid {
  constructor(container, { rowLabel = "L", colLabel = "H", maxCell = 26, vmax = 1, describe = null,
    rowNames = null, colNames = null, scale = "sqrt", left = 28, onPick = null, legend = null } = {}) {
    Object.assign(this, { rowLabel, colLabel, maxCell, vmax, describe, rowNames, colNames, left, onPick });
    this.scaleFn = scaler(scale);
    this.marked = null;
    this.canvas = h("canvas");
    this.tip = h("div", { class: "tooltip hidden" });
    this.root = h("div", { class: "viz scoregrid" }, this.canvas, this.tip);
    container.appendChild(this.root);
    this.legend = legend ? h("div", { class: "grid-legend hidden" }, h("span", { class: "grid-legend-title" }, legend),
      h("div", { class: "grid-legend-bar" }), h("div", { class: "grid-legend-ticks" })) : null;
    if (this.legend) container.appendChild(this.legend);
    this.values = [];
    this.canvas.addEventListener("mousemove", (ev) => this.hover(ev));
    this.hideTip = hideTipWhenAway(this.tip, this.canvas);
    if (onPick) {
      this.canvas.style.cursor = "pointer";
      this.canvas.addEventListener("click", (ev) => { const at = this.cellAt(ev); if (at) onPick(at.r, at.c); });
    }
    new ResizeObserver(() => this.render()).observe(this.root);
  }

  /** New values: the card under the pointer described the old ones, so it goes until the next move. */
  set(values, vmax = this.vmax) { this.values = values || []; this.vmax = vmax; this.hideTip(); this.render(); }

  /** Outline one cell (null: none). */
  mark(r, c) { this.marked = r == null ? null : { r, c }; this.render(); }

  /** The colour a value is drawn in (tests compare it with the canvas pixels). */
  colour(v) { return v == null ? css("--bg") : cssColor(this.scaleFn(Math.min(1, Math.max(0, v / this.vmax)))); }

  rowName(r) { return this.rowNames ? String(this.rowNames[r]) : this.rowLabel + r; }
  colName(c) { return this.colNames ? String(this.colNames[c]) : this.colLabel + c; }

  geometry() {
    const rows = this.values.length;
    const cols = rows ? this.values[0].length : 0;
    const left = this.left, top = 16;
    const cell = Math.max(4, Math.min(this.maxCell, Math.floor((this.root.clientWidth - left - 4) / Math.max(1, cols))));
    return { rows, cols, left, top, cell, width: left + cols * cell + 4, height: top + rows * cell + 4 };
  }

  /** The colour scale: the colormap from 0 to vmax, ticks placed where the display scale puts them. */
  renderLegend() {
    if (!this.legend) return;
    this.legend.classList.toggle("hidden", !this.values.length);
    const stops = Array.from({ length: 11 }, (_, i) => `${cssColor(i / 10)} ${i * 10}%`);
    this.legend.querySelector(".grid-legend-bar").style.background = `linear-gradient(to right, ${stops.join(", ")})`;
    const ticks = [0, 0.1, 0.25, 0.5, 1].map((f) => f * this.vmax);
    this.legend.querySelector(".grid-legend-ticks").replaceChildren(...ticks.map((v) =>
      h("span", { style: { left: `${this.scaleFn(v / this.vmax) * 100}%` }, dataset: { value: String(v) } }, String(+v.toPrecision(2)))));
  }

  render() {
    this.renderLegend();
    const g = this.geometry();
    if (!g.rows || !this.root.clientWidth) { this.canvas.width = 0; return; }
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = g.width * dpr; this.canvas.height = g.height * dpr;
    this.canvas.style.width = g.width + "px"; this.canvas.style.height = g.height + "px";
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, g.width, g.height);
    for (let r = 0; r < g.rows; r++) {
      for (let c = 0; c < g.cols; c++) {
        ctx.fillStyle = this.colour(this.values[r][c]);
        ctx.fillRect(g.left + c * g.cell, g.top + r * g.cell, g.cell - 1, g.cell - 1);
      }
    }
    if (this.marked && this.marked.r < g.rows && this.marked.c < g.cols) {
      ctx.strokeStyle = css("--text");
      ctx.lineWidth = 2;
      ctx.strokeRect(g.left + this.marked.c * g.cell + 1, g.top + this.marked.r * g.cell + 1, g.cell - 3, g.cell - 3);
    }
    ctx.fillStyle = css("--muted");
    ctx.font = `10px ${css("--mono")}`;
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    const every = Math.ceil(12 / g.cell);
    for (let r = 0; r < g.rows; r += every) ctx.fillText(this.rowName(r), g.left - 3, g.top + (r + 0.5) * g.cell);
    ctx.textAlign = "center"; ctx.textBaseline = "bottom";
    const colEvery = this.colNames ? Math.ceil(36 / g.cell) : every;  // named columns ("2048") are wider
    for (let c = 0; c < g.cols; c += colEvery) ctx.fillText(this.colName(c), g.left + (c + 0.5) * g.cell, g.top - 2);
  }

  cellAt(ev) {
    const g = this.geometry();
    const rect = this.canvas.getBoundingClientRect();
    const c = Math.floor((ev.clientX - rect.left - g.left) / g.cell);
    const r = Math.floor((ev.clientY - rect.top - g.top) / g.cell);
    return r < 0 || c < 0 || r >= g.rows || c >= g.cols ? null : { r, c };
  }

  hover(ev) {
    const at = this.cellAt(ev);
    if (!at) { this.tip.classList.add("hidden"); return; }
    const { r, c } = at;
    const v = this.values[r][c];
    this.tip.textContent = this.describe ? this.describe(r, c, v) : `${this.rowName(r)} ${this.colName(c)}: ${v == null ? "—" : v.toFixed(3)}`;
    placeTip(this.tip, this.root, ev);
  }
}
