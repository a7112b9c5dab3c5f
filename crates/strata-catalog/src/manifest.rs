//! The cold-tier manifest: which Parquet files hold a metric's compacted rows, and the watermark
//! saying which rows those are. See `migrations/0002_cold_tier.sql` for the exact meaning.

use serde::{Deserialize, Serialize};
use strata_core::{MetricId, TenantId};

/// Which rows of a metric the cold tier holds: every row with `timestamp < watermark_ms` whose
/// hot-tier sequence number is `<= compacted_seq`. Rows below the watermark with a higher
/// sequence number arrived late and are read from the hot tier's late index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub watermark_ms: i64,
    pub compacted_seq: u64,
}

/// One value column of a cold file: the incoming name and its storage type in that file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColdColumn {
    pub name: String,
    /// `string`, `integer`, `double`, `boolean`, `timestamp` or `binary`.
    #[serde(rename = "type")]
    pub storage_type: String,
}

/// A file to add to the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewColdFile {
    /// UTC midnight of the day all its rows fall in.
    pub day_ms: i64,
    /// Object-store path relative to the cold root.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub min_ts_ms: i64,
    pub max_ts_ms: i64,
    pub columns: Vec<ColdColumn>,
    /// The metric's series generation its `_strata_series` hashes were computed under.
    pub series_generation: i64,
}

/// A file in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColdFile {
    pub id: i64,
    pub tenant: TenantId,
    pub metric: MetricId,
    pub day_ms: i64,
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub min_ts_ms: i64,
    pub max_ts_ms: i64,
    pub columns: Vec<ColdColumn>,
    /// See [`NewColdFile::series_generation`]; -1 when unknown (never pruned by series).
    pub series_generation: i64,
    pub created_at_ms: i64,
}

/// A metric's live files and its watermark, read in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColdManifest {
    pub watermark: Option<Watermark>,
    /// Ordered by day, then minimum timestamp.
    pub files: Vec<ColdFile>,
}

/// One atomic manifest change: add files, retire files, move the watermark.
#[derive(Debug, Clone)]
pub struct CompactionCommit {
    pub tenant: TenantId,
    pub metric: MetricId,
    /// `None` keeps the watermark (a rewrite that only swaps files).
    pub watermark: Option<Watermark>,
    pub add: Vec<NewColdFile>,
    /// Ids of live files of this metric that leave the manifest.
    pub retire: Vec<i64>,
}

/// The outcome of one compaction run of a tenant, for `/api/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompactionRecord {
    pub tenant: TenantId,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// `ok` or `failed`.
    pub outcome: String,
    pub files_written: u64,
    pub rows: u64,
    pub watermark_ms: Option<i64>,
    pub message: Option<String>,
}

/// A soft-deleted metric whose data has not been purged yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedMetric {
    pub tenant: TenantId,
    pub metric: MetricId,
    pub name: String,
    pub deleted_at_ms: i64,
}
