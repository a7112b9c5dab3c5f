//! The command-line arguments of `strata bench` (clap), and their conversion into the options
//! of `strata_bench::harness`, which does the work.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use strata_bench::harness::{ColdOptions, OutputOptions, SendOptions, ServerOptions, Workload};
use strata_bench::{
    AlertsConfig, AliasConfig, AnalyticsConfig, GeneratorConfig, Shares, StreamingConfig,
};
use strata_client::DEFAULT_URL;

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
    /// Alerts: event-rule notification latency, absence detection, query-rule lag, ingest cost
    #[command(
        long_about = "Alerts (issue 15), measured from outside with a webhook receiver inside \
the benchmark (an HTTP server on 127.0.0.1):\n\n\
1. event rule `temp > 90` (one instance per device): writes alternately trigger and clear it, \
each device its own, and each notification is matched to its write by device and state; \
latency from the write's HTTP 200 to the webhook request arriving. Target: p99 <= 100 ms.\n\
2. absence rule (for --absence-for-ms, per device): devices send a heartbeat, then stop one \
after another; delay from a device's last acknowledged write to its `firing` webhook. \
Target: at most the duration + 1 s.\n\
3. --query-rules query rules (`SELECT name, avg(temp) AS value FROM thermostat WHERE \
timestamp > now() - INTERVAL '10 seconds' AND name = 'dN' GROUP BY name`, every 1 s) over \
--query-devices devices while one event per device is written every \
--query-ingest-interval-ms; evaluation lag read from GET /api/v1/alerts (now - \
last_evaluated_at), every --query-sample-secs. Target: p99 <= every + 1 s.\n\
4. ingest throughput (the `bench ingest` workload, --ingest-events per phase) without rules \
and with --ingest-rules event rules, in phases none, rules, rules, none (--ingest-rounds \
pairs). Target: with rules at most 10% below.\n\n\
A count of 0 skips a part (--event-samples 0, --absence-samples 0, --query-rules 0, \
--ingest-rounds 0). The defaults take about 3 minutes on a 2-core machine. A spawned server \
gets --allow-private-webhooks and --compact-interval-secs 0; a server you run must allow \
private webhooks too (or reach the receiver at --webhook-url). Rules and channels are named \
bench_alerts_*; a run deletes its own, and any an interrupted run left.\n\n\
Example:\n  \
strata bench alerts --spawn --plots plots"
    )]
    Alerts(AlertsArgs),
    /// Streaming SQL: live-query latency, rollup freshness, ingest with rollups
    #[command(
        long_about = "Streaming SQL (issue 16), measured from outside over HTTP:\n\n\
1. a live tail (`SELECT name FROM bench_live ...` as Server-Sent Events), then one write at a \
time; latency from the write's HTTP 200 to the `rows` event carrying it. Target: p99 <= 50 ms.\n\
2. a 1-minute rollup of bench_live, then one write at a time; latency from the write's HTTP \
200 to the answer of `SELECT sum(n)` over the rollup, checked equal to the raw count each \
time (a read of a rollup first waits for the maintenance cycle covering every acked write).\n\
3. ingest throughput (the `bench ingest` workload, --ingest-events per phase) without rollups \
and with --ingest-rollups 1-minute rollups over readings and diagnostics (created and \
backfilled between phases), in phases none, rollups, rollups, none. Target: at most 15% below.\n\
4. --history-days days of --history-devices devices (one reading a minute), then daily means \
per device from raw data and from a 1-minute rollup, --query-runs times each; the answers must \
match.\n\n\
A count of 0 skips a part. Rollups are named bench_rollup_*; a run deletes its own and any an \
interrupted run left. A spawned server gets --compact-interval-secs 0.\n\n\
Example:\n  \
strata bench streaming --spawn"
    )]
    Streaming(StreamingArgs),
    /// Durable ingest through each door: HTTP JSON, line protocol, MQTT QoS 1
    #[command(
        long_about = "Durable ingest through each front door (issue 19), the same events each \
time into a metric of its own: HTTP JSON (NDJSON to /api/v1/write), InfluxDB line protocol \
(/api/v2/write), MQTT QoS 1 with one event per publish, and MQTT QoS 1 with --mqtt-batch \
events per publish (a JSON array). Every door acknowledges only after fsync; bodies and \
payloads are built before the clock runs, and each phase's rows are counted afterwards.\n\n\
A spawned server gets --mqtt 127.0.0.1:0. Against your own server pass --mqtt-addr (without \
it the MQTT phases are skipped) and --tenant with the key's tenant name (the MQTT username).\n\n\
Example:\n  strata bench protocols --spawn"
    )]
    Protocols(ProtocolsArgs),
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

/// What every measuring subcommand takes: the server and where results go.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
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

