//! Federated reads: the cold tier's Parquet files below a metric's watermark, the hot tier's
//! late index, and the hot partitions, planned as one scan.
//!
//! For a query range `[a, b)` and watermark `W`, candidate plans cut the range at a point `X`
//! (the start `a`, each week start in between, and `min(b, W)`, like the seed's plans 1–5):
//! rows in `[a, X)` come from cold files plus the late index, rows in `[X, b)` from the hot
//! partitions. A hot partition holds every row ever written to its week (late rows included), so
//! any `X` is exact as long as the weeks in `[X, W)` were not dropped by retention. Each
//! candidate gets an estimated cost from the manifest's row counts; the cheapest runs, and
//! `EXPLAIN` shows all of them.
//!
//! Exactly once: cold files hold rows with `timestamp < W` and `seq <= S` once each (the
//! compactor skips re-sends already in a day's files). The late index holds rows below the
//! threshold written after a compaction started; rows with `seq > S` are read from it, and any cold
//! row with the same content hash (a re-send of a compacted row) is filtered out of the cold
//! branch. The late index is read before the manifest, so a compaction committing in between can
//! only move rows into files that the (newer) manifest lists.
//!
//! - `plan.rs`: [`plan_federated`], the planning steps in order;
//! - `cost.rs`: the candidate cuts, their estimated costs and the choice;
//! - `cold_scan.rs`: the cold branch (Parquet scan with pruning) and the late-row branch;
//! - `exec.rs`: [`ColdRecombineExec`] and [`FederatedScanExec`], the two execution plans.

use std::fmt;
use std::sync::Arc;

use strata_catalog::ColdManifestStore;
use strata_cold::ColdAccess;

mod cold_scan;
mod cost;
mod exec;
mod plan;

pub use cost::{Candidate, PlanChoice};
pub use exec::{ColdRecombineExec, FederatedScanExec};
pub use plan::plan_federated;

/// Which candidate plan runs. `Cost` (the default) picks the cheapest; the others exist so tests
/// and benchmarks can force each tier and compare (`strata serve --plan-tier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TierPreference {
    #[default]
    Cost,
    /// As much from cold files as the watermark allows.
    Cold,
    /// As much from hot partitions as retention allows.
    Hot,
}

/// The cold side of a metric table.
#[derive(Clone)]
pub struct ColdContext {
    /// Read once per scan, so a scan sees one manifest.
    pub manifest: Arc<dyn ColdManifestStore>,
    pub access: ColdAccess,
    pub preference: TierPreference,
    /// The metric's retention in days (`None`: forever): the shorter of the tenant's cold
    /// retention and the metric's own, from the session's schema snapshot.
    pub retention_days: Option<u32>,
}

impl fmt::Debug for ColdContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColdContext")
            .field("access", &self.access)
            .finish()
    }
}
