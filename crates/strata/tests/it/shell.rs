//! Issue 20: `strata sql` as a person uses it, in a pseudo-terminal (rexpect): a multi-line
//! statement with a `;` inside quotes, `\d`, `\d NAME`, `\x`, `\timing`, the arrow keys, and
//! the history kept across sessions in the history file.

use std::path::Path;
use std::process::Command;

use rexpect::session::PtySession;
use serde_json::json;

use crate::common::{write_events, TestServer, BIN};

/// The up-arrow key as a terminal in normal cursor mode sends it.
const UP: &str = "\x1b[A";
/// The Enter key in raw mode.
const ENTER: &str = "\r";
const WAIT_MS: u64 = 20_000;

fn open_shell(server: &TestServer, key: &str, history: &Path) -> PtySession {
    let mut command = Command::new(BIN);
    command
        .args(["sql", "--url", server.url(), "--key", key])
        .arg("--history")
        .arg(history)
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .env_remove("STRATA_URL")
        .env_remove("STRATA_KEY");
    let mut shell = rexpect::session::spawn_command(command, Some(WAIT_MS)).expect("pty shell");
    shell.exp_string("strata> ").expect("the prompt");
    shell
}

fn enter(shell: &mut PtySession, text: &str) {
    shell.send(text).expect("typed");
    shell.send(ENTER).expect("enter");
    shell.flush().expect("flushed");
}

#[test]
fn shell_edits_multi_line_statements_describes_tables_and_keeps_history() {
    let server = TestServer::start();
    let key = server.create_tenant("acme");
    let event = json!({"metrictype": "thermo", "device": "d1", "timestamp": 1_421_057_535_000_i64, "temp": 21.5});
    write_events(&server, &key, &[event]);
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history");

    let mut shell = open_shell(&server, &key, &history);
    // Enter inside an open statement continues it; the `;` in the literal does not end it.
    enter(&mut shell, "SELECT 'semi;colon' AS x,");
    enter(&mut shell, "  42 AS answer;");
    shell.exp_string("semi;colon").expect("the literal, whole");
    shell.exp_string("(1 row)").expect("one row");

    enter(&mut shell, "\\d");
    shell.exp_string("thermo").expect("\\d lists the metric");
    enter(&mut shell, "\\d thermo");
    shell.exp_string("Table \"thermo\"").expect("\\d NAME");
    shell
        .exp_regex("temp +Utf8")
        .expect("its column and type (unknown fields read as text)");
    enter(&mut shell, "\\d nothing_here");
    shell
        .exp_string("no table named nothing_here")
        .expect("an unknown table");

    enter(&mut shell, "\\x");
    shell.exp_string("Expanded display is on.").expect("\\x");
    enter(&mut shell, "SELECT device FROM thermo;");
    shell.exp_string("-[ RECORD 1 ]-").expect("expanded record");
    shell
        .exp_string("device | d1")
        .expect("one column per line");
    enter(&mut shell, "\\x");
    shell
        .exp_string("Expanded display is off.")
        .expect("\\x again");

    enter(&mut shell, "\\timing");
    shell.exp_string("Timing is on.").expect("\\timing");
    enter(&mut shell, "SELECT 7 * 6 AS product;");
    shell.exp_string("Time: ").expect("the statement's time");

    // The up arrow recalls the last entry; Enter runs it again.
    shell.send(UP).expect("up");
    shell.send(ENTER).expect("enter");
    shell.flush().expect("flushed");
    shell
        .exp_string("product")
        .expect("the recalled statement ran");
    shell.exp_string("Time: ").expect("timed");
    enter(&mut shell, "\\q");
    shell.exp_eof().expect("\\q ends the shell");

    let saved = std::fs::read_to_string(&history).expect("history file");
    assert!(saved.contains("semi;colon"), "{saved}");
    assert!(saved.contains("SELECT 7 * 6 AS product;"), "{saved}");

    // A new session starts with the old history: two entries up is the last statement.
    let mut shell = open_shell(&server, &key, &history);
    shell.send(UP).expect("up");
    shell.send(UP).expect("up");
    shell.send(ENTER).expect("enter");
    shell.flush().expect("flushed");
    shell
        .exp_string("product")
        .expect("recalled from the previous session");
    shell.exp_string("42").expect("its answer");
    shell.send_control('d').expect("ctrl-d");
    shell.exp_eof().expect("Ctrl-D ends the shell");
}
