//! The group-commit writer: the only thread that appends to the hot tier's write-ahead log and the
//! only one that creates or drops weekly keyspaces and assigns weeks to the archive. It takes
//! every queued request (up to a byte cap), appends them as one WAL frame, fsyncs once, adds the
//! group's rows to the write buffer as one sorted chunk, and then answers each caller. The
//! flusher (`flush.rs`) moves buffered rows into fjall in bulk.
//!
//! Where a week lives is decided once, when its first row is written: a week near the current
//! one (see [`super::HotOptions::recent_weeks_past`]) gets its own keyspace; any other week is
//! recorded in `meta` (durably, before its first row is acknowledged) as a week of the shared
//! archive keyspace.
//! Every later row of that week goes to the same place, so an identical re-send always meets its
//! twin's key and each row is read exactly once.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use strata_core::now_ms;

use fjall::{Database, Keyspace, PersistMode};
use strata_core::{MetricId, TenantId};

use super::buffer::{Chunk, WriteBuffer};
use super::errors::ErrorLogBudget;
use super::flush::{self, FlushJob};
use super::key::{self, error_key, ERROR_KEY_LEN, KEY_LEN};
use super::late;
use super::wal::{GroupFrame, WalWriter};
use super::weeks;
use super::{HotOptions, WriteAck};
use crate::error::StorageError;

/// Key in the `meta` keyspace holding the highest sequence number ever committed (u64 BE). Not
/// synced per group: at open the WAL's frames can only raise it.
pub(crate) const SEQ_HIGH_WATER_KEY: &[u8] = b"seq_high_water";
/// Key in the `meta` keyspace: every row at or below this seq (u64 BE) is ingested into fjall, so
/// WAL frames at or below it are not replayed.
pub(crate) const FLUSHED_SEQ_KEY: &[u8] = b"flushed_seq";

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
    /// Rows in the WAL that the flusher has not ingested yet; read by every scan.
    pub buffer: WriteBuffer,
    /// Every row at or below this seq is in fjall (see [`FLUSHED_SEQ_KEY`]).
    pub flushed_seq: AtomicU64,
    /// Set by the writer when it sends a flush job, cleared by the flusher when one ends.
    pub flush_in_flight: AtomicBool,
    pub wal_dir: PathBuf,
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
    pub fn is_recent(&self, week_start_ms: i64, now_ms: i64) -> bool {
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
    pub(crate) fn send(self, result: Result<T, StorageError>) {
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
    /// Run on the writer thread once the write is durable, before its reply, in commit order.
    pub then: Option<AfterCommit>,
    pub reply: Reply<WriteAck>,
}

/// What a write runs once durable (see [`crate::HotStore::write_then`]).
pub(crate) type AfterCommit = Box<dyn FnOnce(&WriteAck) + Send>;

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
    /// Flush every row committed so far into fjall; answered by the flusher when it is done.
    Flush {
        reply: Reply<()>,
    },
    Shutdown,
}

/// How long the writer waits for a command before it checks whether a flush is due by age.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// The buffer may hold this many flushes' worth of rows before writes wait for the flusher, so
/// that a slow disk bounds memory instead of letting the buffer grow with the load.
const BUFFERED_FLUSHES_MAX: usize = 4;
/// Longest a write waits for room in the buffer; past it the write goes ahead (and memory grows)
/// rather than failing a request whose data the disk could take.
const BACKPRESSURE_MAX_WAIT: Duration = Duration::from_secs(30);

/// The writer thread's own state: the sequence counter, the WAL segment it appends to and the
/// line to the flusher.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    next_seq: u64,
    wal: WalWriter,
    flush_jobs: Option<Sender<FlushJob>>,
    flusher: Option<JoinHandle<()>>,
    error_log: ErrorLogBudget,
    /// When the oldest WAL frame that no flush has been asked to cover was appended.
    unflushed_since: Option<Instant>,
}

