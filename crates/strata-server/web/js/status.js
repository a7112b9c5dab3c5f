// Status: the tenant's ingest rate, hot and cold sizes, per-metric watermark and the last
// compaction, from GET /api/v1/status; admins can compact now.
import { h, mount, notice, fmtBytes, fmtTime, table } from "./dom.js";
import { api, isAdmin } from "./api.js";

export async function render(body) {
  const flash = h("div", { role: "status" });
  const main = h("div");
  mount(body, h("h1", "Status"), flash, main);
  async function load() {
    const s = await api("GET", "/status");
    const hotRows = s.hot_partitions.reduce((n, p) => n + p.rows, 0);
    const hotBytes = s.hot_partitions.reduce((n, p) => n + p.bytes, 0);
    const coldBytes = s.metrics.reduce((n, m) => n + m.cold.bytes, 0);
    const coldRows = s.metrics.reduce((n, m) => n + m.cold.rows, 0);
    const lc = s.last_compaction;
    mount(main,
      h("div.tiles",
        tile("Ingest", `${s.ingest.events_per_second.toFixed(1)} events/s`, `${s.ingest.events_last_minute} in the last minute`),
        tile("Hot tier", fmtBytes(hotBytes), `${hotRows.toLocaleString()} rows in ${s.hot_partitions.length} partitions`),
        tile("Cold tier", fmtBytes(coldBytes), `${coldRows.toLocaleString()} rows`),
        tile("Watermark", fmtTime(s.watermark), "data below it is in Parquet"),
        tile("Last compaction", lc ? fmtTime(lc.finished) : "never", lc ? `${lc.outcome}, ${lc.rows} rows` : "")),
      h("section.card", h("h2", "Metrics"),
        s.metrics.length ? table(["Metric", "Watermark", "Last compacted", "Cold files", "Cold size", "Cold rows", "Days"], s.metrics.map((m) =>
          [m.metric, fmtTime(m.watermark), m.last_compacted_at ? fmtTime(m.last_compacted_at) : "never", String(m.cold.files), fmtBytes(m.cold.bytes), m.cold.rows.toLocaleString(), String(m.cold.days)]))
          : h("p.muted", "No metrics yet.")),
      h("section.card", h("h2", "Hot partitions"),
        s.hot_partitions.length ? table(["Partition", "From", "To", "Rows", "Size"], s.hot_partitions.map((p) =>
          [p.partition, fmtTime(p.start), fmtTime(p.end), p.rows.toLocaleString(), fmtBytes(p.bytes)])) : h("p.muted", "No hot data.")),
      isAdmin() ? h("button#compact", { onclick: async () => {
        try { const r = await api("POST", "/compact"); mount(flash, notice("ok", `Compacted: ${r.rows} rows into ${r.files_written} files.`)); await load(); } catch (err) { mount(flash, notice("error", err.message)); }
      } }, "Compact now") : null);
  }
  try { await load(); } catch (err) { mount(main, notice("error", err.message)); }
}

function tile(title, value, sub) {
  return h("div.tile", h("div.muted", title), h("div.big", value), h("div.muted.small", sub));
}
