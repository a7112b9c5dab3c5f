use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use fjall::{Database, KeyspaceCreateOptions, PersistMode};
use strata_core::{MetricId, TenantId};

use super::buffer::WriteBuffer;
use super::codec;
use super::key::{self, KEY_LEN};
use super::recovery;
use super::scan::HotScan;
use super::weeks;
use super::writer::{
    self, Command, PreparedError, PreparedRow, PreparedWrite, Reply, Shared, Week, Writer,
    ARCHIVE_KEYSPACE, ARCHIVE_WEEK_PREFIX, DROPPED_BEFORE_KEY, FLUSHED_SEQ_KEY,
    LATE_THRESHOLD_PREFIX, SEQ_HIGH_WATER_KEY,
};
use super::{ErrorRecord, HotEvent, HotOptions, HotPartitionInfo, HotWrite, ScanRequest, WriteAck};
use crate::error::StorageError;

const META_KEYSPACE: &str = "meta";
const ERRORS_KEYSPACE: &str = "errors";
const LATE_KEYSPACE: &str = "late";
/// The write-ahead log's folder inside the hot tier's directory.
const WAL_DIR: &str = "wal";
/// Per-row overhead a batch adds beyond key and body (version byte, seq varint, bookkeeping).
const ROW_OVERHEAD_BYTES: usize = 32;

/// The hot tier. Shared as `Arc<HotStore>`; all methods take `&self`.
pub struct HotStore {
    shared: Arc<Shared>,
    commands: Sender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for HotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotStore")
            .field("last_seq", &self.last_seq())
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// An 8-byte big-endian word of the meta keyspace; `None` when the key is absent.
fn read_meta_word(
    meta: &fjall::Keyspace,
    key: impl AsRef<[u8]>,
    what: &str,
) -> Result<Option<u64>, StorageError> {
    let Some(bytes) = meta
        .get(key)
        .map_err(|e| StorageError::engine("reading the meta keyspace", e))?
    else {
        return Ok(None);
    };
    let word: [u8; 8] = bytes
        .as_ref()
        .try_into()
        .map_err(|_| StorageError::Corrupt {
            what: format!("{what} is not 8 bytes"),
        })?;
    Ok(Some(u64::from_be_bytes(word)))
}

/// Adds every weekly keyspace on disk to `weeks` (which holds the archived weeks already).
fn open_weekly_keyspaces(
    db: &Database,
    weeks: &mut BTreeMap<i64, Week>,
) -> Result<(), StorageError> {
    for name in db.list_keyspace_names() {
        let name: &str = &name;
        if let Some(week_start_ms) = key::parse_week_keyspace_name(name) {
            let keyspace = db
                .keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| StorageError::engine("opening a weekly partition", e))?;
            let week = Week {
                name: name.to_string(),
                keyspace,
                archived: false,
            };
            if let Some(other) = weeks.insert(week_start_ms, week) {
                // The writer assigns each week once, so this needs outside interference.
                tracing::error!(partition = %other.name, "week is both archived and weekly; reading the weekly keyspace");
            }
        } else if ![
            META_KEYSPACE,
            ERRORS_KEYSPACE,
            LATE_KEYSPACE,
            ARCHIVE_KEYSPACE,
        ]
        .contains(&name)
        {
            tracing::warn!(keyspace = name, "ignoring unknown keyspace in hot tier");
        }
    }
    Ok(())
}

