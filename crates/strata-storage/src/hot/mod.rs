//! The hot tier: recent events in fjall, one keyspace per UTC week, written by a single
//! group-commit thread so concurrent writers share one fsync.

pub mod codec;
pub mod key;
mod scan;
mod store;
mod writer;

use serde::{Deserialize, Serialize};
use strata_core::{MetricId, NameId, TenantId, Value};

pub use codec::ValueRef;
pub use scan::{HotScan, RawHotRow};
pub use store::HotStore;

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
}

impl Default for HotOptions {
    fn default() -> Self {
        HotOptions {
            sync: true,
            max_group_bytes: 64 * 1024 * 1024,
            cache_bytes: 256 * 1024 * 1024,
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

/// One weekly partition that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotPartitionInfo {
    /// The fjall keyspace name, e.g. `hot_2017-04-24`.
    pub name: String,
    /// Monday 00:00 UTC, inclusive.
    pub week_start_ms: i64,
    /// The next Monday 00:00 UTC, exclusive.
    pub week_end_ms: i64,
    /// Approximate number of stored rows (may count overwritten versions until compaction).
    pub approx_rows: usize,
    /// Bytes on disk in flushed tables (excludes the journal and memtables).
    pub disk_bytes: u64,
}