impl Writer {
    /// Starts the flusher; `next_seq` is one above every number used before (WAL included).
    pub fn start(shared: Arc<Shared>, next_seq: u64) -> Result<Self, StorageError> {
        debug_assert!(next_seq >= 1, "sequence numbers start at 1; 0 means none");
        let wal = WalWriter::new(shared.wal_dir.clone(), shared.options.sync)?;
        let (flush_jobs, jobs) = mpsc::channel();
        let flusher_shared = Arc::clone(&shared);
        let flusher = std::thread::Builder::new()
            .name("strata-hot-flush".to_string())
            .spawn(move || flush::run(flusher_shared, jobs))
            .map_err(|e| StorageError::Io {
                context: "starting the hot-tier flusher thread",
                source: Arc::new(e),
            })?;
        // Replayed rows are flushed once the interval has passed, like fresh ones.
        let unflushed_since = (shared.buffer.rows() > 0).then(Instant::now);
        Ok(Writer {
            error_log: ErrorLogBudget::new(&shared.options),
            shared,
            next_seq,
            wal,
            flush_jobs: Some(flush_jobs),
            flusher: Some(flusher),
            unflushed_since,
        })
    }

    /// Asks the flusher to move every row committed so far into fjall. A new WAL segment starts
    /// first, so every segment that began at or below the job's seq ends at or below it.
    fn request_flush(&mut self, reply: Option<Reply<()>>) {
        self.wal.rotate();
        self.unflushed_since = None;
        self.shared.flush_in_flight.store(true, Ordering::Release);
        let job = FlushJob {
            through_seq: self.next_seq - 1,
            reply,
        };
        let sent = match &self.flush_jobs {
            Some(jobs) => jobs.send(job).map_err(|error| error.0),
            None => Err(job),
        };
        if let Err(job) = sent {
            self.shared.flush_in_flight.store(false, Ordering::Release);
            if let Some(reply) = job.reply {
                reply.send(Err(StorageError::Closed));
            }
        }
    }

