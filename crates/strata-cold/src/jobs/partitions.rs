//! Hot-partition retention: weeks that ended more than `hot_retention` ago are dropped once every
//! live metric with rows in them has compacted past the week's end. Weeks of the shared archive
//! keyspace are listed and dropped one by one like weekly keyspaces.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use strata_core::{now_ms, MetricId, TenantId, WEEK_MS};
use strata_storage::{HotPartitionInfo, ScanRequest};

use super::{job_error, millis, JobState};
use crate::ColdError;

/// Week start -> when it was retired. A week is dropped only a grace period after readers were
/// told to stop using it, so a query planned before never finds it gone.
#[derive(Debug, Default)]
pub(crate) struct Retiring(Mutex<HashMap<i64, Instant>>);

impl Retiring {
    /// When the week starting at `week_start_ms` was first retired (now, if not before).
    fn since(&self, week_start_ms: i64) -> Instant {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(week_start_ms)
            .or_insert_with(Instant::now)
    }
}

/// A live metric and how far it is compacted.
struct Compacted {
    tenant: TenantId,
    metric: MetricId,
    watermark_ms: i64,
}

/// Retires the weeks past retention that are fully compacted and drops those retired a grace
/// period ago; answers the names of the dropped partitions.
pub(super) async fn drop_compacted_hot_partitions(
    state: &JobState,
    retiring: &Retiring,
) -> Result<Vec<String>, ColdError> {
    let horizon = now_ms().saturating_sub(millis(state.config.hot_retention));
    let candidates: Vec<HotPartitionInfo> = state
        .hot
        .partitions()
        .into_iter()
        .filter(|p| p.week_end_ms <= horizon)
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let watermarks = watermarks(state).await?;
    let mut dropped = Vec::new();
    for partition in candidates {
        if !fully_compacted(state, &partition, &watermarks)? {
            tracing::info!(
                partition = %partition.name,
                "hot partition past retention is not fully compacted; keeping it"
            );
            continue;
        }
        debug_assert_eq!(partition.week_end_ms - partition.week_start_ms, WEEK_MS);
        let retired_at = retiring.since(partition.week_start_ms);
        state.hot.retire_before(partition.week_end_ms)?;
        if retired_at.elapsed() < state.config.retired_grace {
            continue;
        }
        // An archived week is dropped by deleting its rows (bounded batches, blocking), so
        // it runs off the async workers.
        let hot = state.hot.clone();
        let week_start = partition.week_start_ms;
        tokio::task::spawn_blocking(move || hot.drop_partition(week_start))
            .await
            .map_err(job_error)??;
        dropped.push(partition.name);
    }
    Ok(dropped)
}

/// The watermark of every live metric (`i64::MIN` when never compacted).
async fn watermarks(state: &JobState) -> Result<Vec<Compacted>, ColdError> {
    let mut watermarks = Vec::new();
    for tenant in state.catalog.tenants.list_tenants().await? {
        let schema = state.catalog.schemas.schema(tenant.id).await?;
        for metric in &schema.metrics {
            let manifest = state
                .catalog
                .manifest
                .cold_manifest(tenant.id, metric.id)
                .await?;
            watermarks.push(Compacted {
                tenant: tenant.id,
                metric: metric.id,
                watermark_ms: manifest.watermark.map_or(i64::MIN, |w| w.watermark_ms),
            });
        }
    }
    Ok(watermarks)
}

/// Whether no metric below the week's end still has rows in the week.
fn fully_compacted(
    state: &JobState,
    partition: &HotPartitionInfo,
    watermarks: &[Compacted],
) -> Result<bool, ColdError> {
    for compacted in watermarks {
        if compacted.watermark_ms >= partition.week_end_ms {
            continue;
        }
        let probe = ScanRequest {
            tenant: compacted.tenant,
            metric: compacted.metric,
            start_ms: partition.week_start_ms,
            end_ms: partition.week_end_ms,
            series: None,
            names: Some(Vec::new()),
        };
        if state.hot.scan(&probe)?.next_raw().is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}
