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
use strata_bench::{
    markdown_table, peak_rss_kib, run_aliases_with, run_analytics_with, run_compaction_with,
    run_freshness_with, run_ingest_with, run_quick_with, run_recent_with, AliasConfig, AliasReport,
    AnalyticsConfig, AnalyticsReport, BenchError, BenchTarget, CompactionConfig, CompactionReport,
    DuckdbMode, FreshnessConfig, FreshnessReport, GeneratorConfig, IngestConfig, IngestReport,
    Progress, QuickConfig, QuickReport, RecentConfig, RecentReport, ReportRow, ReportRows, Shares,
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
/// With this set to 1 (CI), a missing DuckDB fails analytics instead of being skipped.
const REQUIRE_CLIENTS_ENV: &str = "STRATA_REQUIRE_CLIENTS";

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
Example:\n  \
strata bench ingest --spawn --events 2000000 --clients 4 --batch 5000"
    )]
    Ingest(IngestArgs),
    /// Ack-to-visible latency: write one event, poll SQL until it shows
    Freshness(FreshnessArgs),
    /// Recent-window query for one device (series key seek), p50/p99
    #[command(
        long_about = "Load the workload (unless --no-load), then time a query for one \
device's last hour: `SELECT * FROM readings WHERE name = 'truck_42' AND timestamp > ...`.\n\n\
Example:\n  \
strata bench recent --spawn --events 20000000"
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
    /// ingest, freshness, recent and aliases in one run, one markdown report
    #[command(
        long_about = "Run ingest (which also loads the data), freshness, recent and \
aliases against one server in one run and print one markdown report.\n\n\
Example (a fresh clone, one line):\n  \
cargo run --release -p strata -- bench all --spawn --report bench.md"
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
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let command = command_line();
    match args.command {
        BenchCommand::Gen(args) => generate(&args),
        BenchCommand::Ingest(args) => {
            let workload = args
                .workload
                .config(DEFAULT_TRUCKS, DEFAULT_INGEST_EVENTS)?;
            let mut session = Session::open(&args.server)?;
            let config = IngestConfig {
                verify_counts: !args.no_verify,
                ..ingest_config(&args.send, workload, session.pid)?
            };
            let bar = Bar::new("ingest");
            let mut report = run_ingest_with(&session.target, &config, &bar)?;
            bar.finish();
            report.run.command = Some(command.clone());
            let server = session.server_figures();
            session.stop()?;
            let passed = report.passed();
            emit(
                &args.output,
                &command,
                &server,
                "ingest",
                &report.report_rows(),
                &report,
            )?;
            Ok(verdict(passed, &report.failures))
        }
        BenchCommand::Freshness(args) => {
            let mut session = Session::open(&args.server)?;
            let config = FreshnessConfig {
                samples: args.samples,
                warmup_samples: args.warmup,
                ..FreshnessConfig::default()
            };
            let bar = Bar::new("freshness");
            let mut report = run_freshness_with(&session.target, &config, &bar)?;
            bar.finish();
            report.run.command = Some(command.clone());
            let server = session.server_figures();
            session.stop()?;
            let passed = report.passed();
            emit(
                &args.output,
                &command,
                &server,
                "freshness",
                &report.report_rows(),
                &report,
            )?;
            Ok(verdict(passed, &[]))
        }
        BenchCommand::Recent(args) => {
            let workload = args
                .workload
                .config(DEFAULT_TRUCKS, DEFAULT_STORED_EVENTS)?;
            let mut session = Session::open(&args.server)?;
            let load = if args.no_load {
                None
            } else {
                let bar = Bar::new("recent: load");
                let mut load = run_ingest_with(
                    &session.target,
                    &ingest_config(&args.send, workload.clone(), session.pid)?,
                    &bar,
                )?;
                bar.finish();
                load.run.command = Some(command.clone());
                Some(load)
            };
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
            recent.run.command = Some(command.clone());
            let server = session.server_figures();
            session.stop()?;
            let mut rows = Vec::new();
            let mut passed = recent.rows > 0 && recent.rows_stable;
            if let Some(load) = &load {
                rows.extend(load.report_rows());
                passed &= load.passed();
            }
            rows.extend(recent.report_rows());
            let report = RecentOutput { load, recent };
            emit(&args.output, &command, &server, "recent", &rows, &report)?;
            Ok(verdict(passed, &[]))
        }
        BenchCommand::Aliases(args) => {
            let mut session = Session::open(&args.server)?;
            let bar = Bar::new("aliases");
            let mut report = run_aliases_with(&session.target, &args.alias.config()?, &bar)?;
            bar.finish();
            report.run.command = Some(command.clone());
            let server = session.server_figures();
            session.stop()?;
            let passed = report.passed();
            emit(
                &args.output,
                &command,
                &server,
                "aliases",
                &report.report_rows(),
                &report,
            )?;
            Ok(verdict(passed, &[]))
        }
        BenchCommand::Compaction(args) => run_compaction_command(&args, &command),
        BenchCommand::Analytics(args) => run_analytics_command(&args, &command),
        BenchCommand::Quick(args) => {
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
            set_command_quick(&mut report, &command);
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
            emit_with(
                &args.output,
                &command,
                &server,
                "quick",
                &report.report_rows(),
                &extra,
                &report,
            )?;
            Ok(verdict(report.passed(), &report.failures))
        }
        BenchCommand::All(args) => run_all(&args, &command),
    }
}

