//! Lazy re-typing: when a field gets a type after its rows were compacted (or changes type), the
//! files that hold its names as text are rewritten with typed columns, and each rewritten file
//! replaces the old one in the manifest in one catalog transaction.
//!
//! Correctness never depends on it. The query recombinator casts whatever a file holds to the
//! declared type at read time, with the same cast the rewrite uses ([`lossless_cast`]), so a
//! query planned before, during or after a rewrite returns the same values. A query planned
//! before the swap keeps reading the old file, which is deleted only after the retired-file grace
//! period. Re-typing is about speed and size: typed columns are smaller and need no cast.
//!
//! Only conversions that lose nothing are made: text that parses, or a typed column whose values
//! survive the round trip. A column with a value that does not convert stays as it is, and the
//! compactor remembers the attempt so it does not re-read the file on every run.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use strata_catalog::{CatalogError, ColdColumn, ColdFile, CompactionCommit, Metric, NewColdFile};
use strata_core::{FieldType, TenantId};
use strata_format::cold_file::{lossless_cast, storage_type_name, FIXED_COLUMNS};

use super::{job_error, JobState};
use crate::encode::write_parquet;
use crate::layout::file_path;
use crate::{fault, ColdError};

/// What one re-typing pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetypeReport {
    /// Files replaced by a rewrite with more typed columns.
    pub files_rewritten: u64,
    /// Files looked at whose text columns hold a value that does not convert; they stay as
    /// they are until the field's type changes again.
    pub files_kept: u64,
}

/// A column of a file and the type its field declares now.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RetypeTarget {
    pub column: String,
    pub field_type: FieldType,
}

/// Types a cold column can be rewritten to. Text and binary fields are read from text anyway.
fn typed_storage(field_type: FieldType) -> bool {
    matches!(
        field_type,
        FieldType::Integer | FieldType::Double | FieldType::Boolean | FieldType::Timestamp
    )
}

/// Columns of `file` whose stored type differs from the typed storage their field declares now.
fn retype_targets(metric: &Metric, file: &ColdFile) -> Vec<RetypeTarget> {
    file.columns
        .iter()
        .filter_map(|column| {
            let field_type = metric.field(&column.name)?.field_type?;
            (typed_storage(field_type) && column.storage_type != field_type.as_str()).then(|| {
                RetypeTarget {
                    column: column.name.clone(),
                    field_type,
                }
            })
        })
        .collect()
}

/// A rewritten file, ready to upload.
pub(super) struct Rewritten {
    pub(super) bytes: Vec<u8>,
    pub(super) columns: Vec<ColdColumn>,
}

/// Re-encodes `bytes` (a cold file) with each target column converted where it converts
/// losslessly. `None` when no column converts.
fn rewrite(bytes: Bytes, targets: &[RetypeTarget]) -> Result<Option<Rewritten>, ColdError> {
    let batch = read_whole(bytes)?;
    let schema = batch.schema();
    let rows = batch.num_rows();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut arrays = batch.columns().to_vec();
    let mut converted = false;
    for target in targets {
        let Some(at) = fields.iter().position(|f| f.name() == &target.column) else {
            continue;
        };
        if let Some(cast) = lossless_cast(&arrays[at], target.field_type, rows)? {
            fields[at] = Field::new(&target.column, cast.data_type().clone(), true);
            arrays[at] = cast;
            converted = true;
        }
    }
    if !converted {
        return Ok(None);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    Ok(Some(encoded(&batch)?))
}

/// A cold file's rows as one batch (files are bounded by `max_rows_per_file`).
pub(super) fn read_whole(bytes: Bytes) -> Result<RecordBatch, ColdError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let schema = builder.schema().clone();
    let batches = builder.build()?.collect::<Result<Vec<RecordBatch>, _>>()?;
    Ok(concat_batches(&schema, &batches)?)
}

/// `batch` (a cold file's layout) encoded, with the manifest's list of its field columns.
pub(super) fn encoded(batch: &RecordBatch) -> Result<Rewritten, ColdError> {
    let columns = batch
        .schema()
        .fields()
        .iter()
        .skip(FIXED_COLUMNS)
        .map(|f| ColdColumn {
            name: f.name().clone(),
            storage_type: storage_type_name(f.data_type()).to_string(),
        })
        .collect();
    Ok(Rewritten {
        bytes: write_parquet(batch)?,
        columns,
    })
}

/// Re-typing attempts that found a value that does not convert: (file id, column, type). Not
/// retried until the type changes; forgotten on restart, which costs one re-read.
#[derive(Debug, Default)]
pub(crate) struct KeptAsIs(Mutex<HashSet<(i64, RetypeTarget)>>);

impl KeptAsIs {
    fn contains_all(&self, attempt: &HashSet<(i64, RetypeTarget)>) -> bool {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        attempt.iter().all(|a| kept.contains(a))
    }

    fn remember(&self, attempt: HashSet<(i64, RetypeTarget)>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(attempt);
    }
}

/// Rewrites the live files of `metric` that hold a now-typed field as text. Runs under the
/// compactor lock, so no compaction or collection interleaves.
pub(super) async fn retype_metric(
    state: &JobState,
    kept: &KeptAsIs,
    tenant: TenantId,
    metric: &Metric,
    report: &mut RetypeReport,
) -> Result<(), ColdError> {
    let manifest = state
        .catalog
        .manifest
        .cold_manifest(tenant, metric.id)
        .await?;
    for file in &manifest.files {
        let targets = retype_targets(metric, file);
        if targets.is_empty() {
            continue;
        }
        let attempt: HashSet<(i64, RetypeTarget)> =
            targets.iter().map(|t| (file.id, t.clone())).collect();
        if kept.contains_all(&attempt) {
            continue;
        }
        let bytes = state.cold.get(&file.path).await?;
        let rewritten = tokio::task::spawn_blocking(move || rewrite(bytes, &targets))
            .await
            .map_err(job_error)??;
        let Some(rewritten) = rewritten else {
            kept.remember(attempt);
            report.files_kept += 1;
            continue;
        };
        if swap(state, tenant, metric, file, rewritten).await? {
            report.files_rewritten += 1;
        }
    }
    Ok(())
}

/// Uploads the rewritten file and swaps it for `file` in one catalog transaction. False when
/// `file` was retired meanwhile.
pub(super) async fn swap(
    state: &JobState,
    tenant: TenantId,
    metric: &Metric,
    file: &ColdFile,
    rewritten: Rewritten,
) -> Result<bool, ColdError> {
    let path = file_path(tenant, metric.id, file.day_ms, uuid::Uuid::new_v4());
    let size = rewritten.bytes.len() as u64;
    state.cold.put(&path, Bytes::from(rewritten.bytes)).await?;
    fault::hit(fault::RETYPE_AFTER_FILE);
    let swap = CompactionCommit {
        tenant,
        metric: metric.id,
        watermark: None,
        add: vec![NewColdFile {
            day_ms: file.day_ms,
            path,
            rows: file.rows,
            bytes: size,
            min_ts_ms: file.min_ts_ms,
            max_ts_ms: file.max_ts_ms,
            columns: rewritten.columns,
            series_generation: file.series_generation,
        }],
        retire: vec![file.id],
    };
    match state.catalog.manifest.commit_compaction(swap).await {
        Ok(()) => Ok(true),
        // Retired meanwhile (retention, purge): the new object is an orphan that the next
        // collection deletes.
        Err(CatalogError::Conflict(reason)) => {
            tracing::info!(%reason, file = %file.path, "re-typing skipped a retired file");
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}
