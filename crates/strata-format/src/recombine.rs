//! The recombinator: turns rows stored under incoming names into the columns SQL sees.
//!
//! For each output column the raw column of each of its names is cast to the declared type with a
//! *safe* cast (a value that does not fit becomes NULL) and the casts are coalesced in precedence
//! order (first non-null wins). Everything after row collection is a vectorized Arrow kernel
//! (`cast_with_options`, `is_not_null`, `zip`); no per-row interpretation.
//!
//! Raw columns: within one batch, an incoming name whose non-null values all share one JSON kind
//! becomes a typed array (Int64, Float64 — integers mixed with floats widen to Float64 — or
//! Boolean); anything else becomes Utf8 text ([`Value::to_text`]). Typed raw arrays let an epoch
//! millisecond number read as a `timestamp` field and a JSON number read as `integer` without a
//! text round trip. Columns read as text (unknown fields, `string` fields, `strata_raw`) are built
//! as text directly, so the text is exactly [`Value::to_text`] whatever kinds the batch holds.
//! A name read only as `double` or `integer` whose batch mixes kinds (numbers sent as JSON
//! strings, 5% of the benchmark's values) is parsed straight into the target type with the
//! parser the text cast uses, giving the same values and failure count without formatting every
//! number as text first (that round trip was 4% of server CPU under 100 event rules).

use std::collections::HashMap;
use std::sync::Arc;

use std::borrow::Borrow;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, Float64Array,
    Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::kernels::cast_utils::Parser;
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{can_cast_types, cast_with_options, is_not_null, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use strata_core::{NameId, Value};

use crate::model::{ColumnSpec, Conversion, UTC};

/// What the columns reading one incoming name want of its raw array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawTarget {
    /// Text, whatever the kinds (a `string` field, an unknown field).
    Text,
    /// Only `double` columns read it.
    Float64,
    /// Only `integer` columns read it.
    Int64,
    /// A typed array when the batch holds one kind, text otherwise.
    AnyKind,
}

impl RawTarget {
    fn of(data_type: &DataType) -> Self {
        match data_type {
            DataType::Utf8 => RawTarget::Text,
            DataType::Float64 => RawTarget::Float64,
            DataType::Int64 => RawTarget::Int64,
            _ => RawTarget::AnyKind,
        }
    }

    /// The target of a name read by two columns: text if either wants text (as when the
    /// first column decided alone), a direct parse only when both agree on it.
    fn and(self, other: RawTarget) -> Self {
        match (self, other) {
            (RawTarget::Text, _) => RawTarget::Text,
            (a, b) if a == b => a,
            _ => RawTarget::AnyKind,
        }
    }
}

/// Collects rows for one output batch. Only the incoming names the projected columns need are
/// kept. `V` is [`Value`] for rows the builder owns, `&Value` for rows the caller keeps.
#[derive(Debug)]
pub struct RawBatchBuilder<V = Value> {
    slot_of: HashMap<NameId, usize>,
    /// Per slot: the raw array its consuming columns want.
    targets: Vec<RawTarget>,
    timestamps: Vec<i64>,
    values: Vec<Vec<V>>,
}

impl<V: RawValue> RawBatchBuilder<V> {
    /// `columns` are the projected output columns; their sources decide which names to keep.
    pub fn new(columns: &[ColumnSpec], capacity: usize) -> Self {
        let mut slot_of: HashMap<NameId, usize> = HashMap::new();
        let mut targets: Vec<RawTarget> = Vec::new();
        for column in columns {
            let target = RawTarget::of(&column.data_type);
            for source in &column.sources {
                match slot_of.get(&source.id) {
                    Some(&slot) => targets[slot] = targets[slot].and(target),
                    None => {
                        slot_of.insert(source.id, targets.len());
                        targets.push(target);
                    }
                }
            }
        }
        let values = (0..targets.len())
            .map(|_| Vec::with_capacity(capacity))
            .collect();
        RawBatchBuilder {
            slot_of,
            targets,
            timestamps: Vec::with_capacity(capacity),
            values,
        }
    }