fn run_all(args: &AllArgs, command: &str) -> anyhow::Result<ExitCode> {
    let workload = args
        .workload
        .config(DEFAULT_TRUCKS, DEFAULT_STORED_EVENTS)?;
    let mut session = Session::open(&args.server)?;

    // Ingest first: it also loads the data recent queries, and its count check must run
    // before freshness adds probe rows to `readings`.
    let bar = Bar::new("1/4 ingest");
    let mut ingest = run_ingest_with(
        &session.target,
        &ingest_config(&args.send, workload.clone(), session.pid)?,
        &bar,
    )?;
    bar.finish();
    ingest.run.command = Some(command.to_string());

    let bar = Bar::new("2/4 freshness");
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

    let bar = Bar::new("3/4 recent");
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

    let bar = Bar::new("4/4 aliases");
    let mut aliases = run_aliases_with(&session.target, &args.alias.config()?, &bar)?;
    bar.finish();
    aliases.run.command = Some(command.to_string());

    let server = session.server_figures();
    session.stop()?;

    let mut rows = ingest.report_rows();
    rows.extend(freshness.report_rows());
    rows.extend(recent.report_rows());
    rows.extend(aliases.report_rows());
    let passed = ingest.passed()
        && freshness.passed()
        && recent.rows > 0
        && recent.rows_stable
        && aliases.passed();
    let failures = ingest.failures.clone();
    let report = AllOutput {
        ingest,
        freshness,
        recent,
        aliases,
    };
    emit(&args.output, command, &server, "all", &rows, &report)?;
    Ok(verdict(passed, &failures))
}

#[derive(Serialize)]
struct RecentOutput {
    load: Option<IngestReport>,
    recent: RecentReport,
}

#[derive(Serialize)]
struct AllOutput {
    ingest: IngestReport,
    freshness: FreshnessReport,
    recent: RecentReport,
    aliases: AliasReport,
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

/// `--spawn` for a cold-tier scenario: the spawned server gets [`COLD_SERVE_ARGS`] unless the
/// user set them.
fn cold_server_args(server: &ServerArgs) -> ServerArgs {
    let mut server = server.clone();
    if server.spawn {
        for (flag, value) in COLD_SERVE_ARGS {
            let given = server
                .serve_arg
                .iter()
                .any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")));
            if !given {
                server.serve_arg.push(format!("{flag}={value}"));
            }
        }
    } else {
        eprintln!(
            "note: the server must run with --compact-after-secs 0 and --compact-interval-secs 0, \
             or the benchmark cannot compact everything (or a background run races it)"
        );
    }
    server
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
    cold: &ColdArgs,
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
        cold_dir: cold
            .cold_dir
            .clone()
            .or_else(|| session.data_dir.as_ref().map(|dir| dir.join("cold"))),
        compact_timeout_s: cold.compact_timeout_secs,
        server_pid: session.pid,
    };
    config.validate()?;
    Ok(config)
}

