//! `date_trunc`, `date_part` (`EXTRACT`) and `date_bin` without a time-zone detour on UTC.
//!
//! Every `timestamp` column is `Timestamp(_, "UTC")`. DataFusion computes these functions on a
//! time-zoned timestamp value by value through a time-zone conversion (for `date_trunc` to the
//! hour or day, and for every `date_part`), which made them the largest cost of the analytic
//! queries built on them (docs/benchmarks.md: 391 ms for `date_trunc('hour', ...)` over 1M
//! rows). UTC has no offset, so the same values without a time zone give the same answer
//! through DataFusion's plain arithmetic paths. [`UtcFastPath`] wraps the built-in function:
//! it strips a UTC zone from its timestamp arguments (metadata only, no copy), calls the
//! built-in, and puts the zone back on a timestamp result. Every other argument, and every other
//! zone, goes to the built-in untouched, so results are the built-in's by construction.
//!
//! Casts of a UTC timestamp to a date (`CAST(date_trunc('day', timestamp) AS DATE)`) have the same
//! detour inside arrow's cast kernel, which looks up the zone's offset for every value (most of
//! the 16% of the server's CPU that went to date and zone arithmetic in a profile of the analytic
//! queries, docs/benchmarks.md). [`UtcDateCast`] is a function rewrite that turns
//! `CAST(x AS DATE)` into `CAST(utc_as_naive(x) AS DATE)` when `x` is a UTC timestamp;
//! [`UtcAsNaive`] only drops the zone (metadata), so the kernel skips the offset lookups.

use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::expr_rewriter::FunctionRewrite;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExprSchemable, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The built-in functions that get the UTC fast path.
pub fn utc_fast_path_functions() -> Vec<ScalarUDF> {
    use datafusion::functions::datetime;
    [
        datetime::date_trunc(),
        datetime::date_part(),
        datetime::date_bin(),
    ]
    .into_iter()
    .map(|builtin| ScalarUDF::new_from_impl(UtcFastPath::new(builtin.as_ref().clone())))
    .collect()
}

/// Whether a time-zone name denotes UTC (offset zero, no daylight saving).
fn is_utc(zone: &str) -> bool {
    matches!(
        zone,
        "UTC" | "utc" | "Z" | "+00:00" | "+0000" | "+00" | "Etc/UTC" | "Etc/UCT" | "UCT" | "GMT"
    )
}

/// A built-in datetime function that sees UTC timestamps as zone-less.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UtcFastPath {
    builtin: ScalarUDF,
}

impl UtcFastPath {
    pub fn new(builtin: ScalarUDF) -> UtcFastPath {
        UtcFastPath { builtin }
    }

    fn inner(&self) -> &Arc<dyn ScalarUDFImpl> {
        self.builtin.inner()
    }
}

/// The zone-less type of a UTC timestamp type; `None` for anything else.
fn without_utc(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Timestamp(unit, Some(zone)) if is_utc(zone) => {
            Some(DataType::Timestamp(*unit, None))
        }
        _ => None,
    }
}

fn strip_field(field: &FieldRef) -> FieldRef {
    match without_utc(field.data_type()) {
        Some(plain) => Arc::new(Field::new(field.name(), plain, field.is_nullable())),
        None => field.clone(),
    }
}

/// The same values with `zone` as the array's time zone (metadata only).
fn with_zone(array: &ArrayRef, zone: Option<Arc<str>>) -> ArrayRef {
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<TimestampSecondArray>() {
        Arc::new(a.clone().with_timezone_opt(zone))
    } else if let Some(a) = any.downcast_ref::<TimestampMillisecondArray>() {
        Arc::new(a.clone().with_timezone_opt(zone))
    } else if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
        Arc::new(a.clone().with_timezone_opt(zone))
    } else if let Some(a) = any.downcast_ref::<TimestampNanosecondArray>() {
        Arc::new(a.clone().with_timezone_opt(zone))
    } else {
        array.clone()
    }
}

fn scalar_with_zone(value: ScalarValue, zone: Option<Arc<str>>) -> ScalarValue {
    match value {
        ScalarValue::TimestampSecond(v, _) => ScalarValue::TimestampSecond(v, zone),
        ScalarValue::TimestampMillisecond(v, _) => ScalarValue::TimestampMillisecond(v, zone),
        ScalarValue::TimestampMicrosecond(v, _) => ScalarValue::TimestampMicrosecond(v, zone),
        ScalarValue::TimestampNanosecond(v, _) => ScalarValue::TimestampNanosecond(v, zone),
        other => other,
    }
}

