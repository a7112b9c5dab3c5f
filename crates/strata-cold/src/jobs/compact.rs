//! Compaction: hot rows older than `min_age` -> Parquet files + a new watermark, atomically.
//!
//! Per metric, under the compactor's lock:
//! 1. `cutoff` = the hour at or before `now - min_age`, never below the current watermark.
//! 2. Raise the hot tier's late threshold to `cutoff`; it answers `S`, the last sequence number
//!    handed out before. Rows with seq <= S are committed and in the snapshot read next; rows
//!    written after it with a timestamp below `cutoff` also go to the late index.
//! 3. Read hot rows in `[old watermark, cutoff)` with seq <= S, plus late-index rows below the old
//!    watermark with `old S < seq <= S`. Late rows that are re-sends of rows already in a file of
//!    their day (same timestamp and content hash) are skipped.
//! 4. Encode per UTC day (sorted by series, then time), write the objects (fsync'd when local).
//! 5. Commit files + watermark `(cutoff, S)` in one catalog transaction.
//! 6. Prune the late index up to `S`.
//!
//! A crash before 5 leaves orphan objects (collected later) and the old manifest; a crash after 5
//! leaves late-index rows that readers skip by sequence number.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use datafusion::arrow::array::{AsArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use serde::Serialize;
use strata_catalog::{
    ColdManifest, CompactionCommit, CompactionRecord, Metric, NewColdFile, Watermark,
};
use strata_core::{now_ms, TenantId, HOUR_MS};
use strata_format::cold_file::{HASH_COLUMN, TIMESTAMP_COLUMN};
use strata_storage::{HotRow, HotStore, ScanRequest};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::day_batcher::{name_specs, series_key_names, Chunk, DayBatcher};
use super::hidden::{purge_hidden_metric, purged_names, HiddenPurgeReport};
use super::retype::{retype_metric, KeptAsIs, RetypeReport};
use super::{job_error, millis, JobState};
use crate::layout::day_start_ms;
use crate::{fault, ColdError};

/// What one metric's compaction did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MetricCompaction {
    pub metric: String,
    pub watermark_ms: Option<i64>,
    pub files_written: u64,
    pub rows: u64,
    /// Late rows skipped because their day's files already held them (re-sends).
    pub duplicates_skipped: u64,
}

/// What one tenant's compaction did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactionReport {
    /// The lowest watermark over the tenant's metrics after the run.
    pub watermark_ms: Option<i64>,
    pub files_written: u64,
    pub rows: u64,
    pub metrics: Vec<MetricCompaction>,
    /// Lazy re-typing of files compacted before their fields got a type.
    pub retype: RetypeReport,
    /// Columns of fields hidden for the purge delay, removed from older files.
    pub hidden_purge: HiddenPurgeReport,
}

/// Compacts every live metric of the tenant, then re-types, and records the outcome for
/// `/api/v1/status`. The caller holds the compactor's lock.
pub(crate) async fn compact_tenant(
    state: &JobState,
    kept: &KeptAsIs,
    tenant: TenantId,
) -> Result<CompactionReport, ColdError> {
    let started_at_ms = now_ms();
    let result = compact_and_retype(state, kept, tenant, started_at_ms).await;
    let record = match &result {
        Ok(report) => CompactionRecord {
            tenant,
            started_at_ms,
            finished_at_ms: now_ms(),
            outcome: "ok".to_string(),
            files_written: report.files_written,
            rows: report.rows,
            watermark_ms: report.watermark_ms,
            message: None,
        },
        Err(error) => CompactionRecord {
            tenant,
            started_at_ms,
            finished_at_ms: now_ms(),
            outcome: "failed".to_string(),
            files_written: 0,
            rows: 0,
            watermark_ms: None,
            message: Some(error.to_string()),
        },
    };
    record_run(&record);
    if let Err(error) = state.catalog.manifest.record_compaction(record).await {
        tracing::warn!(%error, tenant = %tenant, "could not record the compaction outcome");
    }
    result
}

/// Counts a compaction run for `GET /metrics`.
fn record_run(record: &CompactionRecord) {
    use strata_core::telemetry::{
        COMPACTION_FILES, COMPACTION_ROWS, COMPACTION_RUNS, COMPACTION_SECONDS, OUTCOME_LABEL,
    };
    metrics::counter!(COMPACTION_RUNS, OUTCOME_LABEL => record.outcome.clone()).increment(1);
    metrics::counter!(COMPACTION_ROWS).increment(record.rows);
    metrics::counter!(COMPACTION_FILES).increment(record.files_written);
    let took_ms = record
        .finished_at_ms
        .saturating_sub(record.started_at_ms)
        .max(0);
    metrics::histogram!(COMPACTION_SECONDS).record(took_ms as f64 / 1000.0);
}