fn run_compaction_command(args: &CompactionArgs, command: &str) -> anyhow::Result<ExitCode> {
    let workload = args.workload.config(DEFAULT_TRUCKS, DEFAULT_COLD_EVENTS)?;
    let mut session = Session::open(&cold_server_args(&args.server))?;
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
        &args.cold,
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
    if let Some(load) = &load {
        rows.extend(load.report_rows());
        failures.extend(load.failures.clone());
        if !load.passed() {
            failures.push("load: the stored counts or acknowledgements are wrong".to_string());
        }
    }
    rows.extend(compaction.report_rows());
    failures.extend(compaction.failures());
    let extra = compaction_section(&compaction);
    let report = CompactionOutput { load, compaction };
    emit_with(
        &args.output,
        command,
        &server,
        "compaction",
        &rows,
        &extra,
        &report,
    )?;
    Ok(verdict(failures.is_empty(), &failures))
}

fn run_analytics_command(args: &AnalyticsArgs, command: &str) -> anyhow::Result<ExitCode> {
    let workload = args.workload.config(DEFAULT_TRUCKS, DEFAULT_COLD_EVENTS)?;
    let mut session = Session::open(&cold_server_args(&args.server))?;
    let compaction_config = compaction_config(&session, &args.cold, args.compaction_runs, 1, None)?;
    if compaction_config.cold_dir.is_none() {
        bail!(
            "analytics reads the server's Parquet files: use --spawn, or pass --data-dir (or \
             --cold-dir) for your own server"
        );
    }
    let analytics_config = AnalyticsConfig {
        fleet: args.fleet.clone(),
        runs: args.runs,
        warmup_runs: args.warmup,
        duckdb: duckdb_mode(args.no_duckdb),
        python: args.python.clone(),
        threads: args.threads,
        ..AnalyticsConfig::for_workload(&workload)
    };
    analytics_config.validate()?;
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
    if let Some(load) = &load {
        rows.extend(load.report_rows());
        failures.extend(load.failures.clone());
        if !load.passed() {
            failures.push("load: the stored counts or acknowledgements are wrong".to_string());
        }
    }
    rows.extend(compaction.report_rows());
    rows.extend(analytics.report_rows());
    failures.extend(compaction.failures());
    failures.extend(analytics.failures());
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
    emit_with(
        &args.output,
        command,
        &server,
        "analytics",
        &rows,
        &extra,
        &report,
    )?;
    Ok(verdict(failures.is_empty(), &failures))
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

/// Exit code of a finished run: the figures were printed either way, but a failed correctness
/// check makes the command fail so CI notices.
fn verdict(passed: bool, failures: &[String]) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: a correctness check failed (see the report)");
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
    text.push_str(&format!(
        "Machine: {}; server {} (pid {}).\n\n",
        machine_line(),
        if server.spawned {
            "spawned by the benchmark"
        } else {
            "external"
        },
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
fn emit<T: Serialize>(
    output: &OutputArgs,
    command: &str,
    server: &ServerFigures,
    title: &str,
    rows: &[ReportRow],
    report: &T,
) -> anyhow::Result<()> {
    emit_with(output, command, server, title, rows, "", report)
}

/// [`emit`] with extra markdown (more tables, notes) after the main table.
fn emit_with<T: Serialize>(
    output: &OutputArgs,
    command: &str,
    server: &ServerFigures,
    title: &str,
    rows: &[ReportRow],
    extra: &str,
    report: &T,
) -> anyhow::Result<()> {
    let text = markdown(command, server, title, rows, extra);
    if output.json {
        #[derive(Serialize)]
        struct Envelope<'a, T> {
            command: &'a str,
            server: &'a ServerFigures,
            report: &'a T,
        }
        let envelope = Envelope {
            command,
            server,
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
    fn directory_size_counts_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("b"), [0u8; 5]).unwrap();
        assert_eq!(directory_bytes(dir.path()), 15);
    }
}
