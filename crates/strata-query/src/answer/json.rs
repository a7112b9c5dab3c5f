//! JSON answers with `arrow-json`'s value encoders: numbers and booleans as JSON numbers and
//! booleans, strings as strings, and everything else (timestamps, dates, binary, nested) as
//! Arrow's display text, through an [`EncoderFactory`] where Strata's shape differs from
//! `arrow-json`'s defaults. JSON has no NaN or infinity, so those are sent as the strings
//! `"NaN"`, `"inf"` and `"-inf"` rather than failing the answer (`arrow-json` would send null).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, PrimitiveArray};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{
    make_encoder, Encoder, EncoderFactory, EncoderOptions, NullableEncoder,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{json, Value};

use super::AnswerError;

/// `{"columns": [...], "rows": [` ... `]}`, one JSON array per row.
pub struct JsonEncoder {
    schema: SchemaRef,
    rows_written: usize,
}

impl JsonEncoder {
    pub(super) fn new(schema: SchemaRef) -> Self {
        JsonEncoder {
            schema,
            rows_written: 0,
        }
    }

    pub(super) fn begin(&mut self) -> Result<Vec<u8>, AnswerError> {
        let columns: Vec<Value> = self
            .schema
            .fields()
            .iter()
            .map(|f| json!({ "name": f.name(), "type": type_name(f.data_type()) }))
            .collect();
        let columns = serde_json::to_string(&columns).map_err(|e| AnswerError(e.to_string()))?;
        Ok(format!("{{\"columns\":{columns},\"rows\":[").into_bytes())
    }

    pub(super) fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, AnswerError> {
        let mut out = Vec::with_capacity(batch.num_rows() * 32);
        self.rows_written += write_rows(batch, &mut out, self.rows_written > 0)?;
        Ok(out)
    }
}

/// Writes each row of `batch` as a JSON array, comma-separated (with a leading comma when
/// `after_rows`); returns the rows written.
fn write_rows(
    batch: &RecordBatch,
    out: &mut Vec<u8>,
    after_rows: bool,
) -> Result<usize, AnswerError> {
    let options = encoder_options();
    let mut encoders = column_encoders(batch, &options)?;
    for row in 0..batch.num_rows() {
        if after_rows || row > 0 {
            out.push(b',');
        }
        out.push(b'[');
        for (i, encoder) in encoders.iter_mut().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_value(encoder, row, out);
        }
        out.push(b']');
    }
    Ok(batch.num_rows())
}

/// One value encoder per column of `batch`.
pub(super) fn column_encoders<'a>(
    batch: &'a RecordBatch,
    options: &'a EncoderOptions,
) -> Result<Vec<NullableEncoder<'a>>, AnswerError> {
    Ok(batch
        .schema_ref()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| make_encoder(field, column.as_ref(), options))
        .collect::<Result<Vec<_>, ArrowError>>()?)
}

/// One value, `null` included (`arrow-json` leaves nulls to its caller).
pub(super) fn write_value(encoder: &mut NullableEncoder<'_>, row: usize, out: &mut Vec<u8>) {
    match encoder.is_null(row) {
        true => out.extend_from_slice(b"null"),
        false => encoder.encode(row, out),
    }
}

/// The options of every Strata JSON encoder: nulls written, Strata's value shapes.
pub(super) fn encoder_options() -> EncoderOptions {
    EncoderOptions::default()
        .with_explicit_nulls(true)
        .with_encoder_factory(Arc::new(StrataValues))
}

/// The rows of `batch` as JSON values, exactly as a JSON answer renders them. The benchmark
/// compares other engines' answers with Strata's through this.
pub fn rows(batch: &RecordBatch) -> Result<Vec<Vec<Value>>, AnswerError> {
    let mut out = vec![b'['];
    write_rows(batch, &mut out, false)?;
    out.push(b']');
    serde_json::from_slice(&out).map_err(|e| AnswerError(e.to_string()))
}

/// Strata's value shapes where they differ from `arrow-json`'s.
#[derive(Debug)]
struct StrataValues;

impl EncoderFactory for StrataValues {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a datafusion::arrow::datatypes::FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let nulls = array.nulls().cloned();
        let encoder: Box<dyn Encoder + 'a> = match array.data_type() {
            DataType::Float32 => Box::new(FloatEncoder::F32(array.as_primitive::<Float32Type>())),
            DataType::Float64 => Box::new(FloatEncoder::F64(array.as_primitive::<Float64Type>())),
            data_type if has_json_form(data_type) => return Ok(None),
            _ => Box::new(DisplayEncoder(ArrayFormatter::try_new(
                array,
                &FormatOptions::default(),
            )?)),
        };
        Ok(Some(NullableEncoder::new(encoder, nulls)))
    }
}

/// The types `arrow-json` writes as Strata does: booleans, integers and strings.
fn has_json_form(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
}

/// Finite floats as JSON numbers (shortest round-trip form); NaN and infinities as strings.
/// Reads the column in place: no copy per batch.
enum FloatEncoder<'a> {
    F32(&'a PrimitiveArray<Float32Type>),
    F64(&'a PrimitiveArray<Float64Type>),
}

impl Encoder for FloatEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let value = match self {
            FloatEncoder::F32(array) => array.value(idx) as f64,
            FloatEncoder::F64(array) => array.value(idx),
        };
        let json = serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(value.to_string()));
        // Writing a JSON value into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &json);
    }
}

/// Arrow's display text as a JSON string.
struct DisplayEncoder<'a>(ArrayFormatter<'a>);

impl Encoder for DisplayEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let text = self.0.value(idx).to_string();
        // Writing a JSON string into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &text);
    }
}

/// The SQL-facing name of an Arrow type in the `columns` header.
fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            "bigint unsigned".into()
        }
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        other => other.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    #[test]
    fn values_keep_strata_json_shapes() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(i64::MAX), None, Some(-1)])),
            Arc::new(Float64Array::from(vec![
                Some(1.5),
                Some(f64::NAN),
                Some(f64::INFINITY),
            ])),
            Arc::new(StringArray::from(vec![Some("a\"b"), None, Some("")])),
        ];
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        assert_eq!(
            rows(&batch).unwrap(),
            vec![
                vec![json!(i64::MAX), json!(1.5), json!("a\"b")],
                vec![Value::Null, json!("NaN"), Value::Null],
                vec![json!(-1), json!("inf"), json!("")],
            ]
        );
    }
}
