//! Incremental `GROUP BY` for live queries: a query that groups one metric's rows (by a time
//! bucket and keys, or by anything else) with count, sum, min, max and avg keeps, per group,
//! partial aggregates that each committed batch is merged into; only the groups a batch
//! changed are sent. avg is kept as a sum and a count, so it stays exact.
//!
//! Accepted shape (before optimization): an optional `Sort`, an optional `Projection`, then an
//! `Aggregate` without grouping sets whose aggregates are plain (no DISTINCT, FILTER or
//! ORDER BY), over projections and filters of one metric's scan.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DFSchemaRef, ScalarValue, TableReference};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::execution_props::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use strata_catalog::TenantSchema;
use strata_core::MetricId;

use super::plan::{shape_of, Shape};

/// Most groups a live query keeps; a larger answer is re-run instead.
pub(crate) const MAX_GROUPS: usize = 100_000;

/// How one of the query's aggregates is kept: indices into the partial columns.
#[derive(Debug, Clone, Copy)]
enum Kept {
    Count(usize),
    Sum(usize),
    Min(usize),
    Max(usize),
    Avg { sum: usize, count: usize },
}

/// A grouped query kept incrementally.
pub(crate) struct Buckets {
    /// The query's `Aggregate` with each avg split into sum and count: run over all rows for
    /// the first state, then over each committed batch's new rows.
    pub(crate) partial: LogicalPlan,
    pub(crate) table: TableReference,
    pub(crate) metric: MetricId,
    group_columns: usize,
    kept: Vec<Kept>,
    /// The query's own `Aggregate` output, which `projection` reads.
    aggregate_schema: DFSchemaRef,
    projection: Vec<Arc<dyn PhysicalExpr>>,
    pub(crate) output: SchemaRef,
    state: HashMap<Vec<ScalarValue>, Vec<ScalarValue>>,
}

impl Buckets {
    /// `None` when the plan is not a grouped query this module can keep.
    pub(crate) fn of(plan: &LogicalPlan, schema: &TenantSchema) -> Option<Buckets> {
        let mut node = plan;
        if let LogicalPlan::Sort(sort) = node {
            node = sort.input.as_ref();
        }
        let mut projection_exprs = None;
        if let LogicalPlan::Projection(projection) = node {
            projection_exprs = Some(projection.expr.clone());
            node = projection.input.as_ref();
        }
        let LogicalPlan::Aggregate(aggregate) = node else {
            return None;
        };
        let Shape::Tail { table, metric } = shape_of(&aggregate.input, schema) else {
            return None;
        };
        if aggregate
            .group_expr
            .iter()
            .any(|e| matches!(e, Expr::GroupingSet(_)))
        {
            return None;
        }
        let (partial_exprs, kept) = split(&aggregate.aggr_expr)?;
        let partial = Aggregate::try_new(
            aggregate.input.clone(),
            aggregate.group_expr.clone(),
            partial_exprs,
        )
        .ok()?;
        let exprs = projection_exprs.unwrap_or_else(|| {
            aggregate
                .schema
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect()
        });
        let props = ExecutionProps::new();
        let planning = PhysicalPlanningContext::default();
        let projection = exprs
            .iter()
            .map(|e| create_physical_expr(e, &aggregate.schema, &props, &planning))
            .collect::<DfResult<Vec<_>>>()
            .ok()?;
        Some(Buckets {
            partial: LogicalPlan::Aggregate(partial),
            table,
            metric,
            group_columns: aggregate.group_expr.len(),
            kept,
            aggregate_schema: aggregate.schema.clone(),
            projection,
            output: Arc::new(plan.schema().as_arrow().clone()),
            state: HashMap::new(),
        })
    }

    /// Merges a run of the partial plan over a batch's new rows and returns the changed
    /// groups as the query's output rows.
    pub(crate) fn merge(&mut self, batches: &[RecordBatch]) -> DfResult<Option<RecordBatch>> {
        let mut changed = self.absorb(batches)?;
        if changed.is_empty() {
            return Ok(None);
        }
        changed.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        changed.dedup();
        self.rows(&changed).map(Some)
    }

    /// Takes the partial plan's answer over all rows as the first state.
    pub(crate) fn load(&mut self, batches: &[RecordBatch]) -> DfResult<()> {
        self.absorb(batches).map(|_| ())
    }

    /// Merges partial rows into the state; returns the groups they touched.
    fn absorb(&mut self, batches: &[RecordBatch]) -> DfResult<Vec<Vec<ScalarValue>>> {
        let mut changed: Vec<Vec<ScalarValue>> = Vec::new();
        for batch in batches {
            for row in 0..batch.num_rows() {
                let mut values = (0..batch.num_columns())
                    .map(|c| ScalarValue::try_from_array(batch.column(c), row))
                    .collect::<DfResult<Vec<_>>>()?;
                let partials = values.split_off(self.group_columns);
                match self.state.get_mut(&values) {
                    Some(kept) => merge_row(&self.kept, kept, partials)?,
                    None => {
                        if self.state.len() >= MAX_GROUPS {
                            return Err(DataFusionError::ResourcesExhausted(format!(
                                "the live query keeps more than {MAX_GROUPS} groups"
                            )));
                        }
                        self.state.insert(values.clone(), partials);
                    }
                }
                changed.push(values);
            }
        }
        Ok(changed)
    }

