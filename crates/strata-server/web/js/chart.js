// The time-series chart (uPlot), chosen when a result has a timestamp column. Numeric columns
// are the values; the non-numeric columns (other than the timestamp) split them into series,
// one per distinct combination (e.g. one line per device name).
import { uPlot } from "../vendor/vendor.js";
import { h } from "./dom.js";

// The numeric type names of the API's `columns` header (strata-query's answer/json.rs).
const NUMERIC = new Set(["integer", "bigint", "bigint unsigned", "real", "double"]);
const PALETTE = ["#2f7ed8", "#e4572e", "#17a398", "#f3a712", "#8e44ad", "#76b041", "#d63384", "#5c6f82"];
const MAX_SERIES = 40;
const MAX_KEY_VALUES = 24;

export function isNumeric(col) {
  const type = String(col.type).toLowerCase();
  return NUMERIC.has(type) || type.startsWith("decimal");
}

/** The chart's plan for a result: null when there is no timestamp column or nothing to plot. */
export function chartPlan(columns) {
  const ts = columns.findIndex((c) => String(c.type).toLowerCase() === "timestamp");
  if (ts < 0) return null;
  const values = columns.map((c, i) => i).filter((i) => i !== ts && isNumeric(columns[i]));
  if (!values.length) return null;
  const keys = columns.map((c, i) => i).filter((i) => i !== ts && !isNumeric(columns[i]));
  return { ts, values, keys };
}

/** Columnar data for uPlot: [xs, ...ys] with xs in seconds, sorted, and series labels. */
export function chartData(columns, rows, plan) {
  const { ts, values } = plan;
  // A text column with many distinct values (ids, free text) would make one line per row:
  // only columns with at most MAX_KEY_VALUES distinct values split series.
  const keys = plan.keys.filter((k) => {
    const seen = new Set();
    for (const r of rows) {
      seen.add(r[k]);
      if (seen.size > MAX_KEY_VALUES) return false;
    }
    return true;
  });
  const groups = new Map();
  for (const r of rows) {
    const key = keys.map((k) => r[k]).join(" · ");
    let g = groups.get(key);
    if (!g) {
      if (groups.size >= MAX_SERIES) continue;
      g = [];
      groups.set(key, g);
    }
    g.push(r);
  }
  const labels = [];
  if (groups.size <= 1) {
    // One group: columns straight into typed arrays, no per-point objects (1M points).
    const sorted = isSorted(rows, ts) ? rows : [...rows].sort((a, b) => time(a[ts]) - time(b[ts]));
    const xs = new Float64Array(sorted.length);
    for (let i = 0; i < sorted.length; i++) xs[i] = time(sorted[i][ts]) / 1000;
    const ys = values.map((v) => {
      const y = new Array(sorted.length);
      for (let i = 0; i < sorted.length; i++) y[i] = num(sorted[i][v]);
      return y;
    });
    const prefix = groups.size === 1 && keys.length ? [...groups.keys()][0] + " · " : "";
    for (const v of values) labels.push(prefix + columns[v].name);
    return { data: [xs, ...ys], labels };
  }
  // Several series: align them on the union of their timestamps (null where one has none).
  const xsSet = new Set();
  for (const r of rows) xsSet.add(time(r[ts]));
  const xsMs = Float64Array.from(xsSet).sort();
  const index = new Map();
  xsMs.forEach((x, i) => index.set(x, i));
  const ys = [];
  for (const [key, grows] of groups) {
    for (const v of values) {
      const y = new Array(xsMs.length).fill(null);
      for (const r of grows) y[index.get(time(r[ts]))] = num(r[v]);
      ys.push(y);
      labels.push(values.length > 1 ? `${key} · ${columns[v].name}` : key);
    }
  }
  return { data: [xsMs.map((x) => x / 1000), ...ys], labels };
}

function isSorted(rows, ts) {
  for (let i = 1; i < rows.length; i++) if (time(rows[i - 1][ts]) > time(rows[i][ts])) return false;
  return true;
}
function time(v) { return typeof v === "number" ? v : Date.parse(v); }
function num(v) { return v === null || v === undefined ? null : Number(v); }

/** Draws the chart into a new element (its data-draw-ms is set at the first draw). */
export function drawChart(columns, rows, plan, width) {
  const t0 = performance.now();
  const { data, labels } = chartData(columns, rows, plan);
  const el = h("div.chart", { role: "img", "aria-label": `Chart of ${labels.join(", ")}` });
  const plot = new uPlot({
    width: Math.max(300, width),
    height: 280,
    // One instant alone would get a range of years; show a minute either side instead.
    scales: { x: { time: true, range: (u, min, max) => (min === max ? [min - 60, max + 60] : [min, max]) } },
    series: [{}, ...labels.map((label, i) => ({
      label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true,
      points: { show: data[0].length < 200 },
    }))],
    axes: [{ stroke: "currentColor", grid: { stroke: "rgba(128,128,128,.2)" } },
      { stroke: "currentColor", grid: { stroke: "rgba(128,128,128,.2)" } }],
    legend: { live: data[0].length < 200000 },
    // uPlot draws after the constructor returns; the first draw hook is when the chart is on
    // screen, which is what the measurement (data preparation + draw) should cover.
    hooks: { draw: [() => { if (!el.dataset.drawMs) el.dataset.drawMs = (performance.now() - t0).toFixed(1); }] },
  }, data, el);
  el.dataset.points = String(data[0].length * labels.length);
  el.dataset.series = String(labels.length);
  return { el, plot };
}
