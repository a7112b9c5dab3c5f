//! Query routing: an aggregate over a metric that a rollup answers exactly is read from the
//! rollup instead of the raw rows (`EXPLAIN` shows the rollup's table scan).
//!
//! A rollup `R` answers a query's aggregate `Q` over the same metric when:
//! - every filter conjunct of `R` is one of `Q`'s, and each other conjunct of `Q` reads only
//!   `R`'s group keys, or compares `timestamp` (`>=`, `<`) with a literal on a bucket boundary
//!   of `R` (so whole buckets are kept or dropped);
//! - `Q` groups by a subset of `R`'s keys and by at most one time bucket that is `R`'s or a
//!   coarser one made of whole buckets of `R` (width a multiple, origins aligned), or none;
//! - with the same buckets and keys, each aggregate of `Q` is one of `R`'s columns; otherwise
//!   each is re-aggregated from them: `count` and `sum` as sums, `min`, `max`, and `avg(x)` as
//!   `sum(sum(x)) / sum(count(x))` (so `R` must hold both).
//!
//! A rollup's rows are its SQL's answer over raw data at every moment (`mod.rs`), so the routed
//! answer is the raw answer; floating-point sums may differ in their last bits, as sums in
//! another order do. Rollups with a version pending, a maintenance error or a source metric
//! changed since their served version was built, and sources under a retention (the tenant's or
//! their own: the rollup outlives their raw rows), are never used.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchemaRef, Result as DfResult, ScalarValue};
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    cast, col, lit, Aggregate, BinaryExpr, Expr, LogicalPlan, LogicalPlanBuilder, Operator,
    TableScan,
};
use datafusion::prelude::{coalesce, nullif};
use strata_catalog::TenantSchema;
use strata_core::MetricId;
use strata_query::rollup_table::PlannedRollup;

use super::definition::{bucket_function, Bucketing, Definition, BUCKET_COLUMN};
use super::fingerprint;

/// What routing needs of one rollup, its expressions without table qualifiers.
struct Candidate {
    metric: MetricId,
    bucketing: Bucketing,
    filter: Vec<Expr>,
    /// Non-bucket group keys and the rollup columns holding them.
    keys: Vec<(Expr, String)>,
    /// Aggregates and the rollup columns holding them.
    aggregates: Vec<(Expr, String)>,
    scan: LogicalPlan,
}

/// `query` with every aggregate a rollup answers read from it.
pub(crate) fn route(
    query: LogicalPlan,
    rollups: &[PlannedRollup],
    schema: &TenantSchema,
) -> DfResult<LogicalPlan> {
    let candidates: Vec<Candidate> = rollups
        .iter()
        .filter_map(|rollup| Candidate::of(rollup, schema))
        .collect();
    if candidates.is_empty() {
        return Ok(query);
    }
    let routed = query.transform_up(|node| {
        let LogicalPlan::Aggregate(aggregate) = &node else {
            return Ok(Transformed::no(node));
        };
        for candidate in &candidates {
            if let Some(plan) = candidate.answer(aggregate, schema)? {
                return Ok(Transformed::yes(plan));
            }
        }
        Ok(Transformed::no(node))
    })?;
    if !routed.transformed {
        return Ok(routed.data);
    }
    // Parents keep the schemas they were planned with; the routed part reproduces its
    // aggregate's schema, and recomputing makes every parent agree with it exactly.
    Ok(routed
        .data
        .transform_up(|node| Ok(Transformed::yes(node.recompute_schema()?)))?
        .data)
}

