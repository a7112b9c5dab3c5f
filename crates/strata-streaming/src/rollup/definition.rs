//! What a rollup's SQL must be, and how maintenance recomputes part of it: one aggregate over
//! one metric, grouped by a fixed-width time bucket of `timestamp` that it selects as
//! `timestamp`. Recomputing the buckets of `[start, end)` is the same plan with
//! `start <= timestamp < end` on the metric's scan: each bucket is whole inside that range, so
//! the rows come out exactly as the full query would give them.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::compute::{cast, concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::logical_expr::{col, lit, Expr, Filter, LogicalPlan};
use strata_catalog::TenantSchema;
use strata_core::MetricId;

use crate::live::metric_of;

use crate::error::StreamingError;

/// The column a rollup's bucket must be selected as, so the rollup reads like a metric.
pub const BUCKET_COLUMN: &str = "timestamp";
const MS_PER_DAY: i64 = 86_400_000;
/// `date_trunc('week', ...)` starts weeks on Monday; 1970-01-01 was a Thursday.
const MONDAY_ORIGIN_MS: i64 = -3 * MS_PER_DAY;

/// Fixed-width buckets: `origin_ms + k * width_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucketing {
    pub width_ms: i64,
    pub origin_ms: i64,
}

impl Bucketing {
    /// Start of the bucket holding `timestamp_ms`.
    pub fn start_of(&self, timestamp_ms: i64) -> i64 {
        let offset = timestamp_ms.saturating_sub(self.origin_ms);
        self.origin_ms
            .saturating_add(offset.div_euclid(self.width_ms) * self.width_ms)
    }
}

/// A rollup's SQL, checked.
#[derive(Debug, Clone)]
pub struct Definition {
    /// The metric it reads, and the table name the plan scans it under.
    pub source: MetricId,
    pub source_table: TableReference,
    pub bucketing: Bucketing,
    /// Output position of the bucket column.
    pub bucket_index: usize,
}

fn refuse(reason: impl Into<String>) -> StreamingError {
    StreamingError::InvalidRollup(reason.into())
}

impl Definition {
    /// Checks `plan` (as `TenantSession::plan` returns it) against the rules above; the error
    /// names the part that breaks one.
    pub fn of(plan: &LogicalPlan, schema: &TenantSchema) -> Result<Definition, StreamingError> {
        let (scan, aggregate) = shape(plan)?;
        let source = metric_of(&scan, schema).ok_or_else(|| {
            refuse(format!(
                "a rollup reads one metric; {scan} is not a metric of this tenant"
            ))
        })?;
        let bucket_index = plan
            .schema()
            .fields()
            .iter()
            .position(|f| f.name() == BUCKET_COLUMN)
            .ok_or_else(|| {
                refuse(
                    "a rollup must select its time bucket as `timestamp`, e.g. \
                     date_bin(INTERVAL '1 minute', timestamp) AS timestamp",
                )
            })?;
        let bucketing = bucketing_of(plan, &aggregate, bucket_index)?;
        Ok(Definition {
            source,
            source_table: scan,
            bucketing,
            bucket_index,
        })
    }

