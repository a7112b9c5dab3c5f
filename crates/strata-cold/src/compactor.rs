//! The compactor: hot rows older than `min_age` -> Parquet files + a new watermark, atomically.
//!
//! Per metric, under one process-wide lock (so garbage collection never sees a file that a
//! running compaction has written but not committed yet):
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
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use datafusion::arrow::array::{AsArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use serde::Serialize;
use strata_catalog::{
    CompactionCommit, CompactionRecord, DynCatalog, Metric, NewColdFile, Watermark,
};
use strata_core::{MetricId, NameId, TenantId, Value};
use strata_format::cold_file::HASH_COLUMN;
use strata_storage::{HotRow, HotStore, ScanRequest};

use crate::encode::{encode_file, ColdRow, NameSpec};
use crate::layout::{day_start_ms, file_path, DAY_MS};
use crate::retype::{RetypeReport, RetypeTarget};
use crate::{fault, retention_floor_ms, ColdError, ColdStore};

const HOUR_MS: i64 = 3_600_000;
const WEEK_MS: i64 = 7 * DAY_MS;

#[derive(Debug, Clone)]
pub struct CompactorConfig {
    /// Rows younger than this stay hot only.
    pub min_age: Duration,
    /// Most rows in one file; a larger day is split into several files.
    pub max_rows_per_file: usize,
    /// How long a retired file stays readable for queries planned before it was retired.
    pub retired_grace: Duration,
    /// Hot weekly partitions older than this are dropped once fully compacted.
    pub hot_retention: Duration,
    /// A deleted metric's rows (hot and cold) are purged this long after its deletion.
    pub purge_deleted_after: Duration,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        CompactorConfig {
            min_age: Duration::from_secs(3600),
            max_rows_per_file: 1_000_000,
            retired_grace: Duration::from_secs(600),
            hot_retention: Duration::from_secs(8 * 7 * 24 * 3600),
            purge_deleted_after: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

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
}

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

pub struct Compactor {
    pub(crate) catalog: DynCatalog,
    hot: Arc<HotStore>,
    pub(crate) cold: ColdStore,
    config: CompactorConfig,
    /// Re-typing attempts that found a value that does not convert: (file id, column, type).
    /// Not retried until the type changes; forgotten on restart, which costs one re-read.
    kept_as_is: std::sync::Mutex<HashSet<(i64, RetypeTarget)>>,
    /// One compaction or collection at a time in this process.
    lock: tokio::sync::Mutex<()>,
    /// Week start -> when it was retired. A week is dropped only a grace period after readers
    /// were told to stop using it, so a query planned before never finds it gone.
    retiring: std::sync::Mutex<HashMap<i64, std::time::Instant>>,
}

impl Compactor {
    pub fn new(
        catalog: DynCatalog,
        hot: Arc<HotStore>,
        cold: ColdStore,
        config: CompactorConfig,
    ) -> Self {
        Compactor {
            catalog,
            hot,
            cold,
            config,
            lock: tokio::sync::Mutex::new(()),
            retiring: std::sync::Mutex::new(HashMap::new()),
            kept_as_is: std::sync::Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn already_kept(&self, attempt: &HashSet<(i64, RetypeTarget)>) -> bool {
        let kept = self
            .kept_as_is
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        attempt.iter().all(|a| kept.contains(a))
    }

    pub(crate) fn remember_kept(&self, attempt: HashSet<(i64, RetypeTarget)>) {
        self.kept_as_is
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(attempt);
    }

    pub fn config(&self) -> &CompactorConfig {
        &self.config
    }

    pub fn cold(&self) -> &ColdStore {
        &self.cold
    }

    /// Compacts every tenant; failures are logged and recorded per tenant.
    pub async fn compact_everything(&self) {
        let tenants = match self.catalog.list_tenants().await {
            Ok(tenants) => tenants,
            Err(error) => {
                tracing::warn!(%error, "listing tenants for compaction failed");
                return;
            }
        };
        for tenant in tenants {
            if let Err(error) = self.compact_tenant(tenant.id).await {
                tracing::warn!(%error, tenant = %tenant.name, "background compaction failed");
            }
        }
    }

    /// Compacts every live metric of the tenant and records the outcome for `/api/v1/status`.
    pub async fn compact_tenant(&self, tenant: TenantId) -> Result<CompactionReport, ColdError> {
        let _guard = self.lock.lock().await;
        let started_at_ms = now_ms();
        let result = self.compact_tenant_locked(tenant, started_at_ms).await;
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
        if let Err(error) = self.catalog.record_compaction(record).await {
            tracing::warn!(%error, tenant, "could not record the compaction outcome");
        }
        result
    }

    async fn compact_tenant_locked(
        &self,
        tenant: TenantId,
        started_at_ms: i64,
    ) -> Result<CompactionReport, ColdError> {
        let schema = self.catalog.schema(tenant).await?;
        let min_age_ms = i64::try_from(self.config.min_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = started_at_ms.saturating_sub(min_age_ms).div_euclid(HOUR_MS) * HOUR_MS;
        let mut report = CompactionReport::default();
        for metric in &schema.metrics {
            let done = self.compact_metric(tenant, metric, cutoff).await?;
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
        let schema = self.catalog.schema(tenant).await?;
        for metric in &schema.metrics {
            self.retype_metric(tenant, metric, &mut report.retype)
                .await?;
        }
        tracing::info!(
            tenant,
            files = report.files_written,
            rows = report.rows,
            retyped = report.retype.files_rewritten,
            "compaction finished"
        );
        Ok(report)
    }

    async fn compact_metric(
        &self,
        tenant: TenantId,
        metric: &Metric,
        cutoff: i64,
    ) -> Result<MetricCompaction, ColdError> {
        let manifest = self.catalog.cold_manifest(tenant, metric.id).await?;
        let (old_watermark, old_seq) = manifest
            .watermark
            .map_or((i64::MIN, 0), |w| (w.watermark_ms, w.compacted_seq));
        let cutoff = cutoff.max(old_watermark);
        let snapshot_seq = self
            .hot
            .raise_late_threshold(tenant, metric.id, cutoff)
            .await?;

        // Days that already have files: late rows for them are checked against their hashes.
        let mut existing_by_day: HashMap<i64, Vec<String>> = HashMap::new();
        for file in &manifest.files {
            existing_by_day
                .entry(file.day_ms)
                .or_default()
                .push(file.path.clone());
        }
        let names = name_specs(metric);
        // The keys and their generation come from one schema snapshot, so a file never claims a
        // generation whose keys did not order it.
        let series_names = series_key_names(metric);
        let series_generation = metric.series_generation;
        let hot = self.hot.clone();
        let max_rows = self.config.max_rows_per_file.max(1);

        // Reading and encoding are synchronous and CPU-bound: a blocking thread hands finished
        // files to this task, which uploads them. Two files in flight bound the memory.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Chunk, ColdError>>(2);
        let metric_id = metric.id;
        let late_rows = {
            let request = ScanRequest {
                tenant,
                metric: metric_id,
                start_ms: i64::MIN,
                end_ms: old_watermark,
                series: None,
                names: None,
            };
            if old_watermark == i64::MIN {
                Vec::new()
            } else {
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
                .map_err(|e| ColdError::Job(e.to_string()))??
            }
        };
        // Late re-sends: drop rows whose (timestamp, hash) a file of their day already holds.
        let mut duplicates_skipped = 0u64;
        let late_rows = if late_rows.is_empty() {
            late_rows
        } else {
            let mut days: Vec<i64> = late_rows
                .iter()
                .map(|r| day_start_ms(r.timestamp_ms))
                .collect();
            days.sort_unstable();
            days.dedup();
            let mut known: HashSet<(i64, u64)> = HashSet::new();
            for day in days {
                for path in existing_by_day.get(&day).into_iter().flatten() {
                    known.extend(self.identities(path).await?);
                }
            }
            let before = late_rows.len();
            let kept: Vec<HotRow> = late_rows
                .into_iter()
                .filter(|r| !known.contains(&(r.timestamp_ms, r.content_hash)))
                .collect();
            duplicates_skipped = (before - kept.len()) as u64;
            kept
        };

        let producer = tokio::task::spawn_blocking(move || {
            let send = |chunk: Result<Chunk, ColdError>| sender.blocking_send(chunk).is_ok();
            let mut batcher = DayBatcher::new(max_rows, &names, &series_names, tenant, metric_id);
            let request = ScanRequest {
                tenant,
                metric: metric_id,
                start_ms: old_watermark,
                end_ms: cutoff,
                series: None,
                names: None,
            };
            let scan = match hot.scan(&request) {
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
        });

        let mut added = Vec::new();
        let mut rows = 0u64;
        while let Some(chunk) = receiver.recv().await {
            let chunk = chunk?;
            let size = chunk.encoded.bytes.len() as u64;
            self.cold
                .put(&chunk.path, Bytes::from(chunk.encoded.bytes))
                .await?;
            rows += chunk.encoded.rows;
            added.push(NewColdFile {
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
        producer.await.map_err(|e| ColdError::Job(e.to_string()))?;
        fault::hit(fault::AFTER_FILES);

        let files_written = added.len() as u64;
        let watermark = Watermark {
            watermark_ms: cutoff,
            compacted_seq: snapshot_seq.max(old_seq),
        };
        if added.is_empty() && manifest.watermark == Some(watermark) {
            // Nothing arrived since the last run: no catalog write.
            return Ok(MetricCompaction {
                metric: metric.name.clone(),
                watermark_ms: Some(cutoff),
                duplicates_skipped,
                ..MetricCompaction::default()
            });
        }
        self.catalog
            .commit_compaction(CompactionCommit {
                tenant,
                metric: metric.id,
                watermark: Some(watermark),
                add: added,
                retire: Vec::new(),
            })
            .await?;
        fault::hit(fault::AFTER_COMMIT);
        let pruned = self
            .hot
            .prune_late(tenant, metric.id, watermark.compacted_seq)
            .await?;
        tracing::debug!(
            tenant,
            metric = %metric.name,
            files = files_written,
            rows,
            pruned_late = pruned,
            watermark_ms = cutoff,
            "metric compacted"
        );
        Ok(MetricCompaction {
            metric: metric.name.clone(),
            watermark_ms: Some(cutoff),
            files_written,
            rows,
            duplicates_skipped,
        })
    }

    /// `(timestamp, content hash)` of every row of a cold file.
    async fn identities(&self, path: &str) -> Result<Vec<(i64, u64)>, ColdError> {
        let bytes = self.cold.get(path).await?;
        tokio::task::spawn_blocking(move || -> Result<Vec<(i64, u64)>, ColdError> {
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
            let schema = builder.parquet_schema();
            let wanted: Vec<usize> = (0..schema.num_columns())
                .filter(|i| {
                    let name = schema.column(*i).name().to_string();
                    name == "timestamp" || name == HASH_COLUMN
                })
                .collect();
            let mask = ProjectionMask::leaves(schema, wanted);
            let reader = builder.with_projection(mask).build()?;
            let mut out = Vec::new();
            for batch in reader {
                let batch = batch?;
                let (Some(ts), Some(hash)) = (
                    batch.column_by_name("timestamp"),
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
        })
        .await
        .map_err(|e| ColdError::Job(e.to_string()))?
    }

    /// Deletes orphan objects (written by a compaction that never committed), retired files past
    /// their grace period, and hot partitions past retention that every metric has compacted.
    pub async fn collect_garbage(&self) -> Result<GcReport, ColdError> {
        let _guard = self.lock.lock().await;
        let mut report = GcReport::default();
        // Orphans: with the lock held no compaction is between "written" and "committed".
        let known = self.catalog.cold_paths().await?;
        for object in self.cold.list().await? {
            if !known.contains(&object.path) {
                tracing::info!(path = %object.path, "deleting orphan cold file");
                self.cold.delete(&object.path).await?;
                report.orphans_deleted += 1;
            }
        }
        let grace_ms = i64::try_from(self.config.retired_grace.as_millis()).unwrap_or(i64::MAX);
        let retired = self
            .catalog
            .retired_cold_files(now_ms().saturating_sub(grace_ms))
            .await?;
        let mut forgotten = Vec::with_capacity(retired.len());
        for file in retired {
            self.cold.delete(&file.path).await?;
            forgotten.push(file.id);
        }
        report.retired_deleted = forgotten.len() as u64;
        self.catalog.forget_cold_files(&forgotten).await?;
        report.hot_partitions_dropped = self.drop_compacted_hot_partitions().await?;
        report.expired_cold_files = self.expire_cold_files().await?;
        report.metrics_purged = self.purge_deleted_metrics().await?;
        Ok(report)
    }

    /// Retires the cold files of days past each tenant's cold retention; they are deleted after
    /// the retired-file grace period, like any retired file. Queries stop returning those days
    /// at once (see [`retention_floor_ms`]).
    async fn expire_cold_files(&self) -> Result<u64, ColdError> {
        let mut expired = 0;
        for tenant in self.catalog.list_tenants().await? {
            let settings = self.catalog.settings(tenant.id).await?;
            let Some(floor) =
                retention_floor_ms(now_ms(), settings.cold_retention_days)
            else {
                continue;
            };
            let schema = self.catalog.schema(tenant.id).await?;
            for metric in &schema.metrics {
                let retired = self
                    .catalog
                    .retire_cold_files(tenant.id, metric.id, floor)
                    .await?;
                if retired > 0 {
                    tracing::info!(
                        tenant = %tenant.name,
                        metric = %metric.name,
                        files = retired,
                        "cold files past retention retired"
                    );
                }
                expired += retired;
            }
        }
        Ok(expired)
    }

    /// Purges metrics deleted more than `purge_deleted_after` ago: their hot rows go first, then
    /// their cold files are retired and the metric is marked purged in one catalog transaction.
    /// A crash in between repeats the (idempotent) hot purge on the next run.
    async fn purge_deleted_metrics(&self) -> Result<Vec<String>, ColdError> {
        let after_ms =
            i64::try_from(self.config.purge_deleted_after.as_millis()).unwrap_or(i64::MAX);
        let due = self
            .catalog
            .metrics_to_purge(now_ms().saturating_sub(after_ms))
            .await?;
        let mut purged = Vec::with_capacity(due.len());
        for metric in due {
            let rows = self.hot.purge_metric(metric.tenant, metric.metric).await?;
            let files = self
                .catalog
                .mark_metric_purged(metric.tenant, metric.metric)
                .await?;
            tracing::info!(
                tenant = metric.tenant,
                metric = %metric.name,
                hot_rows = rows,
                cold_files = files,
                "deleted metric purged"
            );
            purged.push(format!("{}/{}", metric.tenant, metric.name));
        }
        Ok(purged)
    }

    /// Drops weekly partitions that ended more than `hot_retention` ago, if every live metric
    /// with rows in them has a watermark at or past the week's end. Weeks of the shared archive
    /// keyspace are listed and dropped one by one like weekly keyspaces.
    async fn drop_compacted_hot_partitions(&self) -> Result<Vec<String>, ColdError> {
        let retention_ms = i64::try_from(self.config.hot_retention.as_millis()).unwrap_or(i64::MAX);
        let horizon = now_ms().saturating_sub(retention_ms);
        let candidates: Vec<_> = self
            .hot
            .partitions()
            .into_iter()
            .filter(|p| p.week_end_ms <= horizon)
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // (tenant, metric) -> watermark, for every live metric.
        let mut watermarks: Vec<(TenantId, MetricId, i64)> = Vec::new();
        for tenant in self.catalog.list_tenants().await? {
            let schema = self.catalog.schema(tenant.id).await?;
            for metric in &schema.metrics {
                let manifest = self.catalog.cold_manifest(tenant.id, metric.id).await?;
                let watermark = manifest.watermark.map_or(i64::MIN, |w| w.watermark_ms);
                watermarks.push((tenant.id, metric.id, watermark));
            }
        }
        let mut dropped = Vec::new();
        for partition in candidates {
            let mut blocked = false;
            for (tenant, metric, watermark) in &watermarks {
                if *watermark >= partition.week_end_ms {
                    continue;
                }
                let probe = ScanRequest {
                    tenant: *tenant,
                    metric: *metric,
                    start_ms: partition.week_start_ms,
                    end_ms: partition.week_end_ms,
                    series: None,
                    names: Some(Vec::new()),
                };
                if self.hot.scan(&probe)?.next_raw().is_some() {
                    blocked = true;
                    break;
                }
            }
            if blocked {
                tracing::info!(
                    partition = %partition.name,
                    "hot partition past retention is not fully compacted; keeping it"
                );
                continue;
            }
            debug_assert_eq!(partition.week_end_ms - partition.week_start_ms, WEEK_MS);
            let retired_at = *self
                .retiring
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(partition.week_start_ms)
                .or_insert_with(std::time::Instant::now);
            self.hot.retire_before(partition.week_end_ms)?;
            if retired_at.elapsed() < self.config.retired_grace {
                continue;
            }
            // An archived week is dropped by deleting its rows (bounded batches, blocking), so
            // it runs off the async workers.
            let hot = self.hot.clone();
            let week_start = partition.week_start_ms;
            tokio::task::spawn_blocking(move || hot.drop_partition(week_start))
                .await
                .map_err(|e| ColdError::Job(e.to_string()))??;
            dropped.push(partition.name);
        }
        Ok(dropped)
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn name_specs(metric: &Metric) -> Vec<NameSpec> {
    metric
        .incoming
        .iter()
        .map(|incoming| NameSpec {
            id: incoming.id,
            name: incoming.name.clone(),
            declared: metric.field(&incoming.name).and_then(|f| f.field_type),
        })
        .collect()
}

/// Per series key, in key order: the incoming-name ids of its field in precedence order.
fn series_key_names(metric: &Metric) -> Vec<Vec<NameId>> {
    metric
        .series_key_fields()
        .iter()
        .map(|field| {
            field
                .names
                .iter()
                .filter_map(|name| metric.incoming(name).map(|i| i.id))
                .collect()
        })
        .collect()
}

/// One encoded file ready to upload.
struct Chunk {
    day_ms: i64,
    path: String,
    encoded: crate::encode::EncodedFile,
}

/// Collects rows per UTC day and encodes a file when a day is complete or full.
struct DayBatcher<'a> {
    max_rows: usize,
    names: &'a [NameSpec],
    series_names: &'a [Vec<NameId>],
    tenant: TenantId,
    metric: MetricId,
    days: HashMap<i64, Vec<ColdRow>>,
}

impl<'a> DayBatcher<'a> {
    fn new(
        max_rows: usize,
        names: &'a [NameSpec],
        series_names: &'a [Vec<NameId>],
        tenant: TenantId,
        metric: MetricId,
    ) -> Self {
        DayBatcher {
            max_rows,
            names,
            series_names,
            tenant,
            metric,
            days: HashMap::new(),
        }
    }

    fn push(&mut self, row: HotRow) -> Vec<Result<Chunk, ColdError>> {
        let day = day_start_ms(row.timestamp_ms);
        let series = if self.series_names.is_empty() {
            row.series
        } else {
            // The current series keys decide the order in the file, whatever keys were in
            // force when the row was written.
            series_of(&row.values, self.series_names)
        };
        let rows = self.days.entry(day).or_default();
        rows.push(ColdRow {
            timestamp_ms: row.timestamp_ms,
            series,
            content_hash: row.content_hash,
            values: row.values,
        });
        let mut out = Vec::new();
        if rows.len() >= self.max_rows {
            let full = std::mem::take(rows);
            out.push(self.encode(day, full));
        }
        // Hot rows arrive in hour order, so a day older than the current one is complete.
        let complete: Vec<i64> = self.days.keys().copied().filter(|d| *d < day).collect();
        for done in complete {
            if let Some(rows) = self.days.remove(&done) {
                if !rows.is_empty() {
                    out.push(self.encode(done, rows));
                }
            }
        }
        out
    }

    fn finish(mut self) -> Vec<Result<Chunk, ColdError>> {
        let mut days: Vec<(i64, Vec<ColdRow>)> = self.days.drain().collect();
        days.sort_unstable_by_key(|(day, _)| *day);
        days.into_iter()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(day, rows)| self.encode(day, rows))
            .collect()
    }

    fn encode(&self, day_ms: i64, rows: Vec<ColdRow>) -> Result<Chunk, ColdError> {
        let encoded = encode_file(rows, self.names)?;
        Ok(Chunk {
            day_ms,
            path: file_path(self.tenant, self.metric, day_ms, uuid::Uuid::new_v4()),
            encoded,
        })
    }
}

fn series_of(values: &[(NameId, Value)], series_names: &[Vec<NameId>]) -> u64 {
    let picked: Vec<Option<&Value>> = series_names
        .iter()
        .map(|ids| {
            ids.iter().find_map(|id| {
                values
                    .binary_search_by_key(id, |(name, _)| *name)
                    .ok()
                    .map(|at| &values[at].1)
                    .filter(|v| !matches!(v, Value::Null))
            })
        })
        .collect();
    strata_ingest::series_hash(&picked)
}
