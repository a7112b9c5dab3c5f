//! `strata bench`: the command line over the `strata-bench` crate. It finds or starts the server
//! under test, creates a tenant, runs one or more scenarios with a progress bar on stderr, and
//! prints (or appends to a file) a markdown report that carries the exact command, the machine
//! and the server's peak RSS next to every figure.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use strata_bench::disk::{gib, DiskVerdict, HOT_BYTES_PER_LINE};
use strata_bench::{
    markdown_table, peak_rss_kib, run_aliases_with, run_analytics_with, run_compaction_with,
    run_freshness_with, run_ingest_with, run_isolation_with, run_quick_with, run_recent_with,
    AliasConfig, AliasReport, AnalyticsConfig, AnalyticsReport, BenchError, BenchTarget,
    CompactionConfig, CompactionReport, DiskEstimate, DuckdbMode, FreshnessConfig, FreshnessReport,
    GeneratorConfig, IngestConfig, IngestReport, IsolationConfig, PlotFile, Plots, Progress,
    QuickConfig, QuickReport, RecentConfig, RecentReport, ReportRow, ReportRows, Shares,
    StrataClient,
};

use crate::cli::DEFAULT_URL;

/// Trucks (devices) of the default workload: the 1,000 devices the recent-window target names.
const DEFAULT_TRUCKS: u32 = 1_000;
/// Events of `bench ingest` when --events is not given: long enough for a steady rate.
const DEFAULT_INGEST_EVENTS: u64 = 2_000_000;
/// Events of `bench recent` and `bench all`: 10M rows in `readings` (and 10M in `diagnostics`),
/// the scale the recent-window target is stated at.
const DEFAULT_STORED_EVENTS: u64 = 20_000_000;
/// Events of `--long` (issue 7: "recent ... at 10M rows (100M in a long mode)"): 100M stored
/// events, 50M rows per metric.
const LONG_STORED_EVENTS: u64 = 100_000_000;
/// How long a spawned server may take to report its address.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a spawned server may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// Server log lines kept to explain a failed start.
const SERVER_LOG_LINES: usize = 200;
/// Events of `bench compaction` and `bench analytics` when --events is not given.
const DEFAULT_COLD_EVENTS: u64 = 2_000_000;
/// `strata serve` arguments the cold-tier scenarios give a spawned server: compact everything
/// (the workload is in the past) and only when asked, so no background run races the
/// measurement; allow long analytic queries at large sizes. An argument the user passes with
/// --serve-arg wins.
const COLD_SERVE_ARGS: [(&str, &str); 3] = [
    ("--compact-after-secs", "0"),
    ("--compact-interval-secs", "0"),
    ("--query-timeout-secs", "600"),
];
/// `strata serve` arguments `bench ingest` and `bench recent` give a spawned server: no
/// background compaction, which would otherwise start during a long ingest (every 300 s by
/// default; the workload is older than the default hour) and depress the measured rate. An
/// argument the user passes with --serve-arg wins.
const INGEST_SERVE_ARGS: [(&str, &str); 1] = [("--compact-interval-secs", "0")];
/// `strata serve` arguments `bench isolation` gives a spawned server: a 10 s query time limit,
/// so the default 30 s under load sees about three cross joins end at the limit (with the
/// default 30 s, one). An argument the user passes with --serve-arg wins.
const ISOLATION_SERVE_ARGS: [(&str, &str); 1] = [("--query-timeout-secs", "10")];
/// With this set to 1 (CI), a missing DuckDB fails analytics instead of being skipped.
const REQUIRE_CLIENTS_ENV: &str = "STRATA_REQUIRE_CLIENTS";

/// What --long costs, for the help of `recent` and `all`. Estimates, from the figures in
/// `strata_bench::disk` and the ingest rate docs/benchmarks.md measured.
macro_rules! long_mode_help {
    () => {
        "Loading that takes about 15 to 20 minutes on the 2-core machine of \
docs/benchmarks.md (an estimate from its measured ~120,000 events/s: 14 minutes of sending, \
plus about 3 of generation with the clock stopped) and about 12 GiB of free disk where the \
server keeps its data (an estimate: 101M lines with duplicates x 130 bytes in the hot tier; \
runs of 4M to 20M events measured 97 to 131 bytes per line, and the larger figure is used). \
Before loading, the run compares the estimate with the free space \
there and refuses to start when it is clearly too little. A spawned server keeps its data \
under $TMPDIR (/tmp by default): point TMPDIR at a larger disk if needed."
    };
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Write the deterministic IoT workload as NDJSON (to a file or stdout)
    #[command(
        long_about = "Write the deterministic IoT workload (trucks sending `readings` and \
`diagnostics`, with renamed fields, unknown extras, numbers as text, out-of-order, late and \
duplicated events) as NDJSON. The same flags always give the same bytes. Counts go to stderr.\n\n\
Examples:\n  \
strata bench gen --trucks 100 --events 72000 > workload.ndjson\n  \
strata bench gen --seed 7 --clean --output clean.ndjson"
    )]
    Gen(GenArgs),
    /// Durable ingest throughput: N clients posting batched NDJSON
    #[command(
        long_about = "Durable ingest throughput: declare the workload schema, then N \
concurrent clients post batches of NDJSON; only acknowledged (fsync'd) events count. The \
workload is generated with the clock stopped, in chunks of --chunk-mib. Afterwards the stored \
row counts are checked against the generator's exact distinct count.\n\n\
A spawned server gets --compact-interval-secs 0 (no background compaction during the \
measurement) unless you pass it with --serve-arg; start your own server with it too, or a \
compaction may run during a long ingest and depress the rate. --plots DIR draws \
ingest-rate.png (events/s in each second) and ingest-batch-latency.png.\n\n\
Example:\n  \
strata bench ingest --spawn --events 2000000 --clients 4 --batch 5000 --plots plots"
    )]
    Ingest(IngestArgs),
    /// Ack-to-visible latency: write one event, poll SQL until it shows
    Freshness(FreshnessArgs),
    /// A second tenant's write and count(*) latency while one tenant runs a huge cross join
    #[command(
        long_about = "Tenant isolation (issue 24): tenant A runs `SELECT a.value FROM \
generate_series(1,100000) a CROSS JOIN generate_series(1,100000) b ORDER BY a.value DESC, \
b.value DESC LIMIT 1` again and again (each ends at the server's query time limit), while \
tenant B does small durable writes and `SELECT count(*)` in a loop. B is measured alone \
(--baseline-secs), then next to A's queries (--loaded-secs); the report gives B's write-ack \
and count(*) p50/p99 in both phases and how A's queries ended. Target: B's p99s under 100 ms \
next to A.\n\n\
A spawned server gets --query-timeout-secs 10 unless you pass it with --serve-arg. Against \
your own server, creating tenant B needs the operator token (STRATA_OPERATOR_TOKEN or \
--data-dir).\n\n\
Example:\n  \
strata bench isolation --spawn --plots plots"
    )]
    Isolation(IsolationArgs),
    /// Recent-window query for one device (series key seek), p50/p99
    #[command(
        long_about = concat!("Load the workload (unless --no-load), then time a query for one \
device's last hour: `SELECT * FROM readings WHERE name = 'truck_42' AND timestamp > ...`. \
Default: 20M events (10M rows in `readings`).\n\n\
--long loads 100M events (50M rows per metric) unless --events is given. ", long_mode_help!(), "\n\n\
A spawned server gets --compact-interval-secs 0 (no background compaction during the load) \
unless you pass it with --serve-arg. --plots DIR draws recent-latency.png and the load's \
recent-load-rate.png.\n\n\
Examples:\n  \
strata bench recent --spawn\n  \
strata bench recent --spawn --long --plots plots --report recent-100m.md")
    )]
    Recent(RecentArgs),
    /// The cost of a field with 3 aliases against a field with one name
    Aliases(AliasesArgs),
    /// Compaction rows/s, and one analytic query on hot rows against cold files
    #[command(
        long_about = "Load the workload (unless --no-load), run an analytic query on the hot \
tier, compact everything with POST /api/v1/compact (timed: rows/s), check that every stored \
row is now in cold files, then run the same query again (planned on cold files) and compare \
answers and latencies. A spawned server gets --compact-after-secs 0 and \
--compact-interval-secs 0; against your own server, start it with them.\n\n\
Example:\n  \
strata bench compaction --spawn --events 2000000"
    )]
    Compaction(CompactionArgs),
    /// TSBS IoT queries on cold Parquet: Strata vs plain DataFusion vs DuckDB
    #[command(
        long_about = "Load the workload (unless --no-load), compact it (as `bench compaction`), \
then run 8 TSBS IoT queries (last-loc, low-fuel, high-load, stationary-trucks, avg-load, \
daily-activity, breakdown-frequency, avg-vs-projected-fuel-consumption) on the same cold \
Parquet files in Strata (HTTP SQL), plain DataFusion (in this process) and DuckDB (Python \
`duckdb`: $STRATA_BENCH_PYTHON, ~/.cache/strata-venv/bin/python or python3). Reports median \
and p99 per engine, the ratios, and whether all engines returned the same rows. Needs the \
server's data directory (--spawn, or --data-dir / --cold-dir).\n\n\
Example:\n  \
strata bench analytics --spawn --events 2000000 --runs 10"
    )]
    Analytics(AnalyticsArgs),
    /// Every scenario at a small size with exact correctness checks (for CI)
    Quick(QuickArgs),
    /// All six scenarios on one server in one run, one markdown report
    #[command(
        long_about = concat!("Run, against one server in one run: 1 ingest (which also loads \
the data: 20M events by default, 10M rows per metric), 2 recent, 3 aliases, 4 compaction \
(compacts everything into Parquet: rows/s, and one query on hot rows against cold files), \
5 analytics (8 TSBS IoT queries on the files compaction wrote, in Strata, plain DataFusion \
and DuckDB; --no-duckdb as in `bench analytics`), 6 freshness; then print one markdown \
report. Freshness runs last: its probes carry the wall-clock time, which compaction leaves \
in the hot tier, so probes written before it would make Strata count rows the cold files do \
not hold.\n\n\
A spawned server gets --compact-after-secs 0, --compact-interval-secs 0 and \
--query-timeout-secs 600 (no background compaction during ingest; the on-demand compaction \
takes everything) unless you pass them with --serve-arg; start your own server with them. \
Against your own server, analytics needs --data-dir (or --cold-dir) to find the Parquet \
files; without it analytics is skipped with a note.\n\n\
--long loads 100M events (50M rows per metric) unless --events is given. ", long_mode_help!(), " \
With compaction and analytics on 50M-row tables, expect about an hour in all (an estimate \
scaled from the 20M-event runs), and about 2.5 GiB more disk for the Parquet files (27 bytes \
per row; the hot rows stay until their weekly partition is dropped).\n\n\
--plots DIR draws every scenario's PNGs (DIR/<scenario>-*.png) and links them from the \
report.\n\n\
Example (a fresh clone, one line):\n  \
cargo run --release -p strata -- bench all --spawn --report bench.md --plots plots")
    )]
    All(AllArgs),
}

