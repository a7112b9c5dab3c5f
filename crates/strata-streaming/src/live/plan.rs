//! What a live query's plan is: a tail (projection and filter over one metric) or anything
//! else (re-run), and a tail's plan with its metric scan replaced by freshly committed rows.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::TableReference;
use datafusion::datasource::provider_as_source;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{LogicalPlan, TableScanBuilder};
use strata_catalog::TenantSchema;
use strata_core::MetricId;
use strata_query::rewrite::METRIC_SCHEMA;

/// How a live query follows new data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// Only projections and filters over one metric's scan: each committed batch of that
    /// metric is run through the plan on its own.
    Tail {
        table: TableReference,
        metric: MetricId,
    },
    /// Anything else: re-run when one of `metrics` changes (every committed batch of the
    /// tenant when the plan reads no metric, such as `strata.*` tables).
    Rerun { metrics: HashSet<MetricId> },
}

/// Classifies `plan` (as [`strata_query::TenantSession::plan`] returns it, before
/// optimization) against the snapshot it was planned with.
pub(crate) fn shape_of(plan: &LogicalPlan, schema: &TenantSchema) -> Shape {
    let mut scans: Vec<TableReference> = Vec::new();
    let mut only_row_wise = true;
    // The closure never fails; `apply` only returns DataFusion's Result for its signature.
    let _ = plan.apply(|node| {
        match node {
            LogicalPlan::TableScan(scan) => scans.push(scan.table_name.clone()),
            LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => {
            }
            _ => only_row_wise = false,
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let metrics: HashSet<MetricId> = scans
        .iter()
        .filter_map(|table| metric_of(table, schema))
        .collect();
    if let ([table], true) = (scans.as_slice(), only_row_wise) {
        if let Some(metric) = metric_of(table, schema) {
            return Shape::Tail {
                table: table.clone(),
                metric,
            };
        }
    }
    Shape::Rerun { metrics }
}

/// The metric a scanned table is (its display name or an alias in schema `public`), if any.
pub(crate) fn metric_of(table: &TableReference, schema: &TenantSchema) -> Option<MetricId> {
    if table.schema().is_some_and(|s| s != METRIC_SCHEMA) {
        return None;
    }
    schema.metric(table.table()).map(|metric| metric.id)
}

/// `plan` with the scan of `table` reading `rows` instead of storage. `rows` must have the
/// scanned table's schema (the metric's SQL shape); projections and filters stay as planned,
/// and the optimizer pushes nothing into the in-memory table that it would not re-check.
pub(crate) fn over_rows(
    plan: &LogicalPlan,
    table: &TableReference,
    rows: RecordBatch,
) -> DfResult<LogicalPlan> {
    let source = provider_as_source(Arc::new(MemTable::try_new(
        rows.schema(),
        vec![vec![rows]],
    )?));
    let replaced = plan.clone().transform_up(|node| match node {
        LogicalPlan::TableScan(scan) if scan.table_name == *table => {
            let scan = TableScanBuilder::new(scan.table_name, source.clone())
                .with_projection(scan.projection)
                .with_filters(scan.filters)
                .with_fetch(scan.fetch)
                .build()?;
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(replaced.data)
}
