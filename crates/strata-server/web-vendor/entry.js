// The third-party code of the web app, bundled into one ES module (../web/vendor/vendor.js) by
// build.sh. Only what the app imports is exported, so esbuild drops the rest.
export { EditorView, keymap, lineNumbers, highlightActiveLine, drawSelection, placeholder } from "@codemirror/view";
export { EditorState, Compartment } from "@codemirror/state";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export {
  syntaxHighlighting, defaultHighlightStyle, bracketMatching, HighlightStyle,
} from "@codemirror/language";
export {
  autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap, startCompletion, completionStatus,
  currentCompletions,
} from "@codemirror/autocomplete";
export { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
export { linter, lintGutter, setDiagnostics } from "@codemirror/lint";
export { sql, PostgreSQL } from "@codemirror/lang-sql";
export { tags } from "@lezer/highlight";
export { default as uPlot } from "uplot";