/// Which server to measure and how to get a tenant on it.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Base URL of the server under test (ignored with --spawn)
    #[arg(long, env = "STRATA_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// The server's data directory: its operator.token creates the tenant (unless
    /// STRATA_OPERATOR_TOKEN is set) and the process holding it is the one whose RSS is read
    #[arg(long, conflicts_with = "spawn")]
    pub data_dir: Option<PathBuf>,
    /// Start `strata serve` on a temporary data directory and ephemeral ports, and stop it
    /// (SIGTERM) at the end
    #[arg(long)]
    pub spawn: bool,
    /// Extra argument for the spawned `strata serve` (repeatable), e.g. --serve-arg=--unsafe-no-fsync
    #[arg(long, requires = "spawn", allow_hyphen_values = true)]
    pub serve_arg: Vec<String>,
    /// Tenant to run in; created when missing (default: a fresh `bench_<timestamp>` tenant)
    #[arg(long)]
    pub tenant: Option<String>,
    /// Admin key of an existing tenant, instead of creating one with the operator token
    #[arg(long, env = "STRATA_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Pid of the server, for its peak RSS (found from --data-dir or --spawn otherwise)
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// Where results go.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Print the full serde report as JSON on stdout instead of markdown
    #[arg(long)]
    pub json: bool,
    /// Append the markdown report to this file
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Draw PNG plots (latency distributions, ingest rate over time) into DIR as
    /// DIR/<scenario>-*.png and link them from the markdown report
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
}

/// The generated workload.
#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// Seed of the generator; the same flags give the same bytes
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Trucks (devices); each sends one `readings` and one `diagnostics` event per interval
    #[arg(long)]
    pub trucks: Option<u32>,
    /// Distinct events to generate (rounded up to whole intervals of 2 x trucks events)
    #[arg(long)]
    pub events: Option<u64>,
    /// Milliseconds between two intervals of one truck
    #[arg(long, default_value_t = 10_000)]
    pub interval_ms: i64,
    /// A perfectly behaved fleet: every share below defaults to 0
    #[arg(long)]
    pub clean: bool,
    /// Share of trucks sending lat/lon/fuel instead of latitude/longitude/fuel_state
    #[arg(long)]
    pub renamed_share: Option<f64>,
    /// Share of events carrying the unknown fields firmware_note and debug_code
    #[arg(long)]
    pub extra_share: Option<f64>,
    /// Share of numeric values sent as JSON strings
    #[arg(long)]
    pub string_share: Option<f64>,
    /// Share of events sent after their successor
    #[arg(long)]
    pub out_of_order_share: Option<f64>,
    /// Share of events 1-3 days late
    #[arg(long)]
    pub late_share: Option<f64>,
    /// Share of events sent twice, byte for byte
    #[arg(long)]
    pub duplicate_share: Option<f64>,
}

/// How the workload is sent.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// Concurrent HTTP clients
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Events per write request
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
    /// Generate while sending (one generator thread) instead of pregenerating with the clock
    /// stopped
    #[arg(long)]
    pub stream: bool,
    /// MiB of NDJSON pregenerated at once
    #[arg(long, default_value_t = 1024)]
    pub chunk_mib: u64,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Output file (default stdout)
    #[arg(long, short, value_name = "FILE|-")]
    pub output: Option<PathBuf>,
    /// Print the counts as JSON on stderr
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub send: SendArgs,
    /// Skip the stored-row count check afterwards
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Args)]
pub struct FreshnessArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Measured probes
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Unmeasured probes first
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
}

#[derive(Debug, Args)]
pub struct IsolationArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Seconds tenant B is measured alone
    #[arg(long, default_value_t = 10)]
    pub baseline_secs: u64,
    /// Seconds tenant B is measured while tenant A runs the cross join
    #[arg(long, default_value_t = 30)]
    pub loaded_secs: u64,
    /// Tenant A's concurrent clients, each repeating the cross join
    #[arg(long, default_value_t = 1)]
    pub heavy_clients: usize,
    /// Events in each of tenant B's writes
    #[arg(long, default_value_t = 10)]
    pub events_per_write: usize,
    /// Rows of each generate_series in tenant A's cross join (it sorts the square); smaller
    /// values make A's queries end before the time limit (tests)
    #[arg(long, default_value_t = strata_bench::scenarios::isolation::HEAVY_ROWS, hide_short_help = true)]
    pub heavy_rows: u64,
}

#[derive(Debug, Args)]
pub struct RecentArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub send: SendArgs,
    /// The tenant already holds this workload (same --seed/--trucks/--events): do not load it
    #[arg(long)]
    pub no_load: bool,
    /// Measured queries
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Unmeasured queries first
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Device queried (default truck_42)
    #[arg(long)]
    pub device: Option<String>,
    /// Window length in milliseconds, ending at the workload's last interval
    #[arg(long, default_value_t = 3_600_000)]
    pub window_ms: i64,
    /// Long mode: 100M events (50M rows per metric) unless --events is given; checks the
    /// free disk first (see --help for time and disk)
    #[arg(long)]
    pub long: bool,
}

#[derive(Debug, Args)]
pub struct AliasesArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub alias: AliasScaleArgs,
}

#[derive(Debug, Clone, Args)]
pub struct AliasScaleArgs {
    /// Rows of the alias metric
    #[arg(long, default_value_t = 1_000_000)]
    pub alias_rows: u64,
    /// Measured runs of each of the two queries
    #[arg(long, default_value_t = 50)]
    pub alias_runs: usize,
    /// Unmeasured runs of each query first
    #[arg(long, default_value_t = 3)]
    pub alias_warmup: usize,
}

/// Options shared by the cold-tier scenarios.
#[derive(Debug, Clone, Args)]
pub struct ColdArgs {
    /// The tenant already holds this workload (same --seed/--trucks/--events): do not load it
    #[arg(long)]
    pub no_load: bool,
    /// The server's cold directory, where it writes Parquet (default DATA_DIR/cold)
    #[arg(long, value_name = "DIR")]
    pub cold_dir: Option<PathBuf>,
    /// Seconds the compaction request may take
    #[arg(long, default_value_t = 3600)]
    pub compact_timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct CompactionArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub cold: ColdArgs,
    /// Measured runs of the query on each tier
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Unmeasured runs on each tier first
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// The query timed on both tiers (default: a full-range aggregate over `diagnostics`)
    #[arg(long)]
    pub query: Option<String>,
}

#[derive(Debug, Args)]
pub struct AnalyticsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub cold: ColdArgs,
    /// Measured runs of each query in each engine
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Unmeasured runs of each query in each engine first
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Measured runs of the hot/cold query of the compaction step
    #[arg(long, default_value_t = 5)]
    pub compaction_runs: usize,
    #[command(flatten)]
    pub engines: EngineArgs,
}