/// Opens fjall and reads the hot tier's metadata; returns the shared state (with an empty write
/// buffer) and the sequence high-water mark recorded in `meta`.
fn open_shared(dir: &Path, options: HotOptions) -> Result<(Shared, u64), StorageError> {
    let db = Database::builder(dir)
        .cache_size(options.cache_bytes)
        // Acknowledged rows are durable in the WAL; fjall's journal (error records, metadata)
        // is synced by flushes and metadata changes, never per batch.
        .manual_journal_persist(true)
        .open()
        .map_err(|e| {
            tracing::error!(path = %dir.display(), "cannot open hot tier");
            StorageError::engine("opening the hot tier", e)
        })?;
    let meta = db
        .keyspace(META_KEYSPACE, KeyspaceCreateOptions::default)
        .map_err(|e| StorageError::engine("opening the meta keyspace", e))?;
    let errors = db
        .keyspace(ERRORS_KEYSPACE, KeyspaceCreateOptions::default)
        .map_err(|e| StorageError::engine("opening the error log", e))?;
    let late = db
        .keyspace(LATE_KEYSPACE, KeyspaceCreateOptions::default)
        .map_err(|e| StorageError::engine("opening the late index", e))?;
    let archive = db
        .keyspace(ARCHIVE_KEYSPACE, KeyspaceCreateOptions::default)
        .map_err(|e| StorageError::engine("opening the hot archive", e))?;
    let late_thresholds = read_late_thresholds(&meta)?;
    let dropped_before = read_meta_word(&meta, DROPPED_BEFORE_KEY, "dropped-partition mark")?
        .map_or(i64::MIN, key::unordered_i64);
    let mut weeks = read_archived_weeks(&meta, &archive)?;
    open_weekly_keyspaces(&db, &mut weeks)?;
    let last_seq =
        read_meta_word(&meta, SEQ_HIGH_WATER_KEY, "sequence high-water mark")?.unwrap_or(0);
    let flushed_seq =
        read_meta_word(&meta, FLUSHED_SEQ_KEY, "flushed sequence number")?.unwrap_or(0);
    let shared = Shared {
        db,
        weeks: RwLock::new(weeks),
        archive,
        errors,
        meta,
        late,
        late_thresholds: RwLock::new(late_thresholds),
        dropped_before: AtomicI64::new(dropped_before),
        last_seq: AtomicU64::new(0),
        buffer: WriteBuffer::default(),
        flushed_seq: AtomicU64::new(flushed_seq),
        flush_in_flight: AtomicBool::new(false),
        wal_dir: dir.join(WAL_DIR),
        options,
    };
    Ok((shared, last_seq))
}

/// Rows removed per batch by [`HotStore::purge_metric`]: bounds the memory of one batch.
const PURGE_BATCH_ROWS: usize = 10_000;

impl HotStore {
    /// Opens (or creates) the hot tier in `dir` and starts its writer thread.
    pub fn open(dir: &Path, options: HotOptions) -> Result<Arc<Self>, StorageError> {
        if options.max_group_bytes == 0 {
            return Err(StorageError::InvalidRequest {
                reason: "max_group_bytes must be positive".to_string(),
            });
        }
        tracing::info!(path = %dir.display(), "opening hot tier");
        let (shared, last_seq) = open_shared(dir, options)?;
        let shared = Arc::new(shared);
        let flushed_seq = shared.flushed_seq.load(Ordering::Acquire);
        let wal_last_seq = recovery::replay_wal(&shared)?;
        let last_seq = last_seq.max(wal_last_seq).max(flushed_seq);
        shared.last_seq.store(last_seq, Ordering::Release);
        tracing::info!(
            partitions = shared.weeks_snapshot().len(),
            last_seq,
            buffered_rows = shared.buffer.rows(),
            "hot tier open"
        );
        let (commands, receiver) = mpsc::channel();
        let writer_state = Writer::start(Arc::clone(&shared), last_seq + 1)?;
        let writer = std::thread::Builder::new()
            .name("strata-hot-writer".to_string())
            .spawn(move || writer::run(writer_state, receiver))
            .map_err(|e| StorageError::Io {
                context: "starting the hot-tier writer thread",
                source: Arc::new(e),
            })?;
        Ok(Arc::new(HotStore {
            shared,
            commands,
            writer: Mutex::new(Some(writer)),
            closed: AtomicBool::new(false),
        }))
    }

