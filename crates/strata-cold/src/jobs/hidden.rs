//! Purging hidden fields (issue 17): hiding a field is a soft delete, and its data is garbage
//! collected as part of the compactor's age-off once the field has been hidden for
//! `purge_hidden_after` (the seed: "'soft deletes' of the data and then garbage collect them as
//! part of our standard age off process"). Compaction stops writing its names to new files
//! (`encode.rs` skips names marked purged), and this job rewrites each live file that still
//! holds them without those columns, swapping it in the manifest like re-typing does. The hot
//! copies go when their weekly partition ages off (`partitions.rs`).
//!
//! Unhiding the field later shows its values again for rows not yet purged, and NULL for the
//! rest: the delay is the window in which a hide can be undone without loss.

use std::collections::HashSet;

use bytes::Bytes;
use serde::Serialize;
use strata_catalog::Metric;
use strata_core::{now_ms, TenantId};

use super::retype::{encoded, read_whole, swap, Rewritten};
use super::{job_error, millis, JobState};
use crate::ColdError;

/// What one purge pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HiddenPurgeReport {
    /// Files replaced by a rewrite without the purged fields' columns.
    pub files_rewritten: u64,
    /// Columns removed over those files.
    pub columns_dropped: u64,
}

/// The names of `metric`'s fields hidden for at least `after_ms` by `now_ms`.
pub(super) fn purged_names(metric: &Metric, now_ms: i64, after_ms: i64) -> HashSet<String> {
    metric
        .fields
        .iter()
        .filter(|field| field.hidden)
        .filter(|field| {
            field
                .hidden_since_ms
                .is_some_and(|since| since <= now_ms.saturating_sub(after_ms))
        })
        .flat_map(|field| field.names.iter().cloned())
        .collect()
}

/// Rewrites each live file of `metric` that holds a purged name without it. Runs under the
/// compactor lock, so no compaction or collection interleaves.
pub(super) async fn purge_hidden_metric(
    state: &JobState,
    tenant: TenantId,
    metric: &Metric,
    report: &mut HiddenPurgeReport,
) -> Result<(), ColdError> {
    let purged = purged_names(metric, now_ms(), millis(state.config.purge_hidden_after));
    if purged.is_empty() {
        return Ok(());
    }
    let manifest = state
        .catalog
        .manifest
        .cold_manifest(tenant, metric.id)
        .await?;
    for file in &manifest.files {
        let dropped: Vec<String> = file
            .columns
            .iter()
            .filter(|column| purged.contains(&column.name))
            .map(|column| column.name.clone())
            .collect();
        if dropped.is_empty() {
            continue;
        }
        let bytes = state.cold.get(&file.path).await?;
        let drop_list = dropped.clone();
        let rewritten = tokio::task::spawn_blocking(move || without_columns(bytes, &drop_list))
            .await
            .map_err(job_error)??;
        if swap(state, tenant, metric, file, rewritten).await? {
            report.files_rewritten += 1;
            report.columns_dropped += dropped.len() as u64;
            tracing::info!(%tenant, metric = %metric.name, file = %file.path, columns = ?dropped,
                "purged the columns of hidden fields");
        }
    }
    Ok(())
}

/// Re-encodes `bytes` (a cold file) without the columns named in `dropped`.
fn without_columns(bytes: Bytes, dropped: &[String]) -> Result<Rewritten, ColdError> {
    let batch = read_whole(bytes)?;
    let schema = batch.schema();
    let kept: Vec<usize> = (0..schema.fields().len())
        .filter(|at| !dropped.contains(schema.field(*at).name()))
        .collect();
    encoded(&batch.project(&kept)?)
}
