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

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::ScalarValue;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{in_list, lit, BinaryExpr, Column};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::StreamExt;
use strata_catalog::{ColdFile, DynCatalog};
use strata_cold::{retention_floor_ms, ColdAccess};
use strata_core::{now_ms, FieldType, HOUR_MS, WEEK_MS};
use strata_format::cold_file::{storage_arrow_type, HASH_COLUMN, SERIES_COLUMN};
use strata_format::model::{timestamp_type, UTC};
use strata_format::recombine::{recombine, RawBatchBuilder};
use strata_storage::{HotRow, HotStore, ScanRequest};

use crate::error::BackendFailure;
use crate::scan::{format_ms, MetricScanExec, ScanSpec};

/// Cost model, in estimated microseconds on the reference machine (see ARCHITECTURE.md):
/// opening a file and reading its footer; decoding one value from a column; decoding one hot row
/// (all its values, whatever the projection); one series seek in one hour bucket.
const COST_FILE_OPEN: f64 = 300.0;
const COST_COLD_VALUE: f64 = 0.01;
const COST_HOT_ROW: f64 = 0.4;
const COST_HOT_SEEK: f64 = 5.0;
/// Share of rows a series filter keeps, when the number of series is unknown.
const SERIES_SELECTIVITY: f64 = 0.01;

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
    pub catalog: DynCatalog,
    pub access: ColdAccess,
    pub preference: TierPreference,
    /// The tenant's cold retention in days (`None`: forever), from the session's schema
    /// snapshot.
    pub retention_days: Option<u32>,
}

impl fmt::Debug for ColdContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColdContext")
            .field("access", &self.access)
            .finish()
    }
}

/// One way to split the range between tiers.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Rows in `[start, cut)` come from cold + late, `[cut, end)` from hot partitions.
    pub cut_ms: i64,
    pub cost: f64,
    pub cold_files: usize,
    pub cold_rows: f64,
}

/// Everything EXPLAIN shows about the choice.
#[derive(Debug, Clone)]
pub struct PlanChoice {
    pub watermark_ms: i64,
    pub compacted_seq: u64,
    pub candidates: Vec<Candidate>,
    pub chosen: usize,
    pub late_rows: usize,
}