    /// The output rows of `groups`, from their kept partials.
    fn rows(&self, groups: &[Vec<ScalarValue>]) -> DfResult<RecordBatch> {
        let fields = self.aggregate_schema.fields();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.len());
        for at in 0..self.group_columns {
            columns.push(ScalarValue::iter_to_array(
                groups.iter().map(|g| g[at].clone()),
            )?);
        }
        for (i, kept) in self.kept.iter().enumerate() {
            let data_type = fields[self.group_columns + i].data_type();
            let values = groups
                .iter()
                .map(|g| final_value(*kept, &self.state[g], data_type))
                .collect::<DfResult<Vec<_>>>()?;
            columns.push(ScalarValue::iter_to_array(values)?);
        }
        let aggregate =
            RecordBatch::try_new(Arc::new(self.aggregate_schema.as_arrow().clone()), columns)?;
        let output = self
            .projection
            .iter()
            .map(|e| e.evaluate(&aggregate)?.into_array(aggregate.num_rows()))
            .collect::<DfResult<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.output.clone(), output)?)
    }
}

/// The partial aggregates for `aggr_expr` (avg becomes sum and count) and how each original
/// one is kept; `None` if one cannot be kept.
fn split(aggr_expr: &[Expr]) -> Option<(Vec<Expr>, Vec<Kept>)> {
    let mut partial = Vec::new();
    let mut kept = Vec::new();
    for expr in aggr_expr {
        let Expr::AggregateFunction(function) = unaliased(expr) else {
            return None;
        };
        let params = &function.params;
        if params.distinct
            || params.filter.is_some()
            || !params.order_by.is_empty()
            || params.args.len() != 1
        {
            return None;
        }
        let next = partial.len();
        let name = format!("__strata_partial_{next}");
        match function.func.name() {
            "avg" => {
                let arg = params.args[0].clone();
                partial.push(sum(arg.clone()).alias(format!("{name}_sum")));
                partial.push(count(arg).alias(format!("{name}_count")));
                kept.push(Kept::Avg {
                    sum: next,
                    count: next + 1,
                });
                continue;
            }
            "count" => kept.push(Kept::Count(next)),
            "sum" => kept.push(Kept::Sum(next)),
            "min" => kept.push(Kept::Min(next)),
            "max" => kept.push(Kept::Max(next)),
            _ => return None,
        }
        partial.push(unaliased(expr).clone().alias(name));
    }
    Some((partial, kept))
}

fn unaliased(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unaliased(&alias.expr),
        other => other,
    }
}

/// Merges a group's new partials into its kept ones.
fn merge_row(kept: &[Kept], state: &mut [ScalarValue], new: Vec<ScalarValue>) -> DfResult<()> {
    for how in kept {
        match *how {
            Kept::Count(i) | Kept::Sum(i) => state[i] = add(&state[i], &new[i])?,
            Kept::Avg { sum, count } => {
                state[sum] = add(&state[sum], &new[sum])?;
                state[count] = add(&state[count], &new[count])?;
            }
            Kept::Min(i) => state[i] = pick(&state[i], &new[i], std::cmp::Ordering::Less),
            Kept::Max(i) => state[i] = pick(&state[i], &new[i], std::cmp::Ordering::Greater),
        }
    }
    Ok(())
}

/// SQL addition of partial sums and counts: NULL (no value yet) adds nothing.
fn add(old: &ScalarValue, new: &ScalarValue) -> DfResult<ScalarValue> {
    match (old.is_null(), new.is_null()) {
        (_, true) => Ok(old.clone()),
        (true, false) => Ok(new.clone()),
        (false, false) => old.add(new),
    }
}

/// The lesser (`Less`) or greater (`Greater`) of two values, ignoring NULL.
fn pick(old: &ScalarValue, new: &ScalarValue, wanted: std::cmp::Ordering) -> ScalarValue {
    if new.is_null() {
        return old.clone();
    }
    if old.is_null() || new.partial_cmp(old) == Some(wanted) {
        return new.clone();
    }
    old.clone()
}

/// The query's aggregate value from its kept partials, in the query's type.
fn final_value(kept: Kept, state: &[ScalarValue], data_type: &DataType) -> DfResult<ScalarValue> {
    let value = match kept {
        Kept::Count(i) | Kept::Sum(i) | Kept::Min(i) | Kept::Max(i) => state[i].clone(),
        Kept::Avg { sum, count } => {
            let count = match &state[count] {
                ScalarValue::Int64(Some(n)) if *n > 0 => *n as f64,
                _ => return ScalarValue::try_from(data_type),
            };
            let total = state[sum].cast_to(&DataType::Float64)?;
            match total {
                ScalarValue::Float64(Some(total)) => ScalarValue::Float64(Some(total / count)),
                _ => return ScalarValue::try_from(data_type),
            }
        }
    };
    value.cast_to(data_type)
}
