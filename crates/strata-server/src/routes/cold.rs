//! `POST /api/v1/compact` (compact the tenant's hot data now) and `GET /api/v1/status` (the
//! tenant's ingest rate and tiers: watermarks, hot partitions, cold files, last compaction).

use std::collections::BTreeSet;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, SecondsFormat};
use serde_json::{json, Value};
use strata_catalog::{CompactionRecord, TenantSchema};
use strata_core::{MetricId, Role, TenantId};
use strata_storage::{HotStore, ScanRequest};

use crate::auth::TenantCaller;
use crate::error::ApiError;
use crate::state::AppState;

fn rfc3339(ms: i64) -> Value {
    match DateTime::from_timestamp_millis(ms) {
        Some(time) => Value::String(time.to_rfc3339_opts(SecondsFormat::Millis, true)),
        None => Value::Null,
    }
}

fn cold_error(error: strata_cold::ColdError) -> ApiError {
    // Cold-tier failures can name object paths or the storage location: log them, answer
    // generically so nothing about the server's layout reaches the tenant.
    tracing::error!(%error, "compaction failed");
    ApiError::internal("compaction failed; the server log has the details")
}

pub async fn compact(
    State(state): State<AppState>,
    caller: TenantCaller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let report = state
        .compactor()
        .compact_tenant(caller.tenant.id)
        .await
        .map_err(cold_error)?;
    let metrics: Vec<Value> = report
        .metrics
        .iter()
        .map(|m| {
            json!({
                "metric": m.metric,
                "watermark": m.watermark_ms.map_or(Value::Null, rfc3339),
                "files_written": m.files_written,
                "rows": m.rows,
                "duplicates_skipped": m.duplicates_skipped,
            })
        })
        .collect();
    Ok(Json(json!({
        "watermark": report.watermark_ms.map_or(Value::Null, rfc3339),
        "files_written": report.files_written,
        "rows": report.rows,
        "metrics": metrics,
        "retyped_files": report.retype.files_rewritten,
        "hidden_purge": {
            "files_rewritten": report.hidden_purge.files_rewritten,
            "columns_dropped": report.hidden_purge.columns_dropped,
        },
    })))
}

pub async fn status(
    State(state): State<AppState>,
    caller: TenantCaller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Read)?;
    let tenant = caller.tenant.id;
    let schema = state.schemas().schema(tenant).await?;
    let (metrics, lowest_watermark) = cold_metrics(&state, tenant, &schema).await?;

    let hot = state.hot().clone();
    let metric_ids: Vec<_> = schema.metrics.iter().map(|m| m.id).collect();
    let partitions = tokio::task::spawn_blocking(move || hot_partitions(&hot, tenant, &metric_ids))
        .await
        .map_err(|e| ApiError::internal(format!("status reader failed: {e}")))??;

    let last = state.manifest().last_compaction(tenant).await?;
    let last = last.map_or(Value::Null, |r| last_compaction_json(&r));
    Ok(Json(json!({
        "tenant": caller.tenant.name,
        "ingest": state.ingest_rate().snapshot(tenant),
        "watermark": lowest_watermark.map_or(Value::Null, rfc3339),
        "metrics": metrics,
        "hot_partitions": partitions,
        "last_compaction": last,
    })))
}

/// Each metric's watermark and cold files, and the lowest watermark of them all.
async fn cold_metrics(
    state: &AppState,
    tenant: TenantId,
    schema: &TenantSchema,
) -> Result<(Vec<Value>, Option<i64>), ApiError> {
    let mut metrics = Vec::new();
    let mut lowest_watermark: Option<i64> = None;
    for metric in &schema.metrics {
        let manifest = state.manifest().cold_manifest(tenant, metric.id).await?;
        let days: BTreeSet<i64> = manifest.files.iter().map(|f| f.day_ms).collect();
        if let Some(w) = manifest.watermark {
            lowest_watermark =
                Some(lowest_watermark.map_or(w.watermark_ms, |l| l.min(w.watermark_ms)));
        }
        // The newest file a compaction wrote for this metric: when it last moved rows to cold.
        let last_compacted = manifest.files.iter().map(|f| f.created_at_ms).max();
        metrics.push(json!({
            "metric": metric.name,
            "watermark": manifest.watermark.map_or(Value::Null, |w| rfc3339(w.watermark_ms)),
            "last_compacted_at": last_compacted.map_or(Value::Null, rfc3339),
            "cold": {
                "files": manifest.files.len(),
                "bytes": manifest.files.iter().map(|f| f.bytes).sum::<u64>(),
                "rows": manifest.files.iter().map(|f| f.rows).sum::<u64>(),
                "days": days.len(),
                "first_day": days.first().map_or(Value::Null, |d| rfc3339(*d)),
                "last_day": days.last().map_or(Value::Null, |d| rfc3339(*d)),
            },
        }));
    }
    Ok((metrics, lowest_watermark))
}

/// The hot partitions holding the tenant's rows. Partitions are shared by all tenants: count
/// only this tenant's rows (keys only, no value decoding) and attribute bytes in proportion,
/// so no other tenant's volume shows. Blocking: run it off the async workers.
fn hot_partitions(
    hot: &HotStore,
    tenant: TenantId,
    metric_ids: &[MetricId],
) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for partition in hot.partitions() {
        let mut rows = 0u64;
        for metric in metric_ids {
            let request = ScanRequest {
                tenant,
                metric: *metric,
                start_ms: partition.week_start_ms,
                end_ms: partition.week_end_ms,
                series: None,
                names: Some(Vec::new()),
            };
            let mut scan = hot.scan(&request)?;
            while let Some(row) = scan.next_raw() {
                row?;
                rows += 1;
            }
        }
        if rows == 0 {
            continue;
        }
        let share = rows as f64 / (partition.approx_rows as f64).max(rows as f64);
        out.push(json!({
            "partition": partition.name,
            "start": rfc3339(partition.week_start_ms),
            "end": rfc3339(partition.week_end_ms),
            "rows": rows,
            "bytes": (partition.disk_bytes as f64 * share) as u64,
        }));
    }
    Ok(out)
}

fn last_compaction_json(record: &CompactionRecord) -> Value {
    json!({
        "started": rfc3339(record.started_at_ms),
        "finished": rfc3339(record.finished_at_ms),
        "outcome": record.outcome,
        "files_written": record.files_written,
        "rows": record.rows,
        "watermark": record.watermark_ms.map_or(Value::Null, rfc3339),
        "message": record.message,
    })
}