    /// The incoming-name ids this builder reads (for projection pushdown into the scan).
    pub fn needed_names(&self) -> Vec<NameId> {
        let mut ids: Vec<NameId> = self.slot_of.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    pub fn push(&mut self, timestamp_ms: i64, values: impl IntoIterator<Item = (NameId, V)>) {
        let row = self.timestamps.len();
        self.timestamps.push(timestamp_ms);
        for (id, value) in values {
            if let Some(&slot) = self.slot_of.get(&id) {
                let column = &mut self.values[slot];
                // A repeated name in one row keeps its first value.
                if column.len() == row {
                    column.push(value);
                }
            }
        }
        for column in &mut self.values {
            if column.len() == row {
                column.push(V::null());
            }
        }
        debug_assert!(self.values.iter().all(|c| c.len() == row + 1));
    }

    /// Builds the output batch for `columns`, with `timestamp` inserted at `timestamp_at` when
    /// projected, and empties the builder. Returns the batch and how many non-null raw values failed their cast.
    pub fn finish(
        &mut self,
        schema: &SchemaRef,
        timestamp_at: Option<usize>,
        columns: &[ColumnSpec],
    ) -> Result<(RecordBatch, usize), ArrowError> {
        let rows = self.timestamps.len();
        let raw: Vec<(ArrayRef, usize)> = self
            .values
            .iter_mut()
            .zip(&self.targets)
            .map(|(values, target)| {
                let array = raw_array_for(values, *target);
                values.clear();
                array
            })
            .collect();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 1);
        let timestamps: ArrayRef = Arc::new(
            TimestampMillisecondArray::from(std::mem::take(&mut self.timestamps))
                .with_timezone(UTC),
        );
        let mut failures = 0;
        for column in columns {
            let sources: Vec<(&(ArrayRef, usize), Option<&Conversion>)> = column
                .sources
                .iter()
                .filter_map(|s| {
                    let slot = self.slot_of.get(&s.id)?;
                    Some((&raw[*slot], s.conversion.as_ref()))
                })
                .collect();
            // Values a direct parse already failed count as the text cast would have counted them.
            failures += sources.iter().map(|((_, failed), _)| failed).sum::<usize>();
            let raw_arrays: Vec<(&ArrayRef, Option<&Conversion>)> = sources
                .iter()
                .map(|((array, _), conversion)| (array, *conversion))
                .collect();
            let (array, failed) = recombine_sources(&raw_arrays, &column.data_type, rows)?;
            failures += failed;
            arrays.push(array);
        }
        if let Some(at) = timestamp_at {
            debug_assert!(at <= arrays.len());
            arrays.insert(at.min(arrays.len()), timestamps);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(schema.clone(), arrays, &options)?;
        Ok((batch, failures))
    }
}

impl<'a> RawBatchBuilder<&'a Value> {
    /// [`RawBatchBuilder::push`] for rows the caller keeps: copies no value.
    pub fn push_borrowed(&mut self, timestamp_ms: i64, values: &'a [(NameId, Value)]) {
        self.push(timestamp_ms, values.iter().map(|(id, value)| (*id, value)));
    }
}

/// A value slot of the builder: owned or borrowed, with an explicit missing value.
pub trait RawValue: Borrow<Value> {
    fn null() -> Self;
}

impl RawValue for Value {
    fn null() -> Self {
        Value::Null
    }
}

impl RawValue for &Value {
    fn null() -> Self {
        const NULL: &Value = &Value::Null;
        NULL
    }
}

/// Builds one raw column for `target`, with how many non-null values a direct parse into
/// `target` failed (a safe text cast would have turned exactly those into NULL).
fn raw_array_for<V: Borrow<Value>>(values: &[V], target: RawTarget) -> (ArrayRef, usize) {
    if target == RawTarget::Text {
        return (text_array(values), 0);
    }
    let kinds = Kinds::of(values);
    if let Some(typed) = kinds.typed_array(values) {
        return (typed, 0);
    }
    // Mixed kinds: parse each value as the text cast would parse its text, without building
    // the text of the numbers first.
    let array: ArrayRef = match target {
        RawTarget::Float64 => Arc::new(
            values
                .iter()
                .map(|v| match v.borrow() {
                    Value::Int(i) => Some(*i as f64),
                    Value::Float(f) => Some(*f),
                    Value::Str(s) => Float64Type::parse(s),
                    other => other.to_text().and_then(|t| Float64Type::parse(&t)),
                })
                .collect::<Float64Array>(),
        ),
        RawTarget::Int64 => Arc::new(
            values
                .iter()
                .map(|v| match v.borrow() {
                    Value::Int(i) => Some(*i),
                    Value::Str(s) => Int64Type::parse(s),
                    other => other.to_text().and_then(|t| Int64Type::parse(&t)),
                })
                .collect::<Int64Array>(),
        ),
        RawTarget::Text | RawTarget::AnyKind => return (text_array(values), 0),
    };
    let failed = array.null_count() - (values.len() - kinds.non_null());
    (array, failed)
}

/// How many values of each JSON kind a raw column holds.
#[derive(Debug, Clone, Copy, Default)]
struct Kinds {
    ints: usize,
    floats: usize,
    bools: usize,
    strs: usize,
}

impl Kinds {
    fn of<V: Borrow<Value>>(values: &[V]) -> Self {
        let mut kinds = Kinds::default();
        for value in values {
            match value.borrow() {
                Value::Null => {}
                Value::Int(_) => kinds.ints += 1,
                Value::Float(_) => kinds.floats += 1,
                Value::Bool(_) => kinds.bools += 1,
                Value::Str(_) => kinds.strs += 1,
            }
        }
        kinds
    }