    /// `plan` restricted to the source rows with `start_ms <= timestamp < end_ms`.
    pub fn over_range(
        &self,
        plan: &LogicalPlan,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<LogicalPlan, StreamingError> {
        let table = self.source_table.clone();
        let restricted = plan.clone().transform_up(|node| match node {
            LogicalPlan::TableScan(scan) if scan.table_name == table => {
                let column = Column::new(Some(table.clone()), BUCKET_COLUMN);
                let field_type = scan
                    .projected_schema
                    .field_with_name(Some(&table), BUCKET_COLUMN)?
                    .data_type()
                    .clone();
                let (start, end) = match (
                    timestamp_value(&field_type, start_ms),
                    timestamp_value(&field_type, end_ms),
                ) {
                    (Ok(start), Ok(end)) => (start, end),
                    _ => {
                        return Err(datafusion::error::DataFusionError::Plan(format!(
                            "the scanned `timestamp` is {field_type}, not a time"
                        )))
                    }
                };
                let range = col(column.clone())
                    .gt_eq(lit(start))
                    .and(col(column).lt(lit(end)));
                let filter = Filter::try_new(range, Arc::new(LogicalPlan::TableScan(scan)))?;
                Ok(Transformed::yes(LogicalPlan::Filter(filter)))
            }
            other => Ok(Transformed::no(other)),
        })?;
        Ok(restricted.data)
    }

    /// Splits result rows by bucket start (ms), each part cast to `schema` (the version's).
    pub fn split(
        &self,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<BTreeMap<i64, RecordBatch>, StreamingError> {
        let mut parts = BTreeMap::new();
        let Some(first) = batches.first() else {
            return Ok(parts);
        };
        let all = concat_batches(&first.schema(), batches)?;
        let all = conform(schema, &all)?;
        let buckets = cast(
            &cast(
                all.column(self.bucket_index),
                &DataType::Timestamp(TimeUnit::Millisecond, None),
            )?,
            &DataType::Int64,
        )?;
        let order = sort_to_indices(&buckets, None, None)?;
        let sorted = take_record_batch(&all, &order)?;
        let keys = datafusion::arrow::compute::take(&buckets, &order, None)?;
        let keys = keys
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| StreamingError::Internal("bucket column is not a time".into()))?;
        let mut start = 0;
        while start < keys.len() {
            let key = keys.is_valid(start).then(|| keys.value(start));
            let mut end = start + 1;
            while end < keys.len() && keys.is_valid(end).then(|| keys.value(end)) == key {
                end += 1;
            }
            // A row without a bucket cannot happen (every stored row has a time); keep it
            // under the earliest key so nothing is lost silently.
            parts.insert(key.unwrap_or(i64::MIN), sorted.slice(start, end - start));
            start = end;
        }
        Ok(parts)
    }
}

/// The stored schema of a version: the plan's output, every column nullable (the physical
/// plan may differ from the logical one in nullability only).
pub fn version_schema(plan: &LogicalPlan) -> Schema {
    let fields: Vec<_> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Schema::new(fields)
}

/// `batch` under `schema`; fails when names or types differ (the source changed under the
/// version, which is then rebuilt).
fn conform(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch, StreamingError> {
    RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(|e| {
        StreamingError::SourceChanged(format!("the rollup's rows no longer fit its schema: {e}"))
    })
}

/// `ms` as a literal of the scanned timestamp's type (unit and time zone), so the filter
/// needs no cast and prunes like a user's.
fn timestamp_value(data_type: &DataType, ms: i64) -> Result<ScalarValue, StreamingError> {
    Ok(ScalarValue::TimestampMillisecond(Some(ms), None).cast_to(data_type)?)
}

/// The one metric scan and the one aggregate; refuses every other kind of node.
fn shape(
    plan: &LogicalPlan,
) -> Result<(TableReference, datafusion::logical_expr::Aggregate), StreamingError> {
    let mut scans = Vec::new();
    let mut aggregates = Vec::new();
    let mut refused: Option<String> = None;
    plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => scans.push(scan.table_name.clone()),
            LogicalPlan::Aggregate(aggregate) => aggregates.push(aggregate.clone()),
            LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => {
            }
            other => {
                refused.get_or_insert_with(|| refused_part(other));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if let Some(part) = refused {
        return Err(refuse(format!(
            "a rollup is one time-bucketed aggregate over one metric; {part} is not allowed"
        )));
    }
    let [scan] = scans.as_slice() else {
        return Err(refuse(format!(
            "a rollup reads exactly one metric; this query reads {} tables",
            scans.len()
        )));
    };
    let mut aggregates = aggregates.into_iter();
    let (Some(aggregate), None) = (aggregates.next(), aggregates.next()) else {
        return Err(refuse(
            "a rollup needs exactly one GROUP BY with a time bucket, e.g. GROUP BY \
             date_bin(INTERVAL '1 minute', timestamp)",
        ));
    };
    Ok((scan.clone(), aggregate))
}

fn refused_part(node: &LogicalPlan) -> String {
    match node {
        LogicalPlan::Join(_) => "a join".into(),
        LogicalPlan::Window(_) => "a window function".into(),
        LogicalPlan::Limit(_) => "LIMIT".into(),
        LogicalPlan::Sort(_) => "ORDER BY (order when you query the rollup)".into(),
        LogicalPlan::Union(_) => "UNION".into(),
        LogicalPlan::Distinct(_) => "DISTINCT".into(),
        LogicalPlan::Subquery(_) => "a subquery".into(),
        LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => "a query without a metric".into(),
        other => format!(
            "{} ({})",
            other.display(),
            "not a projection, filter or aggregate"
        ),
    }
}

/// The bucketing of the group expression selected as `timestamp`.
fn bucketing_of(
    plan: &LogicalPlan,
    aggregate: &datafusion::logical_expr::Aggregate,
    bucket_index: usize,
) -> Result<Bucketing, StreamingError> {
    let not_bucket = || {
        refuse(
            "the rollup's `timestamp` column must be its GROUP BY time bucket: \
             date_bin(INTERVAL '<fixed width>', timestamp) or date_trunc('second|minute|hour|\
             day|week', timestamp)",
        )
    };
    let selected = output_expr(plan, bucket_index).ok_or_else(not_bucket)?;
    let group = aggregate
        .group_expr
        .iter()
        .find(|g| {
            let name = g.schema_name().to_string();
            matches!(&selected, Expr::Column(c) if c.name == name) || **g == selected
        })
        .ok_or_else(not_bucket)?;
    bucket_function(group)
}

/// The expression (aliases removed) of output column `index` of the top projection.
fn output_expr(plan: &LogicalPlan, index: usize) -> Option<Expr> {
    match plan {
        LogicalPlan::Projection(projection) => {
            Some(projection.expr.get(index)?.clone().unalias_nested().data)
        }
        LogicalPlan::SubqueryAlias(alias) => output_expr(&alias.input, index),
        _ => None,
    }
}

pub(super) fn bucket_function(expr: &Expr) -> Result<Bucketing, StreamingError> {
    let Expr::ScalarFunction(call) = expr else {
        return Err(refuse(format!(
            "the time bucket {expr} must be date_bin or date_trunc over timestamp"
        )));
    };
    let over_timestamp =
        |arg: Option<&Expr>| matches!(arg, Some(Expr::Column(c)) if c.name == BUCKET_COLUMN);
    match (call.func.name(), call.args.as_slice()) {
        ("date_bin", [width, ts, rest @ ..]) if over_timestamp(Some(ts)) => {
            let width_ms = fixed_width_ms(width)?;
            let origin_ms = match rest {
                [] => 0,
                [origin] => literal_ms(origin)
                    .ok_or_else(|| refuse("date_bin's origin must be a timestamp literal"))?,
                _ => return Err(refuse("date_bin takes at most three arguments")),
            };
            Ok(Bucketing {
                width_ms,
                origin_ms,
            })
        }
        ("date_trunc", [unit, ts]) if over_timestamp(Some(ts)) => trunc_bucketing(unit),
        _ => Err(refuse(format!(
            "the time bucket {expr} must be date_bin(INTERVAL ..., timestamp) or \
             date_trunc('<unit>', timestamp)"
        ))),
    }
}

fn trunc_bucketing(unit: &Expr) -> Result<Bucketing, StreamingError> {
    let unit = match unit {
        Expr::Literal(ScalarValue::Utf8(Some(u)) | ScalarValue::Utf8View(Some(u)), _) => {
            u.to_ascii_lowercase()
        }
        other => {
            return Err(refuse(format!(
                "date_trunc's unit {other} must be a literal"
            )))
        }
    };
    let (width_ms, origin_ms) = match unit.as_str() {
        "second" => (1000, 0),
        "minute" => (60_000, 0),
        "hour" => (3_600_000, 0),
        "day" => (MS_PER_DAY, 0),
        "week" => (7 * MS_PER_DAY, MONDAY_ORIGIN_MS),
        other => {
            return Err(refuse(format!(
                "date_trunc('{other}', ...) has no fixed width; use second, minute, hour, \
                 day or week"
            )))
        }
    };
    Ok(Bucketing {
        width_ms,
        origin_ms,
    })
}

fn fixed_width_ms(width: &Expr) -> Result<i64, StreamingError> {
    let ms = match width {
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            (v.nanoseconds % 1_000_000 == 0)
                .then(|| i64::from(v.days) * MS_PER_DAY + v.nanoseconds / 1_000_000)
        }
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
            Some(i64::from(v.days) * MS_PER_DAY + i64::from(v.milliseconds))
        }
        _ => None,
    };
    match ms {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(refuse(format!(
            "the bucket width {width} must be a fixed interval of whole milliseconds (no \
             months or years)"
        ))),
    }
}

pub(super) fn literal_ms(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    let ms = value
        .cast_to(&DataType::Timestamp(TimeUnit::Millisecond, None))
        .ok()?;
    match ms {
        ScalarValue::TimestampMillisecond(Some(v), _) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_on_the_origin_grid_before_and_after_it() {
        let minute = Bucketing {
            width_ms: 60_000,
            origin_ms: 0,
        };
        assert_eq!(minute.start_of(59_999), 0);
        assert_eq!(minute.start_of(60_000), 60_000);
        assert_eq!(minute.start_of(-1), -60_000);
        let week = Bucketing {
            width_ms: 7 * MS_PER_DAY,
            origin_ms: MONDAY_ORIGIN_MS,
        };
        // 2024-01-03 (a Wednesday) is in the week of Monday 2024-01-01.
        assert_eq!(week.start_of(1_704_240_000_000), 1_704_067_200_000);
    }
}
