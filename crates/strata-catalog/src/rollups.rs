//! The rollup rows the catalog keeps: each rollup's served and pending versions, its backfill
//! position and maintenance watermark, and its buckets as opaque blobs. What a version's SQL
//! means and how its rows are encoded belong to `strata-streaming` and `strata-query`; the
//! catalog checks names and limits and commits each maintenance step atomically.

use strata_core::TenantId;

/// Rollups one tenant may define: each costs a maintenance query per dirty range.
pub const MAX_ROLLUPS_PER_TENANT: u64 = 100;

/// One version of a rollup: its SQL and the Arrow schema of its rows (IPC bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct RollupVersion {
    pub version: i64,
    pub sql: String,
    pub schema: Vec<u8>,
    /// The source metric's definition (types, names, aliases) the version was built under:
    /// when it changes, the answer over raw data may change for every bucket, so the rollup
    /// is rebuilt.
    pub source_fingerprint: String,
}

/// Where the backfill of a pending version stands: it covers `[from_ms, to_ms)` over the rows
/// committed at or below `seq`, and is complete below `cursor_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backfill {
    pub seq: u64,
    pub from_ms: i64,
    pub to_ms: i64,
    pub cursor_ms: i64,
}

impl Backfill {
    /// The share done, 0.0 to 1.0.
    pub fn progress(&self) -> f64 {
        let span = (self.to_ms - self.from_ms).max(1) as f64;
        ((self.cursor_ms - self.from_ms) as f64 / span).clamp(0.0, 1.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RollupRow {
    pub id: i64,
    pub tenant: TenantId,
    pub name: String,
    /// The complete version queries read; `None` until the first backfill completes.
    pub served: Option<RollupVersion>,
    /// The version being built, with its backfill.
    pub pending: Option<(RollupVersion, Backfill)>,
    /// The served version the current one replaced: no longer maintained, but its buckets
    /// stay until the next version completes, for queries planned on it.
    pub retired_version: Option<i64>,
    /// Every row at or below this write sequence is reflected in the maintained version.
    pub applied_seq: u64,
    /// Why maintenance stopped (the source was deleted, the SQL no longer plans); `None` when
    /// it runs.
    pub error: Option<String>,
    pub created_at_ms: i64,
}

impl RollupRow {
    /// The version maintenance keeps up to date: the pending one if any, else the served one.
    pub fn maintained(&self) -> Option<&RollupVersion> {
        self.pending
            .as_ref()
            .map(|(version, _)| version)
            .or(self.served.as_ref())
    }
}

/// Recomputed buckets of one version: the buckets of each range in `clear` are removed, then
/// `buckets` are written.
#[derive(Debug, Clone, Default)]
pub struct VersionBuckets {
    pub version: i64,
    /// `[start_ms, end_ms)` ranges recomputed by this step.
    pub clear: Vec<(i64, i64)>,
    /// `(bucket start ms, encoded rows)`.
    pub buckets: Vec<(i64, Vec<u8>)>,
}

/// One maintenance step of one rollup, committed atomically. While a new version backfills,
/// the served one is still maintained, so a step may hold both.
#[derive(Debug, Clone, Default)]
pub struct RollupCommit {
    pub rollup: i64,
    pub versions: Vec<VersionBuckets>,
    /// Raises the watermark (never lowers it).
    pub applied_seq: Option<u64>,
    /// Moves the pending version's backfill cursor.
    pub backfill_cursor_ms: Option<i64>,
    /// The pending version is complete: it becomes the served one and the old one's buckets
    /// are deleted.
    pub complete: bool,
}
