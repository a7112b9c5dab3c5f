//! [`plan_federated`]: reads the manifest and the late index, clips the range to cold
//! retention, costs the candidate cuts and builds the chosen plan's branches.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::ExecutionPlan;
use strata_catalog::{ColdFile, ColdManifest};
use strata_cold::retention_floor_ms;
use strata_core::now_ms;
use strata_storage::{HotRow, HotStore, ScanRequest};

use super::cold_scan;
use super::cost::{candidate_cuts, candidates, choose, Candidate, PlanChoice, QueryShape};
use super::exec::FederatedScanExec;
use super::ColdContext;
use crate::error::BackendFailure;
use crate::scan::{MetricScanExec, ScanSpec};

/// Picks the split and builds the branches. `spec` is the whole-range scan spec.
pub async fn plan_federated(
    spec: ScanSpec,
    hot: Arc<HotStore>,
    cold: &ColdContext,
) -> Result<Arc<dyn ExecutionPlan>> {
    let start = spec.time.start_ms.unwrap_or(i64::MIN);
    let end = spec.time.end_ms.unwrap_or(i64::MAX);
    // A metric never compacted is read from the hot partitions alone.
    if read_manifest(cold, &spec).await?.watermark.is_none() {
        return Ok(hot_only(spec, hot));
    }
    // Late rows, then the manifest again (see the module docs for why this order).
    let late_rows = read_late_rows(&hot, &spec, start, end).await?;
    let manifest = read_manifest(cold, &spec).await?;
    let Some(watermark) = manifest.watermark else {
        return Ok(hot_only(spec, hot));
    };
    let mut spec = spec;
    if clip_to_retention(&mut spec, end, cold.retention_days) {
        return Ok(hot_only(spec, hot));
    }
    let start = spec.time.start_ms.unwrap_or(i64::MIN);
    let cold_end = end.min(watermark.watermark_ms);
    if start >= cold_end {
        // The whole range is above the watermark: only the hot partitions hold it.
        return Ok(hot_only(spec, hot));
    }

    let candidates = costed_candidates(&spec, &hot, &manifest.files, start, cold_end)?;
    let chosen = choose(&candidates, cold.preference);
    let cut = candidates[chosen].cut_ms;

    let late_in_range: Vec<HotRow> = late_rows
        .into_iter()
        .filter(|r| {
            r.seq > watermark.compacted_seq && r.timestamp_ms >= start && r.timestamp_ms < cut
        })
        .collect();
    let late_count = late_in_range.len();
    let mut branches: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    if cut > start {
        branches.extend(cold_scan::below_cut(
            &spec,
            &cold.access,
            &manifest.files,
            late_in_range,
            start,
            cut,
        )?);
    }
    if cut < end {
        let mut hot_spec = spec.clone();
        hot_spec.time.start_ms = Some(cut);
        branches.push(Arc::new(MetricScanExec::new(hot_spec, hot)));
    }
    let choice = PlanChoice {
        watermark_ms: watermark.watermark_ms,
        compacted_seq: watermark.compacted_seq,
        candidates,
        chosen,
        late_rows: late_count,
    };
    Ok(Arc::new(FederatedScanExec::new(
        spec.schema.clone(),
        spec.model.name.clone(),
        choice,
        branches,
        spec.limit,
    )))
}

/// The candidate cuts of `[start, cold_end)` with their estimated costs; an error when retention
/// dropped every hot week a cut would need.
fn costed_candidates(
    spec: &ScanSpec,
    hot: &HotStore,
    files: &[ColdFile],
    start: i64,
    cold_end: i64,
) -> Result<Vec<Candidate>> {
    let shape = QueryShape {
        columns: spec.columns.len(),
        seeking: spec.series.as_ref().map(|s| s.len()),
    };
    let cuts = candidate_cuts(files, start, cold_end);
    let dropped_before = hot.dropped_before_ms();
    let candidates = candidates(files, &cuts, start, cold_end, dropped_before, shape);
    if candidates.is_empty() {
        return Err(DataFusionError::Internal(
            "no plan covers the query range: hot partitions were dropped above the watermark"
                .to_string(),
        ));
    }
    Ok(candidates)
}

fn hot_only(spec: ScanSpec, hot: Arc<HotStore>) -> Arc<dyn ExecutionPlan> {
    Arc::new(MetricScanExec::new(spec, hot))
}

fn backend(error: impl ToString) -> DataFusionError {
    DataFusionError::External(Box::new(BackendFailure(error.to_string())))
}

async fn read_manifest(cold: &ColdContext, spec: &ScanSpec) -> Result<ColdManifest> {
    cold.manifest
        .cold_manifest(spec.tenant, spec.model.id)
        .await
        .map_err(backend)
}

/// The late index's rows in `[start, end)`, on a blocking thread. No series seek: the late index
/// is small, and the query's own filter is applied above the scan.
async fn read_late_rows(
    hot: &Arc<HotStore>,
    spec: &ScanSpec,
    start: i64,
    end: i64,
) -> Result<Vec<HotRow>> {
    let request = ScanRequest {
        tenant: spec.tenant,
        metric: spec.model.id,
        start_ms: start,
        end_ms: end,
        series: None,
        names: None,
    };
    let hot = hot.clone();
    let mut rows = tokio::task::spawn_blocking(move || {
        hot.scan_late(&request)
            .and_then(|scan| scan.collect::<std::result::Result<Vec<_>, _>>())
    })
    .await
    .map_err(backend)?
    .map_err(backend)?;
    if let Some(upto) = spec.upto_seq {
        rows.retain(|row| row.seq <= upto);
    }
    Ok(rows)
}

/// Cold retention: days below the floor are expired, whichever tier still holds them, so the
/// scan starts at the floor. True when nothing of the range `[start, end)` is left (the spec is
/// then an empty range).
fn clip_to_retention(spec: &mut ScanSpec, end: i64, retention_days: Option<u32>) -> bool {
    let Some(floor) = retention_floor_ms(now_ms(), retention_days) else {
        return false;
    };
    let mut start = spec.time.start_ms.unwrap_or(i64::MIN);
    if floor > start {
        start = floor;
        spec.time.start_ms = Some(floor);
    }
    if start >= end {
        spec.time.end_ms = Some(start);
        return true;
    }
    false
}
