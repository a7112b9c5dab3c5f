//! `MetricScanExec`: reads one metric's rows from the hot tier and recombines them into the
//! columns SQL sees (see `strata_format::recombine`).
//!
//! The fjall iteration is synchronous, so it runs on a blocking thread and hands batches of
//! `batch_size` rows through a bounded channel: nothing is materialized whole, and dropping the
//! stream (query finished, cancelled or timed out) stops the scan at its next batch.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use strata_core::TenantId;
use strata_format::model::{ColumnSpec, MetricModel};
use strata_format::recombine::RawBatchBuilder;
use strata_storage::{HotStore, ScanRequest};

use crate::error::BackendFailure;
use crate::pushdown::TimeRange;

/// Batches waiting in the channel between the scan thread and the consumer.
const CHANNEL_BATCHES: usize = 2;
/// How often (in rows) the scan thread checks whether the consumer is gone, so a selective scan
/// that rarely fills a batch still stops promptly.
const CANCEL_CHECK_ROWS: usize = 4096;

/// What one scan reads, decided at planning time.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    pub tenant: TenantId,
    pub model: Arc<MetricModel>,
    /// Output columns after `timestamp` (already projected).
    pub columns: Vec<ColumnSpec>,
    /// Position of `timestamp` in the output, if projected.
    pub timestamp_at: Option<usize>,
    pub schema: SchemaRef,
    pub time: TimeRange,
    /// The query's filters on fields, re-applied above the scan; the cold branch pushes those it
    /// can translate into its Parquet scan (see `federated::cold_scan::file_predicate`).
    pub file_filters: Vec<datafusion::logical_expr::Expr>,
    /// Series hashes to seek; `None` scans every series of each hour bucket.
    pub series: Option<Vec<u64>>,
    /// Series hashes of the query under the current keys, for pruning cold files hashed under
    /// the current series generation (set even when hot rows are not all hashed that way).
    pub cold_series: Option<Vec<u64>>,
    pub limit: Option<usize>,
    /// `strata_raw`: raw text columns, shown differently in EXPLAIN.
    pub raw: bool,
    /// How many shards a scan of every series is cut into, each read by its own thread (the
    /// session's target partitions; see [`shard_count`]).
    pub target_partitions: usize,
    /// Leave out hot rows committed after this sequence number: a live query's first answer
    /// stops where its tail starts (`TenantSession` opened with `QueryEngine::session_upto`).
    pub upto_seq: Option<u64>,
}

#[derive(Debug)]
pub struct MetricScanExec {
    spec: ScanSpec,
    hot: Arc<HotStore>,
    /// Week partitions the time range touches, for EXPLAIN.
    partitions: Vec<String>,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl MetricScanExec {
    pub fn new(spec: ScanSpec, hot: Arc<HotStore>) -> Self {
        let (start, end) = bounds(&spec.time);
        let partitions = hot
            .partitions_for(start, end)
            .into_iter()
            .map(|p| p.name)
            .collect();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(spec.schema.clone()),
            Partitioning::UnknownPartitioning(shard_count(&spec)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        MetricScanExec {
            spec,
            hot,
            partitions,
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
        }
    }

    pub fn spec(&self) -> &ScanSpec {
        &self.spec
    }

    /// Output partitions, each reading one shard of the series (see [`shard_count`]).
    fn shards(&self) -> usize {
        self.properties.output_partitioning().partition_count()
    }
}

/// How many partitions a scan reads in parallel: a scan of every series is cut into
/// `target_partitions` shards of the series hashes (one thread each; a `count(*)` of 50M hot
/// rows took 28 s on one thread). Series seeks and scans with a limit stay whole: they read few
/// rows.
fn shard_count(spec: &ScanSpec) -> usize {
    if spec.series.is_some() || spec.limit.is_some() {
        1
    } else {
        spec.target_partitions.max(1)
    }
}

fn bounds(time: &TimeRange) -> (i64, i64) {
    (
        time.start_ms.unwrap_or(i64::MIN),
        time.end_ms.unwrap_or(i64::MAX),
    )
}

pub(crate) fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ms.to_string())
}

impl DisplayAs for MetricScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let spec = &self.spec;
        write!(
            f,
            "MetricScanExec: metric={}{}, partitions=[{}], time=[{}, {}), series=",
            spec.model.name,
            if spec.raw { " (raw)" } else { "" },
            self.partitions.join(", "),
            spec.time.start_ms.map_or("-inf".to_string(), format_ms),
            spec.time.end_ms.map_or("+inf".to_string(), format_ms),
        )?;
        match &spec.series {
            None => write!(f, "all (full bucket scan)")?,
            Some(hashes) => write!(f, "seek({} series)", hashes.len())?,
        }
        write!(f, ", fields=[")?;
        for (i, column) in spec.columns.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{}", column.describe())?;
        }
        write!(f, "]")?;
        if let Some(limit) = spec.limit {
            write!(f, ", limit={limit}")?;
        }
        if self.shards() > 1 {
            write!(f, ", shards={}", self.shards())?;
        }
        Ok(())
    }
}

