// A virtualized results table: only the rows in view (plus a margin) exist in the DOM, placed
// by a spacer of the full height, so 100k or 1M rows scroll as smoothly as 100.
import { h, fmtValue } from "./dom.js";

const ROW_H = 26;
const OVERSCAN = 20;

export function resultsTable(columns, rows) {
  const head = h("div.vt-head", { role: "row" },
    columns.map((c) => h("div.vt-cell", { role: "columnheader", title: c.type }, c.name, h("small", " ", c.type))));
  const body = h("div.vt-rows");
  const spacer = h("div.vt-spacer", body);
  const viewport = h("div.vt-viewport", { tabindex: 0, role: "grid", "aria-rowcount": rows.length + 1, "aria-label": "Results" }, head, spacer);
  const width = `minmax(8em, 1fr)`;
  viewport.style.setProperty("--cols", `repeat(${columns.length}, ${width})`);
  let first = -1;
  let last = -1;

  function draw() {
    spacer.style.height = `${rows.length * ROW_H}px`;
    const top = Math.max(0, viewport.scrollTop - head.offsetHeight);
    const start = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const end = Math.min(rows.length, Math.ceil((top + viewport.clientHeight) / ROW_H) + OVERSCAN);
    if (start === first && end === last) return;
    first = start; last = end;
    const t0 = performance.now();
    const frag = document.createDocumentFragment();
    for (let i = start; i < end; i++) {
      const row = rows[i];
      const tr = document.createElement("div");
      tr.className = "vt-row";
      tr.setAttribute("role", "row");
      tr.setAttribute("aria-rowindex", i + 2);
      for (let c = 0; c < columns.length; c++) {
        const td = document.createElement("div");
        td.className = row[c] === null ? "vt-cell null" : "vt-cell";
        td.textContent = fmtValue(row[c]);
        tr.append(td);
      }
      frag.append(tr);
    }
    body.style.transform = `translateY(${start * ROW_H}px)`;
    body.replaceChildren(frag);
    // The last draws' durations, for the browser tests' measurements.
    const draws = (window.__strata ||= {}).tableDraws ||= [];
    draws.push(performance.now() - t0);
    if (draws.length > 200) draws.shift();
  }
  let pending = false;
  viewport.addEventListener("scroll", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  });
  new ResizeObserver(() => { first = -1; draw(); }).observe(viewport);
  return {
    el: viewport,
    /** Redraws after rows were appended or changed in place. */
    refresh() { first = -1; viewport.setAttribute("aria-rowcount", rows.length + 1); draw(); },
  };
}