async fn compact_and_retype(
    state: &JobState,
    kept: &KeptAsIs,
    tenant: TenantId,
    started_at_ms: i64,
) -> Result<CompactionReport, ColdError> {
    let schema = state.catalog.schemas.schema(tenant).await?;
    let min_age_ms = millis(state.config.min_age);
    let cutoff = started_at_ms.saturating_sub(min_age_ms).div_euclid(HOUR_MS) * HOUR_MS;
    let mut report = CompactionReport::default();
    for metric in &schema.metrics {
        let done = compact_metric(state, tenant, metric, cutoff).await?;
        report.files_written += done.files_written;
        report.rows += done.rows;
        report.watermark_ms = match (report.watermark_ms, done.watermark_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        report.metrics.push(done);
    }
    // Re-typing reads the schema again: a type declared during the compaction above is
    // picked up now rather than on the next run.
    let schema = state.catalog.schemas.schema(tenant).await?;
    for metric in &schema.metrics {
        retype_metric(state, kept, tenant, metric, &mut report.retype).await?;
        purge_hidden_metric(state, tenant, metric, &mut report.hidden_purge).await?;
    }
    tracing::info!(
        tenant = %tenant,
        files = report.files_written,
        rows = report.rows,
        retyped = report.retype.files_rewritten,
        "compaction finished"
    );
    Ok(report)
}

/// Where one metric's compaction starts and what it may take, fixed before any row is read.
struct Snapshot {
    manifest: ColdManifest,
    old_watermark: i64,
    old_seq: u64,
    /// The new watermark: rows below it are compacted.
    cutoff: i64,
    /// The last sequence number handed out when the late threshold was raised.
    snapshot_seq: u64,
}

/// The files uploaded for one metric, not committed yet.
struct Uploaded {
    files: Vec<NewColdFile>,
    rows: u64,
}

async fn compact_metric(
    state: &JobState,
    tenant: TenantId,
    metric: &Metric,
    cutoff: i64,
) -> Result<MetricCompaction, ColdError> {
    let snapshot = begin(state, tenant, metric, cutoff).await?;
    let late_rows = read_late_rows(&state.hot, tenant, metric, &snapshot).await?;
    let (late_rows, duplicates_skipped) =
        skip_resends(state, &snapshot.manifest, late_rows).await?;
    let (producer, receiver) = spawn_encoder(state, tenant, metric, &snapshot, late_rows);
    let uploaded = upload(state, receiver, metric.series_generation).await?;
    producer.await.map_err(job_error)?;
    fault::hit(fault::AFTER_FILES);
    commit(
        state,
        tenant,
        metric,
        &snapshot,
        uploaded,
        duplicates_skipped,
    )
    .await
}

/// Steps 1 and 2: the cutoff, and the late threshold raised to it.
async fn begin(
    state: &JobState,
    tenant: TenantId,
    metric: &Metric,
    cutoff: i64,
) -> Result<Snapshot, ColdError> {
    let manifest = state
        .catalog
        .manifest
        .cold_manifest(tenant, metric.id)
        .await?;
    let (old_watermark, old_seq) = manifest
        .watermark
        .map_or((i64::MIN, 0), |w| (w.watermark_ms, w.compacted_seq));
    let cutoff = cutoff.max(old_watermark);
    let snapshot_seq = state
        .hot
        .raise_late_threshold(tenant, metric.id, cutoff)
        .await?;
    Ok(Snapshot {
        manifest,
        old_watermark,
        old_seq,
        cutoff,
        snapshot_seq,
    })
}

/// Late-index rows below the old watermark that arrived after the last compaction and at or
/// before this one's snapshot.
async fn read_late_rows(
    hot: &std::sync::Arc<HotStore>,
    tenant: TenantId,
    metric: &Metric,
    snapshot: &Snapshot,
) -> Result<Vec<HotRow>, ColdError> {
    if snapshot.old_watermark == i64::MIN {
        return Ok(Vec::new());
    }
    let request = ScanRequest {
        tenant,
        metric: metric.id,
        start_ms: i64::MIN,
        end_ms: snapshot.old_watermark,
        series: None,
        names: None,
    };
    let (old_seq, snapshot_seq) = (snapshot.old_seq, snapshot.snapshot_seq);
    let hot = hot.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<HotRow>, ColdError> {
        let mut rows = Vec::new();
        for row in hot.scan_late(&request)? {
            let row = row?;
            if row.seq > old_seq && row.seq <= snapshot_seq {
                rows.push(row);
            }
        }
        Ok(rows)
    })
    .await
    .map_err(job_error)?
}