    /// Durable write: returns only after the events and error records are committed and (with
    /// `sync`) fsync'd. Concurrent callers share one group commit and one fsync.
    pub async fn write(&self, mut write: HotWrite) -> Result<WriteAck, StorageError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.submit(&mut write, Reply::Async(sender))?;
        receiver.await.map_err(|_| StorageError::Closed)?
    }

    /// [`HotStore::write`] that hands the events, exactly as stored (values sorted by name id,
    /// a repeated id reduced to its first value), to `then` once they are durable. `then` runs
    /// on the writer thread before the caller's answer, in commit order: the sequence numbers
    /// of successive calls only grow, which the committed-event stream relies on. Keep it
    /// short (the writer thread is serial).
    pub async fn write_then(
        &self,
        mut write: HotWrite,
        then: impl FnOnce(&WriteAck, Vec<HotEvent>) + Send + 'static,
    ) -> Result<WriteAck, StorageError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let mut prepared = prepare(&mut write, Reply::Async(sender))?;
        let events = std::mem::take(&mut write.events);
        prepared.then = Some(Box::new(move |ack: &WriteAck| then(ack, events)));
        self.commands
            .send(Command::Write(prepared))
            .map_err(|_| StorageError::Closed)?;
        receiver.await.map_err(|_| StorageError::Closed)?
    }

    /// [`HotStore::write`] for callers outside async code.
    pub fn write_blocking(&self, mut write: HotWrite) -> Result<WriteAck, StorageError> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.submit(&mut write, Reply::Blocking(sender))?;
        receiver.recv().map_err(|_| StorageError::Closed)?
    }

    fn submit(&self, write: &mut HotWrite, reply: Reply<WriteAck>) -> Result<(), StorageError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let prepared = prepare(write, reply)?;
        self.commands
            .send(Command::Write(prepared))
            .map_err(|_| StorageError::Closed)
    }

    /// Rows of one tenant and metric in a time range, in key order, over a consistent snapshot.
    pub fn scan(&self, request: &ScanRequest) -> Result<HotScan, StorageError> {
        // Buffer first, snapshot second: a row the flusher moves in between is in the buffer
        // view or in the snapshot (or both, merged on key), never in neither.
        let buffer = self.shared.buffer.view();
        // Snapshot first, partitions second: a partition created in between holds nothing
        // the snapshot can see, whereas the reverse order could miss one.
        let snapshot = self.shared.db.snapshot();
        let weeks = self.weeks_touching(request.start_ms, request.end_ms);
        Ok(HotScan::new(snapshot, buffer, false, weeks, request))
    }

    /// Late-index rows of one tenant and metric in a time range (see [`HotStore::raise_late_threshold`]).
    /// Every row carries its sequence number; callers keep those above the compacted one.
    pub fn scan_late(&self, request: &ScanRequest) -> Result<HotScan, StorageError> {
        let buffer = self.shared.buffer.view();
        let snapshot = self.shared.db.snapshot();
        let whole = vec![(i64::MIN, i64::MAX, self.shared.late.clone())];
        Ok(HotScan::new(snapshot, buffer, true, whole, request))
    }

    /// Raises the late threshold of a metric to `threshold_ms` (never lowers it) and returns the
    /// highest sequence number handed out before the change. From then on, every row of the metric
    /// with a timestamp below the threshold is also written to the late index. The compactor calls
    /// this before reading: rows at or below the returned sequence number are in its snapshot,
    /// rows after it below the threshold are in the late index, so none falls between the two.
    /// Durable (fsync'd) before it returns.
    pub async fn raise_late_threshold(
        &self,
        tenant: TenantId,
        metric: MetricId,
        threshold_ms: i64,
    ) -> Result<u64, StorageError> {
        self.ask(|reply| Command::RaiseLateThreshold {
            tenant,
            metric,
            threshold_ms,
            reply,
        })
        .await
    }

    /// Announces that weeks ending at or before `end_ms` will be dropped: from now on readers take
    /// that range from the cold tier. The drop itself must wait until queries planned before this
    /// call have finished. Durable before it returns; never moves backwards.
    pub fn retire_before(&self, end_ms: i64) -> Result<(), StorageError> {
        weeks::record_dropped_before(&self.shared, end_ms)
    }

    /// Hot data before this time may have been dropped by retention (`i64::MIN`: none was).
    pub fn dropped_before_ms(&self) -> i64 {
        self.shared.dropped_before.load(Ordering::Acquire)
    }

    /// The late threshold of a metric, if a compaction ever set one.
    pub fn late_threshold(&self, tenant: TenantId, metric: MetricId) -> Option<i64> {
        self.shared
            .late_thresholds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(tenant, metric))
            .copied()
    }

    /// Removes late-index rows of a metric with `seq <= upto_seq`: the cold tier holds them once
    /// the compaction that read them is committed. Returns how many were removed.
    pub async fn prune_late(
        &self,
        tenant: TenantId,
        metric: MetricId,
        upto_seq: u64,
    ) -> Result<usize, StorageError> {
        self.ask(|reply| Command::PruneLate {
            tenant,
            metric,
            upto_seq,
            reply,
        })
        .await
    }

    /// Deletes every hot row of a metric (weekly partitions and late index) and its late
    /// threshold, durably. For metrics that were deleted long enough ago that nothing writes to
    /// them any more; rows are removed in bounded batches off the writer thread, so ingest of
    /// other metrics is not stalled. Returns how many rows were removed. Idempotent.
    pub async fn purge_metric(
        &self,
        tenant: TenantId,
        metric: MetricId,
    ) -> Result<u64, StorageError> {
        // Buffered rows ingested after the deletions would bring the metric back.
        self.ask(|reply| Command::Flush { reply }).await?;
        let shared = self.shared.clone();
        let removed = tokio::task::spawn_blocking(move || -> Result<u64, StorageError> {
            let mut prefix = [0u8; 16];
            prefix[0..8].copy_from_slice(&key::ordered_i64(tenant.0).to_be_bytes());
            prefix[8..16].copy_from_slice(&key::ordered_i64(metric.0).to_be_bytes());
            let mut keyspaces = shared.row_keyspaces();
            keyspaces.push(shared.late.clone());
            let mut removed = 0u64;
            for keyspace in keyspaces {
                let mut batch = shared.db.batch();
                let mut in_batch = 0usize;
                for guard in keyspace.prefix(prefix) {
                    let row_key = guard
                        .key()
                        .map_err(|e| StorageError::engine("reading rows to purge", e))?;
                    batch.remove(&keyspace, row_key);
                    in_batch += 1;
                    if in_batch == PURGE_BATCH_ROWS {
                        batch
                            .commit()
                            .map_err(|e| StorageError::engine("purging a metric", e))?;
                        removed += in_batch as u64;
                        batch = shared.db.batch();
                        in_batch = 0;
                    }
                }
                if in_batch > 0 {
                    batch
                        .commit()
                        .map_err(|e| StorageError::engine("purging a metric", e))?;
                    removed += in_batch as u64;
                }
            }
            shared
                .db
                .persist(fjall::PersistMode::SyncAll)
                .map_err(|e| StorageError::engine("syncing a purge", e))?;
            Ok(removed)
        })
        .await
        .map_err(|_| StorageError::Closed)??;
        self.ask(|reply| Command::ForgetLateThreshold {
            tenant,
            metric,
            reply,
        })
        .await?;
        Ok(removed)
    }

    /// Moves every row committed so far from the write buffer into fjall, blocking.
    pub fn flush_blocking(&self) -> Result<(), StorageError> {
        self.ask_blocking(|reply| Command::Flush { reply })
    }

    /// Rows acknowledged but not yet flushed into fjall (they are in the WAL and readable).
    pub fn buffered_rows(&self) -> usize {
        self.shared.buffer.rows()
    }

    /// [`HotStore::ask`] for callers outside async code.
    fn ask_blocking<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, StorageError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let (sender, receiver) = mpsc::sync_channel(1);
        self.commands
            .send(command(Reply::Blocking(sender)))
            .map_err(|_| StorageError::Closed)?;
        receiver.recv().map_err(|_| StorageError::Closed)?
    }

    /// Sends a command to the writer thread and awaits its answer.
    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, StorageError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.commands
            .send(command(Reply::Async(sender)))
            .map_err(|_| StorageError::Closed)?;
        receiver.await.map_err(|_| StorageError::Closed)?
    }

    fn weeks_touching(&self, start_ms: i64, end_ms: i64) -> Vec<(i64, i64, fjall::Keyspace)> {
        if start_ms >= end_ms {
            return Vec::new();
        }
        let weeks = self
            .shared
            .weeks
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        weeks
            .range(key::week_start_ms(start_ms)..)
            .take_while(|(week_start, _)| **week_start < end_ms)
            .map(|(week_start, week)| {
                (
                    *week_start,
                    key::week_end_ms(*week_start),
                    week.keyspace.clone(),
                )
            })
            .collect()
    }

    /// Every weekly partition that exists (archived weeks included), oldest first.
    pub fn partitions(&self) -> Vec<HotPartitionInfo> {
        self.shared
            .weeks_snapshot()
            .iter()
            .map(|(week_start, week)| partition_info(*week_start, week))
            .collect()
    }

    /// The existing partitions a time range `[start_ms, end_ms)` touches, oldest first.
    pub fn partitions_for(&self, start_ms: i64, end_ms: i64) -> Vec<HotPartitionInfo> {
        if start_ms >= end_ms {
            return Vec::new();
        }
        self.shared
            .weeks_snapshot()
            .range(key::week_start_ms(start_ms)..)
            .take_while(|(week_start, _)| **week_start < end_ms)
            .map(|(week_start, week)| partition_info(*week_start, week))
            .collect()
    }

    /// Drops the week starting at `week_start_ms` (a Monday 00:00 UTC): a weekly keyspace in
    /// O(1), an archived week by deleting its rows from the archive in bounded batches on the
    /// calling thread (blocking). Dropping a week that does not exist succeeds. A weekly drop
    /// runs on the writer thread, so it is ordered with writes: a write acknowledged before the
    /// drop is removed by it, one after it recreates the week. Callers drop only weeks that every
    /// metric has compacted and that readers were told to avoid (`retire_before`), so a row of
    /// the week written during an archived drop is a late row, also in the late index, and
    /// whether the drop removes it changes no answer.
    pub fn drop_partition(&self, week_start_ms: i64) -> Result<(), StorageError> {
        if key::week_start_ms(week_start_ms) != week_start_ms {
            return Err(StorageError::InvalidRequest {
                reason: format!("{week_start_ms} is not the start of a week (Monday 00:00 UTC)"),
            });
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let archived = self
            .shared
            .weeks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&week_start_ms)
            .is_some_and(|week| week.archived);
        if archived {
            // Buffered rows of the week ingested after the deletions would bring them back.
            self.flush_blocking()?;
            weeks::record_dropped_before(&self.shared, key::week_end_ms(week_start_ms))?;
            let removed = delete_archived_week(&self.shared, week_start_ms)?;
            tracing::debug!(
                week_start_ms,
                rows = removed,
                "archived week's rows deleted"
            );
        }
        self.ask_blocking(|reply| {
            if archived {
                Command::ForgetArchivedWeek {
                    week_start_ms,
                    reply,
                }
            } else {
                Command::DropPartition {
                    week_start_ms,
                    reply,
                }
            }
        })
    }

    /// A tenant's error records with `time_ms >= since_ms`, oldest first, at most `limit`.
    pub fn read_errors(
        &self,
        tenant: TenantId,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<ErrorRecord>, StorageError> {
        let start = key::error_key(tenant, since_ms, 0);
        let tenant_prefix = key::ordered_i64(tenant.0).to_be_bytes();
        let mut records = Vec::new();
        for guard in self.shared.errors.range(start..) {
            if records.len() >= limit {
                break;
            }
            let (record_key, value) = guard
                .into_inner()
                .map_err(|e| StorageError::engine("reading the error log", e))?;
            if !record_key.starts_with(&tenant_prefix) {
                break;
            }
            let record: ErrorRecord =
                serde_json::from_slice(&value).map_err(|e| StorageError::Corrupt {
                    what: format!("error log record: {e}"),
                })?;
            records.push(record);
        }
        Ok(records)
    }

    /// Whether the store still takes writes: false once [`HotStore::close`] was called.
    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// The highest committed sequence number (0 before the first write).
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::Acquire)
    }

    /// Stops the writer after it has answered every request queued before this call, flushes the
    /// write buffer into fjall (so a clean stop leaves no WAL to replay) and persists the journal. Later writes fail with [`StorageError::Closed`]. Idempotent.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // A send error means the writer is already gone; joining below still cleans up.
        let _ = self.commands.send(Command::Shutdown);
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!("hot-tier writer thread panicked");
            }
        }
    }
}

