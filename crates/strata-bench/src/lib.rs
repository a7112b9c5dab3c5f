//! Workload generator and benchmark scenarios for Strata.
//!
//! - [`generator`]: a deterministic TSBS-"iot"-like workload (trucks sending `readings` and
//!   `diagnostics`) with configurable shares of renamed fields, unknown extras, numbers sent as
//!   text, out-of-order, late and duplicated events, and the exact count of distinct events.
//! - [`schema`]: the schema calls the benchmark declares before ingest.
//! - [`scenarios`]: ingest, freshness, recent-window, alias-cost, compaction, analytics and
//!   tenant-isolation scenarios against a running server over HTTP, the alerts benchmark
//!   (notification latency, absence detection, query-rule lag, ingest cost of event rules),
//!   plus quick mode (small sizes + correctness checks) for CI. Analytics also runs plain DataFusion in-process and
//!   DuckDB through Python on the cold Parquet files ([`cold_files`] finds them).
//! - [`normalize`]: comparing answers across engines (rounded floats, sorted rows).
//! - [`stats`], [`report`]: percentiles, latency summaries, markdown table rows.
//! - [`plot`]: PNG plots of latency distributions and of the ingest rate over time; every
//!   report draws its own ([`Plots`]).
//! - [`disk`]: free space where the server keeps its data, and what a run will need.
//! - [`webhook`]: the webhook receiver the alerts benchmark listens with.
//! - [`harness`]: what `strata bench` does around the scenarios: the server under test
//!   (spawned or external), the tenant, the free-disk check, the markdown/JSON report.
//!
//! Everything is blocking (threads + the blocking `strata-client`): the benchmark must not share an async
//! runtime's scheduling quirks with the server it measures. The one exception is the in-process
//! DataFusion engine of the analytics scenario, which gets a runtime of its own.

pub mod cold_files;
pub mod disk;
pub mod generator;
pub mod harness;
pub mod normalize;
pub mod plot;
pub mod progress;
pub mod report;
mod rng;
pub mod scenarios;
pub mod schema;
pub mod stats;
pub mod webhook;

pub use cold_files::{ColdFileSet, MetricFiles};
pub use disk::{free_bytes, DiskEstimate};
pub use generator::{write_ndjson, Generator, GeneratorConfig, GeneratorStats, Shares};
pub use plot::{PlotFile, Plots};
pub use progress::{NoProgress, Progress};
pub use report::{markdown_table, ReportRow, ReportRows, RunInfo};
pub use scenarios::alerts::{run_alerts, run_alerts_with, AlertsConfig, AlertsReport};
pub use scenarios::aliases::{run_aliases, run_aliases_with, AliasConfig, AliasReport};
pub use scenarios::analytics::{
    run_analytics, run_analytics_with, AnalyticsConfig, AnalyticsReport, DuckdbMode,
};
pub use scenarios::compaction::{
    run_compaction, run_compaction_with, CompactionConfig, CompactionReport,
};
pub use scenarios::freshness::{
    run_freshness, run_freshness_with, FreshnessConfig, FreshnessReport,
};
pub use scenarios::ingest::{run_ingest, run_ingest_with, IngestConfig, IngestReport};
pub use scenarios::isolation::{
    run_isolation, run_isolation_with, IsolationConfig, IsolationReport,
};
pub use scenarios::protocols::{run_protocols, DoorFigures, ProtocolsConfig, ProtocolsReport};
pub use scenarios::quick::{run_quick, run_quick_with, QuickConfig, QuickReport};
pub use scenarios::recent::{run_recent, run_recent_with, RecentConfig, RecentReport};
pub use scenarios::streaming::{
    run_streaming, run_streaming_with, StreamingConfig, StreamingReport,
};
pub use scenarios::{check_counts, peak_rss_kib, BenchTarget, CountCheck};
pub use schema::{apply_schema, workload_schema, SchemaOp, SchemaSetupReport};
pub use stats::{percentile, LatencySummary, RateSample};

/// Everything that can go wrong in a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid benchmark configuration: {0}")]
    InvalidConfig(String),
    /// A call to the server under test failed (an error answer or no answer).
    #[error(transparent)]
    Api(#[from] strata_client::ApiError),
    #[error("unexpected answer: {0}")]
    Decode(String),
    #[error("check failed: {0}")]
    Check(String),
    #[error("query engine: {0}")]
    Engine(String),
    #[error("plot: {0}")]
    Plot(String),
    #[error("a {0} thread panicked")]
    ThreadPanicked(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The harness refused or could not run (a server that did not start, too little disk).
    #[error("{0}")]
    Harness(String),
    /// What was being done when `cause` happened ("creating tenant \"x\": ..."). The cause
    /// is in the message rather than the error's source, so reports that show an error with
    /// `to_string()` keep it.
    #[error("{context}: {cause}")]
    Context {
        context: String,
        cause: Box<BenchError>,
    },
}
