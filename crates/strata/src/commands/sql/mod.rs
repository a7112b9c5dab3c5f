//! `strata sql`: one query, or an interactive shell.

mod statements;

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use std::process::ExitCode;

use serde_json::{json, Value};
use strata_client::Client;

use crate::cli::{SqlArgs, SqlFormat};
use crate::output::{self, Align};

/// Statements remembered by the shell's `\s`; older ones are forgotten.
const MAX_HISTORY: usize = 1000;
/// Longest statement the shell accumulates before refusing it, so a paste without `;` cannot
/// grow without bound.
const MAX_STATEMENT_BYTES: usize = 1024 * 1024;
const PROMPT: &str = "strata> ";
const CONTINUATION_PROMPT: &str = "   ...> ";

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
            let script = Input {
                lines: Box::new(std::io::BufReader::new(file)),
                interactive: false,
            };
            shell(&client, format, script, &mut out)?
        }
        (None, None) => {
            let stdin = std::io::stdin();
            let input = Input {
                interactive: stdin.is_terminal(),
                lines: Box::new(stdin.lock()),
            };
            shell(&client, format, input, &mut out)?
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

/// The shell's statements: a terminal (prompts, mistakes do not fail the exit status), or a
/// script from a pipe or `--file`.
struct Input {
    lines: Box<dyn BufRead>,
    interactive: bool,
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

/// The shell's help (`\?`, `\h`), as psql names its commands.
const SHELL_HELP: &str = "\
End each statement with `;` (a `;` inside quotes or comments does not count); several
statements on one line run in order. Statements run in your tenant, as on /api/v1/sql.
  \\s       statement history
  \\? \\h    this help
  \\q       quit (also `quit`, `exit`, end of input)
";

/// What the shell does after one input line.
#[derive(Debug, PartialEq, Eq)]
enum ShellStep {
    Quit,
    ShowHistory,
    ShowHelp,
    /// A complete statement (without its final `;`).
    Run(String),
}

#[derive(Default)]
struct ShellState {
    buffer: String,
    history: Vec<String>,
}

impl ShellState {
    /// The steps one input line completes, in order; none while a statement continues.
    fn feed(&mut self, line: &str) -> anyhow::Result<Vec<ShellStep>> {
        let trimmed = line.trim();
        if self.buffer.trim().is_empty() {
            match trimmed {
                "\\q" | "quit" | "exit" => return Ok(vec![ShellStep::Quit]),
                "\\s" => return Ok(vec![ShellStep::ShowHistory]),
                "\\?" | "\\h" | "help" => return Ok(vec![ShellStep::ShowHelp]),
                "" => return Ok(Vec::new()),
                _ => {}
            }
        }
        if self.buffer.len() + line.len() > MAX_STATEMENT_BYTES {
            self.buffer.clear();
            anyhow::bail!(
                "statement longer than {MAX_STATEMENT_BYTES} bytes without a closing `;`; discarded"
            );
        }
        if !self.buffer.is_empty() {
            self.buffer.push('\n');
        }
        self.buffer.push_str(line.trim_end());
        let (complete, rest) = statements::complete_statements(&self.buffer);
        self.buffer = rest;
        Ok(complete
            .into_iter()
            .map(|statement| ShellStep::Run(self.remember(statement)))
            .collect())
    }

    /// The unfinished statement at the end of input (a script's last one may lack its `;`).
    fn take_statement(&mut self) -> String {
        let statement = std::mem::take(&mut self.buffer).trim().to_string();
        self.remember(statement)
    }

    fn remember(&mut self, statement: String) -> String {
        if self.history.len() >= MAX_HISTORY {
            self.history.remove(0);
        }
        self.history.push(statement.clone());
        statement
    }
}

fn shell(
    client: &Client,
    format: SqlFormat,
    input: Input,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let interactive = input.interactive;
    if interactive {
        println!("Strata SQL shell. End statements with `;`. \\? help, \\s history, \\q quit.");
    }
    let mut state = ShellState::default();
    let mut failures = 0u64;
    let mut lines = input.lines.lines();
    loop {
        if interactive {
            let prompt = if state.buffer.is_empty() {
                PROMPT
            } else {
                CONTINUATION_PROMPT
            };
            print!("{prompt}");
            std::io::stdout().flush()?;
        }
        let Some(line) = lines.next() else {
            // A script whose last statement lacks `;` still runs it.
            if !state.buffer.trim().is_empty() {
                let statement = state.take_statement();
                failures += u64::from(!run_in_shell(client, &statement, format, out)?);
            }
            break;
        };
        let steps = match state.feed(&line?) {
            Ok(steps) => steps,
            Err(err) => {
                eprintln!("error: {err:#}");
                failures += 1;
                continue;
            }
        };
        for step in steps {
            match step {
                ShellStep::Quit => return Ok(shell_exit(failures, interactive)),
                ShellStep::ShowHistory => {
                    for (i, statement) in state.history.iter().enumerate() {
                        // One line per entry keeps the numbering readable.
                        writeln!(out, "{:>4}  {}", i + 1, statement.replace('\n', " "))?;
                    }
                }
                ShellStep::ShowHelp => write!(out, "{SHELL_HELP}")?,
                ShellStep::Run(statement) => {
                    failures += u64::from(!run_in_shell(client, &statement, format, out)?);
                    // A terminal shows each answer at once, even when results go to a file.
                    out.flush()?;
                }
            }
        }
    }
    Ok(shell_exit(failures, interactive))
}

/// Interactive mistakes are part of the conversation; a script that had errors fails.
fn shell_exit(failures: u64, interactive: bool) -> ExitCode {
    if failures > 0 && !interactive {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs one statement, writing its result to `out` or its error to stderr; false on error.
fn run_in_shell(
    client: &Client,
    statement: &str,
    format: SqlFormat,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    if statement.is_empty() {
        return Ok(true);
    }
    match query_output(client, statement, format) {
        Ok(text) => {
            write!(out, "{text}")?;
            Ok(true)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            Ok(false)
        }
    }
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
    fn shell_collects_multi_line_statements() {
        let run = |s: &str| vec![ShellStep::Run(s.to_string())];
        let mut state = ShellState::default();
        assert_eq!(state.feed("").unwrap(), vec![]);
        assert_eq!(state.feed("SELECT *").unwrap(), vec![]);
        assert_eq!(
            state.feed("\\q").unwrap(),
            vec![],
            "inside a statement \\q is text"
        );
        assert_eq!(
            state.feed("FROM t;  ").unwrap(),
            run("SELECT *\n\\q\nFROM t")
        );
        assert_eq!(state.feed("SELECT 1;").unwrap(), run("SELECT 1"));
        assert_eq!(state.feed("SELECT 'a;").unwrap(), vec![], "open literal");
        assert_eq!(state.feed("b'; SELECT 2; SELECT").unwrap(), {
            let mut both = run("SELECT 'a;\nb'");
            both.extend(run("SELECT 2"));
            both
        });
        assert_eq!(state.take_statement(), "SELECT");
        assert_eq!(
            state.history,
            vec![
                "SELECT *\n\\q\nFROM t",
                "SELECT 1",
                "SELECT 'a;\nb'",
                "SELECT 2",
                "SELECT"
            ]
        );
        assert_eq!(state.feed("\\s").unwrap(), vec![ShellStep::ShowHistory]);
        assert_eq!(state.feed("\\h").unwrap(), vec![ShellStep::ShowHelp]);
        assert_eq!(state.feed("\\?").unwrap(), vec![ShellStep::ShowHelp]);
        assert_eq!(state.feed(" \\q ").unwrap(), vec![ShellStep::Quit]);
    }
}
