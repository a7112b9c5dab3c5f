//! The group-commit writer: the only thread that writes to the hot tier and the only one that
//! creates or drops weekly keyspaces and assigns weeks to the archive. It takes every queued
//! request (up to a byte cap), writes them in one atomic fjall batch together with the new
//! sequence high-water mark, fsyncs once, and then answers each caller.
//!
//! Where a week lives is decided once, when its first row is written: a week near the current
//! one (see [`super::HotOptions::recent_weeks_past`]) gets its own keyspace; any other week is
//! recorded in `meta` (in the same batch as its rows) as a week of the shared archive keyspace.
//! Every later row of that week goes to the same place, so an identical re-send always meets its
//! twin's key and each row is read exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, PoisonError, RwLock};
use strata_core::now_ms;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use strata_core::{MetricId, TenantId};

use super::codec;
use super::errors::ErrorLogBudget;
use super::key::{self, error_key, ERROR_KEY_LEN, KEY_LEN};
use super::{HotOptions, WriteAck};
use crate::error::StorageError;

/// Key in the `meta` keyspace holding the highest sequence number ever committed (u64 BE).
pub(crate) const SEQ_HIGH_WATER_KEY: &[u8] = b"seq_high_water";

/// Prefix of the `meta` keys holding late thresholds: `late_threshold/ | tenant | metric` (ordered
/// i64 BE each) -> threshold ms (ordered i64 BE).
pub(crate) const LATE_THRESHOLD_PREFIX: &[u8] = b"late_threshold/";
/// Key in the `meta` keyspace: the end (ms, ordered i64 BE) of the newest week ever dropped. Hot
/// data below it may be gone, so readers must take that range from the cold tier.
pub(crate) const DROPPED_BEFORE_KEY: &[u8] = b"dropped_before";
/// Prefix of the `meta` keys naming the weeks stored in the archive keyspace:
/// `archive_week/ | week start` (ordered i64 BE) -> empty.
pub(crate) const ARCHIVE_WEEK_PREFIX: &[u8] = b"archive_week/";
/// The keyspace shared by every week that was far from the current one when first written.
pub const ARCHIVE_KEYSPACE: &str = "hot_archive";

pub(crate) fn archive_week_key(week_start_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(ARCHIVE_WEEK_PREFIX.len() + 8);
    out.extend_from_slice(ARCHIVE_WEEK_PREFIX);
    out.extend_from_slice(&key::ordered_i64(week_start_ms).to_be_bytes());
    out
}

/// The partition name of an archived week, e.g. `hot_2017-04-24@archive`.
pub(crate) fn archived_week_name(week_start_ms: i64) -> String {
    format!("{}@archive", key::week_keyspace_name(week_start_ms))
}

pub(crate) fn late_threshold_key(tenant: TenantId, metric: MetricId) -> Vec<u8> {
    let mut out = Vec::with_capacity(LATE_THRESHOLD_PREFIX.len() + 16);
    out.extend_from_slice(LATE_THRESHOLD_PREFIX);
    out.extend_from_slice(&key::ordered_i64(tenant.0).to_be_bytes());
    out.extend_from_slice(&key::ordered_i64(metric.0).to_be_bytes());
    out
}

/// One existing weekly partition: its own keyspace, or a week of the archive keyspace.
#[derive(Clone)]
pub(crate) struct Week {
    pub name: String,
    pub keyspace: Keyspace,
    pub archived: bool,
}

/// State shared by the store handle, readers and the writer thread.
pub(crate) struct Shared {
    pub db: Database,
    /// Week start (ms) -> partition. Only the writer thread inserts or removes entries.
    pub weeks: RwLock<BTreeMap<i64, Week>>,
    /// Rows of every archived week (see the module docs).
    pub archive: Keyspace,
    pub errors: Keyspace,
    pub meta: Keyspace,
    /// The late index: a copy of every row whose timestamp is below its metric's late threshold
    /// when it is written (same key, same value). The cold tier reads it to find rows that
    /// arrived after a compaction covered their time range.
    pub late: Keyspace,
    /// (tenant, metric) -> late threshold ms. Only the writer thread changes it.
    pub late_thresholds: RwLock<HashMap<(TenantId, MetricId), i64>>,
    /// See [`DROPPED_BEFORE_KEY`]; `i64::MIN` when no week was ever dropped.
    pub dropped_before: AtomicI64,
    /// Highest sequence number that is committed (and fsync'd when `sync` is on).
    pub last_seq: AtomicU64,
    pub options: HotOptions,
}