/// Picks the split and builds the branches. `spec` is the whole-range scan spec.
pub async fn plan_federated(
    spec: ScanSpec,
    hot: Arc<HotStore>,
    cold: &ColdContext,
) -> Result<Arc<dyn ExecutionPlan>> {
    let start = spec.time.start_ms.unwrap_or(i64::MIN);
    let end = spec.time.end_ms.unwrap_or(i64::MAX);

    let backend = |e: String| DataFusionError::External(Box::new(BackendFailure(e)));
    // A metric never compacted is read from the hot partitions alone.
    let first = cold
        .catalog
        .cold_manifest(spec.tenant, spec.model.id)
        .await
        .map_err(|e| backend(e.to_string()))?;
    if first.watermark.is_none() {
        return Ok(Arc::new(MetricScanExec::new(spec, hot)));
    }
    // Late rows, then the manifest again (see the module docs for why this order). No series
    // seek: the late index is small, and the query's own filter is applied above the scan.
    let late_request = ScanRequest {
        tenant: spec.tenant,
        metric: spec.model.id,
        start_ms: start,
        end_ms: end,
        series: None,
        names: None,
    };
    let late_hot = hot.clone();
    let late_rows: Vec<HotRow> = tokio::task::spawn_blocking(move || {
        late_hot
            .scan_late(&late_request)
            .and_then(|scan| scan.collect::<std::result::Result<Vec<_>, _>>())
    })
    .await
    .map_err(|e| backend(e.to_string()))?
    .map_err(|e| backend(e.to_string()))?;
    let manifest = cold
        .catalog
        .cold_manifest(spec.tenant, spec.model.id)
        .await
        .map_err(|e| backend(e.to_string()))?;
    let Some(watermark) = manifest.watermark else {
        return Ok(Arc::new(MetricScanExec::new(spec, hot)));
    };
    // Cold retention: days below the floor are expired, whichever tier still holds them.
    let now = now_ms();
    let mut spec = spec;
    let mut start = start;
    if let Some(floor) = retention_floor_ms(now, cold.retention_days) {
        if floor > start {
            start = floor;
            spec.time.start_ms = Some(floor);
        }
        if start >= end {
            spec.time.end_ms = Some(start);
            return Ok(Arc::new(MetricScanExec::new(spec, hot)));
        }
    }
    let cold_end = end.min(watermark.watermark_ms);
    if start >= cold_end {
        // The whole range is above the watermark: only the hot partitions hold it.
        return Ok(Arc::new(MetricScanExec::new(spec, hot)));
    }

    // Candidate cuts: the start, each week start inside, the end of the cold-covered range.
    let mut cuts = vec![start];
    let first_data = manifest
        .files
        .iter()
        .map(|f| f.min_ts_ms)
        .min()
        .unwrap_or(cold_end)
        .max(start);
    let last_data = manifest
        .files
        .iter()
        .map(|f| f.max_ts_ms.saturating_add(1))
        .max()
        .unwrap_or(cold_end)
        .min(cold_end);
    // Only weeks that hold compacted data give distinct plans.
    let mut week = strata_storage::key::week_start_ms(first_data).saturating_add(WEEK_MS);
    while week < last_data && cuts.len() < 64 {
        if week > start {
            cuts.push(week);
        }
        week = week.saturating_add(WEEK_MS);
    }
    cuts.push(cold_end);
    cuts.dedup();
    let dropped_before = hot.dropped_before_ms();
    let columns = spec.columns.len().max(1) as f64;
    let seeking = spec.series.as_ref().map(|s| s.len());
    let mut candidates = Vec::new();
    for &cut in &cuts {
        // Hot must still hold [cut, cold_end) — retention drops whole old weeks.
        if cut < cold_end && cut < dropped_before {
            continue;
        }
        let (files, rows) = estimate(&manifest.files, start, cut);
        let (_, hot_rows) = estimate(&manifest.files, cut, cold_end);
        let mut cost = files as f64 * COST_FILE_OPEN;
        match seeking {
            None => {
                cost += rows * COST_COLD_VALUE * (columns + 1.0);
                cost += hot_rows * COST_HOT_ROW;
            }
            Some(series) => {
                cost += rows * SERIES_SELECTIVITY * COST_COLD_VALUE * (columns + 1.0);
                let hours = ((cold_end.saturating_sub(cut)) / HOUR_MS).max(0) as f64;
                cost += hours * series as f64 * COST_HOT_SEEK
                    + hot_rows * SERIES_SELECTIVITY * COST_HOT_ROW;
            }
        }
        candidates.push(Candidate {
            cut_ms: cut,
            cost,
            cold_files: files,
            cold_rows: rows,
        });
    }
    if candidates.is_empty() {
        return Err(DataFusionError::Internal(
            "no plan covers the query range: hot partitions were dropped above the watermark"
                .to_string(),
        ));
    }
    let chosen = match cold.preference {
        TierPreference::Cost => candidates
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| a.cost.total_cmp(&b.cost))
            .map(|(i, _)| i)
            .unwrap_or(0),
        TierPreference::Hot => 0,
        TierPreference::Cold => candidates.len() - 1,
    };
    let cut = candidates[chosen].cut_ms;

    let mut branches: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    let late_in_range: Vec<HotRow> = late_rows
        .into_iter()
        .filter(|r| {
            r.seq > watermark.compacted_seq && r.timestamp_ms >= start && r.timestamp_ms < cut
        })
        .collect();
    let late_count = late_in_range.len();
    if cut > start {
        let files: Vec<&ColdFile> = manifest
            .files
            .iter()
            .filter(|f| f.max_ts_ms >= start && f.min_ts_ms < cut)
            .collect();
        let excluded: Vec<u64> = late_in_range.iter().map(|r| r.content_hash).collect();
        if !files.is_empty() {
            branches.push(cold_branch(
                &spec,
                &cold.access,
                &files,
                start,
                cut,
                &excluded,
            )?);
        }
        if !late_in_range.is_empty() {
            branches.push(late_branch(&spec, late_in_range)?);
        }
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

fn show_cut(ms: i64) -> String {
    if ms == i64::MIN {
        "-inf".to_string()
    } else {
        format_ms(ms)
    }
}

/// Files and rows of `files` that fall in `[from, to)`, prorated by each file's time span.
fn estimate(files: &[ColdFile], from: i64, to: i64) -> (usize, f64) {
    if from >= to {
        return (0, 0.0);
    }
    let mut count = 0;
    let mut rows = 0.0;
    for file in files {
        let low = file.min_ts_ms.max(from);
        let high = file.max_ts_ms.saturating_add(1).min(to);
        if low >= high {
            continue;
        }
        count += 1;
        let span = (file.max_ts_ms - file.min_ts_ms).saturating_add(1).max(1) as f64;
        rows += file.rows as f64 * ((high - low) as f64 / span).min(1.0);
    }
    (count, rows)
}

/// The raw Parquet scan (with time and re-send filters) plus the recombinator.
fn cold_branch(
    spec: &ScanSpec,
    access: &ColdAccess,
    files: &[&ColdFile],
    start: i64,
    cut: i64,
    excluded_hashes: &[u64],
) -> Result<Arc<dyn ExecutionPlan>> {
    // The file schema: timestamp, series, hash, then each needed name with one type for all
    // files (text when files disagree; the recombinator casts to the declared type anyway).
    let mut needed: Vec<&str> = Vec::new();
    for column in &spec.columns {
        for source in &column.sources {
            if !needed.contains(&source.name.as_str()) {
                needed.push(source.name.as_str());
            }
        }
    }
    let mut types: HashMap<&str, DataType> = HashMap::new();
    for file in files {
        for column in &file.columns {
            let name = column.name.as_str();
            if !needed.contains(&name) {
                continue;
            }
            let data_type = column
                .storage_type
                .parse::<FieldType>()
                .map(storage_arrow_type)
                .unwrap_or(DataType::Utf8);
            match types.get(name) {
                None => {
                    types.insert(name, data_type);
                }
                Some(existing) if *existing != data_type => {
                    types.insert(name, DataType::Utf8);
                }
                Some(_) => {}
            }
        }
    }
    let mut fields = vec![
        Field::new("timestamp", timestamp_type(), false),
        Field::new(SERIES_COLUMN, DataType::UInt64, false),
        Field::new(HASH_COLUMN, DataType::UInt64, false),
    ];
    for name in &needed {
        if let Some(data_type) = types.get(name) {
            fields.push(Field::new(*name, data_type.clone(), true));
        }
    }
    let file_schema: SchemaRef = Arc::new(Schema::new(fields));
    // What the scan decodes: the series column serves only row-group and page pruning
    // (statistics), and the hash column only the re-send exclusion, so neither is decoded
    // when not needed; they are random-looking 64-bit values, the costliest columns to read.
    let exclude_resends = !excluded_hashes.is_empty();
    let mut decoded: Vec<usize> = vec![0];
    if exclude_resends {
        decoded.push(2);
    }
    decoded.extend(3..file_schema.fields().len());
    let decoded_schema = Arc::new(file_schema.project(&decoded)?);

    let timestamp = Arc::new(Column::new("timestamp", 0)) as Arc<dyn PhysicalExpr>;
    let ms = |v: i64| lit(ScalarValue::TimestampMillisecond(Some(v), Some(UTC.into())));
    let mut predicate: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
        Arc::new(BinaryExpr::new(
            timestamp.clone(),
            Operator::GtEq,
            ms(start),
        )),
        Operator::And,
        Arc::new(BinaryExpr::new(timestamp, Operator::Lt, ms(cut))),
    ));
    if start == i64::MIN {
        predicate = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("timestamp", 0)),
            Operator::Lt,
            ms(cut),
        ));
    }
    // The time range prunes files, row groups and pages; the filter above the scan applies it
    // exactly, with the re-send exclusion, on the decoded columns.
    let mut pruning = predicate.clone();
    if exclude_resends {
        let list = excluded_hashes
            .iter()
            .map(|h| lit(ScalarValue::UInt64(Some(*h))))
            .collect();
        // Decoded right after the timestamp.
        let hash = Arc::new(Column::new(HASH_COLUMN, 1)) as Arc<dyn PhysicalExpr>;
        let not_resent = in_list(hash, list, &true, &decoded_schema)?;
        predicate = Arc::new(BinaryExpr::new(predicate, Operator::And, not_resent));
    }
    // Series pruning only (the query's own filter is re-applied above the scan), and only when
    // every file's series column was computed under the metric's current keys.
    let same_generation = files
        .iter()
        .all(|f| f.series_generation == spec.model.series_generation);
    if let Some(series) = spec.cold_series.as_ref().filter(|_| same_generation) {
        let list = series
            .iter()
            .map(|h| lit(ScalarValue::UInt64(Some(*h))))
            .collect();
        let column = Arc::new(Column::new(SERIES_COLUMN, 1)) as Arc<dyn PhysicalExpr>;
        let series_in = in_list(column, list, &false, &file_schema)?;
        pruning = Arc::new(BinaryExpr::new(pruning, Operator::And, series_in));
    }

    let source = ParquetSource::new(file_schema.clone())
        .with_predicate(pruning)
        .with_enable_page_index(true);
    // Two groups so both cores decode when there are several files.
    let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(), Vec::new()];
    for (i, file) in files.iter().enumerate() {
        groups[i % 2].push(PartitionedFile::new(file.path.clone(), file.bytes));
    }
    let groups: Vec<FileGroup> = groups
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(FileGroup::new)
        .collect();
    let config = FileScanConfigBuilder::new(access.url.clone(), Arc::new(source))
        .with_file_groups(groups)
        .with_projection_indices(Some(decoded))?
        .build();
    let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
    let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, scan)?);
    Ok(Arc::new(ColdRecombineExec::new(spec.clone(), filtered)))
}