/// The workload a loading subcommand generates and how it sends it.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub send: SendArgs,
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
    pub run: RunArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Skip the stored-row count check afterwards
    #[arg(long)]
    pub no_verify: bool,
}

#[derive(Debug, Args)]
pub struct FreshnessArgs {
    #[command(flatten)]
    pub run: RunArgs,
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
    pub run: RunArgs,
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
    pub run: RunArgs,
    #[command(flatten)]
    pub load: LoadArgs,
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
    pub run: RunArgs,
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
    #[command(flatten)]
    pub compaction: CompactionTargetArgs,
}

/// Where the server writes Parquet and how long its compaction may take.
#[derive(Debug, Clone, Args)]
pub struct CompactionTargetArgs {
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
    pub run: RunArgs,
    #[command(flatten)]
    pub load: LoadArgs,
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
    pub run: RunArgs,
    #[command(flatten)]
    pub load: LoadArgs,
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
    pub run: RunArgs,
    /// Seed of the generator
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Part 1: measured writes, each expecting one notification (0 skips the part)
    #[arg(long, default_value_t = 300)]
    pub event_samples: usize,
    /// Part 1: unmeasured writes first
    #[arg(long, default_value_t = 10)]
    pub event_warmup: usize,
    /// Part 1: milliseconds one notification is waited for
    #[arg(long, default_value_t = 5_000)]
    pub sample_timeout_ms: u64,
    /// Part 2: devices that stop sending, one sample each (0 skips the part)
    #[arg(long, default_value_t = 5)]
    pub absence_samples: usize,
    /// Part 2: the absence rule's duration (`for`), in milliseconds
    #[arg(long, default_value_t = 2_000)]
    pub absence_for_ms: u64,
    /// Part 2: milliseconds between two heartbeats of the devices
    #[arg(long, default_value_t = 200)]
    pub absence_heartbeat_ms: u64,
    /// Part 2: milliseconds between two devices stopping
    #[arg(long, default_value_t = 1_000)]
    pub absence_stagger_ms: u64,
    /// Part 3: query rules, at most 1,000 (the limit per tenant; 0 skips the part)
    #[arg(long, default_value_t = 1_000)]
    pub query_rules: usize,
    /// Part 3: devices (rule N reads device N modulo this)
    #[arg(long, default_value_t = 1_000)]
    pub query_devices: usize,
    /// Part 3: each rule's interval in milliseconds (at least 1,000)
    #[arg(long, default_value_t = 1_000)]
    pub query_every_ms: u64,
    /// Part 3: seconds the rules run under ingest
    #[arg(long, default_value_t = 60)]
    pub query_secs: u64,
    /// Part 3: seconds before the first lag reading
    #[arg(long, default_value_t = 15)]
    pub query_warmup_secs: u64,
    /// Part 3: seconds between two lag readings
    #[arg(long, default_value_t = 5)]
    pub query_sample_secs: u64,
    /// Part 3: every this many milliseconds, one event per device is written
    #[arg(long, default_value_t = 200)]
    pub query_ingest_interval_ms: u64,
    /// Part 4: event rules active in the phases with rules
    #[arg(long, default_value_t = 100)]
    pub ingest_rules: usize,
    /// Part 4: pairs of phases (one without rules, one with; 0 skips the part)
    #[arg(long, default_value_t = 2)]
    pub ingest_rounds: usize,
    /// Part 4: events of one phase (1,000 trucks; rounded up to whole intervals)
    #[arg(long, default_value_t = 2_000_000)]
    pub ingest_events: u64,
    /// Part 4: trucks of the workload
    #[arg(long, default_value_t = DEFAULT_TRUCKS)]
    pub ingest_trucks: u32,
    #[command(flatten)]
    pub send: SendArgs,
    /// Where the webhook receiver listens
    #[arg(long, default_value = "127.0.0.1:0")]
    pub webhook_listen: String,
    /// The URL the server is given for the receiver (default: http:// + where it listens)
    #[arg(long)]
    pub webhook_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct StreamingArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Part 1: measured writes, each expecting one live update (0 skips the part)
    #[arg(long, default_value_t = 300)]
    pub live_samples: usize,
    /// Part 2: measured writes, each followed by a read of the rollup (0 skips the part)
    #[arg(long, default_value_t = 300)]
    pub rollup_samples: usize,
    /// Parts 1 and 2: unmeasured writes first
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Part 1: milliseconds one update is waited for
    #[arg(long, default_value_t = 5_000)]
    pub sample_timeout_ms: u64,
    /// Part 3: rollups active in the phases with rollups (at most 100)
    #[arg(long, default_value_t = 10)]
    pub ingest_rollups: usize,
    /// Part 3: pairs of phases (one without rollups, one with; 0 skips the part)
    #[arg(long, default_value_t = 2)]
    pub ingest_rounds: usize,
    /// Part 3: events of one phase (rounded up to whole intervals)
    #[arg(long, default_value_t = 2_000_000)]
    pub ingest_events: u64,
    /// Part 3: trucks of the workload
    #[arg(long, default_value_t = DEFAULT_TRUCKS)]
    pub ingest_trucks: u32,
    /// Part 4: days of history, one reading a minute per device (0 skips the part)
    #[arg(long, default_value_t = 30)]
    pub history_days: u32,
    /// Part 4: devices of the history
    #[arg(long, default_value_t = 20)]
    pub history_devices: u32,
    /// Part 4: timed runs of each query
    #[arg(long, default_value_t = 5)]
    pub query_runs: usize,
    #[command(flatten)]
    pub send: SendArgs,
}

