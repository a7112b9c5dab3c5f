//! Hot rows -> one Parquet file.
//!
//! Columns: `timestamp` (ms, UTC), `_strata_series` and `_strata_hash` (the row's series hash and
//! content hash: the sort key and the identity a late re-send is matched by), then one column per
//! incoming name that occurs in the file, named as the device sent it.
//!
//! A value column is typed when its name belongs to a field declared with a type at compaction
//! time *and* every value in this file converts with the same cast the query recombinator
//! applies (`strata_format::lossless_cast`); otherwise it is text (`Value::to_text`), so a value that does not fit its declared
//! type keeps the text that was sent. No value is ever dropped.
//!
//! Rows are sorted by series hash, then timestamp, so the row-group and page statistics of
//! `_strata_series` let a one-device query skip most of a file.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use strata_catalog::ColdColumn;
use strata_core::{FieldType, NameId, Value};
use strata_format::cold_file::{fixed_fields, lossless_cast};
use strata_format::model::UTC;
use strata_format::recombine::raw_array;

use crate::ColdError;

/// Rows per row group: small enough that statistics prune a one-device query to a few groups,
/// large enough that a full scan is not dominated by per-group overhead.
pub const ROW_GROUP_ROWS: usize = 65_536;
/// Rows per data page, so the page index can skip inside a row group.
pub const PAGE_ROWS: usize = 8_192;

/// One row to compact.
#[derive(Debug, Clone, PartialEq)]
pub struct ColdRow {
    pub timestamp_ms: i64,
    pub series: u64,
    pub content_hash: u64,
    /// Sorted by name id, unique.
    pub values: Vec<(NameId, Value)>,
}

/// An incoming name of the metric and the type its field declares, if any.
#[derive(Debug, Clone)]
pub struct NameSpec {
    pub id: NameId,
    pub name: String,
    pub declared: Option<FieldType>,
    /// Its values are not written (a field hidden for the purge delay).
    pub purged: bool,
}

#[derive(Debug)]
pub struct EncodedFile {
    pub bytes: Vec<u8>,
    pub rows: u64,
    pub min_ts_ms: i64,
    pub max_ts_ms: i64,
    pub columns: Vec<ColdColumn>,
}

/// Sorts `rows` and encodes them as one Parquet file. `rows` must not be empty.
pub fn encode_file(mut rows: Vec<ColdRow>, names: &[NameSpec]) -> Result<EncodedFile, ColdError> {
    if rows.is_empty() {
        return Err(ColdError::Encode("no rows to encode".to_string()));
    }
    rows.sort_unstable_by_key(|row| (row.series, row.timestamp_ms, row.content_hash));
    let row_count = rows.len();
    let spec_of: HashMap<NameId, &NameSpec> = names.iter().map(|n| (n.id, n)).collect();

    // Slots for the names present in these rows, in name-id order (stable column order).
    let mut present: Vec<NameId> = rows
        .iter()
        .flat_map(|row| row.values.iter().map(|(id, _)| *id))
        .collect();
    present.sort_unstable();
    present.dedup();
    present.retain(|id| !spec_of.get(id).is_some_and(|spec| spec.purged));
    let slot_of: HashMap<NameId, usize> =
        present.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut columns_values: Vec<Vec<Value>> = (0..present.len())
        .map(|_| Vec::with_capacity(row_count))
        .collect();
    let mut timestamps = Vec::with_capacity(row_count);
    let mut series = Vec::with_capacity(row_count);
    let mut hashes = Vec::with_capacity(row_count);
    for (index, row) in rows.into_iter().enumerate() {
        timestamps.push(row.timestamp_ms);
        series.push(row.series);
        hashes.push(row.content_hash);
        for (id, value) in row.values {
            if let Some(&slot) = slot_of.get(&id) {
                if columns_values[slot].len() == index {
                    columns_values[slot].push(value);
                }
            }
        }
        for column in &mut columns_values {
            if column.len() == index {
                column.push(Value::Null);
            }
        }
    }
    let min_ts_ms = timestamps.iter().copied().min().unwrap_or_default();
    let max_ts_ms = timestamps.iter().copied().max().unwrap_or_default();

    let mut fields = fixed_fields().to_vec();
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(timestamps).with_timezone(UTC)),
        Arc::new(UInt64Array::from(series)),
        Arc::new(UInt64Array::from(hashes)),
    ];
    let mut columns = Vec::with_capacity(present.len());
    for (id, values) in present.iter().zip(&columns_values) {
        let spec = spec_of.get(id).ok_or_else(|| {
            ColdError::Encode(format!("incoming name id {id} is not in the catalog"))
        })?;
        let (array, storage) = typed_or_text(values, spec.declared, row_count)?;
        fields.push(Field::new(&spec.name, array.data_type().clone(), true));
        arrays.push(array);
        columns.push(ColdColumn {
            name: spec.name.clone(),
            storage_type: storage.as_str().to_string(),
        });
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema, arrays)?;
    let bytes = write_parquet(&batch)?;
    Ok(EncodedFile {
        bytes,
        rows: row_count as u64,
        min_ts_ms,
        max_ts_ms,
        columns,
    })
}

