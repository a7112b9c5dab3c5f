// Alerts (admin): rules with their state badges and instances, test-fire and delete; the state
// history (`strata.alert_history`); channels with a test send; silences; a new rule, channel or
// silence from its JSON (the API's own shape).
import { h, mount, notice, fmtTime, table } from "./dom.js";
import { api, sql } from "./api.js";

const enc = encodeURIComponent;
const EXAMPLE_RULE = `{"name":"hot","kind":"event","metric":"thermostat","condition":"temp > 90","channels":[]}`;

function badge(state) { return h(`span.badge.s-${state}`, state); }

export async function render(body) {
  const flash = h("div#alerts-flash", { role: "status" });
  const main = h("div");
  mount(body, h("h1", "Alerts"), flash, main);

  async function act(method, path, payload, done) {
    try {
      const answer = await api(method, path, payload);
      mount(flash, notice("ok", done, answer ? h("pre.code", JSON.stringify(answer, null, 2)) : null));
      await load();
    } catch (err) { mount(flash, notice("error", err.message)); }
  }

  async function load() {
    const [alerts, channels, silences, history] = await Promise.all([
      api("GET", "/alerts"), api("GET", "/channels"), api("GET", "/silences"),
      sql("SELECT time, alert, labels, from_state, to_state, value FROM strata.alert_history ORDER BY time DESC LIMIT 100")
        .catch(() => ({ rows: [] }))]);
    const until = new Date(Date.now() + 3600e3).toISOString().slice(0, 19) + "Z";
    const silenceJson = h("textarea#new-silence", { rows: 2, "aria-label": "New silence as JSON" },
      `{"matchers":{"alert":"${(alerts.alerts[0] || { name: "hot" }).name}"},"until":"${until}","comment":"maintenance"}`);
    const ruleJson = h("textarea#new-rule", { rows: 3, "aria-label": "New rule as JSON" }, EXAMPLE_RULE);
    const chanJson = h("textarea#new-channel", { rows: 2, "aria-label": "New channel as JSON" }, `{"name":"ops","kind":"webhook","url":"https://example.com/hook"}`);
    mount(main,
      h("section.card", h("h2", "Rules"),
        alerts.alerts.length ? alerts.alerts.map((r) => h("div.rule",
          h("h3", r.name, " ", badge(worst(r)), " ", h("small.muted", r.kind), r.health === "error" ? h("span.badge.s-error", r.last_error) : null),
          h("p.muted", r.sql || r.condition || "", r.metric ? ` on ${r.metric}` : "", ` · last evaluated ${fmtTime(r.last_evaluated_at)}`),
          (r.instances || []).length ? table(["Labels", "State", "Value", "Since"], r.instances.map((i) =>
            [JSON.stringify(i.labels), badge(i.state), i.value === null ? "–" : String(i.value), fmtTime(i.state_since)])) : h("p.muted", "No instances yet."),
          h("span.actions",
            h("button.small", { onclick: () => act("POST", `/alerts/${enc(r.name)}/test`, undefined, `Test of ${r.name}:`) }, "Test-fire"),
            h("button.small.danger", { onclick: () => confirm(`Delete rule ${r.name}?`) && act("DELETE", `/alerts/${enc(r.name)}`, undefined, `Deleted ${r.name}`) }, "Delete"))))
          : h("p.muted", "No rules. Create one below: kinds are event (per event), query (SQL on a schedule) and absence (a series that stops sending)."),
        h("form", { onsubmit: (e) => { e.preventDefault(); parse(ruleJson.value, (b) => act("POST", "/alerts", b, "Rule created")); } },
          ruleJson, h("button.primary", { type: "submit" }, "Create rule"))),
      h("section.card", h("h2", "Channels"),
        channels.channels.length ? table(["Name", "Kind", ""], channels.channels.map((c) => [c.name, c.kind,
          h("span.actions", h("button.small", { onclick: () => act("POST", `/channels/${enc(c.name)}/test`, undefined, `Test sent to ${c.name}`) }, "Send test"),
            h("button.small.danger", { onclick: () => act("DELETE", `/channels/${enc(c.name)}`, undefined, `Deleted ${c.name}`) }, "Delete"))]))
          : h("p.muted", "No channels (webhook, email, SMS)."),
        h("form", { onsubmit: (e) => { e.preventDefault(); parse(chanJson.value, (b) => act("POST", "/channels", b, "Channel created")); } },
          chanJson, h("button", { type: "submit" }, "Create channel"))),
      h("section.card#alert-history", h("h2", "History"),
        history.rows.length ? table(["Time", "Rule", "Labels", "Change", "Value"], history.rows.map(([time, alert, labels, from, to, value]) =>
          [fmtTime(time), alert, labels, h("span", badge(from), " → ", badge(to)), value === null ? "–" : String(value)]))
          : h("p.muted", "No state changes yet.")),
      h("section.card", h("h2", "Silences"),
        (silences.silences || []).length ? table(["Matchers", "From", "Until", "Comment", "Active", ""], silences.silences.map((s) => [
          JSON.stringify(s.matchers || {}), fmtTime(s.starts), fmtTime(s.until), s.comment || "", s.active ? "yes" : "no",
          h("button.small", { onclick: () => act("DELETE", `/silences/${enc(s.id)}`, undefined, "Silence removed") }, "Remove")]))
          : h("p.muted", "No silences."),
        h("form", { onsubmit: (e) => { e.preventDefault(); parse(silenceJson.value, (b) => act("POST", "/silences", b, "Silence created")); } },
          silenceJson, h("button", { type: "submit" }, "Create silence"))));
    function parse(text, then) {
      try { then(JSON.parse(text)); } catch (err) { mount(flash, notice("error", `Not valid JSON: ${err.message}`)); }
    }
  }
  await load();
}

function worst(rule) {
  const order = ["error", "firing", "pending", "nodata", "normal"];
  const states = (rule.instances || []).map((i) => i.state);
  return order.find((s) => states.includes(s)) || "normal";
}
