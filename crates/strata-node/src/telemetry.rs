//! The process's metrics recorder (issue 20): the Prometheus exporter behind the `metrics`
//! facade every crate records through, its histogram buckets, the metric descriptions, and the
//! upkeep thread that keeps histogram samples from piling up between scrapes. `GET /metrics` (the HTTP
//! door) renders it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use strata_core::telemetry as names;

/// Histogram samples are drained into their buckets this often, scraped or not: without it a
/// server nobody scrapes would hold every sample since it started.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Latency buckets: 100 µs (an fsync on a fast disk) to 60 s (past the default query timeout).
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
/// Group sizes: 1 (a lone writer) to 64 Ki rows (the group's byte cap at small events).
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0, 65536.0,
];

/// The process-wide recorder, installed on first use. The facade takes one global recorder per
/// process; a second `run` in the same process (tests) shares it.
pub fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(install).clone()
}

fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(names::GROUP_COMMIT_WRITES.to_string()),
                COUNT_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(names::GROUP_COMMIT_ROWS.to_string()),
                COUNT_BUCKETS,
            )
        });
    let handle = match builder.and_then(PrometheusBuilder::install_recorder) {
        Ok(handle) => handle,
        Err(error) => {
            // Another recorder owns the process (an embedding program): serve without metrics.
            tracing::warn!(%error, "no metrics recorder: GET /metrics will answer 503");
            return None;
        }
    };
    describe();
    spawn_upkeep(handle.clone());
    Some(handle)
}

/// Drains histogram samples every [`UPKEEP_INTERVAL`] until the process ends: on a thread of
/// its own, because the recorder outlives any one runtime (tests run several servers).
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_string())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no metrics upkeep thread: histograms drain only when scraped");
    }
}

fn describe() {
    describe_ingest();
    describe_queries_and_compaction();
}

fn describe_ingest() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::INGEST_EVENTS,
        Unit::Count,
        "Events accepted and durable, by door."
    );
    describe_counter!(
        names::INGEST_BYTES,
        Unit::Bytes,
        "Write request body bytes received, by door."
    );
    describe_counter!(
        names::INGEST_REJECTED,
        Unit::Count,
        "Events rejected, by door and reason (pipeline stage; `body` for a body that could not be split)."
    );
    describe_histogram!(
        names::GROUP_COMMIT_WRITES,
        Unit::Count,
        "Write requests per group commit."
    );
    describe_histogram!(
        names::GROUP_COMMIT_ROWS,
        Unit::Count,
        "Rows per group commit."
    );
    describe_histogram!(
        names::GROUP_COMMIT_SECONDS,
        Unit::Seconds,
        "Time to encode, append and fsync one group commit."
    );
    describe_gauge!(
        names::HTTP_OPEN_CONNECTIONS,
        Unit::Count,
        "HTTP connections open now."
    );
}

fn describe_queries_and_compaction() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        names::QUERIES,
        Unit::Count,
        "SQL statements started, by door."
    );
    describe_counter!(
        names::QUERY_ERRORS,
        Unit::Count,
        "SQL statements that failed, by door."
    );
    describe_histogram!(
        names::QUERY_SECONDS,
        Unit::Seconds,
        "Time from a statement's start until its result was read or dropped, by door."
    );
    describe_counter!(
        names::COMPACTION_RUNS,
        Unit::Count,
        "Compaction runs of a tenant, by outcome."
    );
    describe_counter!(
        names::COMPACTION_ROWS,
        Unit::Count,
        "Rows moved from the hot to the cold tier."
    );
    describe_counter!(
        names::COMPACTION_FILES,
        Unit::Count,
        "Cold files written by compaction."
    );
    describe_histogram!(
        names::COMPACTION_SECONDS,
        Unit::Seconds,
        "Duration of one tenant's compaction run."
    );
}
