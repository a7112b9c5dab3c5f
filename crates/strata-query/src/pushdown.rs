//! Which filters the metric scan can use: time predicates become the scanned key range, and
//! equality / IN on every series-key field becomes a series seek.
//!
//! Every pushed filter is `Inexact`: DataFusion re-applies it above the scan, so the ranges here
//! only have to be supersets (rounding outward is always safe).

use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use strata_core::RESERVED_FIELD_NAME;

/// A half-open time range `[start_ms, end_ms)`; `None` is unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

impl TimeRange {
    fn lower(&mut self, start: i64) {
        self.start_ms = Some(self.start_ms.map_or(start, |s| s.max(start)));
    }

    fn upper(&mut self, end: i64) {
        self.end_ms = Some(self.end_ms.map_or(end, |e| e.min(end)));
    }

    /// Whether no timestamp can match.
    pub fn is_empty(&self) -> bool {
        matches!((self.start_ms, self.end_ms), (Some(s), Some(e)) if s >= e)
    }

    /// Narrows the range with one filter on `timestamp`; returns whether the filter was a time
    /// predicate.
    pub fn apply(&mut self, filter: &Expr) -> bool {
        self.apply_to(RESERVED_FIELD_NAME, filter)
    }

    /// How a table whose only usable filters are time predicates on `column` takes each
    /// filter: `Inexact` for those (the scan narrows its range; DataFusion filters again).
    pub fn pushdown_of(column: &str, filters: &[&Expr]) -> Vec<TableProviderFilterPushDown> {
        filters
            .iter()
            .map(|filter| {
                if TimeRange::default().apply_to(column, filter) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect()
    }

    /// [`TimeRange::apply`] for a time column with another name.
    pub fn apply_to(&mut self, column: &str, filter: &Expr) -> bool {
        let is_timestamp_column = |e: &Expr| is_time_column(e, column);
        match filter {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, value) =
                    if let (true, Some(v)) = (is_timestamp_column(left), millis_of(right)) {
                        (*op, v)
                    } else if let (true, Some(v)) = (is_timestamp_column(right), millis_of(left)) {
                        match op.swap() {
                            Some(op) => (op, v),
                            None => return false,
                        }
                    } else {
                        return false;
                    };
                // `value` is (floor_ms, exact): a literal finer than ms rounds down.
                let (floor, exact) = value;
                match op {
                    Operator::Eq => {
                        self.lower(floor);
                        self.upper(floor.saturating_add(1));
                    }
                    Operator::Gt if exact => self.lower(floor.saturating_add(1)),
                    Operator::Gt | Operator::GtEq => self.lower(floor),
                    Operator::Lt if exact => self.upper(floor),
                    Operator::Lt | Operator::LtEq => self.upper(floor.saturating_add(1)),
                    _ => return false,
                }
                true
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if is_timestamp_column(expr) => match (millis_of(low), millis_of(high)) {
                (Some((low, _)), Some((high, _))) => {
                    self.lower(low);
                    self.upper(high.saturating_add(1));
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }
}

fn is_time_column(expr: &Expr, name: &str) -> bool {
    match expr {
        Expr::Column(column) => column.name == name,
        // Comparisons with a literal of another timestamp unit cast the column; a cast between
        // timestamp types keeps the order.
        Expr::Cast(cast) => {
            matches!(
                cast.field.data_type(),
                datafusion::arrow::datatypes::DataType::Timestamp(_, _)
            ) && is_time_column(&cast.expr, name)
        }
        _ => false,
    }
}

/// A timestamp literal as (milliseconds rounded down, whether that is exact).
fn millis_of(expr: &Expr) -> Option<(i64, bool)> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    Some(match value {
        ScalarValue::TimestampSecond(Some(v), _) => (v.checked_mul(1000)?, true),
        ScalarValue::TimestampMillisecond(Some(v), _) => (*v, true),
        ScalarValue::TimestampMicrosecond(Some(v), _) => (v.div_euclid(1000), v % 1000 == 0),
        ScalarValue::TimestampNanosecond(Some(v), _) => {
            (v.div_euclid(1_000_000), v % 1_000_000 == 0)
        }
        _ => return None,
    })
}

/// The text values an equality / IN filter allows for the column `name`, if the filter is one.
/// Values are rendered the way ingest renders a series-key value (`Value::to_text`).
pub fn equality_values(filter: &Expr, name: &str) -> Option<Vec<String>> {
    let is_column = |e: &Expr| matches!(e, Expr::Column(c) if c.name == name);
    match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            if is_column(left) {
                literal_text(right).map(|v| vec![v])
            } else if is_column(right) {
                literal_text(left).map(|v| vec![v])
            } else {
                None
            }
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) if is_column(expr) => list.iter().map(literal_text).collect(),
        _ => None,
    }
}

fn literal_text(expr: &Expr) -> Option<String> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    fn ts(ms: i64) -> Expr {
        lit(ScalarValue::TimestampMillisecond(
            Some(ms),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn comparisons_narrow_the_range() {
        let mut range = TimeRange::default();
        assert!(range.apply(&col("timestamp").gt_eq(ts(100))));
        assert!(range.apply(&col("timestamp").lt(ts(200))));
        assert!(range.apply(&ts(150).gt(col("timestamp"))));
        assert_eq!(
            range,
            TimeRange {
                start_ms: Some(100),
                end_ms: Some(150)
            }
        );
        assert!(range.apply(&col("timestamp").gt(ts(120))));
        assert_eq!(range.start_ms, Some(121));
        assert!(!range.apply(&col("temperature").gt(lit(1.0))));
        assert!(!range.apply(&col("timestamp").not_eq(ts(5))));
        assert!(range.apply(&col("timestamp").eq(ts(500))));
        assert!(range.is_empty());
    }

    #[test]
    fn between_and_finer_units_round_outward() {
        let mut range = TimeRange::default();
        assert!(range.apply(&col("timestamp").between(ts(10), ts(20))));
        assert_eq!(
            range,
            TimeRange {
                start_ms: Some(10),
                end_ms: Some(21)
            }
        );
        let mut range = TimeRange::default();
        let nanos = lit(ScalarValue::TimestampNanosecond(Some(1_500_000), None));
        assert!(range.apply(&col("timestamp").gt(nanos.clone())));
        assert!(range.apply(&col("timestamp").lt(nanos)));
        assert_eq!(
            range,
            TimeRange {
                start_ms: Some(1),
                end_ms: Some(2)
            }
        );
    }

    #[test]
    fn series_values_from_eq_and_in() {
        assert_eq!(
            equality_values(&col("name").eq(lit("truck_7")), "name"),
            Some(vec!["truck_7".to_string()])
        );
        assert_eq!(
            equality_values(
                &col("name").in_list(vec![lit("a"), lit("b")], false),
                "name"
            ),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(equality_values(&col("name").eq(lit("a")), "other"), None);
        assert_eq!(
            equality_values(&col("name").in_list(vec![lit("a")], true), "name"),
            None
        );
    }
}
