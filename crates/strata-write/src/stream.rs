//! The committed-event stream: every batch of rows the hot tier made durable, in commit order,
//! for alerts, live queries and rollups to consume in-process.
//!
//! Publishing never slows or fails an acknowledgement: it is a bounded broadcast channel, and a
//! subscriber that falls more than `Limits::event_stream_batches` batches behind is told how
//! many it missed (`RecvError::Lagged`) and re-reads those from the hot tier by their write
//! sequence numbers ([`EventStream::reread`]). Publishing copies nothing: the hot store hands the
//! rows it made durable back to the writer, which publishes them only when a subscriber wants
//! every tenant ([`EventStream::subscribe`]) or registered interest in that tenant
//! ([`EventStream::add_interest`]), and otherwise drops them. Alert rules ask only for tenants
//! that have event or absence rules.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use strata_core::{MetricId, TenantId};
use strata_storage::{HotEvent, HotScan, HotStore, ScanRequest, StorageError};
use tokio::sync::broadcast;

/// The rows of one durable write request, exactly as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedBatch {
    pub tenant: TenantId,
    /// Sequence number of `rows[0]`; row `i` has `first_seq + i`. An identical re-send of an
    /// already stored event is published again with the same key (metric, series, timestamp,
    /// content hash): consumers that must count each event once deduplicate on that key.
    pub first_seq: u64,
    pub rows: Vec<HotEvent>,
}

/// Rows [`EventStream::reread`] hands over at a time, so a long lag never sits in memory whole.
pub const REREAD_CHUNK_ROWS: usize = 4096;

/// The sending side, owned by the [`crate::Writer`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventStream {
    sender: broadcast::Sender<Arc<CommittedBatch>>,
    /// Where a lagging subscriber re-reads what it missed.
    hot: Arc<HotStore>,
    /// Subscribers that asked for every tenant (never decremented: such a subscriber is
    /// assumed to live as long as the stream).
    everything: Arc<AtomicUsize>,
    /// Registered interest per tenant, counted.
    tenants: Arc<RwLock<HashMap<TenantId, usize>>>,
    /// Held shared by each commit from its durability to its publication, and exclusively by
    /// [`EventStream::settled`], so a consumer can learn a sequence number below which every
    /// row has been published (rollups persist it as their watermark).
    in_flight: Arc<tokio::sync::RwLock<()>>,
}

