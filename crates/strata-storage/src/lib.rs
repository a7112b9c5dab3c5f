//! Strata storage: the hot tier (fjall, weekly partitions plus a shared archive keyspace,
//! group-committed durable writes, error log with retention, late index). The cold tier is the `strata-cold` crate.

mod error;
pub mod hot;

pub use error::StorageError;
pub use hot::{
    codec, key, ErrorRecord, HotEvent, HotOptions, HotPartitionInfo, HotRow, HotScan, HotStore,
    HotWrite, RawHotRow, ScanRequest, ValueRef, WriteAck, ARCHIVE_KEYSPACE, RECENT_WEEKS_FUTURE,
    RECENT_WEEKS_PAST,
};
