//! Buckets narrower than an hour are stored an hour to a blob. A 1-minute rollup stored one
//! blob per bucket read 43,200 catalog rows and decoded 43,200 IPC messages for 30 days:
//! a profile of that read put 35% of its time in SQLite's row handoff and 30% in verifying
//! and decoding the messages, and it took 2x as long as the same query over raw data
//! (docs/benchmarks.md, streaming). One blob per hour cuts both 60-fold.
//!
//! The layout a reader relies on: every row of the blob stored under key `k` has its
//! `timestamp` (the start of its bucket) in `[k, k + CHUNK_SPAN_MS)`. Per-bucket blobs (buckets
//! of an hour or wider, and blobs written before chunking) satisfy it with `timestamp == k`.
//!
//! Recomputing a few buckets rewrites their whole chunk: the chunk's stored rows outside the
//! recomputed ranges are kept, the recomputed buckets' new rows are added. Only the one
//! maintenance task writes buckets, so reading the chunk first is safe.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, BooleanArray, Int64Array};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use strata_catalog::rollups::VersionBuckets;
use strata_catalog::RollupStore;
use strata_query::rollup_table::{decode_rows, encode_rows, ROLLUP_CHUNK_SPAN_MS};

use super::definition::BUCKET_COLUMN;
use crate::error::StreamingError;

const SPAN_MS: i64 = ROLLUP_CHUNK_SPAN_MS;

/// The key of the chunk that holds the bucket starting at `bucket_ms`.
fn chunk_of(bucket_ms: i64) -> i64 {
    bucket_ms.div_euclid(SPAN_MS).saturating_mul(SPAN_MS)
}

/// Most chunks one recomputed range may touch (about 114 years of hours): a range is dirty
/// buckets or a backfill step, so more means a broken range, not a big one.
const MAX_CHUNKS_PER_RANGE: i64 = 1_000_000;

/// What a recompute writes for one version.
pub(super) struct Recomputed {
    pub version: i64,
    /// The stored (version) schema of the rows.
    pub schema: SchemaRef,
    /// `[start_ms, end_ms)` ranges recomputed: their old rows are replaced.
    pub ranges: Vec<(i64, i64)>,
    /// Each recomputed bucket's start and rows.
    pub buckets: Vec<(i64, RecordBatch)>,
}

/// `recomputed` encoded for the catalog: buckets an hour or wider one to a blob; narrower ones
/// as whole chunks, each touched chunk cleared and written again with its stored rows outside
/// the ranges plus the new buckets.
pub(super) async fn stored(
    store: &dyn RollupStore,
    rollup: i64,
    width_ms: i64,
    recomputed: Recomputed,
) -> Result<VersionBuckets, StreamingError> {
    let Recomputed {
        version,
        schema,
        ranges,
        buckets,
    } = recomputed;
    if width_ms >= SPAN_MS {
        let buckets = buckets
            .iter()
            .map(|(bucket_ms, rows)| Ok((*bucket_ms, encode_rows(rows)?)))
            .collect::<Result<_, StreamingError>>()?;
        return Ok(VersionBuckets {
            version,
            clear: ranges,
            buckets,
        });
    }
    let mut touched = touched_chunks(&ranges)?;
    for (bucket_ms, rows) in buckets {
        touched.entry(chunk_of(bucket_ms)).or_default().push(rows);
    }
    let mut out = VersionBuckets {
        version,
        clear: Vec::with_capacity(touched.len()),
        buckets: Vec::with_capacity(touched.len()),
    };
    for run in contiguous(touched.keys().copied()) {
        let stored = stored_rows(store, rollup, version, run).await?;
        for chunk in (run.0..=run.1).step_by(SPAN_MS as usize) {
            let Some(fresh) = touched.remove(&chunk) else {
                continue;
            };
            let kept = stored.get(&chunk).map(Vec::as_slice).unwrap_or_default();
            let rows = merged(&schema, kept, &ranges, fresh)?;
            out.clear.push((chunk, chunk.saturating_add(SPAN_MS)));
            if rows.num_rows() > 0 {
                out.buckets.push((chunk, encode_rows(&rows)?));
            }
        }
    }
    Ok(out)
}

