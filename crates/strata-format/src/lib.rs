//! The data model both tiers share, below both: how a metric looks to Arrow and SQL, how rows
//! stored under incoming names become typed columns, and what a cold file holds.
//!
//! - [`model`]: a metric's SQL shape ([`model::MetricModel`]), the timestamp type.
//! - [`merged`]: the table of a metric other metrics were merged into, one model per member.
//! - [`recombine`]: incoming-name rows -> typed columns (safe cast, coalesce in precedence).
//! - [`cold_file`]: the cold Parquet file's fixed columns, the Arrow type of each storage type,
//!   and [`cold_file::lossless_cast`], the one conversion a cold column may undergo.
//!
//! The writer of cold files (`strata-cold`) and their reader (`strata-query`) both build on this
//! crate, so neither imports the other for the format.

pub mod cold_file;
pub mod merged;
pub mod model;
pub mod recombine;

pub use cold_file::{lossless_cast, storage_arrow_type, HASH_COLUMN, SERIES_COLUMN};