impl Drop for HotStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn read_late_thresholds(
    meta: &fjall::Keyspace,
) -> Result<HashMap<(TenantId, MetricId), i64>, StorageError> {
    let mut thresholds = HashMap::new();
    for guard in meta.prefix(LATE_THRESHOLD_PREFIX) {
        let (meta_key, value) = guard
            .into_inner()
            .map_err(|e| StorageError::engine("reading late thresholds", e))?;
        let corrupt = || StorageError::Corrupt {
            what: "late threshold record".to_string(),
        };
        let ids = meta_key
            .get(LATE_THRESHOLD_PREFIX.len()..)
            .filter(|ids| ids.len() == 16)
            .ok_or_else(corrupt)?;
        let word = |bytes: &[u8]| -> Result<u64, StorageError> {
            Ok(u64::from_be_bytes(bytes.try_into().map_err(|_| corrupt())?))
        };
        let tenant = TenantId(key::unordered_i64(word(&ids[0..8])?));
        let metric = MetricId(key::unordered_i64(word(&ids[8..16])?));
        let threshold = key::unordered_i64(word(&value)?);
        thresholds.insert((tenant, metric), threshold);
    }
    Ok(thresholds)
}

fn partition_info(week_start_ms: i64, week: &Week) -> HotPartitionInfo {
    let (approx_rows, disk_bytes) = if week.archived {
        (0, 0)
    } else {
        (week.keyspace.approximate_len(), week.keyspace.disk_space())
    };
    HotPartitionInfo {
        name: week.name.clone(),
        archived: week.archived,
        week_start_ms,
        week_end_ms: key::week_end_ms(week_start_ms),
        approx_rows,
        disk_bytes,
    }
}