fn strip_value(value: ColumnarValue) -> ColumnarValue {
    if without_utc(&value.data_type()).is_none() {
        return value;
    }
    match value {
        ColumnarValue::Array(array) => ColumnarValue::Array(with_zone(&array, None)),
        ColumnarValue::Scalar(scalar) => ColumnarValue::Scalar(scalar_with_zone(scalar, None)),
    }
}

impl ScalarUDFImpl for UtcFastPath {
    fn name(&self) -> &str {
        self.inner().name()
    }

    fn aliases(&self) -> &[String] {
        self.inner().aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner().signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        // Planning sees the real (UTC) types, so the declared result keeps its zone.
        self.inner().return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let utc_arguments = args
            .arg_fields
            .iter()
            .any(|field| without_utc(field.data_type()).is_some());
        if !utc_arguments {
            return self.inner().invoke_with_args(args);
        }
        let expected = args.return_field.clone();
        let stripped = ScalarFunctionArgs {
            args: args.args.into_iter().map(strip_value).collect(),
            arg_fields: args.arg_fields.iter().map(strip_field).collect(),
            number_rows: args.number_rows,
            return_field: strip_field(&args.return_field),
            config_options: args.config_options,
        };
        let result = self.inner().invoke_with_args(stripped)?;
        // A timestamp result gets the zone the plan declared for it back.
        let zone = match expected.data_type() {
            DataType::Timestamp(_, zone @ Some(_)) => zone.clone(),
            _ => return Ok(result),
        };
        Ok(match result {
            ColumnarValue::Array(array) => ColumnarValue::Array(with_zone(&array, zone)),
            ColumnarValue::Scalar(scalar) => ColumnarValue::Scalar(scalar_with_zone(scalar, zone)),
        })
    }

    fn with_updated_config(
        &self,
        config: &datafusion::common::config::ConfigOptions,
    ) -> Option<ScalarUDF> {
        let updated = self.inner().with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(UtcFastPath::new(updated)))
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner().simplify(args, info)
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> Result<datafusion::logical_expr::preimage::PreimageResult> {
        self.inner().preimage(args, lit_expr, info)
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner().evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner().propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner().output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner().preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner().strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner().coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner().documentation()
    }
}

/// Function rewrite: `CAST(x AS DATE)` (and `TRY_CAST`, and `DATE64`) of a UTC timestamp `x`
/// becomes `CAST(utc_as_naive(x) AS DATE)`. Registered with
/// `SessionContext::register_function_rewrite`; DataFusion's analyzer applies it to every
/// expression and keeps the output column names as written.
#[derive(Debug)]
pub struct UtcDateCast {
    as_naive: Arc<ScalarUDF>,
}

impl Default for UtcDateCast {
    fn default() -> Self {
        UtcDateCast {
            as_naive: Arc::new(ScalarUDF::new_from_impl(UtcAsNaive::new())),
        }
    }
}

impl UtcDateCast {
    /// `x` wrapped in `utc_as_naive` when it is a UTC timestamp and `to` is a date type.
    fn naive_argument(&self, x: Expr, to: &DataType, schema: &DFSchema) -> (Expr, bool) {
        if !matches!(to, DataType::Date32 | DataType::Date64) {
            return (x, false);
        }
        // A type that cannot be resolved here (e.g. an outer reference) keeps the cast as it is.
        match x.get_type(schema) {
            Ok(from) if without_utc(&from).is_some() => (
                Expr::ScalarFunction(ScalarFunction::new_udf(self.as_naive.clone(), vec![x])),
                true,
            ),
            _ => (x, false),
        }
    }
}

impl FunctionRewrite for UtcDateCast {
    fn name(&self) -> &str {
        "strata_utc_date_cast"
    }

    fn rewrite(
        &self,
        expr: Expr,
        schema: &DFSchema,
        _config: &ConfigOptions,
    ) -> Result<Transformed<Expr>> {
        Ok(match expr {
            Expr::Cast(Cast { expr, field }) => {
                let (x, changed) = self.naive_argument(*expr, field.data_type(), schema);
                Transformed::new_transformed(
                    Expr::Cast(Cast::new_from_field(x.into(), field)),
                    changed,
                )
            }
            Expr::TryCast(TryCast { expr, field }) => {
                let (x, changed) = self.naive_argument(*expr, field.data_type(), schema);
                let cast = TryCast::new_from_field(x.into(), field);
                Transformed::new_transformed(Expr::TryCast(cast), changed)
            }
            other => Transformed::no(other),
        })
    }
}

