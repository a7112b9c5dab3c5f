// The SQL editor (CodeMirror 6): highlighting, completion of the tenant's metrics (names and
// aliases) and their fields (names and aliases) from /api/v1/schema, Ctrl/Cmd+Enter to run,
// and errors marked at the line and column the server names.
import {
  EditorView, EditorState, keymap, lineNumbers, highlightActiveLine, drawSelection, placeholder,
  defaultKeymap, history, historyKeymap, indentWithTab, syntaxHighlighting, defaultHighlightStyle,
  bracketMatching, autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap,
  searchKeymap, highlightSelectionMatches, lintGutter, setDiagnostics, sql, PostgreSQL,
  HighlightStyle, Compartment, tags as t,
} from "../vendor/vendor.js";

// Colors readable on the dark theme's background (CodeMirror's default style is for light).
const darkHighlight = HighlightStyle.define([
  { tag: t.keyword, color: "#ff8fb1" },
  { tag: [t.name, t.propertyName, t.variableName], color: "#9ecbff" },
  { tag: [t.string, t.special(t.string)], color: "#a5e075" },
  { tag: [t.number, t.bool, t.null], color: "#f8c555" },
  { tag: [t.operator, t.punctuation], color: "#c9d1d9" },
  { tag: t.comment, color: "#8b949e", fontStyle: "italic" },
  { tag: t.typeName, color: "#ffab70" },
]);
const isDark = () => document.documentElement.dataset.theme === "dark";
function themeExtensions() {
  return isDark()
    ? [EditorView.darkTheme.of(true), syntaxHighlighting(darkHighlight)]
    : [syntaxHighlighting(defaultHighlightStyle, { fallback: true })];
}

/** Completion schema for lang-sql: every table name (metric or alias) with its column names. */
export function completionSchema(schema) {
  const out = {};
  for (const m of (schema && schema.metrics) || []) {
    const cols = ["timestamp"];
    for (const f of m.fields) if (!f.hidden) cols.push(f.name, ...(f.aliases || []));
    for (const u of m.unknown_fields || []) cols.push(u.name);
    for (const name of [m.name, ...(m.aliases || [])]) out[name] = cols;
  }
  out["strata.errors"] = ["time", "stage", "reason", "payload", "event_index", "metric"];
  out["strata.unknown_fields"] = ["metric", "name", "count", "first_seen", "last_seen", "kinds"];
  return out;
}

/**
 * Completion of every metric and field name (with aliases) at any position: lang-sql's own
 * schema completion offers columns only after `table.`, but a query usually names its metric
 * once in FROM and its fields bare.
 */
export function nameCompletions(schema) {
  const options = new Map();
  for (const m of (schema && schema.metrics) || []) {
    for (const name of [m.name, ...(m.aliases || [])]) {
      options.set(name, { label: name, type: "class", detail: name === m.name ? "metric" : `alias of ${m.name}` });
    }
    for (const f of m.fields) {
      if (f.hidden) continue;
      for (const name of [f.name, ...(f.aliases || [])]) {
        if (!options.has(name)) {
          options.set(name, { label: name, type: "property", detail: `${f.type || "string"} · ${name === f.name ? m.name : "alias of " + f.name}` });
        }
      }
    }
    for (const u of m.unknown_fields || []) {
      if (!options.has(u.name)) options.set(u.name, { label: u.name, type: "variable", detail: `unknown · ${m.name}` });
    }
  }
  const list = [...options.values()];
  return (context) => {
    const word = context.matchBefore(/[\w.]*/);
    if (!word || (word.from === word.to && !context.explicit)) return null;
    return { from: word.from, options: list, validFor: /^[\w.]*$/ };
  };
}

export function createEditor(parent, { doc, schema, onRun }) {
  const run = () => { onRun(); return true; };
  // One source function for the editor's life: CodeMirror tracks sources by identity, and a new
  // function per lookup would leave completion pending forever.
  const names = [{ autocomplete: nameCompletions(schema) }];
  const theme = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        lineNumbers(), history(), drawSelection(), highlightActiveLine(), bracketMatching(),
        closeBrackets(), highlightSelectionMatches(), lintGutter(),
        theme.of(themeExtensions()),
        autocompletion(),
        EditorState.languageData.of(() => names),
        sql({ dialect: PostgreSQL, schema: completionSchema(schema), upperCaseKeywords: true }),
        placeholder("SELECT … FROM metric   (Ctrl/Cmd+Enter runs)"),
        keymap.of([
          { key: "Mod-Enter", run, preventDefault: true },
          ...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...searchKeymap,
          ...completionKeymap, indentWithTab,
        ]),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ "aria-label": "SQL query" }),
      ],
    }),
  });
  // main.js announces theme switches; the highlighting follows.
  const follow = () => {
    if (!view.dom.isConnected) return removeEventListener("strata-theme", follow);
    view.dispatch({ effects: theme.reconfigure(themeExtensions()) });
  };
  addEventListener("strata-theme", follow);
  window.__strata = window.__strata || {};
  window.__strata.editor = view;
  return view;
}

/**
 * Where in `doc` a server error points: its "line L, column C" (the parser's "at Line: 2,
 * Column: 14", a derived field's "(at line 1, column 10)"), else the first place the name it
 * complains about appears (an unknown column or table). Null when it names no place.
 */
export function errorPosition(doc, message) {
  const m = /line:? (\d+),? column:? (\d+)/i.exec(message);
  if (m) {
    const lines = doc.split("\n");
    const line = Math.min(Number(m[1]), lines.length) - 1;
    let offset = 0;
    for (let i = 0; i < line; i++) offset += lines[i].length + 1;
    return Math.min(offset + Math.max(0, Number(m[2]) - 1), doc.length);
  }
  const name = /No field named "?([\w]+)"?|table '(?:\w+\.)*(\w+)' not found|column name "?(\w+)"? is ambiguous/i.exec(message);
  const word = name && (name[1] || name[2] || name[3]);
  if (!word) return null;
  const at = new RegExp(`\\b${word}\\b`, "i").exec(doc);
  return at ? at.index : null;
}

/** Marks the error in the editor (a squiggle and gutter marker), or clears marks with null. */
export function markError(view, message) {
  if (!message) return view.dispatch(setDiagnostics(view.state, []));
  const doc = view.state.doc.toString();
  const from = errorPosition(doc, message);
  if (from === null) return view.dispatch(setDiagnostics(view.state, []));
  const to = Math.min(doc.length, from + Math.max(1, (/^\w+/.exec(doc.slice(from)) || [""])[0].length));
  view.dispatch(setDiagnostics(view.state, [{ from, to, severity: "error", message }]));
}