/// The archived weeks recorded in `meta`, each pointing at the archive keyspace.
fn read_archived_weeks(
    meta: &fjall::Keyspace,
    archive: &fjall::Keyspace,
) -> Result<BTreeMap<i64, Week>, StorageError> {
    let mut weeks = BTreeMap::new();
    for guard in meta.prefix(ARCHIVE_WEEK_PREFIX) {
        let meta_key = guard
            .key()
            .map_err(|e| StorageError::engine("reading archived weeks", e))?;
        let word: [u8; 8] = meta_key
            .get(ARCHIVE_WEEK_PREFIX.len()..)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| StorageError::Corrupt {
                what: "archived week record".to_string(),
            })?;
        let week_start_ms = key::unordered_i64(u64::from_be_bytes(word));
        weeks.insert(
            week_start_ms,
            Week {
                name: writer::archived_week_name(week_start_ms),
                keyspace: archive.clone(),
                archived: true,
            },
        );
    }
    Ok(weeks)
}

/// Deletes the archive's rows of one week, for every tenant and metric: one seek per
/// `tenant | metric` prefix present (the week's hours are contiguous under each), in batches of
/// [`PURGE_BATCH_ROWS`]. Returns how many rows were removed.
fn delete_archived_week(shared: &Shared, week_start_ms: i64) -> Result<u64, StorageError> {
    let first_hour = key::hour_bucket(week_start_ms);
    let end_hour = key::hour_bucket(key::week_end_ms(week_start_ms) - 1) + 1;
    let archive = &shared.archive;
    let mut removed = 0u64;
    let mut from = [0u8; 16];
    loop {
        let Some(guard) = archive.range(from..).next() else {
            break;
        };
        let found = guard
            .key()
            .map_err(|e| StorageError::engine("reading the hot archive", e))?;
        let Some(prefix) = found.get(0..16) else {
            return Err(StorageError::Corrupt {
                what: format!("hot archive key of {} bytes", found.len()),
            });
        };
        let mut low = [0u8; key::HOUR_PREFIX_LEN];
        low[0..16].copy_from_slice(prefix);
        let mut high = low;
        low[16..24].copy_from_slice(&key::ordered_i64(first_hour).to_be_bytes());
        high[16..24].copy_from_slice(&key::ordered_i64(end_hour).to_be_bytes());
        let mut batch = shared.db.batch();
        let mut in_batch = 0usize;
        for row in archive.range(low..high) {
            let row_key = row
                .key()
                .map_err(|e| StorageError::engine("reading the hot archive", e))?;
            batch.remove(archive, row_key);
            in_batch += 1;
            if in_batch == PURGE_BATCH_ROWS {
                batch
                    .commit()
                    .map_err(|e| StorageError::engine("dropping an archived week", e))?;
                removed += in_batch as u64;
                batch = shared.db.batch();
                in_batch = 0;
            }
        }
        batch
            .commit()
            .map_err(|e| StorageError::engine("dropping an archived week", e))?;
        removed += in_batch as u64;
        // The next `tenant | metric` prefix, or the end of the key space.
        let mut next = [0u8; 16];
        next.copy_from_slice(prefix);
        match u128::from_be_bytes(next).checked_add(1) {
            Some(value) => from = value.to_be_bytes(),
            None => break,
        }
    }
    shared
        .db
        .persist(PersistMode::SyncAll)
        .map_err(|e| StorageError::engine("syncing a dropped archived week", e))?;
    Ok(removed)
}

