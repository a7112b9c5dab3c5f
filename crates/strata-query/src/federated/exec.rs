//! The two execution plans of a federated scan: [`ColdRecombineExec`] (raw cold columns ->
//! the table's columns) and [`FederatedScanExec`] (the chosen plan's branches as one union, and
//! what EXPLAIN shows about the choice).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::StreamExt;
use strata_format::cold_file::TIMESTAMP_COLUMN;
use strata_format::model::Conversion;
use strata_format::recombine::recombine_sources;

use super::cost::PlanChoice;
use crate::scan::{format_ms, ScanSpec};

/// Turns raw cold columns (one per incoming name) into the table's columns.
#[derive(Debug)]
pub struct ColdRecombineExec {
    spec: ScanSpec,
    input: Arc<dyn ExecutionPlan>,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl ColdRecombineExec {
    pub(super) fn new(spec: ScanSpec, input: Arc<dyn ExecutionPlan>) -> Self {
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
            write!(f, "{}", column.describe())?;
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
            let (batch, failures) = recombine_batch(&spec, &batch?)?;
            cast_failures.add(failures);
            output_rows.add(batch.num_rows());
            Ok(batch)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// One batch of raw cold columns as the table's columns, and how many values failed their cast.
fn recombine_batch(spec: &ScanSpec, batch: &RecordBatch) -> Result<(RecordBatch, usize)> {
    let rows = batch.num_rows();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(spec.columns.len() + 1);
    let mut failures = 0;
    for column in &spec.columns {
        let sources: Vec<(&ArrayRef, Option<&Conversion>)> = column
            .sources
            .iter()
            .filter_map(|s| Some((batch.column_by_name(&s.name)?, s.conversion.as_ref())))
            .collect();
        let (array, failed) = recombine_sources(&sources, &column.data_type, rows)
            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
        failures += failed;
        arrays.push(array);
    }
    if let Some(at) = spec.timestamp_at {
        let timestamps = batch
            .column_by_name(TIMESTAMP_COLUMN)
            .cloned()
            .ok_or_else(|| DataFusionError::Internal("cold batch lacks timestamp".into()))?;
        arrays.insert(at.min(arrays.len()), timestamps);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    let batch = RecordBatch::try_new_with_options(spec.schema.clone(), arrays, &options)?;
    Ok((batch, failures))
}

fn show_cut(ms: i64) -> String {
    if ms == i64::MIN {
        "-inf".to_string()
    } else {
        format_ms(ms)
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
    pub(super) fn new(
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
