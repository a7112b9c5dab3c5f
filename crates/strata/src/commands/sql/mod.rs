//! `strata sql`: one query, a script, or an interactive shell (`shell.rs`, reading from
//! `editor.rs`), and the table renderings they share.

mod editor;
mod shell;
mod statements;

use std::io::{IsTerminal, Write};

use anyhow::Context;
use std::process::ExitCode;

use serde_json::{json, Value};
use strata_client::Client;

use crate::cli::{SqlArgs, SqlFormat};
use crate::output::{self, Align};
use editor::Input;
use unicode_width::UnicodeWidthStr;

pub fn run(args: SqlArgs) -> anyhow::Result<ExitCode> {
    let client = super::connect(&args.conn)?;
    let format = if args.conn.json {
        SqlFormat::Json
    } else {
        args.format
    };
    let mut out = output_to(args.output.as_deref())?;
    let code = match (args.query, args.file) {
        (Some(query), _) if args.live => live(&client, &query, args.min_interval_ms, format)?,
        (Some(query), _) => {
            write!(out, "{}", query_output(&client, &query, format)?)?;
            ExitCode::SUCCESS
        }
        (None, Some(path)) => {
            let file = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let script = Input::Script(Box::new(std::io::BufReader::new(file)));
            shell::shell(&client, format, script, &mut out)?
        }
        (None, None) => {
            let stdin = std::io::stdin();
            let input = if stdin.is_terminal() && std::io::stdout().is_terminal() {
                Input::Terminal(Box::new(editor::Terminal::open(args.history)?))
            } else {
                Input::Script(Box::new(stdin.lock()))
            };
            shell::shell(&client, format, input, &mut out)?
        }
    };
    out.flush()?;
    Ok(code)
}

/// Where results go: `--output FILE` (created or truncated) or stdout.
fn output_to(path: Option<&std::path::Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            Box::new(std::io::BufWriter::new(file))
        }
        None => Box::new(std::io::stdout()),
    })
}

/// Rows a redrawn tail keeps on screen; older ones scroll away.
const LIVE_TAIL_ROWS: usize = 1000;

