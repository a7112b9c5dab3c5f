//! What a cold Parquet file holds: `timestamp` (ms, UTC), [`SERIES_COLUMN`], [`HASH_COLUMN`],
//! then one column per incoming name, stored as its field's declared type when every value
//! converts ([`lossless_cast`]) and as the sent text otherwise. The writer (`strata-cold`) and the
//! reader (`strata-query`) both take the layout from here.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::arrow::error::ArrowError;
use strata_core::FieldType;

use crate::model::timestamp_type;
use crate::recombine::recombine;

/// Column of a cold file holding the row's series hash (sort key, series pruning).
pub const SERIES_COLUMN: &str = "_strata_series";
/// Column of a cold file holding the row's content hash (identity of a re-send).
pub const HASH_COLUMN: &str = "_strata_hash";
/// Column of a cold file holding the row's event time.
pub const TIMESTAMP_COLUMN: &str = "timestamp";
/// How many fixed columns (timestamp, series, hash) come before the value columns.
pub const FIXED_COLUMNS: usize = 3;

/// The fixed columns every cold file starts with, in file order.
pub fn fixed_fields() -> [Field; FIXED_COLUMNS] {
    [
        Field::new(TIMESTAMP_COLUMN, timestamp_type(), false),
        Field::new(SERIES_COLUMN, DataType::UInt64, false),
        Field::new(HASH_COLUMN, DataType::UInt64, false),
    ]
}

/// The Arrow type a cold column of this storage type has.
pub fn storage_arrow_type(field_type: FieldType) -> DataType {
    match field_type {
        FieldType::Integer => DataType::Int64,
        FieldType::Double => DataType::Float64,
        FieldType::Boolean => DataType::Boolean,
        FieldType::Timestamp => timestamp_type(),
        FieldType::String | FieldType::Binary => DataType::Utf8,
    }
}

/// The manifest's name for a column's Arrow type (the inverse of [`storage_arrow_type`]).
pub fn storage_type_name(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Int64 => FieldType::Integer.as_str(),
        DataType::Float64 => FieldType::Double.as_str(),
        DataType::Boolean => FieldType::Boolean.as_str(),
        DataType::Timestamp(_, _) => FieldType::Timestamp.as_str(),
        _ => FieldType::String.as_str(),
    }
}

/// `column` as `field_type`, if every value converts without losing anything; else `None`.
///
/// Text converts when it parses (the recombinator's cast, so a query reads the same value from
/// either form). A typed column converts only when casting back gives the same values: a double
/// `1.5` is not an integer, and rounding it would drop what the device sent.
pub fn lossless_cast(
    column: &ArrayRef,
    field_type: FieldType,
    rows: usize,
) -> Result<Option<ArrayRef>, ArrowError> {
    let target = storage_arrow_type(field_type);
    if column.data_type() == &target {
        return Ok(Some(column.clone()));
    }
    let (cast, failures) = recombine(&[column], &target, rows)?;
    if failures > 0 {
        return Ok(None);
    }
    let from_text = matches!(column.data_type(), DataType::Utf8 | DataType::LargeUtf8);
    if !from_text {
        let back = datafusion::arrow::compute::cast(&cast, column.data_type())?;
        if back.as_ref() != column.as_ref() {
            return Ok(None);
        }
    }
    Ok(Some(cast))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_storage_type_names_itself_back() {
        for field_type in [
            FieldType::Integer,
            FieldType::Double,
            FieldType::Boolean,
            FieldType::Timestamp,
            FieldType::String,
        ] {
            let name = storage_type_name(&storage_arrow_type(field_type));
            assert_eq!(name, field_type.as_str());
        }
        // Binary fields are stored as the text that was sent.
        assert_eq!(
            storage_type_name(&storage_arrow_type(FieldType::Binary)),
            FieldType::String.as_str()
        );
    }
}