/// Late re-sends: drops rows whose (timestamp, hash) a file of their day already holds. Answers
/// the rows kept and how many were dropped.
async fn skip_resends(
    state: &JobState,
    manifest: &ColdManifest,
    late_rows: Vec<HotRow>,
) -> Result<(Vec<HotRow>, u64), ColdError> {
    if late_rows.is_empty() {
        return Ok((late_rows, 0));
    }
    let mut existing_by_day: HashMap<i64, Vec<&str>> = HashMap::new();
    for file in &manifest.files {
        existing_by_day
            .entry(file.day_ms)
            .or_default()
            .push(file.path.as_str());
    }
    let mut days: Vec<i64> = late_rows
        .iter()
        .map(|r| day_start_ms(r.timestamp_ms))
        .collect();
    days.sort_unstable();
    days.dedup();
    let mut known: HashSet<(i64, u64)> = HashSet::new();
    for day in days {
        for path in existing_by_day.get(&day).into_iter().flatten() {
            known.extend(identities(state, path).await?);
        }
    }
    let before = late_rows.len();
    let kept: Vec<HotRow> = late_rows
        .into_iter()
        .filter(|r| !known.contains(&(r.timestamp_ms, r.content_hash)))
        .collect();
    let skipped = (before - kept.len()) as u64;
    Ok((kept, skipped))
}

/// Steps 3 and 4 on a blocking thread: reading and encoding are synchronous and CPU-bound, so
/// the thread hands finished files to the caller, which uploads them. Two files in flight bound
/// the memory.
fn spawn_encoder(
    state: &JobState,
    tenant: TenantId,
    metric: &Metric,
    snapshot: &Snapshot,
    late_rows: Vec<HotRow>,
) -> (JoinHandle<()>, mpsc::Receiver<Result<Chunk, ColdError>>) {
    let (sender, receiver) = mpsc::channel::<Result<Chunk, ColdError>>(2);
    let purged = purged_names(metric, now_ms(), millis(state.config.purge_hidden_after));
    let names = name_specs(metric, &purged);
    // The keys and their generation come from one schema snapshot, so a file never claims a
    // generation whose keys did not order it.
    let series_names = series_key_names(metric);
    let hot = state.hot.clone();
    let max_rows = state.config.max_rows_per_file.max(1);
    let metric_id = metric.id;
    let request = ScanRequest {
        tenant,
        metric: metric_id,
        start_ms: snapshot.old_watermark,
        end_ms: snapshot.cutoff,
        series: None,
        names: None,
    };
    let snapshot_seq = snapshot.snapshot_seq;
    let producer = tokio::task::spawn_blocking(move || {
        let send = |chunk: Result<Chunk, ColdError>| sender.blocking_send(chunk).is_ok();
        let batcher = DayBatcher::new(max_rows, &names, &series_names, tenant, metric_id);
        encode_rows(&hot, &request, late_rows, snapshot_seq, batcher, send);
    });
    (producer, receiver)
}

/// The late rows, then the hot rows of `request` up to `snapshot_seq`, through `batcher` into
/// files handed to `send`. Stops at the first error (sent on) or when `send` finds the receiver
/// gone.
fn encode_rows(
    hot: &HotStore,
    request: &ScanRequest,
    late_rows: Vec<HotRow>,
    snapshot_seq: u64,
    mut batcher: DayBatcher<'_>,
    send: impl Fn(Result<Chunk, ColdError>) -> bool,
) {
    let scan = match hot.scan(request) {
        Ok(scan) => scan,
        Err(e) => {
            send(Err(e.into()));
            return;
        }
    };
    let rows = late_rows.into_iter().map(Ok).chain(scan);
    for row in rows {
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                send(Err(e.into()));
                return;
            }
        };
        if row.seq > snapshot_seq {
            continue;
        }
        for chunk in batcher.push(row) {
            if !send(chunk) {
                return;
            }
        }
    }
    for chunk in batcher.finish() {
        if !send(chunk) {
            return;
        }
    }
}

