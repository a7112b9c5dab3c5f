//! The flusher: the one background job that moves buffered rows into fjall. For a job "through
//! seq S" it merges every buffered chunk at or below S (newest row per key), hands each
//! destination keyspace its rows in one sorted bulk ingestion (tables written directly, no
//! memtable, no fjall journal), records `flushed_seq = S` durably, deletes the WAL segments that
//! began at or below S, and only then drops the chunks from the buffer.
//!
//! A scan takes its buffer view before its fjall snapshot, so a row being flushed is seen in the
//! buffer, or in fjall, or both (merged on key), never in neither.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, PoisonError};

use fjall::{Keyspace, PersistMode};

use super::buffer::{self, Chunk};
use super::key;
use super::wal;
use super::writer::{Reply, Shared, FLUSHED_SEQ_KEY};
use super::CrashPoint;
use crate::error::StorageError;

/// Flush every buffered row with `seq <= through_seq`; the writer started a new WAL segment
/// before sending it.
pub(crate) struct FlushJob {
    pub through_seq: u64,
    pub reply: Option<Reply<()>>,
}

pub(crate) fn run(shared: Arc<Shared>, jobs: Receiver<FlushJob>) {
    for job in jobs {
        let result = flush(&shared, job.through_seq);
        if let Err(error) = &result {
            tracing::error!(error = %error, through_seq = job.through_seq, "flushing the hot write buffer failed; its rows stay buffered and in the WAL");
        }
        shared.flush_in_flight.store(false, Ordering::Release);
        if let Some(reply) = job.reply {
            reply.send(result);
        }
    }
    tracing::debug!("hot-tier flusher stopped");
}

fn flush(shared: &Shared, through_seq: u64) -> Result<(), StorageError> {
    let view = shared.buffer.view();
    let chunks: Vec<Arc<Chunk>> = view
        .iter()
        .filter(|chunk| chunk.last_seq <= through_seq)
        .cloned()
        .collect();
    let started = std::time::Instant::now();
    let mut rows = 0;
    if !chunks.is_empty() {
        rows = ingest_rows(shared, &chunks)?;
        ingest_late(&shared.late, &chunks)?;
    }
    crash_if(shared, CrashPoint::AfterIngest);
    if through_seq > shared.flushed_seq.load(Ordering::Acquire) {
        let mut batch = shared.db.batch();
        batch.insert(
            &shared.meta,
            FLUSHED_SEQ_KEY,
            through_seq.to_be_bytes().as_slice(),
        );
        batch
            .commit()
            .map_err(|e| StorageError::engine("recording the flushed sequence number", e))?;
        shared
            .db
            .persist(PersistMode::SyncAll)
            .map_err(|e| StorageError::engine("syncing the flushed sequence number", e))?;
        shared.flushed_seq.store(through_seq, Ordering::Release);
    }
    crash_if(shared, CrashPoint::AfterFlushedSeq);
    let segments = wal::delete_through(&shared.wal_dir, through_seq)?;
    shared.buffer.remove_through(through_seq);
    tracing::debug!(
        through_seq,
        rows,
        chunks = chunks.len(),
        segments,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "hot write buffer flushed"
    );
    Ok(())
}

/// The kill -9 tests' hook (see [`super::HotOptions::crash_at`]).
fn crash_if(shared: &Shared, point: CrashPoint) {
    if shared.options.crash_at == Some(point) {
        tracing::error!(?point, "crashing on purpose (HotOptions::crash_at)");
        std::process::abort();
    }
}

/// Ingests the chunks' rows into their weeks' keyspaces; returns how many rows it wrote. Every
/// destination keyspace gets one ingestion, all open at once, fed by one streaming merge: no
/// copy of the rows is gathered (a flush of 1M rows would otherwise allocate ~80 MB afresh).
fn ingest_rows(shared: &Shared, chunks: &[Arc<Chunk>]) -> Result<usize, StorageError> {
    let keyspaces = destinations(shared, chunks)?;
    let mut ingestions = Vec::with_capacity(keyspaces.len());
    for (_, keyspace) in &keyspaces {
        let ingestion = keyspace
            .start_ingestion()
            .map_err(|e| StorageError::engine("starting a hot-tier ingestion", e))?;
        ingestions.push(ingestion);
    }
    let mut last: Option<(i64, usize)> = None;
    let rows = buffer::merge_newest(chunks, false, |key, value| {
        let week_start_ms = key::week_start_ms(key::timestamp_of(key));
        let index = match last {
            Some((week, index)) if week == week_start_ms => index,
            _ => {
                let index = keyspaces
                    .iter()
                    .position(|(week, _)| week.contains(&week_start_ms))
                    .ok_or_else(|| unplaced(week_start_ms))?;
                last = Some((week_start_ms, index));
                index
            }
        };
        ingestions[index]
            .write(key.as_slice(), value)
            .map_err(|e| StorageError::engine("ingesting buffered rows", e))
    })?;
    for ingestion in ingestions {
        ingestion
            .finish()
            .map_err(|e| StorageError::engine("finishing a hot-tier ingestion", e))?;
    }
    Ok(rows)
}

fn unplaced(week_start_ms: i64) -> StorageError {
    StorageError::Corrupt {
        what: format!("buffered row of week {week_start_ms} has no hot partition"),
    }
}

/// The keyspaces the chunks' rows go to, each with the weeks it receives (every archived week
/// goes to the one archive keyspace).
fn destinations(
    shared: &Shared,
    chunks: &[Arc<Chunk>],
) -> Result<Vec<(BTreeSet<i64>, Keyspace)>, StorageError> {
    let mut week_starts = BTreeSet::new();
    for chunk in chunks {
        let mut last = None;
        for row in &chunk.rows {
            let week_start_ms = key::week_start_ms(key::timestamp_of(&row.key));
            if last != Some(week_start_ms) {
                week_starts.insert(week_start_ms);
                last = Some(week_start_ms);
            }
        }
    }
    let weeks = shared.weeks.read().unwrap_or_else(PoisonError::into_inner);
    let mut by_keyspace: BTreeMap<_, (BTreeSet<i64>, Keyspace)> = BTreeMap::new();
    for week_start_ms in week_starts {
        let week = weeks
            .get(&week_start_ms)
            .ok_or_else(|| unplaced(week_start_ms))?;
        by_keyspace
            .entry(week.keyspace.id())
            .or_insert_with(|| (BTreeSet::new(), week.keyspace.clone()))
            .0
            .insert(week_start_ms);
    }
    Ok(by_keyspace.into_values().collect())
}

/// One bulk ingestion of the chunks' late rows into the late index.
fn ingest_late(keyspace: &Keyspace, chunks: &[Arc<Chunk>]) -> Result<(), StorageError> {
    if chunks.iter().all(|chunk| chunk.late.is_empty()) {
        return Ok(());
    }
    let mut ingestion = keyspace
        .start_ingestion()
        .map_err(|e| StorageError::engine("starting a hot-tier ingestion", e))?;
    buffer::merge_newest(chunks, true, |key, value| {
        ingestion
            .write(key.as_slice(), value)
            .map_err(|e| StorageError::engine("ingesting buffered late rows", e))
    })?;
    ingestion
        .finish()
        .map_err(|e| StorageError::engine("finishing a hot-tier ingestion", e))
}