impl Shared {
    pub fn weeks_snapshot(&self) -> BTreeMap<i64, Week> {
        self.weeks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every keyspace that holds rows, each once: the weekly ones and the archive.
    pub fn row_keyspaces(&self) -> Vec<Keyspace> {
        let weeks = self.weeks.read().unwrap_or_else(PoisonError::into_inner);
        let mut keyspaces: Vec<Keyspace> = weeks
            .values()
            .filter(|week| !week.archived)
            .map(|week| week.keyspace.clone())
            .collect();
        keyspaces.push(self.archive.clone());
        keyspaces
    }

    /// Whether a week first written at `now_ms` gets its own keyspace.
    fn is_recent(&self, week_start_ms: i64, now_ms: i64) -> bool {
        let current = i128::from(key::week_start_ms(now_ms));
        let week = i128::from(key::WEEK_MS);
        let first = current - i128::from(self.options.recent_weeks_past) * week;
        let last = current + i128::from(self.options.recent_weeks_future) * week;
        (first..=last).contains(&i128::from(week_start_ms))
    }
}

/// Where the writer sends its answer: async callers await a oneshot, blocking callers a channel
/// (a tokio oneshot's blocking receive panics inside a runtime, so each kind gets its own).
pub(crate) enum Reply<T> {
    Async(tokio::sync::oneshot::Sender<Result<T, StorageError>>),
    Blocking(SyncSender<Result<T, StorageError>>),
}

impl<T> Reply<T> {
    fn send(self, result: Result<T, StorageError>) {
        // A caller that stopped waiting is not an error: its write is committed all the same.
        match self {
            Reply::Async(sender) => {
                let _ = sender.send(result);
            }
            Reply::Blocking(sender) => {
                let _ = sender.send(result);
            }
        }
    }
}

/// A row encoded on the caller's thread, so the writer only adds the sequence number.
pub(crate) struct PreparedRow {
    pub week_start_ms: i64,
    pub metric: MetricId,
    pub timestamp_ms: i64,
    pub key: [u8; KEY_LEN],
    /// The value without its version byte and seq (see [`codec::encode_body`]).
    pub body: Vec<u8>,
}

pub(crate) struct PreparedError {
    pub time_ms: i64,
    pub json: Vec<u8>,
}

impl PreparedError {
    /// Bytes the record takes in the error log (key and value), for its retention budget.
    pub fn stored_bytes(&self) -> usize {
        ERROR_KEY_LEN + self.json.len()
    }
}

pub(crate) struct PreparedWrite {
    pub tenant: TenantId,
    pub rows: Vec<PreparedRow>,
    pub errors: Vec<PreparedError>,
    /// Approximate bytes this request adds to a batch, for the group cap.
    pub bytes: usize,
    pub reply: Reply<WriteAck>,
}

pub(crate) enum Command {
    Write(PreparedWrite),
    DropPartition {
        week_start_ms: i64,
        reply: Reply<()>,
    },
    /// Forget an archived week whose rows were deleted (see `HotStore::drop_partition`).
    ForgetArchivedWeek {
        week_start_ms: i64,
        reply: Reply<()>,
    },
    /// Raise a metric's late threshold; answers the highest sequence number handed out before
    /// the change (every row at or below it is committed).
    RaiseLateThreshold {
        tenant: TenantId,
        metric: MetricId,
        threshold_ms: i64,
        reply: Reply<u64>,
    },
    /// Remove late-index rows of a metric with `seq <= upto_seq` (they are in the cold tier).
    PruneLate {
        tenant: TenantId,
        metric: MetricId,
        upto_seq: u64,
        reply: Reply<usize>,
    },
    /// Forget a purged metric's late threshold (its rows are gone).
    ForgetLateThreshold {
        tenant: TenantId,
        metric: MetricId,
        reply: Reply<()>,
    },
    Shutdown,
}

pub(crate) fn run(shared: Arc<Shared>, commands: Receiver<Command>, mut next_seq: u64) {
    debug_assert!(next_seq >= 1, "sequence numbers start at 1; 0 means none");
    let max_group_bytes = shared.options.max_group_bytes;
    let mut pending: Option<Command> = None;
    let mut error_log = ErrorLogBudget::new(&shared.options);
    loop {
        error_log.sweep_if_due(&shared.db, &shared.errors);
        let command = match pending.take() {
            Some(command) => command,
            None => match commands.recv_timeout(ErrorLogBudget::SWEEP_EVERY) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => continue,
                // Every sender is gone: the store was dropped.
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        match command {
            Command::Write(first) => {
                let mut group_bytes = first.bytes;
                let mut group = vec![first];
                while group_bytes < max_group_bytes {
                    match commands.try_recv() {
                        Ok(Command::Write(next)) if group_bytes + next.bytes <= max_group_bytes => {
                            group_bytes += next.bytes;
                            group.push(next);
                        }
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_group(&shared, &mut next_seq, group, &mut error_log);
            }
            Command::DropPartition {
                week_start_ms,
                reply,
            } => reply.send(drop_week(&shared, week_start_ms)),
            Command::ForgetArchivedWeek {
                week_start_ms,
                reply,
            } => reply.send(forget_archived_week(&shared, week_start_ms)),
            Command::RaiseLateThreshold {
                tenant,
                metric,
                threshold_ms,
                reply,
            } => reply.send(
                raise_late_threshold(&shared, tenant, metric, threshold_ms).map(|()| next_seq - 1),
            ),
            Command::PruneLate {
                tenant,
                metric,
                upto_seq,
                reply,
            } => reply.send(prune_late(&shared, tenant, metric, upto_seq)),
            Command::ForgetLateThreshold {
                tenant,
                metric,
                reply,
            } => reply.send(forget_late_threshold(&shared, tenant, metric)),
            Command::Shutdown => break,
        }
    }
    // Answer nothing more: dropping queued replies tells their callers the store is closed.
    drop(commands);
    if let Err(error) = shared.db.persist(PersistMode::SyncAll) {
        tracing::error!(error = ?error, "persisting the hot tier at shutdown failed");
    }
    tracing::debug!("hot-tier writer stopped");
}

fn commit_group(
    shared: &Shared,
    next_seq: &mut u64,
    group: Vec<PreparedWrite>,
    error_log: &mut ErrorLogBudget,
) {
    let mut new_archived = Vec::new();
    let result = write_group(shared, next_seq, &group, &mut new_archived);
    if result.is_err() && !new_archived.is_empty() {
        // Their `meta` records were in the failed batch: forget them, so the next row of such a
        // week records it again instead of landing in the archive unrecorded.
        let mut weeks = shared.weeks.write().unwrap_or_else(PoisonError::into_inner);
        for week_start in &new_archived {
            weeks.remove(week_start);
        }
    }
    match result {
        Ok(acks) => {
            debug_assert_eq!(acks.len(), group.len());
            for write in &group {
                let added: usize = write.errors.iter().map(PreparedError::stored_bytes).sum();
                if added > 0 {
                    error_log.added(&shared.db, &shared.errors, write.tenant, added as u64);
                }
            }
            for (write, ack) in group.into_iter().zip(acks) {
                write.reply.send(Ok(ack));
            }
        }
        Err(error) => {
            for write in group {
                write.reply.send(Err(error.clone()));
            }
        }
    }
}

/// Writes one group. Weeks it assigns to the archive are added to `new_archived`, so that a
/// failure can take them back.
fn write_group(
    shared: &Shared,
    next_seq: &mut u64,
    group: &[PreparedWrite],
    new_archived: &mut Vec<i64>,
) -> Result<Vec<WriteAck>, StorageError> {
    let now_ms = now_ms();
    let mut batch = shared.db.batch();
    let mut seq = *next_seq;
    let mut acks = Vec::with_capacity(group.len());
    // Consecutive rows nearly always share a week; remember the last one to skip the map.
    let mut last_week: Option<(i64, Keyspace)> = None;
    // Only this thread changes the thresholds, so holding the read guard for the group blocks
    // nothing but `HotStore::late_threshold` readers, and copies nothing per group.
    let thresholds = shared
        .late_thresholds
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    for write in group {
        let first = seq;
        for row in &write.rows {
            let late = !thresholds.is_empty()
                && thresholds
                    .get(&(write.tenant, row.metric))
                    .is_some_and(|threshold| row.timestamp_ms < *threshold);
            let keyspace = match &last_week {
                Some((start, keyspace)) if *start == row.week_start_ms => keyspace.clone(),
                _ => {
                    let keyspace =
                        week_keyspace(shared, row.week_start_ms, now_ms, &mut batch, new_archived)?;
                    last_week = Some((row.week_start_ms, keyspace.clone()));
                    keyspace
                }
            };
            let record = codec::encode_record(seq, &row.body);
            if late {
                batch.insert(&shared.late, row.key.as_slice(), record.as_slice());
            }
            batch.insert(&keyspace, row.key.as_slice(), record);
            seq += 1;
        }
        for error in &write.errors {
            batch.insert(
                &shared.errors,
                error_key(write.tenant, error.time_ms, seq).as_slice(),
                error.json.as_slice(),
            );
            seq += 1;
        }
        let used = seq > first;
        acks.push(WriteAck {
            first_seq: if used { first } else { 0 },
            rows: write.rows.len(),
            last_seq: if used { seq - 1 } else { 0 },
        });
    }
    if seq == *next_seq {
        return Ok(acks);
    }
    let high_water = seq - 1;
    batch.insert(
        &shared.meta,
        SEQ_HIGH_WATER_KEY,
        high_water.to_be_bytes().as_slice(),
    );
    // Consume the numbers even if the commit fails: the journal write may have reached the disk
    // before the failure, and handing a number out twice would break "strictly increasing".
    *next_seq = seq;
    batch
        .commit()
        .map_err(|e| StorageError::engine("committing a write batch", e))?;
    let mode = if shared.options.sync {
        PersistMode::SyncAll
    } else {
        PersistMode::Buffer
    };
    shared
        .db
        .persist(mode)
        .map_err(|e| StorageError::engine("syncing the journal", e))?;
    shared.last_seq.fetch_max(high_water, Ordering::AcqRel);
    Ok(acks)
}

/// The keyspace of a week, decided on first use (see the module docs). Only the writer thread
/// calls this, so the check-then-create cannot race. A new archived week is recorded in `meta`
/// through `batch`, atomically with its first rows.
fn week_keyspace(
    shared: &Shared,
    week_start_ms: i64,
    now_ms: i64,
    batch: &mut fjall::OwnedWriteBatch,
    new_archived: &mut Vec<i64>,
) -> Result<Keyspace, StorageError> {
    if let Some(week) = shared
        .weeks
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&week_start_ms)
    {
        return Ok(week.keyspace.clone());
    }
    if !shared.is_recent(week_start_ms, now_ms) {
        batch.insert(
            &shared.meta,
            archive_week_key(week_start_ms),
            b"".as_slice(),
        );
        remember_week(
            shared,
            week_start_ms,
            Week {
                name: archived_week_name(week_start_ms),
                keyspace: shared.archive.clone(),
                archived: true,
            },
        );
        new_archived.push(week_start_ms);
        tracing::debug!(week_start_ms, "week assigned to the hot archive");
        return Ok(shared.archive.clone());
    }
    let name = key::week_keyspace_name(week_start_ms);
    debug_assert_eq!(key::parse_week_keyspace_name(&name), Some(week_start_ms));
    let keyspace = shared
        .db
        .keyspace(&name, KeyspaceCreateOptions::default)
        .map_err(|e| StorageError::engine("creating a weekly partition", e))?;
    tracing::info!(partition = %name, "created hot partition");
    remember_week(
        shared,
        week_start_ms,
        Week {
            name,
            keyspace: keyspace.clone(),
            archived: false,
        },
    );
    Ok(keyspace)
}

/// Records where a week's rows live, for every later row of that week and for readers.
fn remember_week(shared: &Shared, week_start_ms: i64, week: Week) {
    shared
        .weeks
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(week_start_ms, week);
}

/// Forgets an archived week after `HotStore::drop_partition` deleted its rows: a later row of
/// that week is assigned afresh (and, being old, goes to the archive again).
fn forget_archived_week(shared: &Shared, week_start_ms: i64) -> Result<(), StorageError> {
    let mut batch = shared.db.batch();
    batch.remove(&shared.meta, archive_week_key(week_start_ms));
    batch
        .commit()
        .map_err(|e| StorageError::engine("forgetting an archived week", e))?;
    shared
        .db
        .persist(PersistMode::SyncAll)
        .map_err(|e| StorageError::engine("syncing a dropped archived week", e))?;
    let mut weeks = shared.weeks.write().unwrap_or_else(PoisonError::into_inner);
    if weeks.get(&week_start_ms).is_some_and(|week| week.archived) {
        weeks.remove(&week_start_ms);
    }
    tracing::info!(
        partition = %archived_week_name(week_start_ms),
        "dropped archived hot week"
    );
    Ok(())
}

fn raise_late_threshold(
    shared: &Shared,
    tenant: TenantId,
    metric: MetricId,
    threshold_ms: i64,
) -> Result<(), StorageError> {
    let current = shared
        .late_thresholds
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(tenant, metric))
        .copied();
    if current.is_some_and(|current| current >= threshold_ms) {
        return Ok(());
    }
    // Durable before it takes effect: after a crash the threshold must still cover every row
    // written under it, or a late row could end up neither in the cold tier nor in the index.
    let mut batch = shared.db.batch();
    batch.insert(
        &shared.meta,
        late_threshold_key(tenant, metric).as_slice(),
        key::ordered_i64(threshold_ms).to_be_bytes().as_slice(),
    );
    batch
        .commit()
        .map_err(|e| StorageError::engine("recording a late threshold", e))?;
    shared
        .db
        .persist(PersistMode::SyncAll)
        .map_err(|e| StorageError::engine("syncing a late threshold", e))?;
    shared
        .late_thresholds
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((tenant, metric), threshold_ms);
    Ok(())
}

fn prune_late(
    shared: &Shared,
    tenant: TenantId,
    metric: MetricId,
    upto_seq: u64,
) -> Result<usize, StorageError> {
    let mut prefix = [0u8; 16];
    prefix[0..8].copy_from_slice(&key::ordered_i64(tenant.0).to_be_bytes());
    prefix[8..16].copy_from_slice(&key::ordered_i64(metric.0).to_be_bytes());
    let mut batch = shared.db.batch();
    let mut removed = 0;
    for guard in shared.late.prefix(prefix) {
        let (row_key, value) = guard
            .into_inner()
            .map_err(|e| StorageError::engine("reading the late index", e))?;
        if codec::ValueReader::new(&value)?.seq() <= upto_seq {
            batch.remove(&shared.late, row_key);
            removed += 1;
        }
    }
    if removed > 0 {
        batch
            .commit()
            .map_err(|e| StorageError::engine("pruning the late index", e))?;
    }
    Ok(removed)
}

fn forget_late_threshold(
    shared: &Shared,
    tenant: TenantId,
    metric: MetricId,
) -> Result<(), StorageError> {
    let mut batch = shared.db.batch();
    batch.remove(&shared.meta, late_threshold_key(tenant, metric));
    batch
        .commit()
        .map_err(|e| StorageError::engine("forgetting a late threshold", e))?;
    shared
        .late_thresholds
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&(tenant, metric));
    Ok(())
}

/// Durably raises the `dropped_before` mark (never lowers it): readers stop choosing the hot tier
/// below it.
pub(crate) fn record_dropped_before(shared: &Shared, end_ms: i64) -> Result<(), StorageError> {
    if end_ms <= shared.dropped_before.load(Ordering::Acquire) {
        return Ok(());
    }
    let mut batch = shared.db.batch();
    batch.insert(
        &shared.meta,
        DROPPED_BEFORE_KEY,
        key::ordered_i64(end_ms).to_be_bytes().as_slice(),
    );
    batch
        .commit()
        .map_err(|e| StorageError::engine("recording retired partitions", e))?;
    shared
        .db
        .persist(PersistMode::SyncAll)
        .map_err(|e| StorageError::engine("syncing retired partitions", e))?;
    shared.dropped_before.fetch_max(end_ms, Ordering::AcqRel);
    Ok(())
}

fn drop_week(shared: &Shared, week_start_ms: i64) -> Result<(), StorageError> {
    let removed = {
        let mut weeks = shared.weeks.write().unwrap_or_else(PoisonError::into_inner);
        if weeks.get(&week_start_ms).is_some_and(|week| week.archived) {
            // Archived weeks are dropped row by row (`HotStore::drop_partition`), never here.
            return Ok(());
        }
        weeks.remove(&week_start_ms)
    };
    let Some(week) = removed else {
        return Ok(());
    };
    // Recorded first: if the drop then fails, readers only avoid a hot range they could have used.
    record_dropped_before(shared, key::week_end_ms(week_start_ms))?;
    // Scans already running keep their handle; fjall deletes the files once they let go.
    if let Err(error) = shared.db.delete_keyspace(week.keyspace.clone()) {
        shared
            .weeks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(week_start_ms, week);
        return Err(StorageError::engine("dropping a weekly partition", error));
    }
    tracing::info!(partition = %week.name, "dropped hot partition");
    Ok(())
}
