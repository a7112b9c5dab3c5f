//! Where the shell's lines come from: a script (a pipe or `--file`), or a terminal with a line
//! editor (rustyline): arrow keys, Ctrl-R search, a history kept across sessions in a file,
//! and Enter that ends the input only once the statement is complete, so a multi-line
//! statement (quotes and comments included) is edited and recalled as one entry.

use std::borrow::Cow;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use rustyline::error::ReadlineError;
use rustyline::history::{FileHistory, History};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Config, Editor};

use super::shell::{command, MAX_HISTORY};
use super::statements;

const PROMPT: &str = "strata> ";
const CONTINUATION_PROMPT: &str = "   ...> ";
/// The history file under the home directory, as psql keeps `~/.psql_history`.
const HISTORY_FILE_NAME: &str = ".strata_history";

pub enum Input {
    Script(Box<dyn BufRead>),
    Terminal(Box<Terminal>),
}

pub struct Terminal {
    editor: Editor<StatementHelper, FileHistory>,
    /// `None`: history is kept for this session only.
    history_file: Option<PathBuf>,
}

impl Input {
    pub fn is_interactive(&self) -> bool {
        matches!(self, Input::Terminal(_))
    }

    /// The next input (a line of a script; a whole statement or command from the terminal),
    /// or `None` at the end. Ctrl-C at the terminal abandons the input and asks again.
    pub fn read(&mut self, between_statements: bool) -> anyhow::Result<Option<String>> {
        match self {
            Input::Script(lines) => {
                let mut line = String::new();
                if lines.read_line(&mut line)? == 0 {
                    return Ok(None);
                }
                Ok(Some(line.trim_end_matches(['\n', '\r']).to_string()))
            }
            Input::Terminal(terminal) => terminal.read(between_statements),
        }
    }
}

impl Terminal {
    /// A line editor whose history is `history_file` (created if missing; an empty path turns
    /// persistence off), else `~/.strata_history`.
    pub fn open(history_file: Option<PathBuf>) -> anyhow::Result<Terminal> {
        let config = Config::builder()
            .max_history_size(MAX_HISTORY)
            .context("history size")?
            .auto_add_history(false)
            .build();
        let mut editor: Editor<StatementHelper, FileHistory> =
            Editor::with_config(config).context("opening the terminal's line editor")?;
        editor.set_helper(Some(StatementHelper));
        let history_file = match history_file {
            Some(path) if path.as_os_str().is_empty() => None,
            Some(path) => Some(path),
            None => {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(HISTORY_FILE_NAME))
            }
        };
        if let Some(path) = &history_file {
            // A missing file is the first session; any other failure only costs old history.
            if path.exists() {
                if let Err(err) = editor.load_history(path) {
                    eprintln!("warning: could not read history {}: {err}", path.display());
                }
            }
        }
        Ok(Terminal {
            editor,
            history_file,
        })
    }

    fn read(&mut self, between_statements: bool) -> anyhow::Result<Option<String>> {
        let prompt = if between_statements {
            PROMPT
        } else {
            CONTINUATION_PROMPT
        };
        match self.editor.readline(prompt) {
            Ok(entry) => {
                self.remember(&entry);
                Ok(Some(entry))
            }
            // psql: Ctrl-C drops the input being typed.
            Err(ReadlineError::Interrupted) => Ok(Some(String::new())),
            Err(ReadlineError::Eof) => Ok(None),
            Err(err) => Err(err).context("reading from the terminal"),
        }
    }

    /// Adds an entry to the history and appends it to the file at once, so a shell that is
    /// killed keeps what was typed, and two shells do not overwrite each other's entries.
    fn remember(&mut self, entry: &str) {
        if entry.trim().is_empty() {
            return;
        }
        if let Err(err) = self.editor.history_mut().add(entry) {
            eprintln!("warning: history: {err}");
            return;
        }
        if let Some(path) = &self.history_file {
            if let Err(err) = self.editor.append_history(path) {
                eprintln!(
                    "warning: could not save history to {}: {err}",
                    path.display()
                );
            }
        }
    }
}

/// Tells the editor when Enter ends the input: after a shell command, or once every statement
/// typed is closed by a `;` outside quotes and comments. Otherwise Enter starts a new line of
/// the same entry.
pub struct StatementHelper;

impl Validator for StatementHelper {
    fn validate(&self, context: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if is_complete(context.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

/// Whether `input` can run as it is: a shell command, blank, or statements all ended by `;`.
pub fn is_complete(input: &str) -> bool {
    if command(input.trim()).is_some() {
        return true;
    }
    let (_, rest) = statements::complete_statements(input);
    rest.trim().is_empty()
}

impl rustyline::completion::Completer for StatementHelper {
    type Candidate = String;
}
impl rustyline::hint::Hinter for StatementHelper {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for StatementHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}
impl rustyline::Helper for StatementHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enter_ends_the_input_only_when_every_statement_is_closed() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1; SELECT 2;  "));
        assert!(is_complete("\\d thermo"));
        assert!(is_complete("   "));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT 'a;"), "inside a literal");
        assert!(!is_complete("SELECT 1 -- done;"), "inside a comment");
        assert!(!is_complete("SELECT 1; SELECT"));
        assert!(is_complete("SELECT 'a;\nb';"));
    }
}
