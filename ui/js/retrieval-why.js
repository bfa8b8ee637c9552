// "Why it missed", for one cell of the Retrieval grid and one policy: a layers × KV-heads grid
// of how many of the needle's tokens each head still holds when the question starts (0 = the
// needle is gone from that head), and beside it the share of attention the query producing the
// first answer token pays to the needle span, per layer, against Full Cache's. StreamingLLM that
// dropped the needle reads as a dark grid and a flat line; H2O that kept it in some layers but
// not in the heads that retrieve reads as bright cells where its line still stays low.
import { h, fill } from "./dom.js";
import { ScoreGrid } from "./scoregrid.js";
import { lineChart, setData } from "./charts.js";
import { policyStyle } from "./palette.js";
import * as fmt from "./format.js";

export class WhyMissed {
  constructor(container, { label }) {
    this.label = label;
    this.title = h("div", { class: "why-title" }, "Click a cell of a heatmap to see why its answer was found or missed.");
    this.policy = h("select", { class: "why-policy hidden", dataset: { field: "why_policy" }, onchange: () => this.show(this.policy.value) });
    this.gridBox = h("div", { class: "why-grid" });
    this.gridNote = h("div", { class: "hint" });
    this.canvas = h("canvas");
    this.body = h("div", { class: "why-body hidden" },
      h("div", { class: "why-kept" }, h("div", { class: "hint" }, "needle tokens still cached when the question starts (layer × KV head)"),
        this.gridBox, this.gridNote),
      h("div", { class: "why-attn" }, h("div", { class: "chart-box why-chart" }, this.canvas)));
    container.append(h("div", { class: "row" }, this.title, h("span", { class: "spacer" }), this.policy), this.body);
    this.grid = new ScoreGrid(this.gridBox, { rowLabel: "L", colLabel: "H", maxCell: 22, scale: "linear",
      describe: (l, kv, v) => `layer ${l} · KV head ${kv}: ${v == null ? "—" : fmt.int(v)} of ${fmt.int(this.tokens)} needle tokens cached` });
    this.chart = lineChart(this.canvas, { xTitle: "layer", yTitle: "attention on the needle (share)" });
    this.at = null;
  }

  /** result: the retrieval result; a cell (length, depth) and the policy to show first. */
  open(result, length, depth, policy) {
    this.result = result;
    this.at = { length, depth };
    const here = result.cells.filter((c) => c.length === length && c.depth === depth);
    fill(this.policy, here.map((c) => h("option", { value: c.policy }, this.label(c.policy))));
    this.policy.classList.remove("hidden");
    this.show(policy);
  }

  show(policy) {
    const { length, depth } = this.at;
    const cells = this.result.cells.filter((c) => c.length === length && c.depth === depth);
    const cell = cells.find((c) => c.policy === policy);
    if (!cell) return;
    this.policy.value = policy;
    this.current = cell;
    this.tokens = cell.needle_tokens;
    fill(this.title, h("b", {}, this.label(policy)), ` · ${fmt.int(length)} tokens · depth ${Math.round(depth * 100)}% · `,
      h("span", { class: cell.correct ? "ok" : "err" }, cell.correct ? "found" : "missed"),
      ` · answer “${cell.answer}” · expected “${cell.expected}”`);
    this.body.classList.remove("hidden");
    const kept = cell.needle_kept || [];
    this.grid.maxCell = Math.max(14, Math.min(22, Math.floor(420 / Math.max(1, kept.length))));  // 30 layers stay ~420 px tall
    this.grid.set(kept, Math.max(1, cell.needle_tokens));
    const whole = kept.flat().filter((v) => v >= cell.needle_tokens).length;
    const none = kept.flat().filter((v) => v === 0).length;
    this.gridNote.textContent = `${kept.length} layers × ${kept[0] ? kept[0].length : 0} KV heads · bright = all ${cell.needle_tokens} `
      + `needle tokens kept · ${whole} heads keep the whole needle, ${none} none`;
    const full = cells.find((c) => c.policy === "full");
    const att = cell.needle_attention || [];
    const sets = [{ label: this.label(policy), data: att, ...policyStyle(policy), pointRadius: 2 }];
    if (full && policy !== "full") sets.push({ label: this.label("full"), data: full.needle_attention || [], ...policyStyle("full"), pointRadius: 2 });
    setData(this.chart, att.map((_, l) => `L${l}`), sets);
  }

  resize() { this.chart.resize(); }

  /** For tests: what is drawn. */
  state() {
    return this.current ? { policy: this.current.policy, length: this.at.length, depth: this.at.depth,
      kept: this.grid.values, canvasWidth: this.grid.canvas.width,
      datasets: this.chart.data.datasets.map((d) => ({ label: d.label, data: d.data.slice() })) } : null;
  }
}
