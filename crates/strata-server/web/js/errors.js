// Ingest errors: the `strata.errors` table (every rejected event and unparsable body) through
// SQL, filtered by time and metric, with each record's raw payload one click away.
import { h, mount, notice, fmtTime } from "./dom.js";
import { sql } from "./api.js";

const quote = (s) => `'${s.replace(/'/g, "''")}'`;
// A datetime-local input gives "2026-12-07T15:00" (no seconds), which SQL's TIMESTAMP does not
// parse; the inputs are read as UTC, like every time the API shows.
const instant = (v) => quote(/T\d\d:\d\d$/.test(v) ? `${v}:00Z` : v);

export function errorsQuery({ since, until, metric, limit = 500 }) {
  const where = [];
  if (since) where.push(`time >= TIMESTAMP ${instant(since)}`);
  if (until) where.push(`time < TIMESTAMP ${instant(until)}`);
  if (metric) where.push(`metric = ${quote(metric)}`);
  return `SELECT time, stage, reason, metric, event_index, payload FROM strata.errors${where.length ? " WHERE " + where.join(" AND ") : ""} ORDER BY time DESC LIMIT ${limit}`;
}

export async function render(body) {
  const since = h("input#err-since", { type: "datetime-local", "aria-label": "From (UTC)" });
  const until = h("input#err-until", { type: "datetime-local", "aria-label": "Until (UTC)" });
  const metric = h("input#err-metric", { placeholder: "metric", "aria-label": "Metric" });
  const out = h("div#errors-list");
  async function load() {
    try {
      const answer = await sql(errorsQuery({ since: since.value, until: until.value, metric: metric.value.trim() }));
      if (!answer.rows.length) return mount(out, h("section.empty", h("p", "No rejected events in this range. Events that fail to parse or have a bad timestamp appear here with their raw payload.")));
      mount(out, h("p.muted", `${answer.rows.length} ${answer.rows.length === 1 ? "record" : "records"} (newest first)`),
        h("ul.errors", answer.rows.map(([time, stage, reason, m, index, payload]) =>
          h("li", h("details", h("summary",
            h("span.muted", fmtTime(time)), " ", h("span.tag", stage), " ", m ? h("strong", m) : null, " ", reason,
            index !== null ? h("span.muted", ` (event ${index})`) : null),
          h("pre.payload", prettyPayload(payload)))))));
    } catch (err) {
      mount(out, notice("error", err.message));
    }
  }
  mount(body, h("h1", "Ingest errors"),
    h("form.filters", { onsubmit: (e) => { e.preventDefault(); load(); } },
      h("label", "From (UTC) ", since), h("label", "Until (UTC) ", until), h("label", "Metric ", metric),
      h("button.primary", { type: "submit" }, "Filter")),
    out);
  await load();
}

function prettyPayload(p) {
  try { return JSON.stringify(JSON.parse(p), null, 2); } catch { return p; }
}