impl Candidate {
    fn of(rollup: &PlannedRollup, schema: &TenantSchema) -> Option<Candidate> {
        let definition = Definition::of(&rollup.plan, schema).ok()?;
        let metric = schema.metric_by_id(definition.source)?;
        // Under a retention, queries over raw data stop at a floor the rollup's frozen buckets
        // reach below.
        let retained = metric.retention_days.is_some() || schema.cold_retention_days.is_some();
        if retained || fingerprint(metric) != rollup.rollup.source_fingerprint {
            return None;
        }
        let LogicalPlan::Projection(projection) = &rollup.plan else {
            return None;
        };
        let LogicalPlan::Aggregate(aggregate) = projection.input.as_ref() else {
            return None;
        };
        let (filter, _) = source_of(&aggregate.input)?;
        let mut keys = Vec::new();
        let mut aggregates = Vec::new();
        for (expr, field) in projection.expr.iter().zip(rollup.plan.schema().fields()) {
            let Expr::Column(output) = expr.clone().unalias_nested().data else {
                continue;
            };
            let Ok(index) = aggregate.schema.index_of_column(&output) else {
                continue;
            };
            let column = field.name().clone();
            let groups = aggregate.group_expr.len();
            if let Some(key) = aggregate.group_expr.get(index) {
                if column != BUCKET_COLUMN {
                    keys.push((unqualified(key), column));
                }
            } else if let Some(agg) = aggregate.aggr_expr.get(index - groups) {
                aggregates.push((unqualified(agg), column));
            }
        }
        Some(Candidate {
            metric: definition.source,
            bucketing: definition.bucketing,
            filter,
            keys,
            aggregates,
            scan: rollup.scan.clone(),
        })
    }

    /// The plan reading `query` from this rollup, or `None` when it does not answer it.
    fn answer(&self, query: &Aggregate, schema: &TenantSchema) -> DfResult<Option<LogicalPlan>> {
        let Some((conjuncts, scan)) = source_of(&query.input) else {
            return Ok(None);
        };
        let on_metric = crate::live::metric_of(&scan.table_name, schema);
        if on_metric != Some(self.metric) || query.group_expr.iter().any(is_grouping_set) {
            return Ok(None);
        }
        let Some(grouping) = self.grouping(query) else {
            return Ok(None);
        };
        let Some(filters) = self.filters(conjuncts) else {
            return Ok(None);
        };
        let builder = LogicalPlanBuilder::from(self.scan.clone());
        let builder = match conjunction(filters) {
            Some(predicate) => builder.filter(predicate)?,
            None => builder,
        };
        let same_groups =
            grouping.bucket == Some(self.bucketing) && grouping.keys.len() == self.keys.len();
        let plan = if same_groups {
            self.read_as_is(builder, query, &grouping)?
        } else {
            self.reaggregate(builder, query, &grouping)?
        };
        Ok(plan)
    }

    /// The query's groups in this rollup's terms: its bucketing, and per key the rollup column.
    fn grouping(&self, query: &Aggregate) -> Option<Grouping> {
        let mut bucket = None;
        let mut columns = Vec::new();
        let mut keys = Vec::new();
        for group in &query.group_expr {
            let group = unqualified(group);
            if let Some(column) = self.key_column(&group) {
                keys.push(column.clone());
                columns.push(GroupColumn::Key(column.clone()));
                continue;
            }
            let bucketing = bucket_function(&group).ok()?;
            let whole_buckets = bucketing.width_ms % self.bucketing.width_ms == 0
                && (bucketing.origin_ms - self.bucketing.origin_ms)
                    .rem_euclid(self.bucketing.width_ms)
                    == 0;
            if bucket.is_some() || !whole_buckets {
                return None;
            }
            bucket = Some(bucketing);
            columns.push(GroupColumn::Bucket(group));
        }
        keys.sort();
        keys.dedup();
        Some(Grouping {
            bucket,
            keys,
            columns,
        })
    }

    fn key_column(&self, expr: &Expr) -> Option<&String> {
        self.keys
            .iter()
            .find(|(key, _)| key == expr)
            .map(|(_, column)| column)
    }

    fn aggregate_column(&self, expr: &Expr) -> Option<&String> {
        self.aggregates
            .iter()
            .find(|(aggregate, _)| aggregate == expr)
            .map(|(_, column)| column)
    }

    /// The query's filter in this rollup's columns: `None` when a conjunct cannot be.
    fn filters(&self, conjuncts: Vec<Expr>) -> Option<Vec<Expr>> {
        if !self.filter.iter().all(|own| conjuncts.contains(own)) {
            return None;
        }
        conjuncts
            .into_iter()
            .filter(|conjunct| !self.filter.contains(conjunct))
            .map(|conjunct| self.on_rollup_columns(conjunct))
            .collect()
    }

