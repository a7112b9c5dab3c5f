//! The names and labels of the process metrics `GET /metrics` exposes (issue 20), defined once:
//! the crates that record them (through the `metrics` facade) and the node that describes them
//! to the Prometheus exporter use these constants, so a renamed metric cannot leave a stale
//! description or a dashboard half-broken.
//!
//! Label values are bounded: doors, rejection stages and outcomes are fixed words. Tenant and
//! metric names appear only in the scrape-time gauges the HTTP door renders, under a cap.

/// Events accepted and durable, by door. Counter.
pub const INGEST_EVENTS: &str = "strata_ingest_events_total";
/// Request body bytes the write path received, by door. Counter.
pub const INGEST_BYTES: &str = "strata_ingest_bytes_total";
/// Events rejected, by door and reason (the pipeline stage, or `body` when a whole body could
/// not be split into events). Counter.
pub const INGEST_REJECTED: &str = "strata_ingest_rejected_events_total";

/// Write requests in one group commit (one WAL frame, one fsync). Histogram.
pub const GROUP_COMMIT_WRITES: &str = "strata_group_commit_writes";
/// Rows in one group commit. Histogram.
pub const GROUP_COMMIT_ROWS: &str = "strata_group_commit_rows";
/// Time to encode, append and fsync one group commit. Histogram, seconds.
pub const GROUP_COMMIT_SECONDS: &str = "strata_group_commit_seconds";

/// Statements started, by door. Counter.
pub const QUERIES: &str = "strata_queries_total";
/// Statements that failed (refused, planning or execution error, timeout), by door. Counter.
pub const QUERY_ERRORS: &str = "strata_query_errors_total";
/// Time from a statement's start until its last batch was read (or the reader stopped), by
/// door. Histogram, seconds.
pub const QUERY_SECONDS: &str = "strata_query_seconds";

/// Compaction runs of one tenant, by outcome (`ok`, `failed`). Counter.
pub const COMPACTION_RUNS: &str = "strata_compaction_runs_total";
/// Rows moved from the hot to the cold tier. Counter.
pub const COMPACTION_ROWS: &str = "strata_compaction_rows_total";
/// Cold files written by compaction. Counter.
pub const COMPACTION_FILES: &str = "strata_compaction_files_written_total";
/// Duration of one tenant's compaction run. Histogram, seconds.
pub const COMPACTION_SECONDS: &str = "strata_compaction_seconds";

/// HTTP connections open now. Gauge.
pub const HTTP_OPEN_CONNECTIONS: &str = "strata_http_open_connections";

/// The `door` label: which front door a write or a statement came through.
pub const DOOR_LABEL: &str = "door";
/// The `reason` label of rejected events.
pub const REASON_LABEL: &str = "reason";
/// The `outcome` label of compaction runs.
pub const OUTCOME_LABEL: &str = "outcome";

/// Door label values. Internal callers (alert rules, rollups, live queries) have their own, so
/// a dashboard can tell user load from the server's own.
pub mod door {
    pub const HTTP: &str = "http";
    pub const LINE_PROTOCOL: &str = "line_protocol";
    pub const POSTGRES: &str = "postgres";
    pub const FLIGHT: &str = "flight";
    pub const MQTT: &str = "mqtt";
    pub const SOURCE: &str = "source";
    pub const LIVE: &str = "live";
    pub const ALERTS: &str = "alerts";
    pub const ROLLUPS: &str = "rollups";
    pub const INTERNAL: &str = "internal";
}
