//! Strata storage: the hot tier (fjall, weekly partitions, group-committed durable writes,
//! error log). The cold tier (Parquet on object_store) will live beside it as its own module.

mod error;
pub mod hot;

pub use error::StorageError;
pub use hot::{
    codec, key, ErrorRecord, HotEvent, HotOptions, HotPartitionInfo, HotRow, HotScan, HotStore,
    HotWrite, RawHotRow, ScanRequest, ValueRef, WriteAck,
};