    /// Flushes everything committed so far and waits for it.
    fn flush_now(&mut self) -> Result<(), StorageError> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.request_flush(Some(Reply::Blocking(sender)));
        receiver.recv().map_err(|_| StorageError::Closed)?
    }

    /// Starts a flush when the buffer holds `flush_rows` rows or the oldest unflushed frame is
    /// `flush_interval` old, unless one is running.
    fn flush_if_due(&mut self) {
        if self.shared.flush_in_flight.load(Ordering::Acquire) {
            return;
        }
        let options = &self.shared.options;
        let full = self.shared.buffer.rows() >= options.flush_rows;
        let old = self
            .unflushed_since
            .is_some_and(|since| since.elapsed() >= options.flush_interval);
        if full || old {
            self.request_flush(None);
        }
    }

    /// Backpressure: waits while the buffer holds [`BUFFERED_FLUSHES_MAX`] flushes' worth.
    fn wait_for_room(&mut self) {
        let limit = self
            .shared
            .options
            .flush_rows
            .saturating_mul(BUFFERED_FLUSHES_MAX);
        let started = Instant::now();
        while self.shared.buffer.rows() >= limit && started.elapsed() < BACKPRESSURE_MAX_WAIT {
            self.flush_if_due();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Flushes the buffer, stops the flusher and persists fjall: a clean stop leaves no WAL.
    fn shut_down(mut self) {
        if let Err(error) = self.flush_now() {
            tracing::error!(error = %error, "flushing the hot write buffer at shutdown failed; the WAL keeps its rows");
        }
        self.flush_jobs = None;
        if let Some(flusher) = self.flusher.take() {
            if flusher.join().is_err() {
                tracing::error!("hot-tier flusher thread panicked");
            }
        }
        if let Err(error) = self.shared.db.persist(PersistMode::SyncAll) {
            tracing::error!(error = ?error, "persisting the hot tier at shutdown failed");
        }
    }
}

pub(crate) fn run(mut writer: Writer, commands: Receiver<Command>) {
    let max_group_bytes = writer.shared.options.max_group_bytes;
    let mut pending: Option<Command> = None;
    loop {
        let shared = Arc::clone(&writer.shared);
        writer.error_log.sweep_if_due(&shared.db, &shared.errors);
        writer.flush_if_due();
        let command = match pending.take() {
            Some(command) => command,
            None => match commands.recv_timeout(IDLE_TICK) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => continue,
                // Every sender is gone: the store was dropped.
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        match command {
            Command::Write(first) => {
                let group = gather_group(first, &commands, max_group_bytes, &mut pending);
                writer.commit_group(group);
            }
            Command::Shutdown => break,
            other => writer.handle(other),
        }
    }
    // Answer nothing more: dropping queued replies tells their callers the store is closed.
    drop(commands);
    writer.shut_down();
    tracing::debug!("hot-tier writer stopped");
}

/// Takes the queued writes after `first`, up to `max_group_bytes`; a command that is not a write
/// (or a write that would pass the cap) ends the group and waits in `pending`.
fn gather_group(
    first: PreparedWrite,
    commands: &Receiver<Command>,
    max_group_bytes: usize,
    pending: &mut Option<Command>,
) -> Vec<PreparedWrite> {
    let mut group_bytes = first.bytes;
    let mut group = vec![first];
    while group_bytes < max_group_bytes {
        match commands.try_recv() {
            Ok(Command::Write(next)) if group_bytes + next.bytes <= max_group_bytes => {
                group_bytes += next.bytes;
                group.push(next);
            }
            Ok(other) => {
                *pending = Some(other);
                break;
            }
            Err(_) => break,
        }
    }
    group
}

impl Writer {
    /// Every command but writes and shutdown. Operations that change fjall's rows directly flush
    /// first: a buffered row ingested after them would undo them (ingested tables are newer than
    /// their deletions).
    fn handle(&mut self, command: Command) {
        let shared = Arc::clone(&self.shared);
        match command {
            Command::DropPartition {
                week_start_ms,
                reply,
            } => reply.send(
                self.flush_now()
                    .and_then(|()| weeks::drop_week(&shared, week_start_ms)),
            ),
            Command::ForgetArchivedWeek {
                week_start_ms,
                reply,
            } => reply.send(
                self.flush_now()
                    .and_then(|()| weeks::forget_archived_week(&shared, week_start_ms)),
            ),
            Command::RaiseLateThreshold {
                tenant,
                metric,
                threshold_ms,
                reply,
            } => reply.send(
                late::raise_late_threshold(&shared, tenant, metric, threshold_ms)
                    .map(|()| self.next_seq - 1),
            ),
            Command::PruneLate {
                tenant,
                metric,
                upto_seq,
                reply,
            } => reply.send(
                self.flush_now()
                    .and_then(|()| late::prune_late(&shared, tenant, metric, upto_seq)),
            ),
            Command::ForgetLateThreshold {
                tenant,
                metric,
                reply,
            } => reply.send(late::forget_late_threshold(&shared, tenant, metric)),
            Command::Flush { reply } => self.request_flush(Some(reply)),
            // `run` gathers writes into groups and stops on shutdown itself; a stray write is
            // still served alone.
            Command::Write(write) => self.commit_group(vec![write]),
            Command::Shutdown => tracing::error!("shutdown reached the command handler; ignored"),
        }
    }
}

impl Writer {
    fn commit_group(&mut self, group: Vec<PreparedWrite>) {
        self.wait_for_room();
        let shared = Arc::clone(&self.shared);
        let started = Instant::now();
        let result = write_group(&shared, &mut self.next_seq, &mut self.wal, &group);
        match result {
            Ok(acks) => {
                debug_assert_eq!(acks.len(), group.len());
                record_group_commit(&acks, started.elapsed());
                if acks.iter().any(|ack| ack.last_seq > 0) {
                    self.unflushed_since.get_or_insert_with(Instant::now);
                }
                for write in &group {
                    let added: usize = write.errors.iter().map(PreparedError::stored_bytes).sum();
                    if added > 0 {
                        self.error_log.added(
                            &shared.db,
                            &shared.errors,
                            write.tenant,
                            added as u64,
                        );
                    }
                }
                for (write, ack) in group.into_iter().zip(acks) {
                    if let Some(then) = write.then {
                        then(&ack);
                    }
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
}

/// The group commit's size and latency for `GET /metrics` (one histogram sample each per group,
/// off the per-event path).
fn record_group_commit(acks: &[WriteAck], took: Duration) {
    use strata_core::telemetry::{GROUP_COMMIT_ROWS, GROUP_COMMIT_SECONDS, GROUP_COMMIT_WRITES};
    let rows: usize = acks.iter().map(|ack| ack.rows).sum();
    metrics::histogram!(GROUP_COMMIT_WRITES).record(acks.len() as f64);
    metrics::histogram!(GROUP_COMMIT_ROWS).record(rows as f64);
    metrics::histogram!(GROUP_COMMIT_SECONDS).record(took.as_secs_f64());
}

/// Writes one group: one WAL frame, fsync'd (the ack point), then its rows become a buffer chunk
/// and its error records go to fjall (not synced: replaying the frame restores them).
fn write_group(
    shared: &Shared,
    next_seq: &mut u64,
    wal: &mut WalWriter,
    group: &[PreparedWrite],
) -> Result<Vec<WriteAck>, StorageError> {
    let bytes: usize = group.iter().map(|write| write.bytes).sum();
    let mut frame = GroupFrame::with_capacity(bytes);
    let mut seq = *next_seq;
    let acks = encode_group(shared, group, &mut frame, &mut seq)?;
    if seq == *next_seq {
        return Ok(acks);
    }
    let first_seq = *next_seq;
    let last_seq = seq - 1;
    // Consume the numbers even if the append fails: part of the frame may have reached the disk,
    // and handing a number out twice would break "strictly increasing".
    *next_seq = seq;
    frame.seal(first_seq, last_seq);
    wal.append(first_seq, &frame.bytes)?;
    let mut batch = shared.db.batch();
    for index in 0..frame.errors.len() {
        let (error_key, json) = frame.error(index);
        batch.insert(&shared.errors, error_key, json);
    }
    batch.insert(
        &shared.meta,
        SEQ_HIGH_WATER_KEY,
        last_seq.to_be_bytes().as_slice(),
    );
    batch
        .commit()
        .map_err(|e| StorageError::engine("recording error records", e))?;
    if !frame.rows.is_empty() {
        shared.buffer.push(Chunk::from_frame(frame, last_seq));
    }
    shared.last_seq.fetch_max(last_seq, Ordering::AcqRel);
    Ok(acks)
}

/// Encodes a group's rows and error records into `frame`, numbering them from `seq`.
fn encode_group(
    shared: &Shared,
    group: &[PreparedWrite],
    frame: &mut GroupFrame,
    seq: &mut u64,
) -> Result<Vec<WriteAck>, StorageError> {
    let now_ms = now_ms();
    let mut acks = Vec::with_capacity(group.len());
    // Consecutive rows nearly always share a week; remember the last one to skip the map.
    let mut last_week: Option<i64> = None;
    // Only this thread changes the thresholds, so holding the read guard for the group blocks
    // nothing but `HotStore::late_threshold` readers, and copies nothing per group.
    let thresholds = shared
        .late_thresholds
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    for write in group {
        let first = *seq;
        for row in &write.rows {
            let late = !thresholds.is_empty()
                && thresholds
                    .get(&(write.tenant, row.metric))
                    .is_some_and(|threshold| row.timestamp_ms < *threshold);
            if last_week != Some(row.week_start_ms) {
                weeks::ensure_week(shared, row.week_start_ms, now_ms)?;
                last_week = Some(row.week_start_ms);
            }
            frame.push_row(&row.key, late, *seq, &row.body);
            *seq += 1;
        }
        for error in &write.errors {
            frame.push_error(&error_key(write.tenant, error.time_ms, *seq), &error.json);
            *seq += 1;
        }
        let used = *seq > first;
        acks.push(WriteAck {
            first_seq: if used { first } else { 0 },
            rows: write.rows.len(),
            last_seq: if used { *seq - 1 } else { 0 },
        });
    }
    Ok(acks)
}