/// The engines of the analytics scenario.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// The fleet the per-fleet queries look at
    #[arg(long, default_value = strata_bench::scenarios::analytics::DEFAULT_FLEET)]
    pub fleet: String,
    /// Compare Strata with DataFusion only
    #[arg(long)]
    pub no_duckdb: bool,
    /// Python interpreter with the `duckdb` module (default: $STRATA_BENCH_PYTHON, the CI
    /// venv ~/.cache/strata-venv/bin/python, python3)
    #[arg(long)]
    pub python: Option<String>,
    /// Threads of the in-process engines (DataFusion partitions, DuckDB threads); 0 = CPUs
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Debug, Args)]
pub struct QuickArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Seed of the generator
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct AllArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub send: SendArgs,
    /// Freshness probes
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Recent-window queries
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    #[command(flatten)]
    pub alias: AliasScaleArgs,
    /// Measured runs of the compaction step's query on each tier (hot before, cold after)
    #[arg(long, default_value_t = 3)]
    pub compaction_runs: usize,
    /// Measured runs of each analytics query in each engine
    #[arg(long, default_value_t = 5)]
    pub analytics_runs: usize,
    /// Unmeasured runs of each analytics query in each engine first
    #[arg(long, default_value_t = 1)]
    pub analytics_warmup: usize,
    #[command(flatten)]
    pub engines: EngineArgs,
    /// The server's cold directory, where it writes Parquet (default DATA_DIR/cold)
    #[arg(long, value_name = "DIR")]
    pub cold_dir: Option<PathBuf>,
    /// Seconds the compaction request may take
    #[arg(long, default_value_t = 3600)]
    pub compact_timeout_secs: u64,
    /// Long mode: 100M events (50M rows per metric) unless --events is given; checks the
    /// free disk first (see --help for time and disk)
    #[arg(long)]
    pub long: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let command = command_line();
    match args.command {
        BenchCommand::Gen(args) => generate(&args),
        BenchCommand::Ingest(args) => run_ingest_command(&args, &command),
        BenchCommand::Freshness(args) => run_freshness_command(&args, &command),
        BenchCommand::Isolation(args) => run_isolation_command(&args, &command),
        BenchCommand::Recent(args) => run_recent_command(&args, &command),
        BenchCommand::Aliases(args) => run_aliases_command(&args, &command),
        BenchCommand::Compaction(args) => run_compaction_command(&args, &command),
        BenchCommand::Analytics(args) => run_analytics_command(&args, &command),
        BenchCommand::Quick(args) => run_quick_command(&args, &command),
        BenchCommand::All(args) => run_all(&args, &command),
    }
}

fn run_ingest_command(args: &IngestArgs, command: &str) -> anyhow::Result<ExitCode> {
    let workload = args
        .workload
        .config(DEFAULT_TRUCKS, DEFAULT_INGEST_EVENTS)?;
    let mut session = Session::open(&spawn_defaults(&args.server, &INGEST_SERVE_ARGS))?;
    check_disk(&mut session, disk_estimate(&workload, 0, false), false)?;
    let config = IngestConfig {
        verify_counts: !args.no_verify,
        ..ingest_config(&args.send, workload, session.pid)?
    };
    let bar = Bar::new("ingest");
    let mut report = run_ingest_with(&session.target, &config, &bar)?;
    bar.finish();
    report.run.command = Some(command.to_string());
    let (rows, passed, failures) = (
        report.report_rows(),
        report.passed(),
        report.failures.clone(),
    );
    finish_one(
        session,
        &args.output,
        command,
        "ingest",
        &rows,
        &report,
        passed,
        failures,
    )
}

/// The end of a command that runs one scenario: stop the server, draw the report's plots as
/// NAME-*.png, print the report, and exit 1 unless it passed and every plot was drawn.
#[allow(clippy::too_many_arguments)]
fn finish_one<R: Plots + Serialize>(
    mut session: Session,
    output: &OutputArgs,
    command: &str,
    name: &str,
    rows: &[ReportRow],
    report: &R,
    passed: bool,
    mut failures: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let server = session.server_figures();
    session.stop()?;
    let plots = draw_plots(output, &[(report, name)], &mut failures);
    emit(
        output,
        command,
        &server,
        name,
        rows,
        "",
        &plots.files,
        report,
    )?;
    Ok(verdict(passed && plots.ok, &failures))
}

fn run_freshness_command(args: &FreshnessArgs, command: &str) -> anyhow::Result<ExitCode> {
    let session = Session::open(&args.server)?;
    let config = FreshnessConfig {
        samples: args.samples,
        warmup_samples: args.warmup,
        ..FreshnessConfig::default()
    };
    let bar = Bar::new("freshness");
    let mut report = run_freshness_with(&session.target, &config, &bar)?;
    bar.finish();
    report.run.command = Some(command.to_string());
    let (rows, passed) = (report.report_rows(), report.passed());
    finish_one(
        session,
        &args.output,
        command,
        "freshness",
        &rows,
        &report,
        passed,
        Vec::new(),
    )
}

fn run_isolation_command(args: &IsolationArgs, command: &str) -> anyhow::Result<ExitCode> {
    let session = Session::open(&spawn_defaults(&args.server, &ISOLATION_SERVE_ARGS))?;
    let probe = second_tenant(&session, &args.server)?;
    let config = IsolationConfig {
        baseline_secs: args.baseline_secs,
        loaded_secs: args.loaded_secs,
        heavy_clients: args.heavy_clients,
        events_per_write: args.events_per_write,
        heavy_rows: args.heavy_rows,
        ..IsolationConfig::default()
    };
    let bar = Bar::new("isolation");
    let mut report = run_isolation_with(&session.target, &probe, &config, &bar)?;
    bar.finish();
    report.run.command = Some(command.to_string());
    let (rows, passed, failures) = (report.report_rows(), report.passed(), report.failures());
    finish_one(
        session,
        &args.output,
        command,
        "isolation",
        &rows,
        &report,
        passed,
        failures,
    )
}

/// Tenant B of `bench isolation`: a fresh tenant beside the session's, named after it with a
/// `_b` suffix, created with the operator token.
fn second_tenant(session: &Session, server: &ServerArgs) -> anyhow::Result<BenchTarget> {
    let token = operator_token(session.data_dir.as_deref())
        .context("bench isolation creates a second tenant")?;
    let name = format!(
        "{}_b",
        server.tenant.clone().unwrap_or_else(default_tenant_name)
    );
    let key = session
        .target
        .client()?
        .create_tenant(&token, &name)
        .with_context(|| format!("creating tenant {name:?}"))?;
    Ok(BenchTarget::with_admin_key(&session.target.base_url, &key))
}

fn run_recent_command(args: &RecentArgs, command: &str) -> anyhow::Result<ExitCode> {
    let workload = args
        .workload
        .config(DEFAULT_TRUCKS, stored_events(args.long))?;
    let mut session = Session::open(&spawn_defaults(&args.server, &INGEST_SERVE_ARGS))?;
    if !args.no_load {
        check_disk(&mut session, disk_estimate(&workload, 0, false), args.long)?;
    }
    let load = load_workload(
        &session,
        &args.send,
        &workload,
        args.no_load,
        "recent: load",
        command,
    )?;
    let mut config = RecentConfig {
        runs: args.runs,
        warmup_runs: args.warmup,
        window_ms: args.window_ms,
        ..RecentConfig::for_workload(&workload)
    };
    if let Some(device) = &args.device {
        config.device = device.clone();
    }
    let bar = Bar::new("recent");
    let mut recent = run_recent_with(&session.target, &config, &bar)?;
    bar.finish();
    recent.run.command = Some(command.to_string());
    let server = session.server_figures();
    session.stop()?;

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut passed = recent_passed(&recent, &mut failures);
    let mut drawn: Vec<(&dyn Plots, &str)> = Vec::new();
    if let Some(load) = &load {
        rows.extend(load.report_rows());
        passed &= load_passed(load, &mut failures);
        drawn.push((load, "recent-load"));
    }
    rows.extend(recent.report_rows());
    drawn.push((&recent, "recent"));
    let plots = draw_plots(&args.output, &drawn, &mut failures);
    let report = RecentOutput { load, recent };
    emit(
        &args.output,
        command,
        &server,
        "recent",
        &rows,
        "",
        &plots.files,
        &report,
    )?;
    Ok(verdict(passed && plots.ok, &failures))
}

fn run_aliases_command(args: &AliasesArgs, command: &str) -> anyhow::Result<ExitCode> {
    let session = Session::open(&args.server)?;
    let bar = Bar::new("aliases");
    let mut report = run_aliases_with(&session.target, &args.alias.config()?, &bar)?;
    bar.finish();
    report.run.command = Some(command.to_string());
    let (rows, passed) = (report.report_rows(), report.passed());
    finish_one(
        session,
        &args.output,
        command,
        "aliases",
        &rows,
        &report,
        passed,
        Vec::new(),
    )
}

fn run_quick_command(args: &QuickArgs, command: &str) -> anyhow::Result<ExitCode> {
    let mut session = Session::open(&cold_server_args(&args.server))?;
    let mut config = QuickConfig::default();
    config.ingest.workload.seed = args.seed;
    config.analytics.workload.seed = args.seed;
    config.ingest.server_pid = session.pid;
    config.compaction.server_pid = session.pid;
    config.compaction.cold_dir = session.data_dir.as_ref().map(|dir| dir.join("cold"));
    config.analytics.duckdb = duckdb_mode(false);
    let bar = Bar::new("quick");
    let mut report = run_quick_with(&session.target, &config, &bar)?;
    bar.finish();
    set_command_quick(&mut report, command);
    let server = session.server_figures();
    session.stop()?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    let extra = report
        .analytics
        .as_ref()
        .map(analytics_section)
        .unwrap_or_default();
    let mut failures = report.failures.clone();
    // Quick mode's plots are named after each scenario, as in `bench all`.
    let plots = draw_plots(&args.output, &[(&report, "")], &mut failures);
    emit(
        &args.output,
        command,
        &server,
        "quick",
        &report.report_rows(),
        &extra,
        &plots.files,
        &report,
    )?;
    Ok(verdict(report.passed() && plots.ok, &failures))
}

