//! The cold tier: a metric's older rows as Parquet files on an object store, listed in the
//! catalog's manifest, plus the jobs that maintain them.
//!
//! - [`ColdStore`]: where the files live (a directory under the data dir by default, or any
//!   `object_store` URL) and the [`layout`] of paths in it.
//! - [`Compactor`]: the facade over the jobs (`jobs/`, one per file over one shared state):
//!   compaction moves hot rows older than a configured age into files and commits the files
//!   together with the new watermark; garbage collection deletes orphan and retired files;
//!   hot partitions are dropped once fully compacted and past retention; per-tenant cold
//!   retention and purges of soft-deleted metrics; re-typing rewrites text columns whose field
//!   got a type.
//! - [`encode`]: how hot rows become a sorted, typed Parquet file.
//!
//! Reading is in `strata-query` (`MetricTable` plans the cold branch with DataFusion's
//! `ParquetSource`); it needs only [`ColdStore::access`] and [`retention_floor_ms`]. The file
//! format itself (column names, storage types, casts) is `strata-format`'s, shared with the
//! reader; this crate never imports the query engine.

pub mod encode;
pub mod fault;
pub mod layout;

mod access;
mod compactor;
mod jobs;
mod store;

pub use access::{retention_floor_ms, ColdAccess, COLD_STORE_URL};
pub use compactor::Compactor;
pub use jobs::{
    CompactionReport, CompactorConfig, GcReport, HiddenPurgeReport, JobCatalog, MetricCompaction,
    RetypeReport,
};
pub use store::{ColdObject, ColdStore};

/// Everything the cold tier can fail with. Messages never contain local file paths of the
/// server beyond the cold root's relative object paths.
#[derive(Debug, thiserror::Error)]
pub enum ColdError {
    #[error("cold storage location {location}: {reason}")]
    Location { location: String, reason: String },
    #[error("cold storage: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("catalog: {0}")]
    Catalog(#[from] strata_catalog::CatalogError),
    #[error("hot tier: {0}")]
    Hot(#[from] strata_storage::StorageError),
    #[error("encoding a cold file: {0}")]
    Encode(String),
    #[error("a compaction job stopped unexpectedly: {0}")]
    Job(String),
}

impl From<datafusion::arrow::error::ArrowError> for ColdError {
    fn from(error: datafusion::arrow::error::ArrowError) -> Self {
        ColdError::Encode(error.to_string())
    }
}

impl From<datafusion::parquet::errors::ParquetError> for ColdError {
    fn from(error: datafusion::parquet::errors::ParquetError) -> Self {
        ColdError::Encode(error.to_string())
    }
}