    fn non_null(&self) -> usize {
        self.ints + self.floats + self.bools + self.strs
    }

    /// The typed array when every non-null value shares a kind (integers mixed with floats
    /// widen to Float64); `None` when the column must be text.
    fn typed_array<V: Borrow<Value>>(&self, values: &[V]) -> Option<ArrayRef> {
        let Kinds {
            ints,
            floats,
            bools,
            strs,
        } = *self;
        if strs == 0 && bools == 0 && floats == 0 && ints > 0 {
            return Some(Arc::new(
                values
                    .iter()
                    .map(|v| match v.borrow() {
                        Value::Int(i) => Some(*i),
                        _ => None,
                    })
                    .collect::<Int64Array>(),
            ));
        }
        if strs == 0 && bools == 0 && floats > 0 {
            return Some(Arc::new(
                values
                    .iter()
                    .map(|v| match v.borrow() {
                        Value::Int(i) => Some(*i as f64),
                        Value::Float(f) => Some(*f),
                        _ => None,
                    })
                    .collect::<Float64Array>(),
            ));
        }
        if strs == 0 && ints == 0 && floats == 0 && bools > 0 {
            return Some(Arc::new(
                values
                    .iter()
                    .map(|v| match v.borrow() {
                        Value::Bool(b) => Some(*b),
                        _ => None,
                    })
                    .collect::<BooleanArray>(),
            ));
        }
        None
    }
}

fn text_array<V: Borrow<Value>>(values: &[V]) -> ArrayRef {
    Arc::new(
        values
            .iter()
            .map(|v| v.borrow().to_text())
            .collect::<StringArray>(),
    )
}

/// Builds one raw column, typed when every non-null value shares a kind (see the module docs).
pub fn raw_array<V: Borrow<Value>>(values: &[V], wants_text: bool) -> ArrayRef {
    if !wants_text {
        if let Some(typed) = Kinds::of(values).typed_array(values) {
            return typed;
        }
    }
    text_array(values)
}

/// Casts each source to `target` (safely: a failed cast is NULL) and coalesces them in order.
/// Returns the column and how many non-null source values failed their cast.
pub fn recombine(
    sources: &[&ArrayRef],
    target: &DataType,
    rows: usize,
) -> Result<(ArrayRef, usize), ArrowError> {
    let sources: Vec<(&ArrayRef, Option<&Conversion>)> =
        sources.iter().map(|s| (*s, None)).collect();
    recombine_sources(&sources, target, rows)
}

/// [`recombine`] where a source may carry a conversion, applied to its values after the cast
/// and before the coalesce (issue 17: `tempF` feeding a Celsius field).
pub fn recombine_sources(
    sources: &[(&ArrayRef, Option<&Conversion>)],
    target: &DataType,
    rows: usize,
) -> Result<(ArrayRef, usize), ArrowError> {
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let mut result: Option<ArrayRef> = None;
    let mut failures = 0;
    for (source, conversion) in sources {
        debug_assert_eq!(source.len(), rows);
        let source: ArrayRef = if can_cast_types(source.data_type(), target) {
            (*source).clone()
        } else {
            // No direct kernel (e.g. Float64 -> Timestamp): go through the text the device sent.
            cast_with_options(source, &DataType::Utf8, &options)?
        };
        let cast = match (source.data_type(), target) {
            (DataType::Utf8, DataType::Binary) => decode_base64(source.as_string::<i32>()),
            _ => cast_with_options(&source, target, &options)?,
        };
        // A safe cast only adds NULLs, so the difference is exactly the failed values.
        debug_assert!(cast.null_count() >= source.null_count());
        failures += cast.null_count().saturating_sub(source.null_count());
        let cast = match conversion {
            Some(conversion) => convert(conversion, cast, target, &options)?,
            None => cast,
        };
        result = Some(match result {
            None => cast,
            Some(acc) if acc.null_count() == 0 => acc,
            Some(acc) => {
                let keep = is_not_null(&acc)?;
                zip(&keep, &acc, &cast)?
            }
        });
    }
    Ok((
        result.unwrap_or_else(|| new_null_array(target, rows)),
        failures,
    ))
}

/// The one column a conversion's compiled expression reads: the name's values, already of the
/// field's type.
pub const CONVERSION_INPUT: &str = "value";

/// Applies a name's conversion to its values; an uncompiled one reads NULL, and so does a batch
/// the expression fails on (`tempF / 0` over integers): one bad value must not make the whole
/// metric unreadable, just as a value that does not cast reads NULL.
fn convert(
    conversion: &Conversion,
    values: ArrayRef,
    target: &DataType,
    options: &CastOptions,
) -> Result<ArrayRef, ArrowError> {
    let rows = values.len();
    let Some(expr) = &conversion.compiled else {
        return Ok(new_null_array(target, rows));
    };
    let input = Field::new(CONVERSION_INPUT, values.data_type().clone(), true);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![input])), vec![values])?;
    let converted = match expr.evaluate(&batch).and_then(|v| v.into_array(rows)) {
        Ok(converted) => converted,
        Err(error) => {
            tracing::warn!(conversion = %conversion.text, %error, "a conversion failed; its rows read NULL");
            return Ok(new_null_array(target, rows));
        }
    };
    if converted.data_type() == target {
        return Ok(converted);
    }
    cast_with_options(&converted, target, options)
}

