//! The harness behind `strata bench`: it finds or starts the server under test, creates a
//! tenant, runs one or more scenarios, and prints (or appends to a file) a markdown report that
//! carries the exact command, the machine and the server's peak RSS next to every figure. The
//! binary keeps only its command-line arguments and turns them into the options below.
//!
//! - [`session`]: the server under test (`--spawn` or an external one) and the tenant;
//! - [`server`]: `strata serve` started by the benchmark on a temporary data directory;
//! - [`disk_check`]: the free-disk check before long loads;
//! - [`emit`]: the markdown report, its plots and the JSON envelope;
//! - [`suite`]: one runner per `strata bench` subcommand;
//! - `all`: the six scenarios on one server in one report ([`all`]).

mod all;
pub mod disk_check;
pub mod emit;
pub mod server;
pub mod session;
pub mod suite;

use crate::progress::Progress;
use crate::{BenchError, DuckdbMode};

pub use all::{all, AllOptions};
pub use emit::{command_line, OutputOptions};
pub use session::{ServerOptions, Session};
pub use suite::{AnalyticsOptions, ColdOptions, CompactionOptions, Workload};

/// With this set to 1 (CI), a missing DuckDB fails analytics instead of being skipped.
const REQUIRE_CLIENTS_ENV: &str = "STRATA_REQUIRE_CLIENTS";

/// A progress display for one step of a run, finished when the step ends. The library draws
/// nothing itself: the CLI passes indicatif bars, tests pass [`no_bars`].
pub trait StepProgress: Progress {
    fn finish(&self);
}

impl StepProgress for crate::NoProgress {
    fn finish(&self) {}
}

/// Makes the progress display of a step, given its label (`"1/6 ingest"`).
pub type Bars = dyn Fn(&str) -> Box<dyn StepProgress>;

/// Steps without a progress display.
pub fn no_bars(_label: &str) -> Box<dyn StepProgress> {
    Box::new(crate::NoProgress)
}

/// One `strata bench` invocation: which server, where results go, the command line the report
/// shows, and how progress is displayed.
pub struct Invocation<'a> {
    pub server: ServerOptions,
    pub output: OutputOptions,
    pub command: String,
    pub bars: &'a Bars,
}

/// How the workload is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOptions {
    /// Concurrent HTTP clients.
    pub clients: usize,
    /// Events per write request.
    pub batch: usize,
    /// Generate while sending instead of pregenerating with the clock stopped.
    pub stream: bool,
    /// MiB of NDJSON pregenerated at once.
    pub chunk_mib: u64,
}

/// DuckDB is off with `off` (--no-duckdb), required under STRATA_REQUIRE_CLIENTS=1, else used
/// when available.
pub fn duckdb_mode(off: bool) -> DuckdbMode {
    if off {
        DuckdbMode::Off
    } else if std::env::var(REQUIRE_CLIENTS_ENV).is_ok_and(|v| v == "1") {
        DuckdbMode::Required
    } else {
        DuckdbMode::Auto
    }
}

/// `anyhow`-style context for the harness's errors: "what was being done: the cause".
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, BenchError>;
}

impl<T, E: Into<BenchError>> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, BenchError> {
        self.map_err(|cause| BenchError::Context {
            context: what(),
            cause: Box::new(cause.into()),
        })
    }
}

/// A harness failure with its explanation (a server that would not start, a refused run).
pub(crate) fn refused(message: impl Into<String>) -> BenchError {
    BenchError::Harness(message.into())
}
