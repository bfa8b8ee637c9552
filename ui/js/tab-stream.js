// stream tab (being built).
import { h } from "./dom.js";
export function init(panel) { panel.appendChild(h("div", { class: "card" }, "Coming soon")); }
