//! Arrow values as JSON, the way the SQL API answers.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::util::display::ArrayFormatter;
use serde_json::{json, Value};

/// One value as JSON: numbers and booleans stay JSON numbers and booleans, strings stay strings,
/// everything else (timestamps, binary, nested) uses Arrow's display text from `fmt`. This is the
/// value encoding of `POST /api/v1/sql`'s JSON formats; the benchmark renders other engines'
/// answers with it so they compare like for like.
pub fn cell(col: &ArrayRef, fmt: &ArrayFormatter<'_>, row: usize) -> Value {
    use datafusion::arrow::datatypes::*;
    if col.is_null(row) {
        return Value::Null;
    }
    macro_rules! num {
        ($t:ty) => {
            json!(col.as_primitive::<$t>().value(row))
        };
    }
    match col.data_type() {
        DataType::Boolean => Value::Bool(col.as_boolean().value(row)),
        DataType::Int8 => num!(Int8Type),
        DataType::Int16 => num!(Int16Type),
        DataType::Int32 => num!(Int32Type),
        DataType::Int64 => num!(Int64Type),
        DataType::UInt8 => num!(UInt8Type),
        DataType::UInt16 => num!(UInt16Type),
        DataType::UInt32 => num!(UInt32Type),
        DataType::UInt64 => num!(UInt64Type),
        DataType::Float32 => float(col.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => float(col.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::String(col.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(col.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(col.as_string_view().value(row).to_string()),
        _ => Value::String(fmt.value(row).to_string()),
    }
}

/// JSON has no NaN or infinity; send them as strings rather than failing the whole answer.
pub fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(v.to_string()))
}
