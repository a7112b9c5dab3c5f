//! The committed-event stream: every batch of rows the hot tier made durable, in commit order,
//! for alerts, live queries and rollups to consume in-process.
//!
//! Publishing never slows or fails an acknowledgement: it is a bounded broadcast channel, and a
//! subscriber that falls more than [`EVENT_STREAM_CAPACITY_BATCHES`] batches behind is told how
//! many it missed (`RecvError::Lagged`) and must re-read those from storage (the batches carry
//! their write sequence numbers for that). Nothing is copied for the stream while nobody
//! subscribes.

use std::sync::Arc;

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
}

impl Default for EventStream {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(EVENT_STREAM_CAPACITY_BATCHES);
        EventStream { sender }
    }
}

impl EventStream {
    /// A receiver of every batch committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CommittedBatch>> {
        self.sender.subscribe()
    }

    /// Whether anyone listens, so the writer copies rows for the stream only then.
    pub fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    pub(crate) fn publish(&self, batch: CommittedBatch) {
        // An error only means every receiver was dropped since `has_subscribers`.
        let _ = self.sender.send(Arc::new(batch));
    }
}