/// Every chunk a recomputed range overlaps, with no new rows yet.
fn touched_chunks(
    ranges: &[(i64, i64)],
) -> Result<BTreeMap<i64, Vec<RecordBatch>>, StreamingError> {
    let mut touched = BTreeMap::new();
    for &(start_ms, end_ms) in ranges {
        if end_ms.saturating_sub(start_ms) / SPAN_MS > MAX_CHUNKS_PER_RANGE {
            return Err(StreamingError::Internal(format!(
                "a recomputed range [{start_ms}, {end_ms}) spans more than {MAX_CHUNKS_PER_RANGE} chunks"
            )));
        }
        let mut chunk = chunk_of(start_ms);
        while chunk < end_ms {
            touched.entry(chunk).or_insert_with(Vec::new);
            chunk = chunk.saturating_add(SPAN_MS);
        }
    }
    Ok(touched)
}

/// Chunk keys grouped into runs of adjacent chunks `(first, last)`, each read in one query.
fn contiguous(keys: impl Iterator<Item = i64>) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for key in keys {
        match runs.last_mut() {
            Some(run) if run.1.saturating_add(SPAN_MS) == key => run.1 = key,
            _ => runs.push((key, key)),
        }
    }
    runs
}

/// The stored rows of the chunks `run` covers, by chunk (whatever the blobs' own keys).
async fn stored_rows(
    store: &dyn RollupStore,
    rollup: i64,
    version: i64,
    run: (i64, i64),
) -> Result<BTreeMap<i64, Vec<RecordBatch>>, StreamingError> {
    let end = run.1.saturating_add(SPAN_MS);
    let mut stored: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
    for (key, bytes) in store.rollup_buckets(rollup, version, run.0, end).await? {
        stored
            .entry(chunk_of(key))
            .or_default()
            .extend(decode_rows(&bytes)?);
    }
    Ok(stored)
}

/// A chunk's stored rows whose bucket lies outside every `cleared` range, then `fresh`.
fn merged(
    schema: &SchemaRef,
    stored: &[RecordBatch],
    cleared: &[(i64, i64)],
    fresh: Vec<RecordBatch>,
) -> Result<RecordBatch, StreamingError> {
    let mut parts = Vec::with_capacity(stored.len() + fresh.len());
    for batch in stored {
        let starts = bucket_starts(batch)?;
        let keep: BooleanArray = (0..starts.len())
            .map(|i| {
                let start = starts.is_valid(i).then(|| starts.value(i));
                Some(!start.is_some_and(|s| cleared.iter().any(|(a, b)| s >= *a && s < *b)))
            })
            .collect();
        parts.push(filter_record_batch(batch, &keep)?);
    }
    parts.extend(fresh);
    Ok(concat_batches(schema, &parts)?)
}

/// The rows' bucket starts in epoch milliseconds.
fn bucket_starts(batch: &RecordBatch) -> Result<Int64Array, StreamingError> {
    let column = batch.column_by_name(BUCKET_COLUMN).ok_or_else(|| {
        StreamingError::Internal("a stored rollup row has no timestamp column".into())
    })?;
    let millis = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    let starts = cast(&millis, &DataType::Int64)?;
    starts
        .as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| StreamingError::Internal("bucket starts are not integers".into()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            Field::new("n", DataType::Int64, true),
        ]))
    }

    fn rows(buckets: &[(i64, i64)]) -> RecordBatch {
        let (starts, counts): (Vec<i64>, Vec<i64>) = buckets.iter().copied().unzip();
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from(starts)),
                Arc::new(Int64Array::from(counts)),
            ],
        )
        .expect("rows")
    }

    #[test]
    fn a_recomputed_bucket_replaces_only_its_own_rows_in_the_chunk() {
        let minute = 60_000;
        let stored = [rows(&[(0, 1), (minute, 2), (2 * minute, 3)])];
        let fresh = vec![rows(&[(minute, 20)])];
        let merged = merged(&schema(), &stored, &[(minute, 2 * minute)], fresh).expect("merge");
        let counts = merged.column(1).as_any().downcast_ref::<Int64Array>();
        assert_eq!(counts.map(|c| c.values().to_vec()), Some(vec![1, 3, 20]));
    }

    #[test]
    fn chunks_are_hours_and_adjacent_ones_are_read_together() {
        assert_eq!(chunk_of(SPAN_MS + 59 * 60_000), SPAN_MS);
        assert_eq!(chunk_of(-1), -SPAN_MS);
        let runs = contiguous([0, SPAN_MS, 3 * SPAN_MS].into_iter());
        assert_eq!(runs, vec![(0, SPAN_MS), (3 * SPAN_MS, 3 * SPAN_MS)]);
        assert!(chunk_of(i64::MIN) <= i64::MIN + SPAN_MS, "no overflow");
    }
}
