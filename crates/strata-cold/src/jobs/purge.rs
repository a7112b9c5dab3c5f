//! Purge of deleted metrics: a metric deleted more than `purge_deleted_after` ago loses its hot
//! rows first, then its cold files are retired and the metric is marked purged in one catalog
//! transaction. A crash in between repeats the (idempotent) hot purge on the next run.

use strata_core::now_ms;

use super::{millis, JobState};
use crate::ColdError;

/// Purges every metric due; answers them as `tenant/metric name`.
pub(super) async fn purge_deleted_metrics(state: &JobState) -> Result<Vec<String>, ColdError> {
    let after_ms = millis(state.config.purge_deleted_after);
    let due = state
        .catalog
        .manifest
        .metrics_to_purge(now_ms().saturating_sub(after_ms))
        .await?;
    let mut purged = Vec::with_capacity(due.len());
    for metric in due {
        let rows = state.hot.purge_metric(metric.tenant, metric.metric).await?;
        let files = state
            .catalog
            .manifest
            .mark_metric_purged(metric.tenant, metric.metric)
            .await?;
        tracing::info!(
            tenant = %metric.tenant,
            metric = %metric.name,
            hot_rows = rows,
            cold_files = files,
            "deleted metric purged"
        );
        purged.push(format!("{}/{}", metric.tenant, metric.name));
    }
    Ok(purged)
}