/// `bench all`: six scenarios on one server. Ingest first: it also loads what recent queries,
/// and its count check must run before anything else writes to the workload's metrics. Recent
/// measures the hot tier, so it precedes compaction; analytics reads the files compaction
/// wrote. Freshness comes last: its probes carry the wall-clock time, which is too recent to
/// compact (compaction stops at the hour before now), so probes written earlier would be rows
/// that Strata counts and the cold files lack, failing compaction's and analytics' checks.
fn run_all(args: &AllArgs, command: &str) -> anyhow::Result<ExitCode> {
    let workload = args
        .workload
        .config(DEFAULT_TRUCKS, stored_events(args.long))?;
    let alias_config = args.alias.config()?;
    let analytics_config = AnalyticsConfig {
        runs: args.analytics_runs,
        warmup_runs: args.analytics_warmup,
        ..args.engines.config(&workload)
    };
    analytics_config.validate()?;
    let mut session = Session::open(&cold_server_args(&args.server))?;
    check_disk(
        &mut session,
        disk_estimate(&workload, alias_config.rows, true),
        args.long,
    )?;
    let compaction_config = compaction_config(
        &session,
        args.cold_dir.as_ref(),
        args.compact_timeout_secs,
        args.compaction_runs,
        1,
        None,
    )?;

    let bar = Bar::new("1/6 ingest");
    let mut ingest = run_ingest_with(
        &session.target,
        &ingest_config(&args.send, workload.clone(), session.pid)?,
        &bar,
    )?;
    bar.finish();
    ingest.run.command = Some(command.to_string());

    let bar = Bar::new("2/6 recent");
    let mut recent = run_recent_with(
        &session.target,
        &RecentConfig {
            runs: args.runs,
            ..RecentConfig::for_workload(&workload)
        },
        &bar,
    )?;
    bar.finish();
    recent.run.command = Some(command.to_string());

    let bar = Bar::new("3/6 aliases");
    let mut aliases = run_aliases_with(&session.target, &alias_config, &bar)?;
    bar.finish();
    aliases.run.command = Some(command.to_string());

    let bar = Bar::new("4/6 compaction");
    let mut compaction = run_compaction_with(&session.target, &compaction_config, &bar)?;
    bar.finish();
    compaction.run.command = Some(command.to_string());

    let mut notes = Vec::new();
    // A failed analytics step (an engine outside Strata: DuckDB's script, Python) is reported
    // as a failure of the run, but the steps before and after it still land in the report:
    // they took most of the run's time.
    let mut analytics_error = None;
    let analytics = match &compaction.files {
        Some(files) => {
            let bar = Bar::new("5/6 analytics");
            let result = run_analytics_with(&session.target, &analytics_config, files, &bar);
            bar.finish();
            match result {
                Ok(mut analytics) => {
                    analytics.run.command = Some(command.to_string());
                    if let Some(note) = &analytics.duckdb_note {
                        notes.push(format!("analytics: DuckDB {note}"));
                    }
                    Some(analytics)
                }
                Err(err) => {
                    let message = format!("analytics: the step failed: {err}");
                    eprintln!("error: {message}");
                    notes.push(message.clone());
                    analytics_error = Some(message);
                    None
                }
            }
        }
        None => {
            notes.push(
                "analytics: skipped, the server's cold directory is unknown (pass --data-dir or \
                 --cold-dir)"
                    .to_string(),
            );
            None
        }
    };

    let bar = Bar::new("6/6 freshness");
    let mut freshness = run_freshness_with(
        &session.target,
        &FreshnessConfig {
            samples: args.samples,
            ..FreshnessConfig::default()
        },
        &bar,
    )?;
    bar.finish();
    freshness.run.command = Some(command.to_string());

    let server = session.server_figures();
    session.stop()?;
    for note in &notes {
        eprintln!("note: {note}");
    }

    let mut rows = ingest.report_rows();
    rows.extend(recent.report_rows());
    rows.extend(aliases.report_rows());
    rows.extend(compaction.report_rows());
    if let Some(analytics) = &analytics {
        rows.extend(analytics.report_rows());
    }
    rows.extend(freshness.report_rows());

    let mut failures = Vec::new();
    let mut passed = load_passed(&ingest, &mut failures);
    passed &= recent_passed(&recent, &mut failures);
    if !aliases.passed() {
        passed = false;
        failures.push(format!(
            "aliases: {} rows rejected, answers equal: {}",
            aliases.rejected, aliases.answers_equal
        ));
    }
    let cold_failures: Vec<String> = compaction
        .failures()
        .into_iter()
        .chain(analytics.iter().flat_map(AnalyticsReport::failures))
        .collect();
    passed &= cold_failures.is_empty();
    failures.extend(cold_failures);
    if let Some(message) = analytics_error {
        passed = false;
        failures.push(message);
    }
    if !freshness.passed() {
        passed = false;
        failures.push(format!(
            "freshness: {} probes never visible, {} counted more than once",
            freshness.timeouts, freshness.overcounted
        ));
    }

    let mut extra = compaction_section(&compaction);
    if let Some(analytics) = &analytics {
        extra.push('\n');
        extra.push_str(&analytics_section(analytics));
    }
    for note in &notes {
        extra.push_str(&format!("\nNote: {note}\n"));
    }
    let mut drawn: Vec<(&dyn Plots, &str)> = vec![
        (&ingest, "ingest"),
        (&recent, "recent"),
        (&aliases, "aliases"),
        (&compaction, "compaction"),
    ];
    if let Some(analytics) = &analytics {
        drawn.push((analytics, "analytics"));
    }
    drawn.push((&freshness, "freshness"));
    let plots = draw_plots(&args.output, &drawn, &mut failures);
    let report = AllOutput {
        ingest,
        recent,
        aliases,
        compaction,
        analytics,
        freshness,
        notes,
    };
    emit(
        &args.output,
        command,
        &server,
        "all",
        &rows,
        &extra,
        &plots.files,
        &report,
    )?;
    Ok(verdict(passed && plots.ok, &failures))
}

/// Events of `recent` and `all` when --events is not given.
fn stored_events(long: bool) -> u64 {
    if long {
        LONG_STORED_EVENTS
    } else {
        DEFAULT_STORED_EVENTS
    }
}

/// A load passed when every batch was acknowledged, nothing was rejected and the stored
/// counts are exact; otherwise its failures are added.
fn load_passed(load: &IngestReport, failures: &mut Vec<String>) -> bool {
    failures.extend(load.failures.iter().cloned());
    if load.passed() {
        return true;
    }
    failures.push(format!(
        "ingest: {} batches failed, {} events rejected, stored counts {}",
        load.failed_batches,
        load.rejected,
        load.counts.as_ref().map_or_else(
            || "not checked".to_string(),
            |c| format!(
                "{} + {} (expected {} each)",
                c.readings, c.diagnostics, c.expected_per_metric
            )
        )
    ));
    false
}

/// The recent query passed when it returned rows, the same number every time.
fn recent_passed(recent: &RecentReport, failures: &mut Vec<String>) -> bool {
    if recent.rows > 0 && recent.rows_stable {
        return true;
    }
    failures.push(format!(
        "recent: {} rows for {} (the same every run: {})",
        recent.rows, recent.parameters.device, recent.rows_stable
    ));
    false
}

#[derive(Serialize)]
struct RecentOutput {
    load: Option<IngestReport>,
    recent: RecentReport,
}

#[derive(Serialize)]
struct AllOutput {
    ingest: IngestReport,
    recent: RecentReport,
    aliases: AliasReport,
    compaction: CompactionReport,
    /// `None` when the cold directory was unknown (see `notes`).
    analytics: Option<AnalyticsReport>,
    freshness: FreshnessReport,
    notes: Vec<String>,
}

fn set_command_quick(report: &mut QuickReport, command: &str) {
    for run in [
        &mut report.ingest.run,
        &mut report.aliases.run,
        &mut report.recent.run,
        &mut report.freshness.run,
        &mut report.compaction.run,
    ] {
        run.command = Some(command.to_string());
    }
    if let Some(analytics) = &mut report.analytics {
        analytics.run.command = Some(command.to_string());
    }
}

/// A spawned server gets `defaults` (flag, value) unless the user passed the flag with
/// --serve-arg; a server the user runs is left as it is.
fn spawn_defaults(server: &ServerArgs, defaults: &[(&str, &str)]) -> ServerArgs {
    let mut server = server.clone();
    if server.spawn {
        for (flag, value) in defaults {
            let given = server
                .serve_arg
                .iter()
                .any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")));
            if !given {
                server.serve_arg.push(format!("{flag}={value}"));
            }
        }
    }
    server
}

