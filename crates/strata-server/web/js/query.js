// The query workbench: editor, Run (Ctrl/Cmd+Enter), Live, CSV export, history, the query in
// the URL (#/query?sql=…), a chart when the result has a timestamp column, and the results in
// a virtualized table. window.__strata.lastRun holds the last run's timings for the browser
// tests' measurements.
import { h, mount, notice, download, fmtValue } from "./dom.js";
import { api, sql as runSql, live, currentSession } from "./api.js";
import { createEditor, markError } from "./editor.js";
import { resultsTable } from "./table.js";
import { chartPlan, drawChart, isNumeric } from "./chart.js";

window.__strata = window.__strata || {};

// Query history lives in this browser, one list per tenant (queries are not secrets; keys never
// go here).
const historyKey = () => `strata.history.${currentSession().tenant}`;
function history() {
  try { return JSON.parse(localStorage.getItem(historyKey())) || []; } catch { return []; }
}
function remember(text) {
  const list = [text, ...history().filter((q) => q !== text)].slice(0, 50);
  localStorage.setItem(historyKey(), JSON.stringify(list));
}

export function curlExample() {
  const origin = location.origin;
  return `KEY=sk_…   # a write or admin key of tenant "${currentSession().tenant}"
curl -X POST ${origin}/api/v1/write -H "Authorization: Bearer $KEY" \\
     -d '{"metrictype":"thermostat","timestamp":"${new Date().toISOString().slice(0, 19)}Z","name":"t1","temp":21.5}'`;
}

function rowCount(n) {
  return `${n.toLocaleString()} ${n === 1 ? "row" : "rows"}`;
}

function toCsv(columns, rows) {
  const esc = (v) => {
    const s = v === null || v === undefined ? "" : fmtValue(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [columns.map((c) => esc(c.name)).join(","), ...rows.map((r) => r.map(esc).join(","))].join("\n") + "\n";
}

export async function render(body, params) {
  const schema = await api("GET", "/schema").catch(() => ({ metrics: [] }));
  const first = schema.metrics[0];
  const initial = params.get("sql")
    || (first ? `SELECT * FROM "${first.name}" ORDER BY timestamp DESC LIMIT 100` : "SELECT 1");
  const status = h("span.status#run-status", { role: "status" });
  const errorBox = h("div#query-error");
  const chartBox = h("div#chart-box");
  const tableBox = h("div#table-box");
  const histSelect = h("select#history", { "aria-label": "Query history" });
  const liveBtn = h("button#live", { "aria-pressed": "false", title: "Keep the answer updated as events arrive" }, "● Live");
  const state = { columns: [], rows: [], table: null, stopLive: null, chartTimer: null };

  const editorHost = h("div.editor#editor");
  const editor = createEditor(editorHost, { doc: initial, schema, onRun: () => run() });
  // Trailing blank lines are no part of the query (and would make history entries differ).
  const text = () => editor.state.doc.toString().trimEnd();

  function fillHistory() {
    mount(histSelect, h("option", { value: "" }, "History…"),
      history().map((q) => h("option", { value: q }, q.length > 80 ? q.slice(0, 80) + "…" : q)));
  }
  histSelect.addEventListener("change", () => {
    if (!histSelect.value) return;
    editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: histSelect.value } });
    histSelect.value = "";
    editor.focus();
  });

  function showError(message) {
    markError(editor, message);
    mount(errorBox, notice("error", message));
  }

  function drawResults() {
    const t0 = performance.now();
    const plan = chartPlan(state.columns);
    mount(chartBox);
    if (plan && state.rows.length) {
      const chart = drawChart(state.columns, state.rows, plan, chartBox.clientWidth || body.clientWidth - 32);
      chartBox.append(chart.el);
    }
    state.table = resultsTable(state.columns, state.rows);
    mount(tableBox, state.table.el);
    state.table.refresh();
    return { renderMs: performance.now() - t0 };
  }

  async function run() {
    stopLive();
    const q = text();
    remember(q); fillHistory();
    window.history.replaceState(null, "", `#/query?sql=${encodeURIComponent(q)}`);
    markError(editor, null);
    mount(errorBox);
    status.textContent = "Running…";
    const t0 = performance.now();
    let answer;
    try {
      answer = await runSql(q);
    } catch (err) {
      status.textContent = "";
      window.__strata.lastRun = { sql: q, error: err.message };
      return showError(err.message);
    }
    const fetchMs = performance.now() - t0;
    state.columns = answer.columns;
    state.rows = answer.rows;
    const { renderMs } = drawResults();
    status.textContent = `${rowCount(state.rows.length)} · ${fetchMs.toFixed(0)} ms`;
    window.__strata.lastRun = { sql: q, rows: state.rows.length, fetchMs, renderMs };
  }

  function scheduleRedraw() {
    if (state.chartTimer) return;
    state.chartTimer = setTimeout(() => {
      state.chartTimer = null;
      drawResults();
      status.textContent = `Live · ${rowCount(state.rows.length)}`;
    }, 200);
  }

  function onLiveEvent(name, data) {
    if (name === "snapshot") {
      state.columns = data.columns; state.rows = data.rows;
    } else if (name === "rows") {
      state.rows.push(...data.rows);
    } else if (name === "update") {
      const keys = state.columns.map((c, i) => i).filter((i) => !isNumeric(state.columns[i]));
      const id = (r) => JSON.stringify(keys.map((k) => r[k]));
      const at = new Map(state.rows.map((r, i) => [id(r), i]));
      for (const r of data.rows) {
        const i = at.get(id(r));
        if (i === undefined) state.rows.push(r); else state.rows[i] = r;
      }
    } else if (name === "error") {
      showError(`Live query ended: ${data.error}`);
      return stopLive();
    } else if (name === "end") {
      return stopLive();
    }
    scheduleRedraw();
  }

  function startLive() {
    stopLive();
    markError(editor, null);
    mount(errorBox);
    remember(text()); fillHistory();
    window.history.replaceState(null, "", `#/query?sql=${encodeURIComponent(text())}&live=1`);
    state.stopLive = live(text(), onLiveEvent);
    liveBtn.setAttribute("aria-pressed", "true");
    liveBtn.classList.add("on");
    status.textContent = "Live · waiting for the first answer…";
  }
  function stopLive() {
    if (state.stopLive) { state.stopLive(); state.stopLive = null; }
    liveBtn.setAttribute("aria-pressed", "false");
    liveBtn.classList.remove("on");
  }
  liveBtn.addEventListener("click", () => (state.stopLive ? (stopLive(), status.textContent = "Live stopped") : startLive()));

  const csvBtn = h("button#csv", {
    onclick: () => download("strata-result.csv", toCsv(state.columns, state.rows), "text/csv"),
  }, "Export CSV");
  fillHistory();
  const empty = schema.metrics.length ? null : h("section.empty#empty-tenant",
    h("h2", "No data yet"),
    h("p", "This tenant has no metrics. Send an event and it is queryable at once:"),
    h("pre.code", curlExample()),
    h("p", "Then run ", h("code", "SELECT * FROM thermostat"), " here."));
  mount(body,
    empty,
    h("section.workbench",
      editorHost,
      h("div.toolbar",
        h("button.primary#run", { onclick: () => run(), title: "Ctrl/Cmd+Enter" }, "▶ Run"),
        liveBtn, csvBtn, histSelect, status),
      errorBox, chartBox, tableBox));
  if (params.get("live") === "1") startLive(); else if (params.get("sql") || first) run();
  editor.focus();
  return () => stopLive();
}
