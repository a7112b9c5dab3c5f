// The schema manager: suggestions to apply or dismiss, each metric with its aliases and fields
// (type, aliases, hidden, derived expression), unknown fields with their evidence and one-click
// declare / alias-to / hide, and the history timeline. Every edit goes through the versioned
// schema API; a read key sees the same page without the edit controls (the server refuses
// edits to it regardless).
import { h, mount, notice, fmtTime, table } from "./dom.js";
import { api, isAdmin } from "./api.js";

const TYPES = ["string", "boolean", "integer", "double", "timestamp", "binary"];
const enc = encodeURIComponent;

/** A sentence for a failed edit: 409s say what a clash means, not only who owns the name. */
export function explain(err) {
  if (err.status === 409) {
    return `Not changed: that name is taken. Within a metric a name (field name, alias or timestamp alias) belongs to one field, and within a tenant a metric name or alias to one metric. ${err.message}. Pick another name, or remove it from its owner first.`;
  }
  if (err.status === 403) return `Not allowed: ${err.message}`;
  return err.message;
}

export async function render(body) {
  const admin = isAdmin();
  const flash = h("div#schema-flash", { role: "status" });
  const main = h("div");
  mount(body, h("h1", "Schema"), flash, main);

  async function change(method, path, payload, done) {
    try {
      const answer = await api(method, path, payload);
      mount(flash, notice("ok", done + (answer && answer.version ? ` (schema version ${answer.version})` : "")));
      await load();
    } catch (err) {
      mount(flash, notice("error", explain(err)));
    }
  }

  async function load() {
    const [schema, suggestions, hist] = await Promise.all([
      api("GET", "/schema"),
      admin ? api("GET", "/schema/suggestions").catch(() => ({ suggestions: [] })) : { suggestions: [] },
      admin ? api("GET", "/schema/history").catch(() => ({ versions: [] })) : { versions: [] },
    ]);
    mount(main,
      admin ? suggestionsSection(suggestions.suggestions, change) : null,
      schema.metrics.length ? null : h("section.empty", h("p", "No metrics yet: they appear with their first event (see the Query page for a curl example).")),
      schema.metrics.map((m) => metricSection(m, admin, change, suggestedTypes(suggestions.suggestions, m.name))),
      admin ? historySection(hist.versions) : null);
  }
  await load();
}

function suggestionsSection(list, change) {
  if (!list.length) return h("section.card#suggestions", h("h2", "Suggestions"), h("p.muted", "No suggestions now. They come from what devices send and what queries read."));
  return h("section.card#suggestions", h("h2", `Suggestions (${list.length})`),
    table(["Metric", "Change", "Confidence", "Why", ""], list.map((s) => [
      s.metric,
      h("code", describeChange(s.change)),
      `${Math.round(s.confidence * 100)}%`,
      s.reason || "",
      h("span.actions",
        h("button.small.primary", { "data-apply": s.id, onclick: () => change("POST", `/schema/suggestions/${enc(s.id)}/apply`, undefined, `Applied: ${describeChange(s.change)}`) }, "Apply"),
        h("button.small", { onclick: () => change("POST", `/schema/suggestions/${enc(s.id)}/dismiss`, undefined, "Dismissed") }, "Dismiss")),
    ])));
}

function describeChange(c) {
  switch (c.op) {
    case "set_type": return `${c.field}: type ${c.type}`;
    case "add_alias": return `${c.alias} → alias of ${c.field}`;
    case "hide": case "hide_field": return `hide ${c.field}`;
    case "merge_metric": return `merge ${c.from} into this metric`;
    default: return JSON.stringify(c);
  }
}

/** Field name → the type a current suggestion proposes for it, in metric `metric`. */
function suggestedTypes(list, metric) {
  const out = new Map();
  for (const s of list) if (s.metric === metric && s.change.op === "set_type") out.set(s.change.field, s.change.type);
  return out;
}

