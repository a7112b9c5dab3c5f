use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use fjall::{Database, KeyspaceCreateOptions};
use strata_core::{MetricId, TenantId};

use super::codec;
use super::key::{self, KEY_LEN};
use super::scan::HotScan;
use super::writer::{
    self, Command, PreparedError, PreparedRow, PreparedWrite, Reply, Shared, Week,
    DROPPED_BEFORE_KEY, LATE_THRESHOLD_PREFIX, SEQ_HIGH_WATER_KEY,
};
use super::{ErrorRecord, HotOptions, HotPartitionInfo, HotWrite, ScanRequest, WriteAck};
use crate::error::StorageError;

const META_KEYSPACE: &str = "meta";
const ERRORS_KEYSPACE: &str = "errors";
const LATE_KEYSPACE: &str = "late";
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
        let db = Database::builder(dir)
            .cache_size(options.cache_bytes)
            // The writer fsyncs once per group itself; fjall must not flush per batch.
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
        let late_thresholds = read_late_thresholds(&meta)?;
        let dropped_before = match meta
            .get(DROPPED_BEFORE_KEY)
            .map_err(|e| StorageError::engine("reading the dropped-partition mark", e))?
        {
            None => i64::MIN,
            Some(bytes) => {
                let word: [u8; 8] =
                    bytes
                        .as_ref()
                        .try_into()
                        .map_err(|_| StorageError::Corrupt {
                            what: "dropped-partition mark is not 8 bytes".to_string(),
                        })?;
                key::unordered_i64(u64::from_be_bytes(word))
            }
        };

        let mut weeks = BTreeMap::new();
        for name in db.list_keyspace_names() {
            let name: &str = &name;
            if let Some(week_start_ms) = key::parse_week_keyspace_name(name) {
                let keyspace = db
                    .keyspace(name, KeyspaceCreateOptions::default)
                    .map_err(|e| StorageError::engine("opening a weekly partition", e))?;
                weeks.insert(
                    week_start_ms,
                    Week {
                        name: name.to_string(),
                        keyspace,
                    },
                );
            } else if name != META_KEYSPACE && name != ERRORS_KEYSPACE && name != LATE_KEYSPACE {
                tracing::warn!(keyspace = name, "ignoring unknown keyspace in hot tier");
            }
        }

        let last_seq = match meta
            .get(SEQ_HIGH_WATER_KEY)
            .map_err(|e| StorageError::engine("reading the sequence high-water mark", e))?
        {
            None => 0,
            Some(bytes) => {
                let word: [u8; 8] =
                    bytes
                        .as_ref()
                        .try_into()
                        .map_err(|_| StorageError::Corrupt {
                            what: "sequence high-water mark is not 8 bytes".to_string(),
                        })?;
                u64::from_be_bytes(word)
            }
        };
        tracing::info!(partitions = weeks.len(), last_seq, "hot tier open");

        let shared = Arc::new(Shared {
            db,
            weeks: RwLock::new(weeks),
            errors,
            meta,
            late,
            late_thresholds: RwLock::new(late_thresholds),
            dropped_before: AtomicI64::new(dropped_before),
            last_seq: AtomicU64::new(last_seq),
            options,
        });
        let (commands, receiver) = mpsc::channel();
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("strata-hot-writer".to_string())
            .spawn(move || writer::run(writer_shared, receiver, last_seq + 1))
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
    pub async fn write(&self, write: HotWrite) -> Result<WriteAck, StorageError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.submit(write, Reply::Async(sender))?;
        receiver.await.map_err(|_| StorageError::Closed)?
    }

    /// [`HotStore::write`] for callers outside async code.
    pub fn write_blocking(&self, write: HotWrite) -> Result<WriteAck, StorageError> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.submit(write, Reply::Blocking(sender))?;
        receiver.recv().map_err(|_| StorageError::Closed)?
    }

    fn submit(&self, write: HotWrite, reply: Reply<WriteAck>) -> Result<(), StorageError> {
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
        // Snapshot first, partitions second: a partition created in between holds nothing
        // the snapshot can see, whereas the reverse order could miss one.
        let snapshot = self.shared.db.snapshot();
        let weeks = self.weeks_touching(request.start_ms, request.end_ms);
        Ok(HotScan::new(snapshot, weeks, request))
    }

    /// Late-index rows of one tenant and metric in a time range (see [`HotStore::raise_late_threshold`]).
    /// Every row carries its sequence number; callers keep those above the compacted one.
    pub fn scan_late(&self, request: &ScanRequest) -> Result<HotScan, StorageError> {
        let snapshot = self.shared.db.snapshot();
        let whole = vec![(i64::MIN, i64::MAX, self.shared.late.clone())];
        Ok(HotScan::new(snapshot, whole, request))
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
        writer::record_dropped_before(&self.shared, end_ms)
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
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let shared = self.shared.clone();
        let removed = tokio::task::spawn_blocking(move || -> Result<u64, StorageError> {
            let mut prefix = [0u8; 16];
            prefix[0..8].copy_from_slice(&key::ordered_i64(tenant).to_be_bytes());
            prefix[8..16].copy_from_slice(&key::ordered_i64(metric).to_be_bytes());
            let mut keyspaces: Vec<fjall::Keyspace> = shared
                .weeks_snapshot()
                .into_values()
                .map(|week| week.keyspace)
                .collect();
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

    /// Every weekly partition that exists, oldest first.
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

    /// Drops the week starting at `week_start_ms` (a Monday 00:00 UTC) in O(1). Dropping a
    /// week that does not exist succeeds. Runs on the writer thread, so it is ordered with
    /// writes: a write acknowledged before the drop is removed by it, one after it recreates
    /// the week.
    pub fn drop_partition(&self, week_start_ms: i64) -> Result<(), StorageError> {
        if key::week_start_ms(week_start_ms) != week_start_ms {
            return Err(StorageError::InvalidRequest {
                reason: format!("{week_start_ms} is not the start of a week (Monday 00:00 UTC)"),
            });
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let (sender, receiver) = mpsc::sync_channel(1);
        self.commands
            .send(Command::DropPartition {
                week_start_ms,
                reply: Reply::Blocking(sender),
            })
            .map_err(|_| StorageError::Closed)?;
        receiver.recv().map_err(|_| StorageError::Closed)?
    }

    /// A tenant's error records with `time_ms >= since_ms`, oldest first, at most `limit`.
    pub fn read_errors(
        &self,
        tenant: TenantId,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<ErrorRecord>, StorageError> {
        let start = writer::error_key(tenant, since_ms, 0);
        let tenant_prefix = key::ordered_i64(tenant).to_be_bytes();
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

    /// The highest committed sequence number (0 before the first write).
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::Acquire)
    }

    /// Stops the writer after it has answered every request queued before this call, and
    /// persists the journal. Later writes fail with [`StorageError::Closed`]. Idempotent.
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
        let tenant = key::unordered_i64(word(&ids[0..8])?);
        let metric = key::unordered_i64(word(&ids[8..16])?);
        let threshold = key::unordered_i64(word(&value)?);
        thresholds.insert((tenant, metric), threshold);
    }
    Ok(thresholds)
}

fn partition_info(week_start_ms: i64, week: &Week) -> HotPartitionInfo {
    HotPartitionInfo {
        name: week.name.clone(),
        week_start_ms,
        week_end_ms: key::week_end_ms(week_start_ms),
        approx_rows: week.keyspace.approximate_len(),
        disk_bytes: week.keyspace.disk_space(),
    }
}

/// Encodes a request on the caller's thread, so the single writer thread only assembles.
fn prepare(write: HotWrite, reply: Reply<WriteAck>) -> Result<PreparedWrite, StorageError> {
    let HotWrite {
        tenant,
        events,
        errors,
    } = write;
    let mut bytes = 0usize;
    let mut rows = Vec::with_capacity(events.len());
    for mut event in events {
        // Stable sort: among duplicate name ids the first one sent comes first and is kept.
        event.values.sort_by_key(|(name, _)| *name);
        let sent = event.values.len();
        event.values.dedup_by_key(|(name, _)| *name);
        if event.values.len() != sent {
            tracing::warn!(
                tenant,
                metric = event.metric,
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
    for record in &errors {
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
        reply,
    })
}