impl StreamingArgs {
    pub fn config(&self) -> anyhow::Result<StreamingConfig> {
        let defaults = StreamingConfig::default();
        let workload = WorkloadArgs {
            seed: 1,
            trucks: Some(self.ingest_trucks),
            events: Some(self.ingest_events),
            interval_ms: defaults.ingest.workload.interval_ms,
            clean: false,
            renamed_share: None,
            extra_share: None,
            string_share: None,
            out_of_order_share: None,
            late_share: None,
            duplicate_share: None,
        }
        .config(DEFAULT_TRUCKS, self.ingest_events)?;
        let send = self.send.options();
        let config = StreamingConfig {
            live_samples: self.live_samples,
            rollup_samples: self.rollup_samples,
            warmup: self.warmup,
            sample_timeout_ms: self.sample_timeout_ms,
            ingest_rollups: self.ingest_rollups,
            ingest_rounds: self.ingest_rounds,
            history_days: self.history_days,
            history_devices: self.history_devices,
            query_runs: self.query_runs,
            ingest: strata_bench::IngestConfig {
                workload,
                clients: send.clients,
                batch_size: send.batch,
                pregenerate: !send.stream,
                chunk_bytes: send.chunk_mib.saturating_mul(1024 * 1024),
                ..defaults.ingest
            },
        };
        config.validate()?;
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct AllArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub load: LoadArgs,
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
    #[command(flatten)]
    pub compaction: CompactionTargetArgs,
    /// Long mode: 100M events (50M rows per metric) unless --events is given; checks the
    /// free disk first (see --help for time and disk)
    #[arg(long)]
    pub long: bool,
}

/// Trucks (devices) of the default workload: the 1,000 devices the recent-window target names.
pub const DEFAULT_TRUCKS: u32 = 1_000;
/// Events of `bench ingest` when --events is not given: long enough for a steady rate.
pub const DEFAULT_INGEST_EVENTS: u64 = 2_000_000;
/// Events of `bench recent` and `bench all`: 10M rows in `readings` (and 10M in `diagnostics`),
/// the scale the recent-window target is stated at.
const DEFAULT_STORED_EVENTS: u64 = 20_000_000;
/// Events of `--long` (issue 7: "recent ... at 10M rows (100M in a long mode)"): 100M stored
/// events, 50M rows per metric.
const LONG_STORED_EVENTS: u64 = 100_000_000;
/// Events of `bench compaction` and `bench analytics` when --events is not given.
pub const DEFAULT_COLD_EVENTS: u64 = 2_000_000;

/// Events of `recent` and `all` when --events is not given.
pub fn stored_events(long: bool) -> u64 {
    if long {
        LONG_STORED_EVENTS
    } else {
        DEFAULT_STORED_EVENTS
    }
}

impl ServerArgs {
    /// The harness's view; a spawned server runs this very binary.
    pub fn options(&self) -> anyhow::Result<ServerOptions> {
        Ok(ServerOptions {
            url: self.url.clone(),
            data_dir: self.data_dir.clone(),
            spawn: self.spawn,
            exe: std::env::current_exe()
                .map_err(|error| anyhow::anyhow!("finding the strata executable: {error}"))?,
            serve_args: self.serve_arg.clone(),
            tenant: self.tenant.clone(),
            key: self.key.clone(),
            server_pid: self.server_pid,
        })
    }
}

impl OutputArgs {
    pub fn options(&self) -> OutputOptions {
        OutputOptions {
            json: self.json,
            report: self.report.clone(),
            plots: self.plots.clone(),
        }
    }
}

impl SendArgs {
    pub fn options(&self) -> SendOptions {
        SendOptions {
            clients: self.clients,
            batch: self.batch,
            stream: self.stream,
            chunk_mib: self.chunk_mib,
        }
    }
}

impl LoadArgs {
    /// The workload to load (when `load`), `default_events` unless --events is given.
    pub fn workload(
        &self,
        default_events: u64,
        load: bool,
        long: bool,
    ) -> anyhow::Result<Workload> {
        Ok(Workload {
            config: self.workload.config(DEFAULT_TRUCKS, default_events)?,
            send: self.send.options(),
            load,
            long,
        })
    }
}

impl CompactionTargetArgs {
    pub fn options(&self) -> ColdOptions {
        ColdOptions {
            cold_dir: self.cold_dir.clone(),
            compact_timeout_secs: self.compact_timeout_secs,
        }
    }
}

impl WorkloadArgs {
    pub fn config(
        &self,
        default_trucks: u32,
        default_events: u64,
    ) -> anyhow::Result<GeneratorConfig> {
        let trucks = self.trucks.unwrap_or(default_trucks);
        if trucks == 0 {
            anyhow::bail!("--trucks must be at least 1");
        }
        let events = self.events.unwrap_or(default_events);
        // Each interval is one `readings` and one `diagnostics` event per truck.
        let per_interval = 2 * u64::from(trucks);
        let intervals = events.div_ceil(per_interval).max(1);
        let config = GeneratorConfig {
            seed: self.seed,
            trucks,
            intervals,
            interval_ms: self.interval_ms,
            shares: self.shares(),
            ..GeneratorConfig::default()
        };
        config.validate()?;
        Ok(config)
    }

