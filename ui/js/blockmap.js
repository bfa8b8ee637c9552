// KV block map on a <canvas>: one square per block, coloured by tier (HBM green, L2
// cyan, RAM yellow, disk orange: the --tier-* colours of app.css); sink blocks get a pink
// border, heavy-hitter blocks a blue one, colours no tier uses. Painted pixel by pixel into one ImageData (62,500 blocks is ~250k pixels,
// a few ms), and hover finds the block by arithmetic, not by DOM nodes.
import { h } from "./dom.js";
import * as fmt from "./format.js";
import { placeTip, hideTipWhenAway } from "./tooltip.js";

export const TIERS = ["GPU HBM", "GPU L2 (modelled)", "System RAM", "Disk"];
const TIER_RGB = [[61, 220, 132], [34, 211, 238], [242, 201, 76], [251, 146, 60]];
const UNPLACED = [38, 45, 57];   // a block that holds no token yet at this step
const SINK = [255, 79, 163];
const HEAVY = [74, 163, 255];
const STATUS_NAMES = ["Normal", "Sink", "Heavy Hitter"];

/** status may come as 0/1/2 or "normal"/"sink"/"heavy"/"heavy_hitter". */
function statusCode(s) {
  if (typeof s === "number") return s;
  const t = String(s || "").toLowerCase();
  return t.startsWith("sink") ? 1 : t.startsWith("heavy") ? 2 : 0;
}

export class BlockMap {
  constructor(container, { maxHeight = 420, empty = "Run a profile to place the KV blocks." } = {}) {
    this.maxHeight = maxHeight;
    this.canvas = h("canvas", { class: "blockmap" });
    this.tip = h("div", { class: "tooltip hidden" });
    this.empty = h("div", { class: "empty-viz" }, empty);
    this.root = h("div", { class: "viz blockmap-viz" }, this.canvas, this.tip, this.empty);
    container.appendChild(this.root);
    this.n = 0;
    this.canvas.addEventListener("mousemove", (ev) => this.hover(ev));
    this.hideTip = hideTipWhenAway(this.tip, this.canvas);
    new ResizeObserver(() => this.render()).observe(this.root);
  }

  /** tier[b] (0..3, or -1 when not placed), status[b], access[b]; bytesPerToken for the hover card. */
  setData({ tier, status, access, blockSize, nTokens, bytesPerToken }) {
    this.n = tier.length;
    this.tier = Int8Array.from(tier, (t) => (t == null ? -1 : t));
    this.status = Uint8Array.from(status || [], statusCode);
    this.access = access || [];
    Object.assign(this, { blockSize, nTokens, bytesPerToken });
    this.hideTip();  // it described the old layout
    this.render();
  }

  /** The scrubber: same blocks, the tiers at another step. */
  setTiers(tier) {
    this.tier = Int8Array.from(tier, (t) => (t == null ? -1 : t));
    this.render();
  }

  geometry() {
    const width = this.root.clientWidth;
    const n = Math.max(1, this.n);
    const cell = Math.max(1, Math.min(22, Math.floor(Math.sqrt((width * this.maxHeight) / n))));
    const cols = Math.max(1, Math.floor(width / cell));
    const rows = Math.ceil(n / cols);
    return { cell, cols, rows, width: cols * cell, height: rows * cell };
  }

  render() {
    this.empty.classList.toggle("hidden", this.n > 0);
    this.canvas.classList.toggle("hidden", this.n === 0);
    if (!this.n || !this.root.clientWidth) return;
    const g = this.geometry();
    const dpr = window.devicePixelRatio || 1;
    const cd = Math.max(1, Math.round(g.cell * dpr));  // cell in device pixels
    const W = g.cols * cd, H = g.rows * cd;
    this.canvas.width = W; this.canvas.height = H;
    this.canvas.style.width = W / dpr + "px"; this.canvas.style.height = H / dpr + "px";
    const ctx = this.canvas.getContext("2d");
    const img = ctx.createImageData(W, H);
    const px = img.data;
    const gap = cd >= 4 ? 1 : 0;       // a dark seam between cells when there is room
    const inner = cd - gap;
    const ring = cd >= 5;              // room for a 1px status border
    for (let b = 0; b < this.n; b++) {
      const x0 = (b % g.cols) * cd, y0 = Math.floor(b / g.cols) * cd;
      const t = this.tier[b];
      const base = t >= 0 && t < 4 ? TIER_RGB[t] : UNPLACED;
      const st = this.status[b] || 0;
      const mark = st === 1 ? SINK : st === 2 ? HEAVY : null;
      for (let y = 0; y < inner; y++) {
        let o = ((y0 + y) * W + x0) * 4;
        for (let x = 0; x < inner; x++, o += 4) {
          // Tiny cells have no room for a border: the status colour takes the top pixel row.
          const edge = ring ? (x === 0 || y === 0 || x === inner - 1 || y === inner - 1) : y === 0;
          const c = mark && edge ? mark : base;
          const dim = mark && ring && !edge && (x === 1 || y === 1 || x === inner - 2 || y === inner - 2) ? 0.35 : 1;
          px[o] = c[0] * dim; px[o + 1] = c[1] * dim; px[o + 2] = c[2] * dim; px[o + 3] = 255;
        }
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  /** What the hover card says about block b (also used by tests). */
  describe(b) {
    const B = this.blockSize || 0;
    const first = b * B;
    const last = Math.min((b + 1) * B, this.nTokens || (b + 1) * B) - 1;
    const tokens = last - first + 1;
    const t = this.tier[b];
    return {
      block: b, tokens: `${first}–${last}`, tier: t >= 0 ? TIERS[t] : "not placed",
      bytes: this.bytesPerToken ? tokens * this.bytesPerToken : null,
      access: this.access[b], status: STATUS_NAMES[this.status[b] || 0],
    };
  }

  hover(ev) {
    const g = this.geometry();
    const rect = this.canvas.getBoundingClientRect();
    const col = Math.floor((ev.clientX - rect.left) / g.cell);
    const row = Math.floor((ev.clientY - rect.top) / g.cell);
    const b = row * g.cols + col;
    if (col < 0 || row < 0 || col >= g.cols || b >= this.n) { this.tip.classList.add("hidden"); return; }
    const d = this.describe(b);
    this.tip.textContent = [`block ${d.block}`, `tokens ${d.tokens}`, `tier ${d.tier}`,
      `size ${fmt.bytes(d.bytes)}`, `accesses ${d.access == null ? "—" : fmt.int(d.access)}`, `status ${d.status}`].join("\n");
    placeTip(this.tip, this.root, ev);
    this.hovered = b;
  }
}
