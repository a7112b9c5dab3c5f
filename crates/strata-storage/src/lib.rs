//! Strata storage: the hot tier (a write-ahead log of group commits and a queryable write buffer
//! over fjall, weekly partitions plus a shared archive keyspace, error log with retention, late
//! index). The cold tier is the `strata-cold` crate.

mod error;
pub mod hot;

pub use error::StorageError;
pub use hot::{
    codec, key, CrashPoint, ErrorRecord, HotEvent, HotOptions, HotPartitionInfo, HotRow, HotScan,
    HotStore, HotWrite, RawHotRow, ScanRequest, ValueRef, WriteAck, ARCHIVE_KEYSPACE,
    FLUSH_INTERVAL, FLUSH_ROWS, RECENT_WEEKS_FUTURE, RECENT_WEEKS_PAST,
};
