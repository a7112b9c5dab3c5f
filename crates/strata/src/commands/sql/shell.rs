//! The SQL shell of `strata sql`: statements ended by `;` (from a terminal, a pipe or
//! `--file`), run one by one, and psql's backslash commands: `\d`, `\d NAME`, `\x`, `\timing`,
//! `\s`, `\?`, `\q`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::{json, Value};
use strata_client::Client;

use super::editor::Input;
use super::{query_output, render_expanded, render_result, statements};
use crate::cli::SqlFormat;

/// Statements remembered by the shell's `\s`; older ones are forgotten.
pub const MAX_HISTORY: usize = 1000;
/// Longest statement the shell accumulates before refusing it, so a paste without `;` cannot
/// grow without bound.
const MAX_STATEMENT_BYTES: usize = 1024 * 1024;

/// The shell's help (`\?`, `\h`), as psql names its commands.
const SHELL_HELP: &str = "\
End each statement with `;` (a `;` inside quotes or comments does not count); several
statements on one line run in order. Statements run in your tenant, as on /api/v1/sql.
  \\d         list tables
  \\d NAME    describe table NAME (its columns and types)
  \\x         toggle expanded display (one column per line)
  \\timing    toggle showing how long each statement took
  \\s         statement history (also the arrow keys; kept in ~/.strata_history)
  \\? \\h      this help
  \\q         quit (also `quit`, `exit`, Ctrl-D)
";

/// What the shell does after one input line.
#[derive(Debug, PartialEq, Eq)]
pub enum ShellStep {
    Quit,
    ShowHistory,
    ShowHelp,
    ListTables,
    Describe(String),
    ToggleExpanded,
    ToggleTiming,
    /// A complete statement (without its final `;`).
    Run(String),
}

#[derive(Default)]
pub struct ShellState {
    pub buffer: String,
    pub history: Vec<String>,
}