/// `--spawn` for a cold-tier scenario: the spawned server gets [`COLD_SERVE_ARGS`] unless the
/// user set them.
fn cold_server_args(server: &ServerArgs) -> ServerArgs {
    if !server.spawn {
        eprintln!(
            "note: the server must run with --compact-after-secs 0 and --compact-interval-secs 0, \
             or the benchmark cannot compact everything (or a background run races it)"
        );
    }
    spawn_defaults(server, &COLD_SERVE_ARGS)
}

/// DuckDB is off with --no-duckdb, required under STRATA_REQUIRE_CLIENTS=1, else used when
/// available.
fn duckdb_mode(off: bool) -> DuckdbMode {
    if off {
        DuckdbMode::Off
    } else if std::env::var(REQUIRE_CLIENTS_ENV).is_ok_and(|v| v == "1") {
        DuckdbMode::Required
    } else {
        DuckdbMode::Auto
    }
}

impl EngineArgs {
    fn config(&self, workload: &GeneratorConfig) -> AnalyticsConfig {
        AnalyticsConfig {
            fleet: self.fleet.clone(),
            duckdb: duckdb_mode(self.no_duckdb),
            python: self.python.clone(),
            threads: self.threads,
            ..AnalyticsConfig::for_workload(workload)
        }
    }
}

/// What loading `workload` (plus `alias_rows` rows of the alias scenario) will write; with
/// `compacts`, the Parquet copy of every row too.
fn disk_estimate(workload: &GeneratorConfig, alias_rows: u64, compacts: bool) -> DiskEstimate {
    let distinct = workload.distinct_events();
    // Duplicates are sent, journaled and stored (then deduplicated by content), so they count.
    let lines = (distinct as f64 * (1.0 + workload.shares.duplicates)).round() as u64 + alias_rows;
    let compacted = if compacts { distinct + alias_rows } else { 0 };
    DiskEstimate::new(lines, compacted)
}

/// Compares the run's disk estimate with the free space of the server's data directory and
/// refuses to start (stopping a spawned server) when it is clearly too little. Without a known
/// data directory nothing can be checked: a long run says so.
fn check_disk(session: &mut Session, estimate: DiskEstimate, long: bool) -> anyhow::Result<()> {
    let Some(dir) = session.data_dir.clone() else {
        if long {
            eprintln!(
                "note: the server's data directory is unknown (pass --data-dir), so its free disk \
                 cannot be checked; this run needs about {}",
                gib(estimate.total_bytes())
            );
        }
        return Ok(());
    };
    let free = strata_bench::free_bytes(&dir)
        .with_context(|| format!("reading the free space of {}", dir.display()))?;
    let need = describe_need(&estimate);
    match estimate.verdict(free) {
        DiskVerdict::Insufficient => {
            session.stop()?;
            bail!(
                "refusing to start: {need} in {}, where only {} is free. Free some space, \
                 load fewer events (--events), or run the server on a larger disk (for --spawn: \
                 TMPDIR=/path/on/larger/disk)",
                dir.display(),
                gib(free)
            );
        }
        DiskVerdict::Tight => eprintln!(
            "warning: {need} in {}, and only {} is free: the run may fill the disk",
            dir.display(),
            gib(free)
        ),
        DiskVerdict::Enough if long => eprintln!(
            "long run: {need} in {}; {} is free",
            dir.display(),
            gib(free)
        ),
        DiskVerdict::Enough => {}
    }
    Ok(())
}

/// "the run needs about X (N lines x B bytes in the hot tier + ...)", for messages.
fn describe_need(estimate: &DiskEstimate) -> String {
    let mut text = format!(
        "the run needs about {} ({} lines x {HOT_BYTES_PER_LINE:.0} bytes in the hot tier",
        gib(estimate.total_bytes()),
        strata_bench::report::thousands(estimate.lines)
    );
    if estimate.compacted_rows > 0 {
        text.push_str(&format!(
            ", plus {} of Parquet for {} compacted rows",
            gib(estimate.cold_bytes),
            strata_bench::report::thousands(estimate.compacted_rows)
        ));
    }
    text.push_str("; an estimate)");
    text
}

/// Loads the workload unless --no-load; the ingest report when it ran.
fn load_workload(
    session: &Session,
    send: &SendArgs,
    workload: &GeneratorConfig,
    no_load: bool,
    label: &str,
    command: &str,
) -> anyhow::Result<Option<IngestReport>> {
    if no_load {
        return Ok(None);
    }
    let bar = Bar::new(label);
    let mut load = run_ingest_with(
        &session.target,
        &ingest_config(send, workload.clone(), session.pid)?,
        &bar,
    )?;
    bar.finish();
    load.run.command = Some(command.to_string());
    Ok(Some(load))
}

fn compaction_config(
    session: &Session,
    cold_dir: Option<&PathBuf>,
    compact_timeout_secs: u64,
    runs: usize,
    warmup: usize,
    query: Option<&String>,
) -> anyhow::Result<CompactionConfig> {
    let config = CompactionConfig {
        sql: query
            .cloned()
            .unwrap_or_else(|| CompactionConfig::default().sql),
        runs,
        warmup_runs: warmup,
        cold_dir: cold_dir
            .cloned()
            .or_else(|| session.data_dir.as_ref().map(|dir| dir.join("cold"))),
        compact_timeout_s: compact_timeout_secs,
        server_pid: session.pid,
    };
    config.validate()?;
    Ok(config)
}

fn run_compaction_command(args: &CompactionArgs, command: &str) -> anyhow::Result<ExitCode> {
    let workload = args.workload.config(DEFAULT_TRUCKS, DEFAULT_COLD_EVENTS)?;
    let mut session = Session::open(&cold_server_args(&args.server))?;
    if !args.cold.no_load {
        check_disk(&mut session, disk_estimate(&workload, 0, true), false)?;
    }
    let load = load_workload(
        &session,
        &args.send,
        &workload,
        args.cold.no_load,
        "compaction: load",
        command,
    )?;
    let config = compaction_config(
        &session,
        args.cold.cold_dir.as_ref(),
        args.cold.compact_timeout_secs,
        args.runs,
        args.warmup,
        args.query.as_ref(),
    )?;
    let bar = Bar::new("compaction");
    let mut compaction = run_compaction_with(&session.target, &config, &bar)?;
    bar.finish();
    compaction.run.command = Some(command.to_string());
    let server = session.server_figures();
    session.stop()?;

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut drawn: Vec<(&dyn Plots, &str)> = Vec::new();
    let mut passed = true;
    if let Some(load) = &load {
        rows.extend(load.report_rows());
        passed &= load_passed(load, &mut failures);
        drawn.push((load, "compaction-load"));
    }
    rows.extend(compaction.report_rows());
    let compaction_failures = compaction.failures();
    passed &= compaction_failures.is_empty();
    failures.extend(compaction_failures);
    drawn.push((&compaction, "compaction"));
    let plots = draw_plots(&args.output, &drawn, &mut failures);
    let extra = compaction_section(&compaction);
    let report = CompactionOutput { load, compaction };
    emit(
        &args.output,
        command,
        &server,
        "compaction",
        &rows,
        &extra,
        &plots.files,
        &report,
    )?;
    Ok(verdict(passed && plots.ok, &failures))
}

fn run_analytics_command(args: &AnalyticsArgs, command: &str) -> anyhow::Result<ExitCode> {
    let workload = args.workload.config(DEFAULT_TRUCKS, DEFAULT_COLD_EVENTS)?;
    let mut session = Session::open(&cold_server_args(&args.server))?;
    let compaction_config = compaction_config(
        &session,
        args.cold.cold_dir.as_ref(),
        args.cold.compact_timeout_secs,
        args.compaction_runs,
        1,
        None,
    )?;
    if compaction_config.cold_dir.is_none() {
        session.stop()?;
        bail!(
            "analytics reads the server's Parquet files: use --spawn, or pass --data-dir (or \
             --cold-dir) for your own server"
        );
    }
    let analytics_config = AnalyticsConfig {
        runs: args.runs,
        warmup_runs: args.warmup,
        ..args.engines.config(&workload)
    };
    analytics_config.validate()?;
    if !args.cold.no_load {
        check_disk(&mut session, disk_estimate(&workload, 0, true), false)?;
    }
    let load = load_workload(
        &session,
        &args.send,
        &workload,
        args.cold.no_load,
        "analytics: load",
        command,
    )?;
    let bar = Bar::new("analytics: compaction");
    let mut compaction = run_compaction_with(&session.target, &compaction_config, &bar)?;
    bar.finish();
    compaction.run.command = Some(command.to_string());
    let Some(files) = compaction.files.clone() else {
        bail!("the compaction's files were not located");
    };
    let bar = Bar::new("analytics");
    let mut analytics = run_analytics_with(&session.target, &analytics_config, &files, &bar)?;
    bar.finish();
    analytics.run.command = Some(command.to_string());
    let server = session.server_figures();
    session.stop()?;
    if let Some(note) = &analytics.duckdb_note {
        eprintln!("note: DuckDB {note}");
    }

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut drawn: Vec<(&dyn Plots, &str)> = Vec::new();
    let mut passed = true;
    if let Some(load) = &load {
        rows.extend(load.report_rows());
        passed &= load_passed(load, &mut failures);
        drawn.push((load, "analytics-load"));
    }
    rows.extend(compaction.report_rows());
    rows.extend(analytics.report_rows());
    let cold_failures: Vec<String> = compaction
        .failures()
        .into_iter()
        .chain(analytics.failures())
        .collect();
    passed &= cold_failures.is_empty();
    failures.extend(cold_failures);
    drawn.push((&compaction, "analytics-compaction"));
    drawn.push((&analytics, "analytics"));
    let plots = draw_plots(&args.output, &drawn, &mut failures);
    let extra = format!(
        "{}\n{}",
        compaction_section(&compaction),
        analytics_section(&analytics)
    );
    let report = AnalyticsOutput {
        load,
        compaction,
        analytics,
    };
    emit(
        &args.output,
        command,
        &server,
        "analytics",
        &rows,
        &extra,
        &plots.files,
        &report,
    )?;
    Ok(verdict(passed && plots.ok, &failures))
}