/// Text read as a `binary` field: standard base64 (RFC 4648 section 4), or the URL-safe
/// alphabet of section 5, with or without padding. The text is what is stored, so a field
/// declared binary later decodes everything sent before; text that is not base64 reads NULL and
/// counts as a failed cast, like any value that does not fit its field's type.
fn decode_base64(text: &StringArray) -> ArrayRef {
    let mut out = BinaryBuilder::with_capacity(text.len(), text.value_data().len() * 3 / 4);
    for value in text.iter() {
        match value.and_then(decode_base64_value) {
            Some(bytes) => out.append_value(bytes),
            None => out.append_null(),
        }
    }
    Arc::new(out.finish())
}

const ANY_PADDING: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_BASE64: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, ANY_PADDING);
const URL_SAFE_BASE64: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, ANY_PADDING);

fn decode_base64_value(text: &str) -> Option<Vec<u8>> {
    STANDARD_BASE64
        .decode(text)
        .or_else(|_| URL_SAFE_BASE64.decode(text))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{timestamp_type, Source};
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{
        Field, Float64Type, Int64Type, Schema, TimestampMillisecondType,
    };

    fn column(name: &str, data_type: DataType, ids: &[NameId]) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            data_type,
            sources: ids
                .iter()
                .map(|id| Source {
                    id: *id,
                    name: format!("n{id}"),
                    conversion: None,
                })
                .collect(),
            aliases: vec![],
            field_type: None,
            expression: None,
        }
    }

    fn schema_of(columns: &[ColumnSpec]) -> SchemaRef {
        let mut fields = vec![Field::new("timestamp", timestamp_type(), false)];
        fields.extend(
            columns
                .iter()
                .map(|c| Field::new(&c.name, c.data_type.clone(), true)),
        );
        Arc::new(Schema::new(fields))
    }

    #[test]
    fn first_non_null_in_precedence_wins_and_failed_casts_are_counted() {
        // temperature <- (1: temperature, 2: temp, 3: tmp)
        let columns = vec![column("temperature", DataType::Float64, &[1, 2, 3])];
        let mut builder = RawBatchBuilder::new(&columns, 8);
        builder.push(10, vec![(1, Value::Float(20.5)), (2, Value::Int(99))]);
        builder.push(11, vec![(2, Value::Str("15".into())), (3, Value::Int(7))]);
        builder.push(12, vec![(3, Value::Int(7))]);
        builder.push(13, vec![(1, Value::Str("hot".into()))]);
        builder.push(14, vec![(1, Value::Str("hot".into())), (3, Value::Int(8))]);
        builder.push(15, vec![(9, Value::Int(1))]);
        let (batch, failures) = builder
            .finish(&schema_of(&columns), Some(0), &columns)
            .unwrap();
        let temps = batch.column(1).as_primitive::<Float64Type>();
        let got: Vec<Option<f64>> = temps.iter().collect();
        assert_eq!(
            got,
            vec![Some(20.5), Some(15.0), Some(7.0), None, Some(8.0), None]
        );
        // "hot" twice.
        assert_eq!(failures, 2);
        let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
        assert_eq!(ts.value(5), 15);
        assert!(builder.is_empty());
    }

    #[test]
    fn mixed_kinds_parse_directly_into_numbers_as_the_text_cast_would() {
        let values = vec![
            Value::Int(12),
            Value::Int(9_007_199_254_740_993),
            Value::Float(-0.0),
            Value::Float(20.125),
            Value::Float(1e300),
            Value::Float(12.0),
            Value::Str("12.5".into()),
            Value::Str(" 7".into()),
            Value::Str("1e3".into()),
            Value::Str("hot".into()),
            Value::Bool(true),
            Value::Null,
        ];
        for target in [DataType::Float64, DataType::Int64] {
            let text = raw_array(&values, true);
            let (want, want_failed) = recombine(&[&text], &target, values.len()).unwrap();
            let (raw, parse_failed) = raw_array_for(&values, RawTarget::of(&target));
            assert_eq!(
                raw.data_type(),
                &target,
                "parsed directly, not through text"
            );
            let (got, cast_failed) = recombine(&[&raw], &target, values.len()).unwrap();
            assert_eq!(got.to_data(), want.to_data(), "{target}");
            assert_eq!(parse_failed + cast_failed, want_failed, "{target}");
            // Borrowed values give the same array.
            let borrowed: Vec<&Value> = values.iter().collect();
            assert_eq!(
                raw_array_for(&borrowed, RawTarget::of(&target)).0.to_data(),
                raw.to_data()
            );
        }
    }

    #[test]
    fn a_name_read_as_text_and_as_a_number_stays_text() {
        let columns = vec![
            column("n", DataType::Float64, &[1]),
            column("n_text", DataType::Utf8, &[1]),
        ];
        let mut builder = RawBatchBuilder::new(&columns, 2);
        builder.push(1, vec![(1, Value::Float(2.5))]);
        builder.push(2, vec![(1, Value::Str("x".into()))]);
        let (batch, failures) = builder
            .finish(&schema_of(&columns), Some(0), &columns)
            .unwrap();
        assert_eq!(batch.column(2).as_string::<i32>().value(0), "2.5");
        assert!(batch.column(1).is_null(1));
        assert_eq!(failures, 1);
    }

    #[test]
    fn binary_fields_decode_base64_and_text_that_is_not_reads_null() {
        let sent: ArrayRef = Arc::new(StringArray::from(vec![
            Some("AQID"),
            Some("_-8"),
            None,
            Some("not base64!"),
        ]));
        let (got, failed) = recombine(&[&sent], &DataType::Binary, 4).unwrap();
        let got = got.as_binary::<i32>();
        assert_eq!(got.value(0), [1, 2, 3]);
        assert_eq!(got.value(1), [0xff, 0xef], "URL-safe, unpadded");
        assert!(got.is_null(2) && got.is_null(3));
        assert_eq!(failed, 1, "only the value that was sent and did not decode");
    }

    #[test]
    fn unknown_fields_read_as_the_text_sent_and_numbers_become_timestamps() {
        let columns = vec![
            column("gallons", DataType::Utf8, &[1]),
            column("when", timestamp_type(), &[2]),
            column("count", DataType::Int64, &[3]),
        ];
        let mut builder = RawBatchBuilder::new(&columns, 4);
        builder.push(
            1,
            vec![
                (1, Value::Str("5".into())),
                (2, Value::Int(1_421_057_535_000)),
                (3, Value::Str("15".into())),
            ],
        );
        builder.push(
            2,
            vec![
                (1, Value::Float(2.5)),
                (2, Value::Int(0)),
                (3, Value::Str("x".into())),
            ],
        );
        let (batch, failures) = builder
            .finish(&schema_of(&columns), Some(0), &columns)
            .unwrap();
        let gallons = batch.column(1).as_string::<i32>();
        assert_eq!(gallons.value(0), "5");
        assert_eq!(gallons.value(1), "2.5");
        let when = batch.column(2).as_primitive::<TimestampMillisecondType>();
        assert_eq!(when.value(0), 1_421_057_535_000);
        let count = batch.column(3).as_primitive::<Int64Type>();
        assert_eq!(count.value(0), 15);
        assert!(count.is_null(1));
        assert_eq!(failures, 1);
    }

    #[test]
    fn text_timestamps_parse_and_numbers_are_epoch_millis() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("2015-01-12T10:12:15Z"),
            Some("not a time"),
            None,
        ]));
        let b: ArrayRef = Arc::new(Float64Array::from(vec![None, None, Some(1.5)]));
        let (array, failures) = recombine(&[&a, &b], &timestamp_type(), 3).unwrap();
        let ts = array.as_primitive::<TimestampMillisecondType>();
        assert_eq!(ts.value(0), 1_421_057_535_000);
        assert!(ts.is_null(1));
        // A number is epoch milliseconds (fraction truncated), whatever its JSON kind.
        assert_eq!(ts.value(2), 1);
        assert_eq!(failures, 1);
        let (empty, failures) = recombine(&[], &DataType::Boolean, 3).unwrap();
        assert_eq!(empty.null_count(), 3);
        assert_eq!(failures, 0);
    }
}
