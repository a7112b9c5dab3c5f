//! Strata storage: the hot tier (fjall, weekly partitions, group-committed durable writes,
//! error log, late index). The cold tier is the `strata-cold` crate.

mod error;
pub mod hot;

pub use error::StorageError;
pub use hot::{
    codec, key, ErrorRecord, HotEvent, HotOptions, HotPartitionInfo, HotRow, HotScan, HotStore,
    HotWrite, RawHotRow, ScanRequest, ValueRef, WriteAck,
};
