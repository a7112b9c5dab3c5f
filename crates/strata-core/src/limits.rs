use std::time::Duration;

/// Every explicit input limit in one place. Each is configurable on `strata serve`; the defaults
/// are what the README documents.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body on `/api/v1/write`.
    pub write_body_bytes: usize,
    /// Largest single event inside a write body.
    pub event_bytes: usize,
    /// Most fields (after flattening) in one event.
    pub fields_per_event: usize,
    /// Largest request body on schema, key, tenant and settings endpoints.
    pub admin_body_bytes: usize,
    /// Largest raw payload kept in the error log per rejected event.
    pub error_payload_bytes: usize,
    /// Most distinct incoming names (field keys as devices sent them) one metric may hold. Every
    /// name is a column of `SELECT *` and a catalog row; 60 events of 990 new names each made a
    /// `SELECT *` hang the server, so an event that would add names beyond this is rejected.
    pub field_names_per_metric: usize,
    /// Committed write batches (one per request) the event stream holds for its slowest
    /// subscriber (alert rules, live queries, rollups) before that subscriber lags and must
    /// re-read what it missed from the hot tier. Each held batch keeps its rows in memory.
    pub event_stream_batches: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            write_body_bytes: 16 * 1024 * 1024,
            event_bytes: 1024 * 1024,
            fields_per_event: 1000,
            admin_body_bytes: 1024 * 1024,
            error_payload_bytes: 64 * 1024,
            field_names_per_metric: DEFAULT_FIELD_NAMES_PER_METRIC,
            event_stream_batches: DEFAULT_EVENT_STREAM_BATCHES,
        }
    }
}

/// Default of [`Limits::field_names_per_metric`]: ten times the per-event field limit, far above
/// any real device schema, while `SELECT *` over this many columns still answers in seconds.
pub const DEFAULT_FIELD_NAMES_PER_METRIC: usize = 10_000;

/// Default of [`Limits::event_stream_batches`]: at the measured 1,000- to 5,000-event requests,
/// one to five million events of slack before a subscriber has to re-read.
pub const DEFAULT_EVENT_STREAM_BATCHES: usize = 1024;

/// Earliest event time accepted at ingest, in epoch milliseconds: 1677-09-21T00:12:43.146Z, the
/// first whole millisecond an Arrow nanosecond timestamp (i64 ns) can hold. SQL functions and
/// every answer encoder may convert to nanoseconds, so an event outside this range could be
/// acknowledged and then never read correctly.
pub const MIN_TIMESTAMP_MS: i64 = i64::MIN / 1_000_000;
/// Latest event time accepted at ingest, in epoch milliseconds: 2262-04-11T23:47:16.854Z, the
/// last whole millisecond an Arrow nanosecond timestamp can hold.
pub const MAX_TIMESTAMP_MS: i64 = i64::MAX / 1_000_000;

/// Most bytes (keys and records) one tenant's error log keeps; the oldest records go first. A
/// write key can send 16 MiB per request, so without a cap one key fills the disk.
pub const ERROR_LOG_TENANT_BYTES: u64 = 64 * 1024 * 1024;
/// How long error-log records are kept.
pub const ERROR_LOG_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most error-log bytes one write request may add; further rejections of that request are
/// answered to the client but summarized in one log record (a 16 MiB body of 8 million
/// one-byte events would otherwise add about 1.5 GB of records).
pub const ERROR_LOG_REQUEST_BYTES: usize = 16 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_bounds_are_whole_milliseconds_inside_arrow_nanoseconds() {
        assert_eq!(MIN_TIMESTAMP_MS, -9_223_372_036_854);
        assert_eq!(MAX_TIMESTAMP_MS, 9_223_372_036_854);
        assert!(MIN_TIMESTAMP_MS.checked_mul(1_000_000).is_some());
        assert!(MAX_TIMESTAMP_MS.checked_mul(1_000_000).is_some());
        assert!((MIN_TIMESTAMP_MS - 1).checked_mul(1_000_000).is_none());
        assert!((MAX_TIMESTAMP_MS + 1).checked_mul(1_000_000).is_none());
    }
}