/// The compaction query and the plan the cold runs used, below the table.
fn compaction_section(report: &CompactionReport) -> String {
    let mut text = format!("Hot/cold query: `{}`\n", report.parameters.sql);
    if let Some(plan) = &report.cold_plan {
        text.push_str(&format!("\nPlan after compaction: `{plan}`\n"));
    }
    text
}

/// The per-query table of the analytics scenario, with the engines' versions.
fn analytics_section(report: &AnalyticsReport) -> String {
    let duckdb = match (&report.duckdb_version, &report.duckdb_note) {
        (Some(version), _) => format!(
            "DuckDB {version} ({})",
            report.python.as_deref().unwrap_or("?")
        ),
        (None, Some(note)) => format!("DuckDB {note}"),
        (None, None) => "DuckDB not run".to_string(),
    };
    let files: Vec<String> = report
        .coverage
        .iter()
        .map(|c| format!("{} {} rows in {} files", c.metric, c.file_rows, c.files))
        .collect();
    format!(
        "Analytics on cold Parquet ({}); {} runs per query and engine after {} warm-up; \
         DataFusion {} in-process and {} with {} threads each. Times are wall-clock per query: \
         Strata's include the HTTP round trip and JSON encoding.\n\n{}",
        files.join(", "),
        report.parameters.runs,
        report.parameters.warmup_runs,
        report.datafusion_version,
        duckdb,
        report.threads,
        report.markdown_table()
    )
}

#[derive(Serialize)]
struct CompactionOutput {
    load: Option<IngestReport>,
    compaction: CompactionReport,
}

#[derive(Serialize)]
struct AnalyticsOutput {
    load: Option<IngestReport>,
    compaction: CompactionReport,
    analytics: AnalyticsReport,
}

/// The plots a run drew into --plots DIR, and whether every one could be drawn.
struct Drawn {
    files: Vec<PlotFile>,
    ok: bool,
}

/// Draws each report's plots under its prefix into --plots DIR (nothing without it). A plot
/// that cannot be drawn does not lose the figures: it is added to `failures` and the run
/// fails after printing its report.
fn draw_plots(
    output: &OutputArgs,
    reports: &[(&dyn Plots, &str)],
    failures: &mut Vec<String>,
) -> Drawn {
    let mut drawn = Drawn {
        files: Vec::new(),
        ok: true,
    };
    let Some(dir) = &output.plots else {
        return drawn;
    };
    for (report, prefix) in reports {
        match report.write_plots(dir, prefix) {
            Ok(files) => drawn.files.extend(files),
            Err(error) => {
                drawn.ok = false;
                failures.push(format!("plots of {prefix:?}: {error}"));
            }
        }
    }
    drawn
}

/// Exit code of a finished run: the figures were printed either way, but a failed check (or a
/// plot that could not be drawn) makes the command fail so CI notices.
fn verdict(passed: bool, failures: &[String]) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: the run did not pass (see the report)");
        for failure in failures {
            eprintln!("  {failure}");
        }
        ExitCode::FAILURE
    }
}