/// `--live`: follows a live query until the server ends it (an `error` event fails the command).
fn live(
    client: &Client,
    sql: &str,
    min_interval_ms: Option<u64>,
    format: SqlFormat,
) -> anyhow::Result<ExitCode> {
    if format == SqlFormat::Csv {
        anyhow::bail!("--live prints a table or json (one JSON line per event), not csv");
    }
    let mut body = json!({ "sql": sql });
    if let Some(ms) = min_interval_ms {
        body["min_interval_ms"] = json!(ms);
    }
    let redraw = std::io::stdout().is_terminal();
    let mut view = LiveView::default();
    let mut failure = None;
    client.sql_live(&body, |event, data| {
        if event == "error" {
            failure = Some(output::cell(&data["error"]));
            return false;
        }
        let text = match format {
            SqlFormat::Json => format!("{}\n", json!({ "event": event, "data": data })),
            _ if redraw => format!("\x1b[2J\x1b[H{}", view.apply(event, data)),
            _ => render_result(&data),
        };
        print!("{text}");
        std::io::stdout().flush().is_ok()
    })?;
    match failure {
        Some(reason) => anyhow::bail!("the live query ended: {reason}"),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// What a terminal shows of a live query: the last snapshot plus the rows appended since.
#[derive(Default)]
struct LiveView {
    columns: Value,
    rows: std::collections::VecDeque<Value>,
}

impl LiveView {
    /// Takes in one event and renders the whole view.
    fn apply(&mut self, event: &str, data: Value) -> String {
        if event == "snapshot" {
            self.columns = data["columns"].clone();
            self.rows.clear();
        }
        if let Value::Array(rows) = &data["rows"] {
            self.rows.extend(rows.iter().cloned());
        }
        while self.rows.len() > LIVE_TAIL_ROWS {
            self.rows.pop_front();
        }
        let mode = output::cell(&data["mode"]);
        let shown = json!({ "columns": self.columns, "rows": Vec::from(self.rows.clone()) });
        format!("live ({mode}), Ctrl-C to stop\n{}", render_result(&shown))
    }
}

/// Runs one query and renders its answer in `format`.
fn query_output(client: &Client, sql: &str, format: SqlFormat) -> anyhow::Result<String> {
    let path = ["api", "v1", "sql"];
    let mut text = match format {
        SqlFormat::Csv => client.post_for_text(&path, &json!({ "sql": sql, "format": "csv" }))?,
        SqlFormat::Json => client.post_for_text(&path, &json!({ "sql": sql, "format": "json" }))?,
        SqlFormat::Table => {
            render_result(&client.post(&path, &json!({ "sql": sql, "format": "json" }))?)
        }
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// The json answer as psql's expanded display (`\x`): one block per row, one line per column.
pub fn render_expanded(answer: &Value) -> String {
    let columns: Vec<String> = match answer.get("columns") {
        Some(Value::Array(columns)) => columns
            .iter()
            .map(|c| output::cell(c.get("name").unwrap_or(c)))
            .collect(),
        _ => return render_result(answer),
    };
    let rows: &[Value] = answer
        .get("rows")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    if rows.is_empty() {
        return "(0 rows)\n".to_string();
    }
    let names: Vec<String> = columns.iter().map(|name| output::one_line(name)).collect();
    let name_width = names.iter().map(|n| n.width()).max().unwrap_or(0);
    let mut text = String::new();
    for (index, row) in rows.iter().enumerate() {
        text.push_str(&format!("-[ RECORD {} ]-\n", index + 1));
        for (i, name) in names.iter().enumerate() {
            let value = output::one_line(&output::cell(row.get(i).unwrap_or(&Value::Null)));
            let pad = " ".repeat(name_width.saturating_sub(name.width()));
            text.push_str(format!("{name}{pad} | {value}").trim_end());
            text.push('\n');
        }
    }
    text
}

/// The json answer (`{"columns":[{"name","type"}],"rows":[[...]]}`) as an aligned table with a
/// row count; numeric columns align right.
pub fn render_result(answer: &Value) -> String {
    let columns: Vec<String> = match answer.get("columns") {
        Some(Value::Array(columns)) => columns
            .iter()
            .map(|c| match c.get("name") {
                Some(Value::String(name)) => name.clone(),
                _ => output::cell(c),
            })
            .collect(),
        _ => Vec::new(),
    };
    let rows: &[Value] = match answer.get("rows") {
        Some(Value::Array(rows)) => rows,
        _ => &[],
    };
    if columns.is_empty() && rows.is_empty() {
        // Not a result set (or an unexpected shape): show what the server said.
        return output::json(answer);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| match row {
            Value::Array(values) => values.iter().map(output::cell).collect(),
            other => vec![output::cell(other)],
        })
        .collect();
    let aligns: Vec<Align> = (0..columns.len())
        .map(|i| {
            let mut values = rows
                .iter()
                .filter_map(|row| row.get(i))
                .filter(|v| !v.is_null())
                .peekable();
            if values.peek().is_some() && values.all(Value::is_number) {
                Align::Right
            } else {
                Align::Left
            }
        })
        .collect();
    let mut text = output::table(&columns, &aligns, &cells);
    text.push_str(&match rows.len() {
        1 => "(1 row)\n".to_string(),
        n => format!("({n} rows)\n"),
    });
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_table_with_row_count() {
        let answer = json!({
            "columns": [{"name": "name", "type": "Utf8"}, {"name": "temp", "type": "Float64"}],
            "rows": [["kitchen", 21.5], ["hall", null], ["garage", 7]]
        });
        assert_eq!(
            render_result(&answer),
            "name     temp\n-------  ----\nkitchen  21.5\nhall     NULL\ngarage      7\n(3 rows)\n"
        );
        let one = json!({"columns": [{"name": "n", "type": "Int64"}], "rows": [[1]]});
        assert!(render_result(&one).ends_with("(1 row)\n"));
        let none = json!({"columns": [{"name": "n", "type": "Int64"}], "rows": []});
        assert_eq!(render_result(&none), "n\n-\n(0 rows)\n");
    }

    #[test]
    fn renders_expanded_records() {
        let answer = json!({
            "columns": [{"name": "name", "type": "Utf8"}, {"name": "temperature", "type": "Float64"}],
            "rows": [["kitchen", 21.5], ["hall\nway", null]]
        });
        assert_eq!(
            render_expanded(&answer),
            "-[ RECORD 1 ]-\nname        | kitchen\ntemperature | 21.5\n\
             -[ RECORD 2 ]-\nname        | hall\\nway\ntemperature | NULL\n"
        );
        let none = json!({"columns": [{"name": "n", "type": "Int64"}], "rows": []});
        assert_eq!(render_expanded(&none), "(0 rows)\n");
    }
}
