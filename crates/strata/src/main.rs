//! The `strata` binary: `strata serve` runs the server; every other subcommand is a client of a
//! running server over its HTTP API.
//!
//! Exit codes: 0 success, 1 failure (including any error answered by the server), 2 a usage
//! error (clap's), 3 `strata write` finished but the server rejected some events.

mod cli;
mod commands;
mod output;
mod records;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

/// mimalloc instead of glibc malloc for the whole process. Ingest allocates a few small,
/// short-lived buffers per field (names, values, rows) on many threads, and glibc spent about a
/// fifth of the server's CPU in malloc/free on that pattern (docs/benchmarks.md, "Where ingest
/// time goes"); mimalloc's per-thread free lists make those calls cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for the server process (what `MIMALLOC_ALLOW_THP=0` does).
/// With them, a fresh page mimalloc hands to a large per-request vector faults in and zeroes a
/// whole 2 MiB page (the kernel's `clear_page_erms` was 15% of the server's CPU during ingest).
/// Off, the server peaked at about 440 instead of 540 MiB over 4M events from 4 curl clients;
/// CPU per event moved within this VM's noise (docs/benchmarks.md, "Built (session 11)"). A
/// failure only costs that memory, so it is logged, not fatal.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
        let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if result != 0 {
            eprintln!(
                "warning: could not turn transparent huge pages off: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match &cli.command {
        Command::Serve(args) => Some(args.log_format),
        _ => None,
    };
    if log_format.is_some() {
        disable_transparent_huge_pages();
    }
    init_logging(log_format);
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line: "declaring field x: <cause>".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr so stdout stays clean for output that scripts parse. The server (`Some`
/// format) logs at `info` by default; client commands only warn, unless RUST_LOG says otherwise.
fn init_logging(server_format: Option<LogFormat>) {
    let is_server = server_format.is_some();
    let default_level = if is_server { "info" } else { "warn" };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(is_server);
    let _ = match server_format {
        // One JSON object per line: timestamp, level, target, fields and the current spans.
        Some(LogFormat::Json) => builder.json().with_current_span(true).try_init(),
        // Escape codes only help a person at a terminal; in files and pipes they are noise.
        _ => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .try_init(),
    };
}