impl WorkloadArgs {
    fn config(&self, default_trucks: u32, default_events: u64) -> anyhow::Result<GeneratorConfig> {
        let trucks = self.trucks.unwrap_or(default_trucks);
        if trucks == 0 {
            bail!("--trucks must be at least 1");
        }
        let events = self.events.unwrap_or(default_events);
        // Each interval is one `readings` and one `diagnostics` event per truck.
        let per_interval = 2 * u64::from(trucks);
        let intervals = events.div_ceil(per_interval).max(1);
        let mut shares = if self.clean {
            Shares::none()
        } else {
            Shares::default()
        };
        let overrides = [
            (&mut shares.renamed_trucks, self.renamed_share),
            (&mut shares.extra_fields, self.extra_share),
            (&mut shares.string_numbers, self.string_share),
            (&mut shares.out_of_order, self.out_of_order_share),
            (&mut shares.late, self.late_share),
            (&mut shares.duplicates, self.duplicate_share),
        ];
        for (share, given) in overrides {
            if let Some(given) = given {
                *share = given;
            }
        }
        let config = GeneratorConfig {
            seed: self.seed,
            trucks,
            intervals,
            interval_ms: self.interval_ms,
            shares,
            ..GeneratorConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

impl AliasScaleArgs {
    fn config(&self) -> anyhow::Result<AliasConfig> {
        let config = AliasConfig {
            rows: self.alias_rows,
            runs: self.alias_runs,
            warmup_runs: self.alias_warmup,
            ..AliasConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

fn ingest_config(
    send: &SendArgs,
    workload: GeneratorConfig,
    server_pid: Option<u32>,
) -> anyhow::Result<IngestConfig> {
    let config = IngestConfig {
        workload,
        clients: send.clients,
        batch_size: send.batch,
        pregenerate: !send.stream,
        chunk_bytes: send.chunk_mib.saturating_mul(1024 * 1024),
        server_pid,
        ..IngestConfig::default()
    };
    config.validate()?;
    Ok(config)
}

fn generate(args: &GenArgs) -> anyhow::Result<ExitCode> {
    let config = args
        .workload
        .config(DEFAULT_TRUCKS, DEFAULT_INGEST_EVENTS)?;
    let stats = match &args.output {
        Some(path) if path.as_os_str() != "-" => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            strata_bench::write_ndjson(&config, file)
        }
        _ => strata_bench::write_ndjson(&config, std::io::stdout().lock()),
    };
    let stats = match stats {
        Ok(stats) => stats,
        // `strata bench gen | head` closes the pipe early; that is the reader's choice.
        Err(BenchError::Io(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(ExitCode::SUCCESS)
        }
        Err(error) => return Err(error).context("writing the workload"),
    };
    if args.json {
        eprintln!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        eprintln!(
            "{} lines ({} distinct events: {} readings + {} diagnostics, {} duplicates), {} bytes; \
             {} trucks x {} intervals, seed {}",
            stats.lines,
            stats.distinct_events,
            stats.readings,
            stats.diagnostics,
            stats.duplicates,
            stats.bytes,
            config.trucks,
            config.intervals,
            config.seed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The server under test and the tenant the run uses.
struct Session {
    target: BenchTarget,
    pid: Option<u32>,
    /// The server's data directory, when known (for its size on disk).
    data_dir: Option<PathBuf>,
    spawned: Option<SpawnedServer>,
}

/// What the report says about the server.
#[derive(Debug, Clone, Serialize)]
struct ServerFigures {
    url: String,
    pid: Option<u32>,
    spawned: bool,
    /// Extra `strata serve` arguments a spawned server ran with (the benchmark's defaults and
    /// --serve-arg).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    serve_args: Vec<String>,
    /// VmHWM since the server started, read at the end of the run.
    peak_rss_kib: Option<u64>,
    data_dir_bytes: Option<u64>,
}

impl Session {
    fn open(args: &ServerArgs) -> anyhow::Result<Session> {
        let (url, spawned) = if args.spawn {
            let server = SpawnedServer::start(&args.serve_arg)?;
            (server.url.clone(), Some(server))
        } else {
            (args.url.clone(), None)
        };
        let data_dir = spawned
            .as_ref()
            .map(|server| server.data_dir.clone())
            .or_else(|| args.data_dir.clone());
        let pid = args
            .server_pid
            .or_else(|| spawned.as_ref().map(|server| server.child.id()))
            .or_else(|| data_dir.as_deref().and_then(server_pid_from_data_dir));
        if pid.is_none() {
            eprintln!(
                "note: server pid unknown (pass --server-pid or --data-dir); peak RSS will not be reported"
            );
        }

        let client = StrataClient::new(&url, strata_bench::scenarios::DEFAULT_REQUEST_TIMEOUT)?;
        client
            .health()
            .with_context(|| format!("no Strata server answers at {url}"))?;
        let admin_key = match &args.key {
            // An existing tenant's key: the tenant name is implied by the key.
            Some(key) if !args.spawn && !key.is_empty() => key.clone(),
            _ => {
                let token = operator_token(data_dir.as_deref())?;
                let tenant = args.tenant.clone().unwrap_or_else(default_tenant_name);
                match client.create_tenant(&token, &tenant) {
                    Ok(key) => key,
                    Err(BenchError::Status { status: 409, .. }) => bail!(
                        "tenant {tenant:?} already exists; pass its admin key with --key (or \
                         STRATA_KEY), or choose another --tenant"
                    ),
                    Err(error) => {
                        return Err(error).with_context(|| format!("creating tenant {tenant:?}"))
                    }
                }
            }
        };
        Ok(Session {
            target: BenchTarget::with_admin_key(&url, &admin_key),
            pid,
            data_dir,
            spawned,
        })
    }

    /// Peak RSS and data size now; call before [`Session::stop`].
    fn server_figures(&self) -> ServerFigures {
        ServerFigures {
            url: self.target.base_url.clone(),
            pid: self.pid,
            spawned: self.spawned.is_some(),
            serve_args: self
                .spawned
                .as_ref()
                .map(|server| server.args.clone())
                .unwrap_or_default(),
            peak_rss_kib: self.pid.and_then(|pid| match peak_rss_kib(pid) {
                Ok(rss) => Some(rss),
                Err(error) => {
                    eprintln!("note: cannot read the peak RSS of pid {pid}: {error}");
                    None
                }
            }),
            data_dir_bytes: self.data_dir.as_deref().map(directory_bytes),
        }
    }

    /// Stops a spawned server gracefully; nothing to do for an external one.
    fn stop(&mut self) -> anyhow::Result<()> {
        match self.spawned.take() {
            Some(mut server) => server.stop(),
            None => Ok(()),
        }
    }
}

/// `strata serve` started by the benchmark.
struct SpawnedServer {
    child: Child,
    url: String,
    data_dir: PathBuf,
    log: Arc<Mutex<VecDeque<String>>>,
    /// The extra arguments it was started with.
    args: Vec<String>,
    /// Removed when the server is dropped, after it stopped.
    _dir: tempfile::TempDir,
}

impl SpawnedServer {
    fn start(extra_args: &[String]) -> anyhow::Result<SpawnedServer> {
        let exe = std::env::current_exe().context("finding the strata executable")?;
        let dir = tempfile::Builder::new()
            .prefix("strata-bench-")
            .tempdir()
            .context("creating a temporary data directory")?;
        let data_dir = dir.path().join("data");
        let mut child = Command::new(&exe)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--http", "127.0.0.1:0", "--pg", "127.0.0.1:0"])
            .args(extra_args)
            // The token is generated into the data directory and read from there.
            .env_remove("STRATA_OPERATOR_TOKEN")
            // The address is read from the `info` log line, without colour codes.
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} serve", exe.display()))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (address_tx, address_rx) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            // Keeps draining stderr for the server's whole life: a full pipe would block it.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(url) = listening_url(&line) {
                        let _ = address_tx.send(url);
                    }
                    if let Ok(mut log) = log.lock() {
                        if log.len() == SERVER_LOG_LINES {
                            log.pop_front();
                        }
                        log.push_back(line);
                    }
                }
            });
        }
        let mut server = SpawnedServer {
            child,
            url: String::new(),
            data_dir,
            log,
            args: extra_args.to_vec(),
            _dir: dir,
        };
        match address_rx.recv_timeout(SPAWN_TIMEOUT) {
            Ok(url) => {
                eprintln!(
                    "spawned strata serve (pid {}) at {url}, data in {}",
                    server.child.id(),
                    server.data_dir.display()
                );
                server.url = url;
                Ok(server)
            }
            Err(_) => {
                let _ = server.child.kill();
                let _ = server.child.wait();
                bail!(
                    "the spawned server did not report its address within {} s; its log:\n{}",
                    SPAWN_TIMEOUT.as_secs(),
                    server.log_tail()
                )
            }
        }
    }

    fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|log| log.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// SIGTERM, then wait for the graceful shutdown; SIGKILL only if it hangs.
    fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            bail!(
                "the spawned server exited early; its log:\n{}",
                self.log_tail()
            );
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .context("sending SIGTERM to the spawned server")?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "the spawned server stopped with {status}; its log:\n{}",
                        self.log_tail()
                    );
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "the spawned server did not stop within {} s of SIGTERM and was killed",
                    STOP_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SpawnedServer {
    /// On an error path the server must not outlive the benchmark.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The URL in the server's "HTTP API listening on http://ADDR" log line.
fn listening_url(line: &str) -> Option<String> {
    const MARKER: &str = "HTTP API listening on ";
    let start = line.find(MARKER)? + MARKER.len();
    let url = line[start..].split_whitespace().next()?;
    url.starts_with("http://").then(|| url.to_string())
}

/// STRATA_OPERATOR_TOKEN, else DIR/operator.token.
fn operator_token(data_dir: Option<&Path>) -> anyhow::Result<String> {
    if let Some(token) = std::env::var("STRATA_OPERATOR_TOKEN")
        .ok()
        .filter(|token| !token.is_empty())
    {
        return Ok(token);
    }
    let Some(dir) = data_dir else {
        bail!(
            "creating the benchmark tenant needs the operator token: set STRATA_OPERATOR_TOKEN, \
             pass --data-dir DIR (reads DIR/operator.token), or use --spawn; or pass an existing \
             tenant's admin key with --key"
        );
    };
    let path = dir.join("operator.token");
    let token = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the operator token from {}", path.display()))?;
    Ok(token.trim().to_string())
}

fn default_tenant_name() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    format!("bench_{millis}")
}

/// The process that has a file open inside `data_dir` and is a `strata` binary: the server
/// holds its catalog and hot-tier files open for its whole life.
fn server_pid_from_data_dir(data_dir: &Path) -> Option<u32> {
    let data_dir = data_dir.canonicalize().ok()?;
    let own = std::process::id();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let is_strata = std::fs::read_to_string(entry.path().join("comm"))
            .is_ok_and(|comm| comm.trim() == "strata");
        if pid == own || !is_strata {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds_data = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| target.starts_with(&data_dir))
        });
        if holds_data {
            return Some(pid);
        }
    }
    None
}

/// Bytes of the regular files under `dir` (0 for what cannot be read).
fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |meta| meta.len()),
            _ => 0,
        })
        .sum()
}

/// The command as typed, with the program shown as `strata` and arguments quoted for a shell.
fn command_line() -> String {
    let mut words = vec!["strata".to_string()];
    words.extend(std::env::args().skip(1).map(|arg| shell_quote(&arg)));
    words.join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// CPUs and memory of this machine, for the report header.
fn machine_line() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| {
            let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or_else(
            || "unknown memory".to_string(),
            |kib| format!("{:.1} GiB RAM", kib as f64 / 1024.0 / 1024.0),
        );
    format!("{cpus} CPUs, {memory}")
}

/// The markdown report of one run: heading, command, machine, table (with the server's peak
/// RSS and data size appended).
fn markdown(
    command: &str,
    server: &ServerFigures,
    title: &str,
    rows: &[ReportRow],
    extra: &str,
) -> String {
    // A scenario's own RSS row was read when that scenario ended; the figure that matters is
    // the peak over the whole run, read last.
    let mut rows: Vec<ReportRow> = rows
        .iter()
        .filter(|row| row.measure != "server peak RSS")
        .cloned()
        .collect();
    rows.push(ReportRow::new(
        title,
        "server peak RSS (whole run)",
        server.peak_rss_kib.map_or_else(
            || "unknown".to_string(),
            |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
        ),
        "",
    ));
    if let Some(bytes) = server.data_dir_bytes {
        rows.push(ReportRow::new(
            title,
            "data directory size",
            format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0),
            "",
        ));
    }
    let finished = strata_bench::report::utc_now_rfc3339();
    let mut text = format!("### bench {title} (finished {finished})\n\n");
    text.push_str(&format!("Command: `{command}`\n\n"));
    let origin = match (server.spawned, server.serve_args.is_empty()) {
        (true, true) => "spawned by the benchmark".to_string(),
        (true, false) => format!(
            "spawned by the benchmark with `{}`",
            server.serve_args.join(" ")
        ),
        (false, _) => "external".to_string(),
    };
    text.push_str(&format!(
        "Machine: {}; server {origin} (pid {}).\n\n",
        machine_line(),
        server
            .pid
            .map_or_else(|| "unknown".to_string(), |pid| pid.to_string())
    ));
    text.push_str(&markdown_table(&rows));
    if !extra.is_empty() {
        text.push('\n');
        text.push_str(extra);
    }
    text
}

