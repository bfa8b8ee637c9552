// A small matrix of scores (e.g. layers × heads sink scores) as coloured cells on a
// canvas, same colormap as the heatmap, with a hover readout. Values may be null.
import { cssColor } from "./colormap.js";
import { h } from "./dom.js";

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

export class ScoreGrid {
  constructor(container, { rowLabel = "L", colLabel = "H", maxCell = 26, vmax = 1, describe = null } = {}) {
    Object.assign(this, { rowLabel, colLabel, maxCell, vmax, describe });
    this.canvas = h("canvas");
    this.tip = h("div", { class: "tooltip hidden" });
    this.root = h("div", { class: "viz scoregrid" }, this.canvas, this.tip);
    container.appendChild(this.root);
    this.values = [];
    this.canvas.addEventListener("mousemove", (ev) => this.hover(ev));
    this.canvas.addEventListener("mouseleave", () => this.tip.classList.add("hidden"));
    new ResizeObserver(() => this.render()).observe(this.root);
  }

  set(values) { this.values = values || []; this.render(); }

  geometry() {
    const rows = this.values.length;
    const cols = rows ? this.values[0].length : 0;
    const left = 28, top = 16;
    const cell = Math.max(4, Math.min(this.maxCell, Math.floor((this.root.clientWidth - left - 4) / Math.max(1, cols))));
    return { rows, cols, left, top, cell, width: left + cols * cell + 4, height: top + rows * cell + 4 };
  }

  render() {
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
        const v = this.values[r][c];
        ctx.fillStyle = v == null ? css("--bg") : cssColor(Math.sqrt(Math.min(1, Math.max(0, v / this.vmax))));
        ctx.fillRect(g.left + c * g.cell, g.top + r * g.cell, g.cell - 1, g.cell - 1);
      }
    }
    ctx.fillStyle = css("--muted");
    ctx.font = `10px ${css("--mono")}`;
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    const every = Math.ceil(12 / g.cell);
    for (let r = 0; r < g.rows; r += every) ctx.fillText(this.rowLabel + r, g.left - 3, g.top + (r + 0.5) * g.cell);
    ctx.textAlign = "center"; ctx.textBaseline = "bottom";
    for (let c = 0; c < g.cols; c += every) ctx.fillText(this.colLabel + c, g.left + (c + 0.5) * g.cell, g.top - 2);
  }

  hover(ev) {
    const g = this.geometry();
    const rect = this.canvas.getBoundingClientRect();
    const c = Math.floor((ev.clientX - rect.left - g.left) / g.cell);
    const r = Math.floor((ev.clientY - rect.top - g.top) / g.cell);
    if (r < 0 || c < 0 || r >= g.rows || c >= g.cols) { this.tip.classList.add("hidden"); return; }
    const v = this.values[r][c];
    this.tip.textContent = this.describe ? this.describe(r, c, v) : `${this.rowLabel}${r} ${this.colLabel}${c}: ${v == null ? "—" : v.toFixed(3)}`;
    this.tip.classList.remove("hidden");
    this.tip.style.left = Math.min(ev.clientX - this.root.getBoundingClientRect().left + 12, this.root.clientWidth - 180) + "px";
    this.tip.style.top = ev.clientY - this.root.getBoundingClientRect().top + 12 + "px";
  }
}