    /// A conjunct over group keys, or a `timestamp` bound on a bucket boundary, rewritten to
    /// read the rollup's columns.
    fn on_rollup_columns(&self, conjunct: Expr) -> Option<Expr> {
        if let Some(bound) = self.bucket_bound(&conjunct) {
            return Some(bound);
        }
        let mut routable = true;
        let rewritten = conjunct
            .transform_up(|expr| match &expr {
                Expr::Column(_) => match self.key_column(&expr) {
                    Some(column) => Ok(Transformed::yes(rollup_column(column))),
                    None => {
                        routable = false;
                        Ok(Transformed::no(expr))
                    }
                },
                _ => Ok(Transformed::no(expr)),
            })
            .ok()?
            .data;
        routable.then_some(rewritten)
    }

    /// `timestamp >= t` or `timestamp < t` (either side) with `t` a bucket start.
    fn bucket_bound(&self, conjunct: &Expr) -> Option<Expr> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = conjunct else {
            return None;
        };
        let (op, literal) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), literal @ Expr::Literal(..)) if c.name == BUCKET_COLUMN => {
                (*op, literal)
            }
            (literal @ Expr::Literal(..), Expr::Column(c)) if c.name == BUCKET_COLUMN => {
                (op.swap()?, literal)
            }
            _ => return None,
        };
        if !matches!(op, Operator::GtEq | Operator::Lt) {
            return None;
        }
        let ms = super::definition::literal_ms(literal)?;
        if self.bucketing.start_of(ms) != ms {
            return None;
        }
        Some(Expr::BinaryExpr(BinaryExpr::new(
            Box::new(rollup_column(BUCKET_COLUMN)),
            op,
            Box::new(literal.clone()),
        )))
    }

    /// Same buckets and keys: the rollup's rows are the query's groups.
    fn read_as_is(
        &self,
        builder: LogicalPlanBuilder,
        query: &Aggregate,
        grouping: &Grouping,
    ) -> DfResult<Option<LogicalPlan>> {
        let mut exprs = Vec::new();
        for column in &grouping.columns {
            exprs.push(match column {
                GroupColumn::Key(name) => rollup_column(name),
                GroupColumn::Bucket(_) => rollup_column(BUCKET_COLUMN),
            });
        }
        for aggregate in &query.aggr_expr {
            let Some(column) = self.aggregate_column(&unqualified(aggregate)) else {
                return Ok(None);
            };
            exprs.push(rollup_column(column));
        }
        Ok(Some(as_schema(builder, exprs, &query.schema)?))
    }

    /// Coarser buckets or fewer keys: the rollup's rows re-aggregated.
    fn reaggregate(
        &self,
        builder: LogicalPlanBuilder,
        query: &Aggregate,
        grouping: &Grouping,
    ) -> DfResult<Option<LogicalPlan>> {
        let mut groups = Vec::new();
        for (index, column) in grouping.columns.iter().enumerate() {
            let expr = match column {
                GroupColumn::Key(name) => rollup_column(name),
                GroupColumn::Bucket(bucket) => on_rollup_timestamp(bucket.clone())?,
            };
            groups.push(expr.alias(slot(index)));
        }
        let mut aggregates = Vec::new();
        for (index, aggregate) in query.aggr_expr.iter().enumerate() {
            let Some(expr) = self.reaggregated(&unqualified(aggregate)) else {
                return Ok(None);
            };
            aggregates.push(expr.alias(slot(groups.len() + index)));
        }
        let count = groups.len() + aggregates.len();
        let builder = builder.aggregate(groups, aggregates)?;
        let exprs = (0..count).map(|index| col(slot(index))).collect();
        Ok(Some(as_schema(builder, exprs, &query.schema)?))
    }

    /// One aggregate of the query from the rollup's columns, when it decomposes.
    fn reaggregated(&self, aggregate: &Expr) -> Option<Expr> {
        let Expr::AggregateFunction(AggregateFunction { func, params }) = aggregate else {
            return None;
        };
        if params.distinct || params.filter.is_some() || !params.order_by.is_empty() {
            return None;
        }
        let from = |expr: &Expr| self.aggregate_column(expr).map(|c| rollup_column(c));
        match func.name() {
            "count" => Some(coalesce(vec![sum(from(aggregate)?), lit(0_i64)])),
            "sum" => Some(sum(from(aggregate)?)),
            "min" => Some(min(from(aggregate)?)),
            "max" => Some(max(from(aggregate)?)),
            "avg" => {
                let of = |name: &str| self.named_aggregate(name, &params.args);
                let total = cast(
                    sum(of("sum")?),
                    datafusion::arrow::datatypes::DataType::Float64,
                );
                let count = cast(
                    sum(of("count")?),
                    datafusion::arrow::datatypes::DataType::Float64,
                );
                Some(total / nullif(count, lit(ScalarValue::Float64(Some(0.0)))))
            }
            _ => None,
        }
    }

    /// The rollup column of `name(args)` (e.g. `sum(x)` for an `avg(x)`).
    fn named_aggregate(&self, name: &str, args: &[Expr]) -> Option<Expr> {
        self.aggregates
            .iter()
            .find_map(|(expr, column)| match expr {
                Expr::AggregateFunction(AggregateFunction { func, params })
                    if func.name() == name
                        && params.args == args
                        && !params.distinct
                        && params.filter.is_none()
                        && params.order_by.is_empty() =>
                {
                    Some(rollup_column(column))
                }
                _ => None,
            })
    }
}

