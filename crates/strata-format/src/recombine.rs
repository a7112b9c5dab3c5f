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

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{can_cast_types, cast_with_options, is_not_null, CastOptions};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use strata_core::{NameId, Value};

use crate::model::{ColumnSpec, UTC};

/// Collects rows for one output batch. Only the incoming names the projected columns need are
/// kept.
#[derive(Debug)]
pub struct RawBatchBuilder {
    slot_of: HashMap<NameId, usize>,
    /// Per slot: whether the consuming column wants text (no typed raw array).
    wants_text: Vec<bool>,
    timestamps: Vec<i64>,
    values: Vec<Vec<Value>>,
}

impl RawBatchBuilder {
    /// `columns` are the projected output columns; their sources decide which names to keep.
    pub fn new(columns: &[ColumnSpec], capacity: usize) -> Self {
        let mut slot_of = HashMap::new();
        let mut wants_text = Vec::new();
        for column in columns {
            for source in &column.sources {
                slot_of.entry(source.id).or_insert_with(|| {
                    wants_text.push(column.data_type == DataType::Utf8);
                    wants_text.len() - 1
                });
            }
        }
        let values = (0..wants_text.len())
            .map(|_| Vec::with_capacity(capacity))
            .collect();
        RawBatchBuilder {
            slot_of,
            wants_text,
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

    pub fn push(&mut self, timestamp_ms: i64, values: Vec<(NameId, Value)>) {
        self.push_each(timestamp_ms, values, |value| value);
    }

    /// [`RawBatchBuilder::push`] for rows the caller keeps: copies only the values it needs.
    pub fn push_borrowed(&mut self, timestamp_ms: i64, values: &[(NameId, Value)]) {
        self.push_each(
            timestamp_ms,
            values.iter().map(|(id, value)| (*id, value)),
            Value::clone,
        );
    }

    fn push_each<V>(
        &mut self,
        timestamp_ms: i64,
        values: impl IntoIterator<Item = (NameId, V)>,
        to_owned: impl Fn(V) -> Value,
    ) {
        let row = self.timestamps.len();
        self.timestamps.push(timestamp_ms);
        for (id, value) in values {
            if let Some(&slot) = self.slot_of.get(&id) {
                let column = &mut self.values[slot];
                // A repeated name in one row keeps its first value.
                if column.len() == row {
                    column.push(to_owned(value));
                }
            }
        }
        for column in &mut self.values {
            if column.len() == row {
                column.push(Value::Null);
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
        let raw: Vec<ArrayRef> = self
            .values
            .iter_mut()
            .zip(&self.wants_text)
            .map(|(values, wants_text)| {
                let array = raw_array(values, *wants_text);
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
            let sources: Vec<&ArrayRef> = column
                .sources
                .iter()
                .filter_map(|s| self.slot_of.get(&s.id).map(|slot| &raw[*slot]))
                .collect();
            let (array, failed) = recombine(&sources, &column.data_type, rows)?;
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

/// Builds one raw column, typed when every non-null value shares a kind (see the module docs).
pub fn raw_array(values: &[Value], wants_text: bool) -> ArrayRef {
    if !wants_text {
        let (mut ints, mut floats, mut bools, mut strs) = (0usize, 0usize, 0usize, 0usize);
        for value in values {
            match value {
                Value::Null => {}
                Value::Int(_) => ints += 1,
                Value::Float(_) => floats += 1,
                Value::Bool(_) => bools += 1,
                Value::Str(_) => strs += 1,
            }
        }
        if strs == 0 && bools == 0 && floats == 0 && ints > 0 {
            return Arc::new(
                values
                    .iter()
                    .map(|v| match v {
                        Value::Int(i) => Some(*i),
                        _ => None,
                    })
                    .collect::<Int64Array>(),
            );
        }
        if strs == 0 && bools == 0 && floats > 0 {
            return Arc::new(
                values
                    .iter()
                    .map(|v| match v {
                        Value::Int(i) => Some(*i as f64),
                        Value::Float(f) => Some(*f),
                        _ => None,
                    })
                    .collect::<Float64Array>(),
            );
        }
        if strs == 0 && ints == 0 && floats == 0 && bools > 0 {
            return Arc::new(
                values
                    .iter()
                    .map(|v| match v {
                        Value::Bool(b) => Some(*b),
                        _ => None,
                    })
                    .collect::<BooleanArray>(),
            );
        }
    }
    Arc::new(values.iter().map(Value::to_text).collect::<StringArray>())
}

/// Casts each source to `target` (safely: a failed cast is NULL) and coalesces them in order.
/// Returns the column and how many non-null source values failed their cast.
pub fn recombine(
    sources: &[&ArrayRef],
    target: &DataType,
    rows: usize,
) -> Result<(ArrayRef, usize), ArrowError> {
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let mut result: Option<ArrayRef> = None;
    let mut failures = 0;
    for source in sources {
        debug_assert_eq!(source.len(), rows);
        let source: ArrayRef = if can_cast_types(source.data_type(), target) {
            (*source).clone()
        } else {
            // No direct kernel (e.g. Float64 -> Timestamp): go through the text the device sent.
            cast_with_options(source, &DataType::Utf8, &options)?
        };
        let cast = cast_with_options(&source, target, &options)?;
        // A safe cast only adds NULLs, so the difference is exactly the failed values.
        debug_assert!(cast.null_count() >= source.null_count());
        failures += cast.null_count().saturating_sub(source.null_count());
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
                })
                .collect(),
            aliases: vec![],
            field_type: None,
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
