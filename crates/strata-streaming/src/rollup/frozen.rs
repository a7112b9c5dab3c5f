//! Frozen history across versions. Below the raw retention floor a rollup's buckets can no
//! longer be recomputed: the raw rows are gone, and the rollup is the only copy of that time.
//! A new version (a PATCH, or a rebuild after the source's definition changed) backfills from
//! the raw rows that are left, so when it completes it takes the old version's buckets below
//! the floor; otherwise the rebuild would drop years of history kept on purpose.
//!
//! Those buckets keep the values the old version computed: a column the new SQL adds is null
//! there, a column it drops is dropped, and a column whose type changed is cast (null where
//! the cast fails). Nothing is carried when the bucketing or the source metric changed, since
//! old buckets would then not be buckets of the new version.

use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, ArrayRef};
use datafusion::arrow::compute::{cast_with_options, concat_batches, CastOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use strata_catalog::rollups::{RollupVersion, VersionBuckets};
use strata_catalog::RollupStore;
use strata_query::rollup_table::{decode_rows, decode_schema, encode_rows};

use crate::error::StreamingError;

/// The buckets of `old` that start below `floor_ms`, as rows of `new`, to be written into
/// `new` in the commit that completes it (after its last backfill step, so they win).
pub(super) async fn carried(
    store: &dyn RollupStore,
    rollup: i64,
    old: &RollupVersion,
    new: &RollupVersion,
    floor_ms: i64,
) -> Result<VersionBuckets, StreamingError> {
    let buckets = store
        .rollup_buckets(rollup, old.version, i64::MIN, floor_ms)
        .await?;
    let (old_schema, new_schema) = (decode_schema(&old.schema)?, decode_schema(&new.schema)?);
    let mut part = VersionBuckets {
        version: new.version,
        clear: Vec::new(),
        buckets: Vec::with_capacity(buckets.len()),
    };
    for (bucket_ms, bytes) in buckets {
        let rows = if old_schema == new_schema {
            bytes
        } else {
            adapted(&bytes, &new_schema)?
        };
        part.buckets.push((bucket_ms, rows));
    }
    if !part.buckets.is_empty() {
        // What the new version computed there from partly expired raw rows goes: under one
        // key it would be replaced, but chunks and per-bucket blobs may use other keys.
        part.clear.push((i64::MIN, floor_ms));
    }
    Ok(part)
}

/// One bucket's encoded rows under `schema`: columns matched by name, cast where the type
/// changed, null where the old version had no such column.
fn adapted(bytes: &[u8], schema: &SchemaRef) -> Result<Vec<u8>, StreamingError> {
    let lenient = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    let mut adapted = Vec::new();
    for batch in decode_rows(bytes)? {
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|field| match batch.column_by_name(field.name()) {
                Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
                Some(column) => cast_with_options(column, field.data_type(), &lenient)
                    .or_else(|_| Ok(new_null_array(field.data_type(), batch.num_rows()))),
                None => Ok(new_null_array(field.data_type(), batch.num_rows())),
            })
            .collect::<Result<_, StreamingError>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let rows = RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
            .map_err(|e| StreamingError::Internal(format!("carrying a frozen bucket: {e}")))?;
        adapted.push(rows);
    }
    Ok(encode_rows(&concat_batches(schema, &adapted)?)?)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn a_bucket_keeps_its_columns_by_name_casts_changed_ones_and_nulls_new_ones() {
        let old = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("dropped", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            old,
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(Int64Array::from(vec![7, 8])),
            ],
        )
        .expect("batch");
        let new = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Float64, true),
            Field::new("added", DataType::Int64, true),
        ]));
        let bytes = adapted(&encode_rows(&batch).expect("encode"), &new).expect("adapt");
        let rows = decode_rows(&bytes).expect("decode");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].schema(), new);
        let n = rows[0].column(1).as_any().downcast_ref::<Float64Array>();
        assert_eq!(n.map(|n| n.values().to_vec()), Some(vec![1.0, 2.0]));
        assert_eq!(rows[0].column(2).null_count(), 2);
    }
}
