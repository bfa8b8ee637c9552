// Retrieval's grid picture: one lengths × depths heatmap per policy, side by side, depth on y
// (0 = the needle at the start, top) and context length on x, as needle-in-a-haystack plots
// are drawn. Colour = whether the answer was right (accuracy) or the log-probability of the
// right answer's tokens, on one shared scale for every policy so they compare. Each heatmap is
// a ScoreGrid (scoregrid.js, the same colormap as every heatmap); hover shows the needle, the
// answer given and the one expected, as text.
import { h, fill } from "./dom.js";
import { ScoreGrid } from "./scoregrid.js";
import { cssColor } from "./colormap.js";
import { policyColour } from "./palette.js";
import * as fmt from "./format.js";

const MAX_CELL = 44;
const depthName = (d) => `${Math.round(d * 100)}%`;

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

export class RetrievalGrids {
  /** onPick(policy, length, depth): a cell was clicked. label(policy): its display name. */
  constructor(container, { onPick, label }) {
    this.onPick = onPick;
    this.label = label;
    this.mode = "accuracy";
    this.grids = new Map();  // policy → ScoreGrid
    this.result = null;
    this.row = h("div", { class: "rgrid-row" });
    this.legend = h("div", { class: "rgrid-legend hint" });
    this.empty = h("div", { class: "empty-viz" }, "Run a grid to see one heatmap per policy.");
    container.append(this.empty, this.row, this.legend);
  }

  /** The result's policies in the order the summary lists them (Full Cache first). */
  policies() {
    const r = this.result;
    if (!r) return [];
    const names = (r.summary || []).map((s) => s.policy);
    for (const c of r.cells) if (!names.includes(c.policy)) names.push(c.policy);
    return names;
  }

  cell(policy, length, depth) {
    return this.result && this.result.cells.find((c) => c.policy === policy && c.length === length && c.depth === depth);
  }

  set(result) {
    this.result = result;
    this.grids.clear();
    fill(this.row);
    this.empty.classList.toggle("hidden", !!result);
    if (!result) { fill(this.legend); return; }
    const lengths = result.lengths, depths = result.depths;
    const cellPx = Math.max(14, Math.min(MAX_CELL, Math.floor(640 / Math.max(1, lengths.length * this.policies().length))));
    for (const policy of this.policies()) {
      const box = h("div", { class: "rgrid", dataset: { policy } }, h("div", { class: "rgrid-title" },
        h("span", { class: "swatch", style: { background: policyColour(policy) } }), this.label(policy)));
      this.row.appendChild(box);
      const grid = new ScoreGrid(box, {
        rowNames: depths.map(depthName), colNames: lengths.map(String), scale: "linear", left: 36,
        maxCell: cellPx, describe: (r, c) => this.describe(policy, lengths[c], depths[r]),
        onPick: (r, c) => this.onPick(policy, lengths[c], depths[r]),
      });
      grid.root.style.width = `${36 + lengths.length * cellPx + 6}px`;
      grid.canvas.dataset.policy = policy;
      this.grids.set(policy, grid);
    }
    this.paint();
  }

  setMode(mode) { this.mode = mode; if (this.result) this.paint(); }

  /** Log-probabilities are placed on the range the whole result spans (every policy alike). */
  range() {
    const lps = this.result.cells.map((c) => c.answer_logprob).filter((v) => typeof v === "number" && isFinite(v));
    const lo = lps.length ? Math.min(...lps) : -1, hi = lps.length ? Math.max(...lps) : 0;
    return { lo, hi: hi > lo ? hi : lo + 1 };
  }

  value(cell, range) {
    if (!cell) return null;
    if (this.mode === "accuracy") return cell.correct ? 1 : 0;
    const v = cell.answer_logprob;
    return typeof v === "number" && isFinite(v) ? (v - range.lo) / (range.hi - range.lo) : null;
  }

  paint() {
    const { lengths, depths } = this.result;
    const range = this.range();
    for (const [policy, grid] of this.grids) {
      grid.set(depths.map((d) => lengths.map((L) => this.value(this.cell(policy, L, d), range))), 1);
    }
    const bar = h("span", { class: "rgrid-bar", style: { background: `linear-gradient(90deg, ${[0, 0.25, 0.5, 0.75, 1].map(cssColor).join(", ")})` } });
    fill(this.legend, this.mode === "accuracy"
      ? ["colour: ", h("span", { class: "rgrid-chip", style: { background: cssColor(0) } }), " missed  ",
        h("span", { class: "rgrid-chip", style: { background: cssColor(1) } }), " found (the answer holds the value)"]
      : ["colour: log p(right answer), teacher-forced: ", fmt.fixed(range.lo, 2), " ", bar, " ", fmt.fixed(range.hi, 2)],
    " · x: context length (tokens) · y: needle depth · click a cell: why it missed",
    this.result.partial ? ` · blank: not run yet (${this.result.cells_done} of ${this.result.cells_total} cells done)` : "");
  }

  mark(policy, length, depth) {
    if (!this.result) return;
    const r = this.result.depths.indexOf(depth), c = this.result.lengths.indexOf(length);
    for (const [p, grid] of this.grids) grid.mark(p === policy ? r : null, c);
  }

  describe(policy, length, depth) {
    const c = this.cell(policy, length, depth);
    if (!c) return `${this.label(policy)} · ${length} tokens · depth ${depthName(depth)}: not run`;
    return [`${this.label(policy)} · ${fmt.int(length)} tokens · depth ${depthName(depth)}`,
      `${c.correct ? "found" : "missed"} · log p(answer) ${fmt.fixed(c.answer_logprob, 3)}`,
      `needle:   ${c.needle}`, `answer:   ${c.answer}`, `expected: ${c.expected}`,
      c.note ? `note: ${c.note}` : null].filter(Boolean).join("\n");
  }

  /** All heatmaps with their titles on one canvas (the PNG export). */
  toCanvas() {
    const grids = [...this.grids.entries()].filter(([, g]) => g.canvas.width > 0);
    const dpr = window.devicePixelRatio || 1, gap = 16 * dpr, title = 20 * dpr;
    const out = document.createElement("canvas");
    out.width = Math.max(1, grids.reduce((w, [, g]) => w + g.canvas.width + gap, gap));
    out.height = Math.max(1, title + Math.max(0, ...grids.map(([, g]) => g.canvas.height)) + gap);
    const ctx = out.getContext("2d");
    ctx.fillStyle = css("--panel") || "#12161d";
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.fillStyle = css("--text") || "#e5e7eb";
    ctx.font = `${12 * dpr}px ${css("--sans") || "sans-serif"}`;
    ctx.textBaseline = "top";
    let x = gap;
    for (const [policy, g] of grids) {
      ctx.fillText(this.label(policy), x, 4 * dpr);
      ctx.drawImage(g.canvas, x, title);
      x += g.canvas.width + gap;
    }
    return out;
  }

  /** For tests: every cell drawn, where its centre is on its canvas (device pixels) and its value. */
  drawn() {
    if (!this.result) return [];
    const { lengths, depths } = this.result;
    const dpr = window.devicePixelRatio || 1;
    const out = [];
    for (const [policy, grid] of this.grids) {
      const g = grid.geometry();
      depths.forEach((depth, r) => lengths.forEach((length, c) => out.push({
        policy, length, depth, value: grid.values[r][c],
        x: Math.floor((g.left + (c + 0.5) * g.cell) * dpr), y: Math.floor((g.top + (r + 0.5) * g.cell) * dpr),
      })));
    }
    return out;
  }
}
