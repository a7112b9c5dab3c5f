//! External test clients and peers (psql, psycopg, node-postgres, DuckDB, object-store
//! emulators): CI installs them and sets `STRATA_REQUIRE_CLIENTS=1`, so a missing one fails
//! there; elsewhere its test skips with a message instead of failing on a bare machine.

use std::path::Path;
use std::process::{Command, Stdio};

/// Whether CI asked for every client (`STRATA_REQUIRE_CLIENTS=1`).
pub fn require_clients() -> bool {
    std::env::var("STRATA_REQUIRE_CLIENTS").is_ok_and(|v| v == "1")
}

/// Whether `client` can run, given `probe` (why it cannot). Missing: a panic under
/// STRATA_REQUIRE_CLIENTS=1, else a loud skip (false).
pub fn available(client: &str, probe: Result<(), String>) -> bool {
    match probe {
        Ok(()) => true,
        Err(why) => {
            assert!(
                !require_clients(),
                "{client} is required (STRATA_REQUIRE_CLIENTS=1) but {why}; set up with `bash .ci/run`"
            );
            eprintln!("skipping: {client} is not available ({why}); set up with `bash .ci/run`");
            false
        }
    }
}

/// Runs `program args` (in `dir`, if given) to see that it is installed and works; why not.
pub fn probe(program: &Path, args: &[&str], dir: Option<&Path>) -> Result<(), String> {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    match command.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{} {}` failed: {}",
            program.display(),
            args.join(" "),
            last_line(&out.stderr)
        )),
        Err(e) => Err(format!("cannot run {}: {e}", program.display())),
    }
}

/// The last line a failed command printed (a Python traceback ends with the error itself).
pub fn last_line(output: &[u8]) -> String {
    String::from_utf8_lossy(output)
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}
