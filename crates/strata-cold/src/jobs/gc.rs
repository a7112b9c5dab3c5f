//! Garbage collection: objects no manifest names (written by a compaction that never committed)
//! and retired files past their grace period are deleted; then the other collection jobs run
//! (hot partitions, cold retention, purges), each in its own file.

use serde::Serialize;
use strata_core::now_ms;

use super::partitions::{drop_compacted_hot_partitions, Retiring};
use super::purge::purge_deleted_metrics;
use super::retention::expire_cold_files;
use super::{millis, JobState};
use crate::ColdError;

#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub orphans_deleted: u64,
    pub retired_deleted: u64,
    pub hot_partitions_dropped: Vec<String>,
    /// Cold files retired because their day is past the tenant's cold retention.
    pub expired_cold_files: u64,
    /// Deleted metrics whose rows were purged, as `tenant/metric name`.
    pub metrics_purged: Vec<String>,
}

/// Every collection job, in order. The caller holds the compactor's lock, so no compaction is
/// between "written" and "committed" while orphans are looked for.
pub(crate) async fn collect_garbage(
    state: &JobState,
    retiring: &Retiring,
) -> Result<GcReport, ColdError> {
    Ok(GcReport {
        orphans_deleted: delete_orphans(state).await?,
        retired_deleted: delete_retired(state).await?,
        hot_partitions_dropped: drop_compacted_hot_partitions(state, retiring).await?,
        expired_cold_files: expire_cold_files(state).await?,
        metrics_purged: purge_deleted_metrics(state).await?,
    })
}

/// Deletes the objects under the cold root that the catalog does not know.
async fn delete_orphans(state: &JobState) -> Result<u64, ColdError> {
    let known = state.catalog.manifest.cold_paths().await?;
    let mut deleted = 0;
    for object in state.cold.list().await? {
        if !known.contains(&object.path) {
            tracing::info!(path = %object.path, "deleting orphan cold file");
            state.cold.delete(&object.path).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Deletes the files retired more than the grace period ago, then forgets them in the catalog.
async fn delete_retired(state: &JobState) -> Result<u64, ColdError> {
    let grace_ms = millis(state.config.retired_grace);
    let retired = state
        .catalog
        .manifest
        .retired_cold_files(now_ms().saturating_sub(grace_ms))
        .await?;
    let mut forgotten = Vec::with_capacity(retired.len());
    for file in retired {
        state.cold.delete(&file.path).await?;
        forgotten.push(file.id);
    }
    state.catalog.manifest.forget_cold_files(&forgotten).await?;
    Ok(forgotten.len() as u64)
}
