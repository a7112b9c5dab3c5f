// Keys and settings (admin): list, create (the secret is shown once) and revoke keys; the
// tenant's metric keys, timestamp patterns and cold retention.
import { h, mount, notice, fmtTime, table } from "./dom.js";
import { api, currentSession } from "./api.js";

export async function render(body) {
  const flash = h("div#keys-flash", { role: "status" });
  const main = h("div");
  mount(body, h("h1", "Keys & settings"), flash, main);

  async function load() {
    const [keys, settings] = await Promise.all([api("GET", "/keys"), api("GET", "/settings")]);
    const role = h("select#new-key-role", { "aria-label": "Role of the new key" }, ["read", "write", "admin"].map((r) => h("option", r)));
    const metricKeys = h("input#metric-keys", { value: (settings.metric_keys || []).join(", "), "aria-label": "Metric keys" });
    const patterns = h("input#ts-patterns", { value: (settings.timestamp_patterns || []).join(", "), "aria-label": "Timestamp patterns" });
    const retention = h("input#retention", { type: "number", min: 0, value: settings.cold_retention_days ?? "", placeholder: "keep forever", "aria-label": "Cold retention days" });
    mount(main,
      h("section.card", h("h2", "Keys"),
        table(["Id", "Role", "Created", "Last used", ""], keys.keys.map((k) => [
          h("code", k.id), k.role, fmtTime(k.created_at), fmtTime(k.last_used_at),
          k.id === currentSession().key_id ? h("span.muted", "this session") :
            h("button.small.danger", { onclick: () => confirm(`Revoke key ${k.id}? Clients using it stop at once.`) && act("DELETE", `/keys/${encodeURIComponent(k.id)}`) }, "Revoke")])),
        h("form.inline", { onsubmit: async (e) => {
          e.preventDefault();
          try {
            const k = await api("POST", "/keys", { role: role.value });
            mount(flash, notice("ok", `New ${k.role} key (shown once; copy it now): `, h("code#new-key", k.key)));
            await load();
          } catch (err) { mount(flash, notice("error", err.message)); }
        } }, role, h("button.primary", { type: "submit" }, "Create key"))),
      h("section.card", h("h2", "Settings"),
        h("form.settings", { onsubmit: async (e) => {
          e.preventDefault();
          const list = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);
          try {
            await api("PATCH", "/settings", {
              metric_keys: list(metricKeys.value), timestamp_patterns: list(patterns.value),
              cold_retention_days: retention.value === "" ? 0 : Number(retention.value),
            });
            mount(flash, notice("ok", "Settings saved."));
          } catch (err) { mount(flash, notice("error", err.message)); }
        } },
        h("label", "Metric keys (event keys naming the metric, first present wins) ", metricKeys),
        h("label", "Timestamp patterns (chrono strftime) ", patterns),
        h("label", "Cold retention, days (empty or 0: forever) ", retention),
        h("button.primary", { type: "submit" }, "Save settings"))));
  }
  async function act(method, path) {
    try { await api(method, path); mount(flash, notice("ok", "Done.")); await load(); } catch (err) { mount(flash, notice("error", err.message)); }
  }
  await load();
}