struct Grouping {
    /// The query's time bucket; `None` when it groups by keys only.
    bucket: Option<Bucketing>,
    /// The rollup columns of the query's keys, sorted.
    keys: Vec<String>,
    /// The query's group expressions in order.
    columns: Vec<GroupColumn>,
}

enum GroupColumn {
    /// A group key, read from this rollup column.
    Key(String),
    /// The query's bucket expression (unqualified).
    Bucket(Expr),
}

/// The filter conjuncts (unqualified) and the scan of a `[Filter ->] [alias ->] scan` input.
fn source_of(input: &LogicalPlan) -> Option<(Vec<Expr>, &TableScan)> {
    match input {
        LogicalPlan::TableScan(scan) if scan.filters.is_empty() && scan.fetch.is_none() => {
            Some((Vec::new(), scan))
        }
        LogicalPlan::SubqueryAlias(alias) => source_of(&alias.input),
        LogicalPlan::Filter(filter) => {
            let (mut conjuncts, scan) = source_of(&filter.input)?;
            conjuncts.extend(
                split_conjunction(&filter.predicate)
                    .into_iter()
                    .map(unqualified),
            );
            Some((conjuncts, scan))
        }
        _ => None,
    }
}

fn is_grouping_set(expr: &Expr) -> bool {
    matches!(expr, Expr::GroupingSet(_))
}

fn unqualified(expr: &Expr) -> Expr {
    expr.clone()
        .transform_up(|expr| match expr {
            Expr::Column(column) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                column.name,
            )))),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| expr.clone())
}

fn rollup_column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// The query's bucket expression over the rollup's `timestamp` (its bucket starts).
fn on_rollup_timestamp(bucket: Expr) -> DfResult<Expr> {
    Ok(bucket
        .transform_up(|expr| match expr {
            Expr::Column(column) if column.name == BUCKET_COLUMN => {
                Ok(Transformed::yes(rollup_column(BUCKET_COLUMN)))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data)
}

fn slot(index: usize) -> String {
    format!("__rollup_{index}")
}

/// `exprs` projected as the replaced aggregate's output: same qualifiers, names and types.
fn as_schema(
    builder: LogicalPlanBuilder,
    exprs: Vec<Expr>,
    schema: &DFSchemaRef,
) -> DfResult<LogicalPlan> {
    let projected = exprs
        .into_iter()
        .zip(schema.iter())
        .map(|(expr, (qualifier, field))| {
            cast(expr, field.data_type().clone()).alias_qualified(qualifier.cloned(), field.name())
        })
        .collect::<Vec<_>>();
    builder.project(projected)?.build()
}