impl ShellState {
    /// The steps one input line completes, in order; none while a statement continues.
    pub fn feed(&mut self, line: &str) -> anyhow::Result<Vec<ShellStep>> {
        if self.buffer.trim().is_empty() {
            if let Some(step) = command(line.trim()) {
                return Ok(step.into_iter().collect());
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
    pub fn take_statement(&mut self) -> String {
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

/// A line that is a shell command rather than SQL: `Some(None)` for a blank line (nothing to
/// do), `None` for SQL.
pub fn command(trimmed: &str) -> Option<Option<ShellStep>> {
    let step = match trimmed {
        "" => return Some(None),
        "\\q" | "quit" | "exit" => ShellStep::Quit,
        "\\s" => ShellStep::ShowHistory,
        "\\?" | "\\h" | "help" => ShellStep::ShowHelp,
        "\\d" => ShellStep::ListTables,
        "\\x" => ShellStep::ToggleExpanded,
        "\\timing" => ShellStep::ToggleTiming,
        _ => match trimmed.strip_prefix("\\d ") {
            Some(name) => ShellStep::Describe(name.trim().to_string()),
            None => return None,
        },
    };
    Some(Some(step))
}

/// How results are shown; `\x` and `\timing` change it.
struct Display {
    format: SqlFormat,
    expanded: bool,
    timing: bool,
}

pub fn shell(
    client: &Client,
    format: SqlFormat,
    mut input: Input,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let interactive = input.is_interactive();
    if interactive {
        println!("Strata SQL shell. End statements with `;`. \\? help, \\d tables, \\q quit.");
    }
    let mut state = ShellState::default();
    let mut display = Display {
        format,
        expanded: false,
        timing: false,
    };
    let mut failures = 0u64;
    loop {
        let Some(line) = input.read(state.buffer.is_empty())? else {
            // A script whose last statement lacks `;` still runs it.
            if !state.buffer.trim().is_empty() {
                let statement = state.take_statement();
                failures += u64::from(!run_in_shell(client, &statement, &display, out)?);
            }
            break;
        };
        let steps = match state.feed(&line) {
            Ok(steps) => steps,
            Err(err) => {
                eprintln!("error: {err:#}");
                failures += 1;
                continue;
            }
        };
        for step in steps {
            if step == ShellStep::Quit {
                return Ok(shell_exit(failures, interactive));
            }
            let ok = run_step(client, step, &state, &mut display, out)?;
            failures += u64::from(!ok);
            // A terminal shows each answer at once, even when results go to a file.
            out.flush()?;
        }
    }
    Ok(shell_exit(failures, interactive))
}

/// Runs one step other than quitting; false when it failed.
fn run_step(
    client: &Client,
    step: ShellStep,
    state: &ShellState,
    display: &mut Display,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    match step {
        ShellStep::Quit => {}
        ShellStep::ShowHistory => {
            for (i, statement) in state.history.iter().enumerate() {
                // One line per entry keeps the numbering readable.
                writeln!(out, "{:>4}  {}", i + 1, statement.replace('\n', " "))?;
            }
        }
        ShellStep::ShowHelp => write!(out, "{SHELL_HELP}")?,
        ShellStep::ToggleExpanded => {
            display.expanded = !display.expanded;
            let on = if display.expanded { "on" } else { "off" };
            writeln!(out, "Expanded display is {on}.")?;
        }
        ShellStep::ToggleTiming => {
            display.timing = !display.timing;
            writeln!(
                out,
                "Timing is {}.",
                if display.timing { "on" } else { "off" }
            )?;
        }
        ShellStep::ListTables => return run_in_shell(client, LIST_TABLES, display, out),
        ShellStep::Describe(name) => return describe(client, &name, display, out),
        ShellStep::Run(statement) => return run_in_shell(client, &statement, display, out),
    }
    Ok(true)
}

/// `\d`: the tenant's tables and views, as the information schema lists them.
const LIST_TABLES: &str = "SELECT table_schema AS schema, table_name AS name, table_type AS type \
     FROM information_schema.tables \
     WHERE table_schema NOT IN ('information_schema', 'pg_catalog') \
     ORDER BY table_schema, table_name";

/// `\d NAME`: one table's columns, or an error naming the table when there is none.
fn describe(
    client: &Client,
    name: &str,
    display: &Display,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let literal = name.trim_matches('"').replace('\'', "''");
    let sql = format!(
        "SELECT column_name AS column, data_type AS type, is_nullable AS nullable \
         FROM information_schema.columns WHERE table_name = '{literal}' \
         ORDER BY table_schema, ordinal_position"
    );
    let answer = match client.post(
        &["api", "v1", "sql"],
        &json!({"sql": sql, "format": "json"}),
    ) {
        Ok(answer) => answer,
        Err(err) => {
            eprintln!("error: {err:#}");
            return Ok(false);
        }
    };
    if answer["rows"].as_array().is_none_or(Vec::is_empty) {
        eprintln!("error: no table named {name} (\\d lists them)");
        return Ok(false);
    }
    write!(out, "Table \"{name}\"\n{}", show(&answer, display))?;
    Ok(true)
}

fn show(answer: &Value, display: &Display) -> String {
    if display.expanded {
        render_expanded(answer)
    } else {
        render_result(answer)
    }
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
    display: &Display,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    if statement.is_empty() {
        return Ok(true);
    }
    let started = Instant::now();
    let result = match display.format {
        SqlFormat::Table => client
            .post(
                &["api", "v1", "sql"],
                &json!({ "sql": statement, "format": "json" }),
            )
            .map(|answer| show(&answer, display))
            .map_err(anyhow::Error::from),
        format => query_output(client, statement, format),
    };
    let ok = match result {
        Ok(text) => {
            write!(out, "{text}")?;
            true
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            false
        }
    };
    if display.timing {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        writeln!(out, "Time: {ms:.3} ms")?;
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn backslash_commands_are_recognised_only_between_statements() {
        let mut state = ShellState::default();
        assert_eq!(state.feed("\\d").unwrap(), vec![ShellStep::ListTables]);
        assert_eq!(
            state.feed("\\d  thermo ").unwrap(),
            vec![ShellStep::Describe("thermo".to_string())]
        );
        assert_eq!(state.feed("\\x").unwrap(), vec![ShellStep::ToggleExpanded]);
        assert_eq!(
            state.feed("\\timing").unwrap(),
            vec![ShellStep::ToggleTiming]
        );
        assert_eq!(state.feed("SELECT").unwrap(), vec![]);
        assert_eq!(state.feed("\\d").unwrap(), vec![], "inside a statement");
        assert!(command("\\dt").is_none(), "not a command: sent as SQL");
    }
}
