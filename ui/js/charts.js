// Line and bar charts on the vendored Chart.js (global `Chart`, ui/vendor/chartjs), themed once here.
const Chart = window.Chart;

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

let themed = false;
function theme() {
  if (themed || !Chart) return;
  themed = true;
  Chart.defaults.color = css("--muted");
  Chart.defaults.borderColor = css("--border");
  Chart.defaults.font.family = css("--sans");
  Chart.defaults.font.size = 11;
  Chart.defaults.animation = false;          // live updates every 50 ms: no tweening
  Chart.defaults.maintainAspectRatio = false; // the .chart-box sets the height
  Chart.defaults.plugins.legend.labels.boxWidth = 10;
  Chart.defaults.plugins.tooltip.backgroundColor = "rgba(18,22,29,.96)";
  Chart.defaults.plugins.tooltip.borderColor = css("--border-strong");
  Chart.defaults.plugins.tooltip.borderWidth = 1;
}

// Fixed series colours that do not collide with the data colour language where avoidable.
export const SERIES = ["#b48cff", "#3ddc84", "#4aa3ff", "#f2c94c", "#ff4fa3", "#ff9f43", "#2dd4bf", "#e5e7eb"];

function axes(xTitle, yTitle, extra = {}) {
  return {
    x: { title: { display: !!xTitle, text: xTitle }, grid: { color: css("--border") }, ...(extra.x || {}) },
    y: { title: { display: !!yTitle, text: yTitle }, grid: { color: css("--border") }, beginAtZero: true, ...(extra.y || {}) },
  };
}

/** datasets: [{label, data: [y] or [{x, y}], color?}] */
export function lineChart(canvas, { labels = [], datasets = [], xTitle = "", yTitle = "", scales = {}, legend = true } = {}) {
  theme();
  return new Chart(canvas, {
    type: "line",
    data: { labels, datasets: datasets.map(styleLine) },
    options: {
      parsing: true, normalized: true,
      elements: { point: { radius: 0 }, line: { borderWidth: 1.5, tension: 0 } },
      interaction: { mode: "index", intersect: false },
      scales: axes(xTitle, yTitle, scales),
      plugins: { legend: { display: legend } },
    },
  });
}

/** datasets: [{label, data, color? | colors?}]; stacked for per-tier bars. */
export function barChart(canvas, { labels = [], datasets = [], xTitle = "", yTitle = "", stacked = false, horizontal = false, legend = true, scales = {} } = {}) {
  theme();
  const sc = axes(xTitle, yTitle, scales);
  if (stacked) { sc.x.stacked = true; sc.y.stacked = true; }
  return new Chart(canvas, {
    type: "bar",
    data: { labels, datasets: datasets.map(styleBar) },
    options: { indexAxis: horizontal ? "y" : "x", scales: sc, plugins: { legend: { display: legend } } },
  });
}

function styleLine(d, i) {
  const c = d.color || SERIES[i % SERIES.length];
  return { borderColor: c, backgroundColor: c, ...d };
}

function styleBar(d, i) {
  const c = d.colors || d.color || SERIES[i % SERIES.length];
  return { backgroundColor: c, borderColor: c, borderWidth: 0, ...d };
}

/** Replace a chart's labels/datasets in place (keeps the canvas, no flicker). */
export function setData(chart, labels, datasets, style = "line") {
  chart.data.labels = labels;
  chart.data.datasets = datasets.map(style === "bar" ? styleBar : styleLine);
  chart.update();
}
