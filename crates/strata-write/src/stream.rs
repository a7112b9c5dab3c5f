//! The committed-event stream: every batch of rows the hot tier made durable, in commit order,
//! for alerts, live queries and rollups to consume in-process.
//!
//! Publishing never slows or fails an acknowledgement: it is a bounded broadcast channel, and a
//! subscriber that falls more than [`EVENT_STREAM_CAPACITY_BATCHES`] batches behind is told how
//! many it missed (`RecvError::Lagged`) and must re-read those from storage (the batches carry
//! their write sequence numbers for that). Publishing copies nothing: the hot store hands the
//! rows it made durable back to the writer, which publishes them only when a subscriber wants
//! every tenant ([`EventStream::subscribe`]) or registered interest in that tenant
//! ([`EventStream::add_interest`]), and otherwise drops them. Alert rules ask only for tenants
//! that have event or absence rules.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use strata_core::TenantId;
use strata_storage::HotEvent;
use tokio::sync::broadcast;

/// Batches a subscriber may fall behind before it lags: one per write request, so 1,024
/// requests (at the measured 1,000-event requests, about a million events) of slack.
pub const EVENT_STREAM_CAPACITY_BATCHES: usize = 1024;

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

/// The sending side, owned by the [`crate::Writer`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventStream {
    sender: broadcast::Sender<Arc<CommittedBatch>>,
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

impl Default for EventStream {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(EVENT_STREAM_CAPACITY_BATCHES);
        EventStream {
            sender,
            everything: Arc::new(AtomicUsize::new(0)),
            tenants: Arc::new(RwLock::new(HashMap::new())),
            in_flight: Arc::new(tokio::sync::RwLock::new(())),
        }
    }
}

impl EventStream {
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