/// Prints the report (markdown, or JSON with --json) and appends the markdown to --report.
/// `extra` is more markdown (tables, notes) after the main table; `plots` are linked below it.
#[allow(clippy::too_many_arguments)]
fn emit<T: Serialize>(
    output: &OutputArgs,
    command: &str,
    server: &ServerFigures,
    title: &str,
    rows: &[ReportRow],
    extra: &str,
    plots: &[PlotFile],
    report: &T,
) -> anyhow::Result<()> {
    let mut extra = extra.to_string();
    extra.push_str(&plots_section(plots, output.report.as_deref()));
    let text = markdown(command, server, title, rows, &extra);
    if output.json {
        #[derive(Serialize)]
        struct Envelope<'a, T> {
            command: &'a str,
            server: &'a ServerFigures,
            #[serde(skip_serializing_if = "<[PlotFile]>::is_empty")]
            plots: &'a [PlotFile],
            report: &'a T,
        }
        let envelope = Envelope {
            command,
            server,
            plots,
            report,
        };
        println!("{}", serde_json::to_string_pretty(&envelope)?);
    } else {
        print!("{text}");
    }
    if let Some(path) = &output.report {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{text}").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Markdown images of the plots, each linked relative to the report file's directory when it
/// lies inside it (so the report and its plots can move together), else by absolute path;
/// without a report file, as given (relative to where the command ran).
fn plots_section(plots: &[PlotFile], report: Option<&Path>) -> String {
    if plots.is_empty() {
        return String::new();
    }
    let base = report.map(|file| {
        let dir = file.parent().filter(|dir| !dir.as_os_str().is_empty());
        dir.unwrap_or(Path::new(".")).to_path_buf()
    });
    let mut text = String::from("\nPlots:\n\n");
    for plot in plots {
        let link = match &base {
            Some(base) => plot_link(base, &plot.path),
            None => plot.path.to_string_lossy().into_owned(),
        };
        text.push_str(&format!(
            "![{}]({})\n\n",
            plot.title.replace(['[', ']'], ""),
            link.replace(' ', "%20")
        ));
    }
    text
}

/// `plot` relative to `base` when it lies below it, else absolute.
fn plot_link(base: &Path, plot: &Path) -> String {
    let absolute = |path: &Path| path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let (base, plot) = (absolute(base), absolute(plot));
    match plot.strip_prefix(&base) {
        // Markdown links use '/' whatever the platform.
        Ok(relative) => relative
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => plot.to_string_lossy().into_owned(),
    }
}

/// An indicatif progress bar on stderr (hidden when stderr is not a terminal).
struct Bar {
    bar: ProgressBar,
    label: String,
}

impl Bar {
    fn new(label: &str) -> Bar {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar {
            bar,
            label: label.to_string(),
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: u64) {
        let template = if total > 0 {
            "{spinner} [{elapsed_precise}] {msg} {wide_bar} {human_pos}/{human_len} ({per_sec}, {eta})"
        } else {
            "{spinner} [{elapsed_precise}] {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style);
        }
        self.bar.reset();
        self.bar.set_length(total);
        self.bar.set_message(format!("{}: {name}", self.label));
    }

    fn advance(&self, amount: u64) {
        self.bar.inc(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_gives_the_url() {
        assert_eq!(
            listening_url(
                "2026-01-01T00:00:00Z  INFO strata_server: HTTP API listening on http://127.0.0.1:40123"
            )
            .as_deref(),
            Some("http://127.0.0.1:40123")
        );
        assert_eq!(
            listening_url("Postgres wire protocol listening on postgres://127.0.0.1:5433"),
            None
        );
    }

    #[test]
    fn quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("--events"), "--events");
        assert_eq!(
            shell_quote("--serve-arg=--unsafe-no-fsync"),
            "--serve-arg=--unsafe-no-fsync"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn events_round_up_to_whole_intervals() {
        let args = WorkloadArgs {
            seed: 3,
            trucks: Some(10),
            events: Some(45),
            interval_ms: 10_000,
            clean: true,
            renamed_share: Some(0.5),
            extra_share: None,
            string_share: None,
            out_of_order_share: None,
            late_share: None,
            duplicate_share: None,
        };
        let config = args.config(DEFAULT_TRUCKS, 1).unwrap();
        // 45 events / 20 per interval -> 3 intervals -> 60 events.
        assert_eq!(config.intervals, 3);
        assert_eq!(config.distinct_events(), 60);
        assert_eq!(config.shares.renamed_trucks, 0.5);
        assert_eq!(config.shares.duplicates, 0.0);
        let bad = WorkloadArgs {
            late_share: Some(1.5),
            ..args
        };
        assert!(bad.config(DEFAULT_TRUCKS, 1).is_err());
    }

    #[test]
    fn cold_scenarios_give_a_spawned_server_their_flags_unless_set() {
        let server = ServerArgs {
            url: DEFAULT_URL.to_string(),
            data_dir: None,
            spawn: true,
            serve_arg: vec!["--compact-after-secs=5".to_string()],
            tenant: None,
            key: None,
            server_pid: None,
        };
        let args = cold_server_args(&server).serve_arg;
        assert_eq!(
            args,
            [
                "--compact-after-secs=5",
                "--compact-interval-secs=0",
                "--query-timeout-secs=600"
            ]
        );
    }

    #[test]
    fn ingest_scenarios_turn_background_compaction_off_unless_set() {
        let mut server = ServerArgs {
            url: DEFAULT_URL.to_string(),
            data_dir: None,
            spawn: true,
            serve_arg: vec!["--unsafe-no-fsync".to_string()],
            tenant: None,
            key: None,
            server_pid: None,
        };
        assert_eq!(
            spawn_defaults(&server, &INGEST_SERVE_ARGS).serve_arg,
            ["--unsafe-no-fsync", "--compact-interval-secs=0"]
        );
        // Given as two words (--serve-arg=--compact-interval-secs --serve-arg=60): kept.
        server.serve_arg = vec!["--compact-interval-secs".to_string(), "60".to_string()];
        assert_eq!(
            spawn_defaults(&server, &INGEST_SERVE_ARGS).serve_arg,
            ["--compact-interval-secs", "60"]
        );
        // A server the user runs is not touched.
        server.spawn = false;
        server.serve_arg.clear();
        assert!(spawn_defaults(&server, &INGEST_SERVE_ARGS)
            .serve_arg
            .is_empty());
    }

    /// `strata bench ...` as the CLI parses it.
    fn parse(words: &[&str]) -> BenchCommand {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            command: BenchCommand,
        }
        let words = std::iter::once("bench").chain(words.iter().copied());
        Cli::try_parse_from(words).unwrap().command
    }

    #[test]
    fn long_mode_loads_100m_events_unless_events_is_given() {
        let BenchCommand::Recent(recent) = parse(&["recent", "--long"]) else {
            panic!("not recent");
        };
        let workload = recent
            .workload
            .config(DEFAULT_TRUCKS, stored_events(recent.long))
            .unwrap();
        assert_eq!(workload.distinct_events(), 100_000_000);
        assert_eq!(workload.distinct_events_per_metric(), 50_000_000);

        let BenchCommand::All(all) = parse(&["all", "--long", "--events", "2000000"]) else {
            panic!("not all");
        };
        let workload = all
            .workload
            .config(DEFAULT_TRUCKS, stored_events(all.long))
            .unwrap();
        assert_eq!(workload.distinct_events(), 2_000_000);

        let BenchCommand::All(all) = parse(&["all", "--plots", "out", "--no-duckdb"]) else {
            panic!("not all");
        };
        assert!(!all.long);
        assert_eq!(stored_events(all.long), 20_000_000);
        assert_eq!(all.output.plots.as_deref(), Some(Path::new("out")));
        assert!(all.engines.no_duckdb);
        assert_eq!(
            all.engines.config(&GeneratorConfig::default()).duckdb,
            DuckdbMode::Off
        );
    }

    #[test]
    fn disk_estimate_counts_duplicates_aliases_and_parquet() {
        let workload = GeneratorConfig {
            trucks: 10,
            intervals: 100,
            ..GeneratorConfig::default()
        };
        // 2,000 distinct events, 1% sent twice.
        let hot_only = disk_estimate(&workload, 0, false);
        assert_eq!(hot_only.lines, 2020);
        assert_eq!(hot_only.compacted_rows, 0);
        assert_eq!(hot_only.cold_bytes, 0);
        let everything = disk_estimate(&workload, 500, true);
        assert_eq!(everything.lines, 2520);
        assert_eq!(everything.compacted_rows, 2500);
        assert!(everything.total_bytes() > hot_only.total_bytes());
        let text = describe_need(&everything);
        assert!(text.contains("2,520 lines"), "{text}");
        assert!(text.contains("2,500 compacted rows"), "{text}");
        assert!(text.contains("an estimate"), "{text}");
    }

    #[test]
    fn plot_links_follow_the_report_file() {
        let dir = tempfile::tempdir().unwrap();
        let plots_dir = dir.path().join("plots");
        std::fs::create_dir(&plots_dir).unwrap();
        let inside = plots_dir.join("ingest-rate.png");
        std::fs::write(&inside, b"png").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let outside = elsewhere.path().join("recent-latency.png");
        std::fs::write(&outside, b"png").unwrap();
        let plots = [
            PlotFile {
                title: "ingest [rate]".to_string(),
                path: inside.clone(),
            },
            PlotFile {
                title: "recent".to_string(),
                path: outside.clone(),
            },
        ];
        let report = dir.path().join("bench.md");
        let section = plots_section(&plots, Some(&report));
        assert!(
            section.contains("![ingest rate](plots/ingest-rate.png)"),
            "{section}"
        );
        let absolute = outside.canonicalize().unwrap();
        assert!(
            section.contains(&format!("![recent]({})", absolute.display())),
            "{section}"
        );
        // Printed to stdout: the paths as given.
        let printed = plots_section(&plots[..1], None);
        assert!(
            printed.contains(&format!("]({})", inside.display())),
            "{printed}"
        );
        assert_eq!(plots_section(&[], Some(&report)), "");
    }

    #[test]
    fn directory_size_counts_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("b"), [0u8; 5]).unwrap();
        assert_eq!(directory_bytes(dir.path()), 15);
    }
}
