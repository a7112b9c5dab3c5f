//! Human-readable output: aligned text tables and plain renderings of JSON values.

use serde_json::Value;
use unicode_width::UnicodeWidthStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Renders rows under a header as aligned columns separated by two spaces, with a dashed rule
/// under the header. Cells never wrap: control characters are escaped so one row stays one line.
pub fn table(headers: &[String], aligns: &[Align], rows: &[Vec<String>]) -> String {
    // Alignments may cover only the first columns; the rest align left.
    debug_assert!(aligns.len() <= headers.len());
    let headers: Vec<String> = headers.iter().map(|h| one_line(h)).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| one_line(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.width()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            let len = cell.width();
            match widths.get_mut(i) {
                Some(width) => *width = (*width).max(len),
                None => widths.push(len),
            }
        }
    }
    let mut out = String::new();
    let align_of = |i: usize| aligns.get(i).copied().unwrap_or(Align::Left);
    push_row(&mut out, &headers, &widths, &|_| Align::Left);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    push_row(&mut out, &rule, &widths, &|_| Align::Left);
    for row in &rows {
        push_row(&mut out, row, &widths, &align_of);
    }
    out
}

fn push_row(out: &mut String, cells: &[String], widths: &[usize], align: &dyn Fn(usize) -> Align) {
    let mut line = String::new();
    for (i, width) in widths.iter().enumerate() {
        let cell = cells.get(i).map(String::as_str).unwrap_or("");
        let pad = width.saturating_sub(cell.width());
        if i > 0 {
            line.push_str("  ");
        }
        match align(i) {
            Align::Left => {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
            Align::Right => {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
        }
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// Escapes line breaks and other control characters so a cell cannot break the table.
pub fn one_line(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A JSON value as a table cell: strings without quotes, null as `NULL`, arrays and objects as
/// compact JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// A list of strings from a JSON array (non-strings rendered as JSON), joined by ", ".
pub fn list(value: Option<&Value>) -> String {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Some(Value::Null) | None => String::new(),
        Some(other) => cell(other),
    }
}

/// Pretty JSON for `--json`; a value that cannot be pretty-printed falls back to compact.
pub fn json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_and_escapes_newlines() {
        let text = table(
            &["name".into(), "n".into()],
            &[Align::Left, Align::Right],
            &[
                vec!["a\nb".into(), "1".into()],
                vec!["long name".into(), "100".into()],
            ],
        );
        assert_eq!(
            text,
            "name       n\n---------  ---\na\\nb         1\nlong name  100\n"
        );
    }

    #[test]
    fn wide_characters_take_their_terminal_columns() {
        // "東京" is 2 characters but 4 columns; "e\u{301}" (é decomposed) is 2 characters, 1 column.
        let text = table(
            &["city".into(), "n".into()],
            &[Align::Left, Align::Right],
            &[
                vec!["東京".into(), "1".into()],
                vec!["e\u{301}".into(), "22".into()],
            ],
        );
        assert_eq!(text, "city  n\n----  --\n東京   1\ne\u{301}     22\n");
    }

    #[test]
    fn cells_render_plainly() {
        assert_eq!(cell(&Value::Null), "NULL");
        assert_eq!(cell(&serde_json::json!("x")), "x");
        assert_eq!(cell(&serde_json::json!([1, "a"])), "[1,\"a\"]");
        assert_eq!(list(Some(&serde_json::json!(["a", "b"]))), "a, b");
        assert_eq!(list(None), "");
    }
}