/// Late-index rows, read at planning time, recombined into one in-memory batch.
fn late_branch(spec: &ScanSpec, rows: Vec<HotRow>) -> Result<Arc<dyn ExecutionPlan>> {
    let mut builder = RawBatchBuilder::new(&spec.columns, rows.len());
    for row in rows {
        builder.push(row.timestamp_ms, row.values);
    }
    let (batch, _failures) = builder
        .finish(&spec.schema, spec.timestamp_at, &spec.columns)
        .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
    let exec: Arc<dyn ExecutionPlan> =
        MemorySourceConfig::try_new_exec(&[vec![batch]], spec.schema.clone(), None)?;
    Ok(exec)
}

/// Turns raw cold columns (one per incoming name) into the table's columns.
#[derive(Debug)]
pub struct ColdRecombineExec {
    spec: ScanSpec,
    input: Arc<dyn ExecutionPlan>,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl ColdRecombineExec {
    fn new(spec: ScanSpec, input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(spec.schema.clone()),
            input.properties().output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        ColdRecombineExec {
            spec,
            input,
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for ColdRecombineExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ColdRecombineExec: fields=[")?;
        for (i, column) in self.spec.columns.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            let names: Vec<&str> = column.sources.iter().map(|s| s.name.as_str()).collect();
            write!(
                f,
                "{} <- ({}) as {}",
                column.name,
                names.join(", "),
                column.data_type
            )?;
        }
        write!(f, "]")
    }
}

impl ExecutionPlan for ColdRecombineExec {
    fn name(&self) -> &str {
        "ColdRecombineExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(ColdRecombineExec::new(self.spec.clone(), input))),
            _ => Err(DataFusionError::Internal(
                "ColdRecombineExec takes one child".to_string(),
            )),
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let cast_failures = MetricBuilder::new(&self.metrics).counter("cast_failures", partition);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let spec = self.spec.clone();
        let schema = spec.schema.clone();
        let stream = input.map(move |batch| {
            let batch = batch?;
            let rows = batch.num_rows();
            let mut arrays: Vec<ArrayRef> = Vec::with_capacity(spec.columns.len() + 1);
            let mut failures = 0;
            for column in &spec.columns {
                let sources: Vec<&ArrayRef> = column
                    .sources
                    .iter()
                    .filter_map(|s| batch.column_by_name(&s.name))
                    .collect();
                let (array, failed) = recombine(&sources, &column.data_type, rows)
                    .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
                failures += failed;
                arrays.push(array);
            }
            if let Some(at) = spec.timestamp_at {
                let timestamps = batch.column_by_name("timestamp").cloned().ok_or_else(|| {
                    DataFusionError::Internal("cold batch lacks timestamp".into())
                })?;
                arrays.insert(at.min(arrays.len()), timestamps);
            }
            cast_failures.add(failures);
            output_rows.add(rows);
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            Ok(RecordBatch::try_new_with_options(
                spec.schema.clone(),
                arrays,
                &options,
            )?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// The chosen plan's branches, run as one union; EXPLAIN shows the choice and alternatives.
#[derive(Debug)]
pub struct FederatedScanExec {
    metric: String,
    choice: PlanChoice,
    branches: Vec<Arc<dyn ExecutionPlan>>,
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
}

impl FederatedScanExec {
    fn new(
        schema: SchemaRef,
        metric: String,
        choice: PlanChoice,
        branches: Vec<Arc<dyn ExecutionPlan>>,
        limit: Option<usize>,
    ) -> Self {
        let partitions = branches
            .iter()
            .map(|b| b.properties().output_partitioning().partition_count())
            .sum::<usize>()
            .max(1);
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        FederatedScanExec {
            metric,
            choice,
            branches,
            limit,
            properties: Arc::new(properties),
        }
    }

    pub fn choice(&self) -> &PlanChoice {
        &self.choice
    }
}

impl DisplayAs for FederatedScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let choice = &self.choice;
        write!(
            f,
            "FederatedScanExec: metric={}, watermark={}, chosen=plan {} (cold+late before {}, hot from there), late_rows={}, plans=[",
            self.metric,
            format_ms(choice.watermark_ms),
            choice.chosen + 1,
            choice
                .candidates
                .get(choice.chosen)
                .map_or("-".to_string(), |c| show_cut(c.cut_ms)),
            choice.late_rows,
        )?;
        for (i, candidate) in choice.candidates.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(
                f,
                "plan {}: cut={} cold_files={} cold_rows~{:.0} cost={:.0}",
                i + 1,
                show_cut(candidate.cut_ms),
                candidate.cold_files,
                candidate.cold_rows,
                candidate.cost
            )?;
        }
        write!(f, "]")?;
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for FederatedScanExec {
    fn name(&self) -> &str {
        "FederatedScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.branches.iter().collect()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != self.branches.len() {
            return Err(DataFusionError::Internal(
                "FederatedScanExec: wrong number of children".to_string(),
            ));
        }
        Ok(Arc::new(FederatedScanExec::new(
            self.properties.eq_properties.schema().clone(),
            self.metric.clone(),
            self.choice.clone(),
            children,
            self.limit,
        )))
    }

    fn execute(
        &self,
        mut partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        for branch in &self.branches {
            let count = branch.properties().output_partitioning().partition_count();
            if partition < count {
                return branch.execute(partition, context);
            }
            partition -= count;
        }
        // No branch at all (empty range): one empty partition.
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.properties.eq_properties.schema().clone(),
            futures::stream::empty(),
        )))
    }
}