function metricSection(m, admin, change, suggested) {
  const base = `/schema/metrics/${enc(m.name)}`;
  const aliasInput = h("input.small", { placeholder: "new alias", "aria-label": `New alias of metric ${m.name}` });
  return h("section.card.metric", { "data-metric": m.name },
    h("h2", m.name, " ", (m.aliases || []).map((a) => h("span.tag", { title: "metric alias" }, a))),
    admin ? h("form.inline", {
      onsubmit: (e) => {
        e.preventDefault();
        const name = aliasInput.value.trim();
        if (name) change("PATCH", base, { add_aliases: [name] }, `"${name}" now names ${m.name}`);
      },
    }, aliasInput, h("button.small", { type: "submit" }, "Add metric alias")) : null,
    h("h3", "Fields"),
    m.fields.length ? table(["Field", "Type", "Aliases (precedence order)", "Hidden", admin ? "Change" : ""],
      m.fields.map((f) => fieldRow(m, f, admin, change, base)), { cls: "fields" })
      : h("p.muted", "No declared fields: every field still reads as text under the name devices sent."),
    h("h3", "Unknown fields"),
    (m.unknown_fields || []).length
      ? table(["Name", "Count", "First seen", "Last seen", "JSON kinds", "Samples", admin ? "Declare" : ""],
        m.unknown_fields.map((u) => unknownRow(m, u, admin, change, base, suggested.get(u.name))), { cls: "unknown" })
      : h("p.muted", "None: no undeclared names have been sent."));
}

function fieldRow(m, f, admin, change, base) {
  const path = `${base}/fields/${enc(f.name)}`;
  const typeSel = h("select.small", { "aria-label": `Type of ${f.name}` }, TYPES.map((t) => h("option", { value: t, selected: t === f.type }, t)));
  const alias = h("input.small", { placeholder: "alias", "aria-label": `New alias of ${f.name}` });
  const controls = admin ? h("span.actions",
    typeSel, h("button.small", { onclick: () => change("PATCH", path, { type: typeSel.value }, `${f.name} is now ${typeSel.value}`) }, "Set type"),
    alias, h("button.small", {
      onclick: () => (alias.value.trim()
        ? change("PATCH", path, { add_aliases: [alias.value.trim()] }, `"${alias.value.trim()}" now reads as ${f.name}`)
        : alias.focus()),
    }, "Add alias"),
    h("button.small", { onclick: () => change("PATCH", path, { hidden: !f.hidden }, `${f.name} ${f.hidden ? "shown" : "hidden"}`) }, f.hidden ? "Show" : "Hide")) : "";
  return [
    h("span", h("strong", f.name), f.expression ? h("small.muted", ` = ${f.expression}`) : null),
    f.type || h("span.muted", "untyped (text)"),
    (f.aliases || []).map((a) => h("span.tag", a)),
    f.hidden ? "hidden" : "",
    controls,
  ];
}

function unknownRow(m, u, admin, change, base, suggested) {
  const path = `${base}/fields/${enc(u.name)}`;
  // Preselect the suggested type, else what the JSON kinds say.
  const kinds = u.types || [];
  const guess = suggested || (kinds.includes("number") ? "double" : kinds.includes("boolean") ? "boolean" : "string");
  const typeSel = h("select.small", { "aria-label": `Type for ${u.name}` }, TYPES.map((t) => h("option", { value: t, selected: t === guess }, t)));
  const target = h("select.small", { "aria-label": `Field that ${u.name} is an alias of` },
    h("option", { value: "" }, "alias of…"), m.fields.map((f) => h("option", { value: f.name }, f.name)));
  const controls = admin ? h("span.actions",
    typeSel, h("button.small.primary", { "data-declare": u.name, onclick: () => change("PUT", path, { type: typeSel.value }, `${u.name} declared as ${typeSel.value}`) }, "Declare"),
    m.fields.length ? [target, h("button.small", {
      onclick: () => target.value && change("PATCH", `${base}/fields/${enc(target.value)}`, { add_aliases: [u.name] }, `${u.name} now reads as ${target.value}`),
    }, "Alias")] : null,
    h("button.small", { onclick: () => change("PUT", path, { hidden: true }, `${u.name} hidden`) }, "Hide")) : "";
  return [
    h("strong", u.name), String(u.count), fmtTime(u.first_seen), fmtTime(u.last_seen),
    (u.types || []).join(", "),
    h("span.samples", (u.samples || []).slice(0, 4).map((s) => h("code", typeof s === "string" ? s : JSON.stringify(s)))),
    controls,
  ];
}

function historySection(versions) {
  const items = [...versions].reverse().slice(0, 100);
  return h("section.card#history", h("h2", "History"),
    items.length ? h("ol.timeline", items.map((v) => h("li", h("span.muted", `v${v.version} · ${fmtTime(v.time)}`), " ", v.change)))
      : h("p.muted", "No changes yet."));
}