impl EventStream {
    /// A stream over `hot` whose subscribers lag after `capacity_batches` unread batches.
    pub fn new(hot: Arc<HotStore>, capacity_batches: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity_batches.max(1));
        EventStream {
            sender,
            hot,
            everything: Arc::new(AtomicUsize::new(0)),
            tenants: Arc::new(RwLock::new(HashMap::new())),
            in_flight: Arc::new(tokio::sync::RwLock::new(())),
        }
    }

    /// The highest sequence number handed out so far: a subscriber that starts now has been
    /// given every row at or below it that it will ever be given, so a lag is re-read from here.
    pub fn committed_seq(&self) -> u64 {
        self.hot.last_seq()
    }

    /// Re-reads, for a subscriber that lagged, the rows of `tenant`'s `metric` with a sequence
    /// number in `(after_seq, before_seq)`: those the stream dropped for it. Hands them to
    /// `on_chunk` at most [`REREAD_CHUNK_ROWS`] at a time, in key order (series, then time),
    /// not commit order. Blocking: it scans the metric's whole hot tier (weeks and late index,
    /// a row in both given once), which is why it is kept for lags, not used per batch.
    pub fn reread(
        &self,
        tenant: TenantId,
        metric: MetricId,
        after_seq: u64,
        before_seq: u64,
        mut on_chunk: impl FnMut(Vec<HotEvent>),
    ) -> Result<usize, StorageError> {
        let request = ScanRequest::all(tenant, metric);
        let mut seen: HashSet<(u64, i64, u64)> = HashSet::new();
        let mut chunk = Vec::new();
        let mut total = 0;
        for scan in [self.hot.scan(&request)?, self.hot.scan_late(&request)?] {
            for row in missed_rows(scan, after_seq, before_seq) {
                let row = row?;
                if !seen.insert((row.series, row.timestamp_ms, row.content_hash)) {
                    continue;
                }
                total += 1;
                chunk.push(HotEvent {
                    metric,
                    timestamp_ms: row.timestamp_ms,
                    series: row.series,
                    content_hash: row.content_hash,
                    values: row.values,
                });
                if chunk.len() == REREAD_CHUNK_ROWS {
                    on_chunk(std::mem::take(&mut chunk));
                }
            }
        }
        if !chunk.is_empty() {
            on_chunk(chunk);
        }
        Ok(total)
    }

    /// [`EventStream::reread`] on a blocking thread, for async consumers: the chunks arrive on
    /// the receiver as the scan goes (a few in flight, so a long lag is never held whole), and
    /// the handle answers how many rows were re-read, or why the scan failed.
    pub fn reread_chunks(
        &self,
        tenant: TenantId,
        metric: MetricId,
        after_seq: u64,
        before_seq: u64,
    ) -> (
        tokio::sync::mpsc::Receiver<Vec<HotEvent>>,
        tokio::task::JoinHandle<Result<usize, StorageError>>,
    ) {
        const CHUNKS_IN_FLIGHT: usize = 4;
        let (chunks, received) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        let stream = self.clone();
        let scan = tokio::task::spawn_blocking(move || {
            stream.reread(tenant, metric, after_seq, before_seq, |chunk| {
                // A send error only means the consumer stopped listening.
                let _ = chunks.blocking_send(chunk);
            })
        });
        (received, scan)
    }

    /// A receiver of every batch of every tenant committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CommittedBatch>> {
        self.everything.fetch_add(1, Ordering::Relaxed);
        self.sender.subscribe()
    }

    /// A receiver of the batches of the tenants registered with [`EventStream::add_interest`]
    /// (and of others while some subscriber wants everything: filter on `tenant`).
    pub fn subscribe_interested(&self) -> broadcast::Receiver<Arc<CommittedBatch>> {
        self.sender.subscribe()
    }

    /// Asks for `tenant`'s batches; pair each call with [`EventStream::remove_interest`].
    pub fn add_interest(&self, tenant: TenantId) {
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        *tenants.entry(tenant).or_insert(0) += 1;
    }

    pub fn remove_interest(&self, tenant: TenantId) {
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = tenants.get_mut(&tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                tenants.remove(&tenant);
            }
        }
    }

    /// Runs `read` (typically reading the hot tier's last sequence number) while no commit is
    /// between its durability and its publication: every row at or below a sequence number
    /// read there has been published to the subscribers that wanted it. Waits for the commits
    /// in flight (one group commit at most) and holds new ones back meanwhile, so call it
    /// once per maintenance cycle, not per event.
    pub async fn settled<T>(&self, read: impl FnOnce() -> T) -> T {
        let _exclusive = self.in_flight.write().await;
        read()
    }

    /// Held by a commit from before it is durable until it is published.
    pub(crate) async fn committing(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.in_flight.read().await
    }

    /// Whether anyone listens for `tenant`, so the writer copies rows for the stream only then.
    pub fn wants(&self, tenant: TenantId) -> bool {
        if self.sender.receiver_count() == 0 {
            return false;
        }
        self.everything.load(Ordering::Relaxed) > 0
            || self
                .tenants
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&tenant)
    }

    pub(crate) fn publish(&self, batch: CommittedBatch) {
        // An error only means every receiver was dropped since `wants`.
        let _ = self.sender.send(Arc::new(batch));
    }
}

/// The rows of `scan` whose sequence number lies in `(after_seq, before_seq)`, decoded.
fn missed_rows(
    mut scan: HotScan,
    after_seq: u64,
    before_seq: u64,
) -> impl Iterator<Item = Result<strata_storage::HotRow, StorageError>> {
    std::iter::from_fn(move || loop {
        let row = match scan.next_raw()? {
            Ok(row) => row,
            Err(error) => return Some(Err(error)),
        };
        let seq = match row.values() {
            Ok(values) => values.seq(),
            Err(error) => return Some(Err(error)),
        };
        if seq > after_seq && seq < before_seq {
            return Some(row.to_row(None));
        }
    })
}
