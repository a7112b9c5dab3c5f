// The SQL editor (CodeMirror 6): highlighting, completion of the tenant's metrics (names and
// aliases) and their fields (names and aliases) from /api/v1/schema, Ctrl/Cmd+Enter to run,
// and errors marked at the line and column the server names.
import {
  EditorView, EditorState, keymap, lineNumbers, highlightActiveLine, drawSelection, placeholder,
  defaultKeymap, history, historyKeymap, indentWithTab, syntaxHighlighting, defaultHighlightStyle,
  bracketMatching, autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap,
  searchKeymap, highlightSelectionMatches, lintGutter, setDiagnostics, sql, PostgreSQL,
} from "../vendor/vendor.js";

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

export function createEditor(parent, { doc, schema, onRun }) {
  const run = () => { onRun(); return true; };
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        lineNumbers(), history(), drawSelection(), highlightActiveLine(), bracketMatching(),
        closeBrackets(), highlightSelectionMatches(), lintGutter(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        autocompletion(),
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
  return view;
}

/** The offset in `doc` that "(at line L, column C)" in a server message points to, or null. */
export function errorPosition(doc, message) {
  const m = /line (\d+),? column (\d+)/i.exec(message);
  if (!m) return null;
  const lines = doc.split("\n");
  const line = Math.min(Number(m[1]), lines.length) - 1;
  let offset = 0;
  for (let i = 0; i < line; i++) offset += lines[i].length + 1;
  return Math.min(offset + Math.max(0, Number(m[2]) - 1), doc.length);
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