/// `utc_as_naive(x)`: the UTC timestamp `x` with its zone dropped (metadata only, no copy).
/// Only [`UtcDateCast`] calls it, on arguments it checked are UTC timestamps.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UtcAsNaive {
    signature: Signature,
}

impl UtcAsNaive {
    pub fn new() -> UtcAsNaive {
        UtcAsNaive {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl Default for UtcAsNaive {
    fn default() -> Self {
        UtcAsNaive::new()
    }
}

impl ScalarUDFImpl for UtcAsNaive {
    fn name(&self) -> &str {
        "utc_as_naive"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [from] = arg_types else {
            return datafusion::common::plan_err!("utc_as_naive takes one argument");
        };
        Ok(without_utc(from).unwrap_or_else(|| from.clone()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = <[ColumnarValue; 1]>::try_from(args.args).map_err(|_| {
            datafusion::common::DataFusionError::Internal(
                "utc_as_naive takes one argument".to_string(),
            )
        })?;
        Ok(strip_value(value))
    }

    /// Order is unchanged: the values are the same instants.
    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        Ok(inputs
            .first()
            .map_or(SortProperties::Unordered, |input| input.sort_properties))
    }

    fn preserves_lex_ordering(&self, _inputs: &[ExprProperties]) -> Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::RecordBatch;
    use datafusion::arrow::datatypes::{Schema, TimeUnit};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    /// Timestamps across many years, hours, minutes and week days, including before 1970 and
    /// at unit boundaries, as one `Timestamp(ms, "UTC")` column.
    fn table(ctx: &SessionContext) {
        let mut values: Vec<Option<i64>> = vec![
            Some(0),
            Some(-1),
            Some(-86_400_001),
            Some(951_782_400_000), // 2000-02-29T00:00:00Z
            Some(1_421_020_799_999),
            Some(1_421_020_800_000),
            None,
        ];
        // A deterministic spread: a prime step walks through every field's range.
        let mut ts: i64 = -2_000_000_000_000;
        for _ in 0..2_000 {
            ts += 2_147_483_647 + 7_919;
            values.push(Some(ts));
        }
        let array = TimestampMillisecondArray::from(values).with_timezone("UTC");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(array)]).unwrap();
        ctx.register_batch("t", batch).unwrap();
    }

    async fn answer(ctx: &SessionContext, sql: &str) -> (String, String) {
        let frame = ctx.sql(sql).await.unwrap();
        let schema = format!("{:?}", frame.schema().fields());
        let batches = frame.collect().await.unwrap();
        (schema, pretty_format_batches(&batches).unwrap().to_string())
    }

    #[tokio::test]
    async fn answers_equal_the_builtin_functions_on_utc_timestamps() {
        let builtin = SessionContext::new();
        table(&builtin);
        let fast = SessionContext::new();
        for udf in utc_fast_path_functions() {
            fast.register_udf(udf);
        }
        table(&fast);
        let mut expressions: Vec<String> = Vec::new();
        for unit in [
            "millisecond",
            "second",
            "minute",
            "hour",
            "day",
            "week",
            "month",
            "quarter",
            "year",
        ] {
            expressions.push(format!("date_trunc('{unit}', timestamp)"));
        }
        for part in [
            "year",
            "quarter",
            "month",
            "week",
            "day",
            "hour",
            "minute",
            "second",
            "millisecond",
            "dow",
            "doy",
            "epoch",
        ] {
            expressions.push(format!("date_part('{part}', timestamp)"));
            expressions.push(format!("EXTRACT({part} FROM timestamp)"));
        }
        expressions.push("date_bin(INTERVAL '10 minutes', timestamp)".to_string());
        expressions.push(
            "date_bin(INTERVAL '1 day', timestamp, TIMESTAMP '2001-01-01T03:00:00Z')".to_string(),
        );
        expressions.push("floor(extract(minute FROM timestamp) / 10)".to_string());
        for expression in expressions {
            let sql = format!("SELECT timestamp, {expression} AS v FROM t ORDER BY timestamp");
            let expected = answer(&builtin, &sql).await;
            let got = answer(&fast, &sql).await;
            assert_eq!(got, expected, "{expression}");
        }
        // Scalars (constant folding) and a non-UTC zone, which goes to the built-in untouched.
        for sql in [
            "SELECT date_trunc('hour', TIMESTAMP '2026-11-22T05:49:16Z')",
            "SELECT date_trunc('day', arrow_cast(timestamp, 'Timestamp(Millisecond, Some(\"Europe/Paris\"))')) FROM t ORDER BY 1",
            "SELECT extract(hour FROM arrow_cast(timestamp, 'Timestamp(Millisecond, Some(\"+05:30\"))')) FROM t ORDER BY 1",
        ] {
            assert_eq!(answer(&fast, sql).await, answer(&builtin, sql).await, "{sql}");
        }
    }

    #[tokio::test]
    async fn the_result_keeps_the_utc_zone_and_the_plan_uses_the_wrapper() {
        let fast = SessionContext::new();
        for udf in utc_fast_path_functions() {
            fast.register_udf(udf);
        }
        table(&fast);
        // Registered under the built-ins' names and aliases, replacing them.
        for name in [
            "date_trunc",
            "datetrunc",
            "date_part",
            "datepart",
            "date_bin",
        ] {
            let registered = fast.state().scalar_functions().get(name).cloned();
            let registered = registered.unwrap_or_else(|| panic!("{name} is registered"));
            let inner: &dyn std::any::Any = registered.inner().as_ref();
            assert!(inner.is::<UtcFastPath>(), "{name} is the built-in");
        }
        let frame = fast
            .sql("SELECT date_trunc('hour', timestamp) AS h FROM t")
            .await
            .unwrap();
        assert_eq!(
            frame.schema().field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        let batches = frame.collect().await.unwrap();
        assert_eq!(
            batches[0].schema().field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert_eq!(
            batches[0].column(0).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
    }

    #[test]
    fn only_utc_zone_names_are_stripped() {
        assert!(without_utc(&DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("UTC".into())
        ))
        .is_some());
        assert!(without_utc(&DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("+00:00".into())
        ))
        .is_some());
        assert!(without_utc(&DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("Europe/London".into())
        ))
        .is_none());
        assert!(without_utc(&DataType::Timestamp(TimeUnit::Millisecond, None)).is_none());
        assert!(without_utc(&DataType::Int64).is_none());
    }

    #[tokio::test]
    async fn date_casts_of_utc_timestamps_equal_the_builtin_cast_and_keep_their_names() {
        let builtin = SessionContext::new();
        table(&builtin);
        let mut fast = SessionContext::new();
        for udf in utc_fast_path_functions() {
            fast.register_udf(udf);
        }
        datafusion::execution::FunctionRegistry::register_function_rewrite(
            &mut fast,
            Arc::new(UtcDateCast::default()),
        )
        .unwrap();
        table(&fast);
        for expression in [
            "CAST(timestamp AS DATE)",
            "TRY_CAST(timestamp AS DATE)",
            "CAST(date_trunc('day', timestamp) AS DATE)",
            "CAST(date_trunc('month', timestamp) AS DATE)",
            "timestamp::date",
        ] {
            for sql in [
                format!("SELECT timestamp, {expression} AS v FROM t ORDER BY timestamp"),
                // Unaliased: the output column keeps the name of the cast as written.
                format!("SELECT {expression} FROM t ORDER BY 1"),
                format!("SELECT count(DISTINCT {expression}) FROM t"),
            ] {
                assert_eq!(
                    answer(&fast, &sql).await,
                    answer(&builtin, &sql).await,
                    "{sql}"
                );
            }
        }
        // The rewrite is in the plan; a non-UTC zone and a non-date cast are left alone.
        let plan = answer(&fast, "EXPLAIN SELECT CAST(timestamp AS DATE) FROM t")
            .await
            .1;
        assert!(plan.contains("utc_as_naive"), "{plan}");
        for sql in [
            "EXPLAIN SELECT CAST(arrow_cast(timestamp, 'Timestamp(Millisecond, Some(\"Europe/Paris\"))') AS DATE) FROM t",
            "EXPLAIN SELECT CAST(timestamp AS VARCHAR) FROM t",
        ] {
            let plan = answer(&fast, sql).await.1;
            assert!(!plan.contains("utc_as_naive"), "{plan}");
        }
        let paris = "SELECT CAST(arrow_cast(timestamp, 'Timestamp(Millisecond, Some(\"Europe/Paris\"))') AS DATE) FROM t ORDER BY 1";
        assert_eq!(answer(&fast, paris).await, answer(&builtin, paris).await);
    }
}