impl ExecutionPlan for MetricScanExec {
    fn name(&self) -> &str {
        "MetricScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
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
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "MetricScanExec has no children".to_string(),
            ))
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
        let batch_size = context.session_config().batch_size().max(1);
        if partition >= self.shards() {
            return Err(DataFusionError::Internal(format!(
                "MetricScanExec has {} partitions, asked for {partition}",
                self.shards()
            )));
        }
        let cast_failures = MetricBuilder::new(&self.metrics).counter("cast_failures", partition);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| DataFusionError::Execution(format!("no async runtime: {e}")))?;
        let (sender, mut receiver) =
            tokio::sync::mpsc::channel::<Result<RecordBatch>>(CHANNEL_BATCHES);
        let worker = ScanWorker {
            spec: self.spec.clone(),
            shard: partition,
            shards: self.shards(),
            hot: self.hot.clone(),
            batch_size,
            sender,
            cast_failures,
            output_rows,
        };
        runtime.spawn_blocking(move || worker.run());
        let stream = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.spec.schema.clone(),
            stream,
        )))
    }
}

/// The blocking half of one scan: reads the hot tier and sends recombined batches until the
/// rows, the limit or the consumer run out.
struct ScanWorker {
    spec: ScanSpec,
    /// Which shard of the series this partition reads, of how many.
    shard: usize,
    shards: usize,
    hot: Arc<HotStore>,
    batch_size: usize,
    sender: tokio::sync::mpsc::Sender<Result<RecordBatch>>,
    cast_failures: Count,
    output_rows: Count,
}

impl ScanWorker {
    fn run(self) {
        let spec = &self.spec;
        let mut builder = RawBatchBuilder::new(&spec.columns, self.batch_size);
        // `count(*)` and `timestamp`-only queries read no values: rows skip decoding then.
        let names = builder.needed_names();
        let (start_ms, end_ms) = bounds(&spec.time);
        let request = ScanRequest {
            tenant: spec.tenant,
            metric: spec.model.id,
            start_ms,
            end_ms,
            series: spec.series.clone(),
            names: Some(names.clone()),
        };
        let mut scan = match self.hot.scan(&request) {
            Ok(scan) => scan.shard(self.shard, self.shards),
            Err(e) => {
                self.send(Err(backend_error(e)));
                return;
            }
        };
        let mut remaining = spec.limit.unwrap_or(usize::MAX);
        let mut since_check = 0;
        while let Some(row) = scan.next_raw() {
            if remaining == 0 {
                break;
            }
            let decoded = row.and_then(|row| {
                if names.is_empty() && spec.upto_seq.is_none() {
                    Ok((row.timestamp_ms(), Vec::new(), 0))
                } else {
                    row.to_row(Some(&names))
                        .map(|r| (r.timestamp_ms, r.values, r.seq))
                }
            });
            let (timestamp_ms, values, seq) = match decoded {
                Ok(decoded) => decoded,
                Err(e) => {
                    self.send(Err(backend_error(e)));
                    return;
                }
            };
            if spec.upto_seq.is_some_and(|upto| seq > upto) {
                continue;
            }
            builder.push(timestamp_ms, values);
            remaining -= 1;
            since_check += 1;
            if builder.len() >= self.batch_size {
                since_check = 0;
                if !self.send(self.flush(&mut builder)) {
                    return;
                }
            } else if since_check >= CANCEL_CHECK_ROWS {
                since_check = 0;
                if self.sender.is_closed() {
                    return;
                }
            }
        }
        if !builder.is_empty() {
            self.send(self.flush(&mut builder));
        }
    }

    /// False once the consumer is gone.
    fn send(&self, batch: Result<RecordBatch>) -> bool {
        self.sender.blocking_send(batch).is_ok()
    }

    fn flush(&self, builder: &mut RawBatchBuilder) -> Result<RecordBatch> {
        let spec = &self.spec;
        let (batch, failures) = builder
            .finish(&spec.schema, spec.timestamp_at, &spec.columns)
            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
        self.cast_failures.add(failures);
        self.output_rows.add(batch.num_rows());
        Ok(batch)
    }
}

fn backend_error(error: strata_storage::StorageError) -> DataFusionError {
    DataFusionError::External(Box::new(BackendFailure(error.to_string())))
}
