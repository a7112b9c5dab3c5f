//! Opening after a crash: the WAL frames above `flushed_seq` go back into the write buffer (and
//! their error records back into the error log), exactly as the writer had them when it answered.

use std::sync::atomic::Ordering;

use strata_core::now_ms;

use super::buffer::Chunk;
use super::key;
use super::wal;
use super::weeks::ensure_week;
use super::writer::Shared;
use crate::error::StorageError;

/// Replays the WAL into `shared.buffer`; returns the highest sequence number found in it (0 when
/// it is empty).
pub(crate) fn replay_wal(shared: &Shared) -> Result<u64, StorageError> {
    let flushed_seq = shared.flushed_seq.load(Ordering::Acquire);
    let now_ms = now_ms();
    let (mut last_seq, mut frames, mut rows) = (0u64, 0usize, 0usize);
    for (_, path) in wal::segments(&shared.wal_dir)? {
        for replayed in wal::read_segment(&path)? {
            last_seq = last_seq.max(replayed.last_seq);
            if replayed.last_seq <= flushed_seq {
                continue;
            }
            let frame = replayed.frame;
            // The writer recorded each week before acknowledging its rows, so this finds them;
            // it only matters if that record was lost with the disk's cache.
            let mut last_week = None;
            for row in &frame.rows {
                let week_start_ms = key::week_start_ms(key::timestamp_of(&row.key));
                if last_week != Some(week_start_ms) {
                    ensure_week(shared, week_start_ms, now_ms)?;
                    last_week = Some(week_start_ms);
                }
            }
            if !frame.errors.is_empty() {
                let mut batch = shared.db.batch();
                for index in 0..frame.errors.len() {
                    let (error_key, json) = frame.error(index);
                    batch.insert(&shared.errors, error_key, json);
                }
                batch
                    .commit()
                    .map_err(|e| StorageError::engine("replaying error records", e))?;
            }
            frames += 1;
            rows += frame.rows.len();
            if !frame.rows.is_empty() {
                shared
                    .buffer
                    .push(Chunk::from_frame(frame, replayed.last_seq));
            }
        }
    }
    if frames > 0 {
        tracing::info!(
            frames,
            rows,
            last_seq,
            flushed_seq,
            "replayed the hot tier's write-ahead log"
        );
    }
    Ok(last_seq)
}
