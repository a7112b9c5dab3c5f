//! The hot tier: recent events in fjall, one keyspace per recent UTC week and one shared archive
//! keyspace for the weeks far from now. A single group-commit thread appends each group to a
//! write-ahead log (one fsync for concurrent writers) and keeps its rows in a sorted in-memory
//! buffer that scans read; a flusher moves the buffer into fjall by bulk ingestion.

mod buffer;
pub mod codec;
mod errors;
mod flush;
pub mod key;
mod late;
mod recovery;
mod scan;
mod store;
mod wal;
mod weeks;
mod writer;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_core::{MetricId, NameId, TenantId, Value};

pub use codec::ValueRef;
pub use scan::{HotScan, RawHotRow};
pub use store::HotStore;
pub use writer::ARCHIVE_KEYSPACE;

/// One event to store. `values` may come in any order; they are stored sorted by name id.
#[derive(Debug, Clone, PartialEq)]
pub struct HotEvent {
    pub metric: MetricId,
    pub timestamp_ms: i64,
    /// Hash of the metric's series-key values; 0 when the metric has no series keys.
    pub series: u64,
    /// Hash of the event's content, so an identical re-send lands on the same key.
    pub content_hash: u64,
    /// Values under incoming-name ids, never canonical names.
    pub values: Vec<(NameId, Value)>,
}

/// A rejected event kept in the tenant's error log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub time_ms: i64,
    pub stage: String,
    pub reason: String,
    /// Raw payload, already capped by the caller.
    pub payload: String,
    /// Position of the event in its request, when known.
    pub index: Option<u64>,
    pub metric: Option<String>,
}

/// Everything one request stores; committed atomically.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HotWrite {
    pub tenant: TenantId,
    pub events: Vec<HotEvent>,
    pub errors: Vec<ErrorRecord>,
}

/// Answer to a durable write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteAck {
    /// Sequence number of the request's first event (or first error record when it has no
    /// events); 0 when the request stored nothing. Events take `first_seq..first_seq + rows`,
    /// error records the numbers after them.
    pub first_seq: u64,
    /// Events stored.
    pub rows: usize,
    /// Highest sequence number this request used (0 when it stored nothing).
    pub last_seq: u64,
}

#[derive(Debug, Clone)]
pub struct HotOptions {
    /// fsync before acknowledging. Only tests that do not test durability may turn it off.
    pub sync: bool,
    /// Upper bound on the bytes one group commit gathers from queued requests. A single request
    /// larger than this is still committed, alone.
    pub max_group_bytes: usize,
    /// Block cache size for fjall.
    pub cache_bytes: u64,
    /// A week first written while it starts at most this many weeks before the current week gets
    /// its own keyspace; older weeks share the archive keyspace (see ARCHITECTURE.md).
    pub recent_weeks_past: u32,
    /// Likewise for weeks after the current one (devices with clocks ahead).
    pub recent_weeks_future: u32,
    /// Most error-log bytes one tenant keeps; its oldest records are dropped beyond it.
    pub error_log_tenant_bytes: u64,
    /// Error-log records older than this are dropped.
    pub error_log_max_age: Duration,
    /// The write buffer is flushed into fjall once it holds this many rows ...
    pub flush_rows: usize,
    /// ... or once its oldest row is this old.
    pub flush_interval: Duration,
    /// Test hook for the kill -9 tests of each commit point: the process aborts (no destructors,
    /// like SIGKILL) when a flush reaches this point. Always `None` outside those tests.
    #[doc(hidden)]
    pub crash_at: Option<CrashPoint>,
}

/// A commit point of a flush, for [`HotOptions::crash_at`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The rows are ingested into fjall; `flushed_seq` is not recorded, the WAL is whole.
    AfterIngest,
    /// `flushed_seq` is recorded; the flushed WAL segments are not deleted yet.
    AfterFlushedSeq,
}

/// Default of [`HotOptions::flush_rows`]: about 175 MB of buffered rows at the benchmark's row
/// size (12 values, 5 of them text), and large sorted ingestions (see ARCHITECTURE.md).
pub const FLUSH_ROWS: usize = 1_000_000;
/// Default of [`HotOptions::flush_interval`]: bounds how much WAL a restart replays when the load
/// is light.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Default of [`HotOptions::recent_weeks_past`]: the 8-week (56-day) default hot retention plus
/// 4 weeks of slack, so live data and ordinary catch-up uploads get weekly keyspaces that
/// retention drops in O(1), while a spray of old timestamps costs one shared keyspace. At most
/// 12 + 1 + 2 = 15 weekly keyspaces can be created at any one time.
pub const RECENT_WEEKS_PAST: u32 = 12;
/// Default of [`HotOptions::recent_weeks_future`]: two weeks of clock skew.
pub const RECENT_WEEKS_FUTURE: u32 = 2;

impl Default for HotOptions {
    fn default() -> Self {
        HotOptions {
            sync: true,
            max_group_bytes: 64 * 1024 * 1024,
            cache_bytes: 256 * 1024 * 1024,
            recent_weeks_past: RECENT_WEEKS_PAST,
            recent_weeks_future: RECENT_WEEKS_FUTURE,
            error_log_tenant_bytes: strata_core::ERROR_LOG_TENANT_BYTES,
            error_log_max_age: strata_core::ERROR_LOG_MAX_AGE,
            flush_rows: FLUSH_ROWS,
            flush_interval: FLUSH_INTERVAL,
            crash_at: None,
        }
    }
}

/// Rows of one tenant and metric with `start_ms <= timestamp < end_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRequest {
    pub tenant: TenantId,
    pub metric: MetricId,
    /// Inclusive; `i64::MIN` for an open start.
    pub start_ms: i64,
    /// Exclusive; `i64::MAX` for an open end.
    pub end_ms: i64,
    /// Only these series hashes (each is a seek per hour bucket); `None` = all series.
    pub series: Option<Vec<u64>>,
    /// Decode only these name ids; `None` = all.
    pub names: Option<Vec<NameId>>,
}

impl ScanRequest {
    /// Every row of a metric.
    pub fn all(tenant: TenantId, metric: MetricId) -> Self {
        ScanRequest {
            tenant,
            metric,
            start_ms: i64::MIN,
            end_ms: i64::MAX,
            series: None,
            names: None,
        }
    }
}

/// One stored row. `values` are sorted by name id.
#[derive(Debug, Clone, PartialEq)]
pub struct HotRow {
    pub timestamp_ms: i64,
    pub series: u64,
    pub seq: u64,
    pub content_hash: u64,
    pub values: Vec<(NameId, Value)>,
}

/// One weekly partition that exists: its own keyspace, or a week of the shared archive keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotPartitionInfo {
    /// The fjall keyspace name, e.g. `hot_2017-04-24`; `hot_2017-04-24@archive` for a week
    /// stored in the archive keyspace.
    pub name: String,
    /// Whether the week lives in the shared archive keyspace (dropped by deleting its rows)
    /// rather than in its own keyspace (dropped in O(1)).
    pub archived: bool,
    /// Monday 00:00 UTC, inclusive.
    pub week_start_ms: i64,
    /// The next Monday 00:00 UTC, exclusive.
    pub week_end_ms: i64,
    /// Approximate number of stored rows (may count overwritten versions until compaction);
    /// 0 for an archived week, whose rows are not counted separately. Rows still in the write
    /// buffer (at most `flush_interval` old) are not counted yet.
    pub approx_rows: usize,
    /// Bytes on disk in flushed tables (excludes the journal and memtables); 0 for an archived
    /// week.
    pub disk_bytes: u64,
}