/// Encodes a request on the caller's thread, so the single writer thread only assembles.
/// The events stay with the caller (sorted and deduplicated in place, as stored).
fn prepare(write: &mut HotWrite, reply: Reply<WriteAck>) -> Result<PreparedWrite, StorageError> {
    let HotWrite {
        tenant,
        events,
        errors,
    } = write;
    let tenant = *tenant;
    let mut bytes = 0usize;
    let mut rows = Vec::with_capacity(events.len());
    for event in events.iter_mut() {
        // Stable sort: among duplicate name ids the first one sent comes first and is kept.
        event.values.sort_by_key(|(name, _)| *name);
        let sent = event.values.len();
        event.values.dedup_by_key(|(name, _)| *name);
        if event.values.len() != sent {
            tracing::warn!(
                tenant = %tenant,
                metric = %event.metric,
                dropped = sent - event.values.len(),
                "event repeats a name id; kept the first value of each"
            );
        }
        let mut body = Vec::with_capacity(8 + event.values.len() * 12);
        codec::encode_body(&event.values, &mut body);
        bytes += KEY_LEN + body.len() + ROW_OVERHEAD_BYTES;
        rows.push(PreparedRow {
            week_start_ms: key::week_start_ms(event.timestamp_ms),
            metric: event.metric,
            timestamp_ms: event.timestamp_ms,
            key: key::encode(
                tenant,
                event.metric,
                event.series,
                event.timestamp_ms,
                event.content_hash,
            ),
            body,
        });
    }
    let mut prepared_errors = Vec::with_capacity(errors.len());
    for record in errors.iter() {
        let json = serde_json::to_vec(record).map_err(|e| StorageError::InvalidRequest {
            reason: format!("error record cannot be encoded: {e}"),
        })?;
        bytes += json.len() + ROW_OVERHEAD_BYTES;
        prepared_errors.push(PreparedError {
            time_ms: record.time_ms,
            json,
        });
    }
    Ok(PreparedWrite {
        tenant,
        rows,
        errors: prepared_errors,
        bytes,
        then: None,
        reply,
    })
}