/// Writes each encoded file to the cold store as it arrives.
async fn upload(
    state: &JobState,
    mut receiver: mpsc::Receiver<Result<Chunk, ColdError>>,
    series_generation: i64,
) -> Result<Uploaded, ColdError> {
    let mut files = Vec::new();
    let mut rows = 0u64;
    while let Some(chunk) = receiver.recv().await {
        let chunk = chunk?;
        let size = chunk.encoded.bytes.len() as u64;
        state
            .cold
            .put(&chunk.path, Bytes::from(chunk.encoded.bytes))
            .await?;
        rows += chunk.encoded.rows;
        files.push(NewColdFile {
            day_ms: chunk.day_ms,
            path: chunk.path,
            rows: chunk.encoded.rows,
            bytes: size,
            min_ts_ms: chunk.encoded.min_ts_ms,
            max_ts_ms: chunk.encoded.max_ts_ms,
            columns: chunk.encoded.columns,
            series_generation,
        });
    }
    Ok(Uploaded { files, rows })
}

/// Steps 5 and 6: files and watermark in one catalog transaction, then the late index pruned.
async fn commit(
    state: &JobState,
    tenant: TenantId,
    metric: &Metric,
    snapshot: &Snapshot,
    uploaded: Uploaded,
    duplicates_skipped: u64,
) -> Result<MetricCompaction, ColdError> {
    let cutoff = snapshot.cutoff;
    let files_written = uploaded.files.len() as u64;
    let watermark = Watermark {
        watermark_ms: cutoff,
        compacted_seq: snapshot.snapshot_seq.max(snapshot.old_seq),
    };
    if uploaded.files.is_empty() && snapshot.manifest.watermark == Some(watermark) {
        // Nothing arrived since the last run: no catalog write.
        return Ok(MetricCompaction {
            metric: metric.name.clone(),
            watermark_ms: Some(cutoff),
            duplicates_skipped,
            ..MetricCompaction::default()
        });
    }
    state
        .catalog
        .manifest
        .commit_compaction(CompactionCommit {
            tenant,
            metric: metric.id,
            watermark: Some(watermark),
            add: uploaded.files,
            retire: Vec::new(),
        })
        .await?;
    fault::hit(fault::AFTER_COMMIT);
    let pruned = state
        .hot
        .prune_late(tenant, metric.id, watermark.compacted_seq)
        .await?;
    tracing::debug!(
        tenant = %tenant,
        metric = %metric.name,
        files = files_written,
        rows = uploaded.rows,
        pruned_late = pruned,
        watermark_ms = cutoff,
        "metric compacted"
    );
    Ok(MetricCompaction {
        metric: metric.name.clone(),
        watermark_ms: Some(cutoff),
        files_written,
        rows: uploaded.rows,
        duplicates_skipped,
    })
}

/// `(timestamp, content hash)` of every row of a cold file.
async fn identities(state: &JobState, path: &str) -> Result<Vec<(i64, u64)>, ColdError> {
    let bytes = state.cold.get(path).await?;
    tokio::task::spawn_blocking(move || read_identities(bytes))
        .await
        .map_err(job_error)?
}

fn read_identities(bytes: Bytes) -> Result<Vec<(i64, u64)>, ColdError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let schema = builder.parquet_schema();
    let wanted: Vec<usize> = (0..schema.num_columns())
        .filter(|i| {
            let name = schema.column(*i).name().to_string();
            name == TIMESTAMP_COLUMN || name == HASH_COLUMN
        })
        .collect();
    let mask = ProjectionMask::leaves(schema, wanted);
    let reader = builder.with_projection(mask).build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let (Some(ts), Some(hash)) = (
            batch.column_by_name(TIMESTAMP_COLUMN),
            batch.column_by_name(HASH_COLUMN),
        ) else {
            return Err(ColdError::Encode(
                "cold file lacks its timestamp or hash column".to_string(),
            ));
        };
        let ts = ts
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| ColdError::Encode("timestamp column type".to_string()))?;
        let hash = hash.as_primitive::<UInt64Type>();
        out.extend(
            ts.values()
                .iter()
                .copied()
                .zip(hash.values().iter().copied()),
        );
    }
    Ok(out)
}
