//! The cold tier's background jobs, one per file, over one shared [`JobState`]:
//! - `compact.rs`: hot rows older than `min_age` -> Parquet files + a new watermark, atomically
//!   (`day_batcher.rs` groups the rows into files per UTC day);
//! - `retype.rs`: files whose text columns' fields got a type are rewritten typed;
//! - `hidden.rs`: files holding fields hidden for the purge delay are rewritten without them;
//! - `gc.rs`: orphan and retired files are deleted, then the other collection jobs run:
//!   `partitions.rs` (hot weeks past retention and fully compacted are dropped),
//!   `retention.rs` (cold files of days past a tenant's cold retention are retired) and
//!   `purge.rs` (metrics deleted long enough ago lose their rows).
//!
//! The `Compactor` facade (`compactor.rs`) owns the state and the lock that serializes the jobs;
//! no job imports the facade.

use std::sync::Arc;
use std::time::Duration;

use strata_catalog::{
    ColdManifestStore, DynCatalog, SchemaRegistry, SettingsStore, TenantDirectory,
};
use strata_storage::HotStore;

use crate::ColdStore;

pub(crate) mod compact;
mod day_batcher;
pub(crate) mod gc;
pub(crate) mod hidden;
pub(crate) mod partitions;
mod purge;
mod retention;
pub(crate) mod retype;

pub use compact::{CompactionReport, MetricCompaction};
pub use gc::GcReport;
pub use hidden::HiddenPurgeReport;
pub use retype::RetypeReport;

#[derive(Debug, Clone)]
pub struct CompactorConfig {
    /// Rows younger than this stay hot only.
    pub min_age: Duration,
    /// Most rows in one file; a larger day is split into several files.
    pub max_rows_per_file: usize,
    /// How long a retired file stays readable for queries planned before it was retired.
    pub retired_grace: Duration,
    /// Hot weekly partitions older than this are dropped once fully compacted.
    pub hot_retention: Duration,
    /// A deleted metric's rows (hot and cold) are purged this long after its deletion.
    pub purge_deleted_after: Duration,
    /// A hidden field's values are purged from cold files this long after it was hidden.
    pub purge_hidden_after: Duration,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        CompactorConfig {
            min_age: Duration::from_secs(3600),
            max_rows_per_file: 1_000_000,
            retired_grace: Duration::from_secs(600),
            hot_retention: Duration::from_secs(8 * 7 * 24 * 3600),
            purge_deleted_after: Duration::from_secs(7 * 24 * 3600),
            purge_hidden_after: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The four catalog roles the cold jobs use, and no others: no keys, no incoming names.
#[derive(Clone)]
pub struct JobCatalog {
    /// Which tenants there are (the jobs walk every tenant).
    pub tenants: Arc<dyn TenantDirectory>,
    /// Each tenant's cold retention.
    pub settings: Arc<dyn SettingsStore>,
    /// Each tenant's metrics and field types (encoding, re-typing).
    pub schemas: Arc<dyn SchemaRegistry>,
    /// Files, watermarks, purges and the compaction log.
    pub manifest: Arc<dyn ColdManifestStore>,
}

impl From<DynCatalog> for JobCatalog {
    fn from(catalog: DynCatalog) -> Self {
        JobCatalog {
            tenants: catalog.clone(),
            settings: catalog.clone(),
            schemas: catalog.clone(),
            manifest: catalog,
        }
    }
}

/// What every job works on: the catalog roles (manifest, watermarks, schema), the hot tier, the
/// cold store and the configuration.
pub(crate) struct JobState {
    pub catalog: JobCatalog,
    pub hot: Arc<HotStore>,
    pub cold: ColdStore,
    pub config: CompactorConfig,
}

/// `duration` in milliseconds, saturating (a configured age never overflows into the past).
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A blocking task that failed to run to its end (panicked or was cancelled).
pub(crate) fn job_error(error: tokio::task::JoinError) -> crate::ColdError {
    crate::ColdError::Job(error.to_string())
}