/// Writes a batch laid out as [`encode_file`] makes it (timestamp, series, hash, values; sorted
/// by series then time) with the cold tier's Parquet settings.
pub fn write_parquet(batch: &RecordBatch) -> Result<Vec<u8>, ColdError> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: 1,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            },
        ]))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(bytes)
}

/// The declared type when every value converts, else text.
fn typed_or_text(
    values: &[Value],
    declared: Option<FieldType>,
    rows: usize,
) -> Result<(ArrayRef, FieldType), ColdError> {
    let target = match declared {
        Some(t @ (FieldType::Integer | FieldType::Double | FieldType::Boolean)) => Some(t),
        Some(FieldType::Timestamp) => Some(FieldType::Timestamp),
        // Text and binary fields are stored as the text that was sent.
        Some(FieldType::String | FieldType::Binary) | None => None,
    };
    if let Some(field_type) = target {
        let raw = raw_array(values, false);
        if let Some(cast) = lossless_cast(&raw, field_type, rows)? {
            return Ok((cast, field_type));
        }
    }
    Ok((raw_array(values, true), FieldType::String))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::UInt64Type;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    use strata_format::cold_file::SERIES_COLUMN;

    fn row(ts: i64, series: u64, values: Vec<(NameId, Value)>) -> ColdRow {
        ColdRow {
            timestamp_ms: ts,
            series,
            content_hash: ts as u64 * 31 + series,
            values,
        }
    }

    fn names() -> Vec<NameSpec> {
        vec![
            NameSpec {
                id: 1,
                name: "level".into(),
                declared: Some(FieldType::Integer),
                purged: false,
            },
            NameSpec {
                id: 2,
                name: "note".into(),
                declared: None,
                purged: false,
            },
            NameSpec {
                id: 3,
                name: "never".into(),
                declared: Some(FieldType::Double),
                purged: false,
            },
        ]
    }

    #[test]
    fn rows_sort_by_series_then_time_and_declared_columns_are_typed() {
        let rows = vec![
            row(
                30,
                2,
                vec![(1, Value::Str("15".into())), (2, Value::Int(7))],
            ),
            row(10, 2, vec![(1, Value::Int(3))]),
            row(20, 1, vec![(2, Value::Str("x".into()))]),
        ];
        let file = encode_file(rows, &names()).unwrap();
        assert_eq!((file.rows, file.min_ts_ms, file.max_ts_ms), (3, 10, 30));
        // Absent names get no column; the declared one is typed, the unknown one is text.
        assert_eq!(
            file.columns,
            vec![
                ColdColumn {
                    name: "level".into(),
                    storage_type: "integer".into()
                },
                ColdColumn {
                    name: "note".into(),
                    storage_type: "string".into()
                },
            ]
        );
        let bytes = bytes::Bytes::from(file.bytes);
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .build()
            .unwrap();
        let batch = reader.map(|b| b.unwrap()).next().unwrap();
        let series: Vec<u64> = batch
            .column_by_name(SERIES_COLUMN)
            .unwrap()
            .as_primitive::<UInt64Type>()
            .values()
            .to_vec();
        assert_eq!(series, vec![1, 2, 2]);
        let level = batch.column_by_name("level").unwrap();
        let level = level.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(
            level.iter().collect::<Vec<_>>(),
            vec![None, Some(3), Some(15)]
        );
        let note = batch.column_by_name("note").unwrap().as_string::<i32>();
        assert_eq!(note.value(0), "x");
        assert_eq!(note.value(2), "7");
        // Statistics and the page index are written, and the sort order is declared.
        let meta = SerializedFileReader::new(bytes).unwrap().metadata().clone();
        let group = meta.row_group(0);
        assert!(group.column(1).statistics().is_some());
        assert_eq!(group.sorting_columns().map(|c| c.len()), Some(2));
    }

    #[test]
    fn a_double_with_a_fraction_is_never_rounded_into_an_integer_column() {
        let rows = vec![
            row(1, 0, vec![(1, Value::Float(1.5))]),
            row(2, 0, vec![(1, Value::Float(2.0))]),
        ];
        let file = encode_file(rows, &names()).unwrap();
        assert_eq!(file.columns[0].storage_type, "string");
        let whole = vec![
            row(1, 0, vec![(1, Value::Float(1.0))]),
            row(2, 0, vec![(1, Value::Float(2.0))]),
        ];
        let file = encode_file(whole, &names()).unwrap();
        assert_eq!(file.columns[0].storage_type, "integer");
    }

    #[test]
    fn a_value_that_does_not_fit_keeps_the_whole_column_as_sent_text() {
        let rows = vec![
            row(1, 0, vec![(1, Value::Str("15".into()))]),
            row(2, 0, vec![(1, Value::Str("full".into()))]),
        ];
        let file = encode_file(rows, &names()).unwrap();
        assert_eq!(file.columns[0].storage_type, "string");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file.bytes))
            .unwrap()
            .build()
            .unwrap();
        let batch = reader.map(|b| b.unwrap()).next().unwrap();
        let level = batch.column_by_name("level").unwrap().as_string::<i32>();
        assert_eq!((level.value(0), level.value(1)), ("15", "full"));
    }
}