    /// The default shares (none with --clean), each overridden by its flag.
    fn shares(&self) -> Shares {
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
        shares
    }
}

impl AlertsArgs {
    pub fn config(&self) -> anyhow::Result<AlertsConfig> {
        let defaults = AlertsConfig::default();
        let workload = WorkloadArgs {
            seed: 1,
            trucks: Some(self.ingest_trucks),
            events: Some(self.ingest_events),
            interval_ms: defaults.ingest.workload.interval_ms,
            clean: false,
            renamed_share: None,
            extra_share: None,
            string_share: None,
            out_of_order_share: None,
            late_share: None,
            duplicate_share: None,
        }
        .config(DEFAULT_TRUCKS, self.ingest_events)?;
        let send = self.send.options();
        let config = AlertsConfig {
            event_samples: self.event_samples,
            event_warmup: self.event_warmup,
            sample_timeout_ms: self.sample_timeout_ms,
            absence_samples: self.absence_samples,
            absence_for_ms: self.absence_for_ms,
            absence_heartbeat_ms: self.absence_heartbeat_ms,
            absence_stagger_ms: self.absence_stagger_ms,
            query_rules: self.query_rules,
            query_devices: self.query_devices,
            query_every_ms: self.query_every_ms,
            query_secs: self.query_secs,
            query_warmup_secs: self.query_warmup_secs,
            query_sample_secs: self.query_sample_secs,
            query_ingest_interval_ms: self.query_ingest_interval_ms,
            ingest_rules: self.ingest_rules,
            ingest_rounds: self.ingest_rounds,
            ingest: strata_bench::IngestConfig {
                workload,
                clients: send.clients,
                batch_size: send.batch,
                pregenerate: !send.stream,
                chunk_bytes: send.chunk_mib.saturating_mul(1024 * 1024),
                ..defaults.ingest
            },
            webhook_listen: self.webhook_listen.clone(),
            webhook_url: self.webhook_url.clone(),
        };
        config.validate()?;
        Ok(config)
    }
}

impl AliasScaleArgs {
    pub fn config(&self) -> anyhow::Result<AliasConfig> {
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

impl EngineArgs {
    pub fn config(&self, workload: &GeneratorConfig) -> AnalyticsConfig {
        AnalyticsConfig {
            fleet: self.fleet.clone(),
            duckdb: strata_bench::harness::duckdb_mode(self.no_duckdb),
            python: self.python.clone(),
            threads: self.threads,
            ..AnalyticsConfig::for_workload(workload)
        }
    }
}

#[derive(Debug, Args)]
pub struct ProtocolsArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Events of each phase
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// HTTP clients of the JSON and line protocol phases
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Events per HTTP request
    #[arg(long, default_value_t = 5_000)]
    pub batch_size: usize,
    /// MQTT connections, each publishing from a thread of its own
    #[arg(long, default_value_t = 4)]
    pub mqtt_connections: usize,
    /// Events per publish of the batched MQTT phase
    #[arg(long, default_value_t = 100)]
    pub mqtt_batch: usize,
    /// The MQTT listener of a server not spawned by the benchmark
    #[arg(long)]
    pub mqtt_addr: Option<std::net::SocketAddr>,
}

impl ProtocolsArgs {
    pub fn config(&self) -> strata_bench::ProtocolsConfig {
        strata_bench::ProtocolsConfig {
            events: self.events,
            clients: self.clients,
            batch_size: self.batch_size,
            mqtt_connections: self.mqtt_connections,
            mqtt_batch: self.mqtt_batch,
            mqtt_addr: self.mqtt_addr,
            tenant: String::new(),
        }
    }
}
