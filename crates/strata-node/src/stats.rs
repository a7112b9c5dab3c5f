//! The statistics flusher: unknown-field statistics and value profiles are accumulated in
//! memory by the writer, query usage by the query engine, and all are written to the catalog in
//! batches, so tracking costs no catalog write per event or query. A crash loses at most one
//! interval of statistics, never data.

use std::sync::Arc;
use std::time::Duration;

use strata_catalog::ProfileStore;
use strata_query::{QueryUsage, UsageSnapshot};
use strata_write::Writer;

/// Everything the flusher saves.
#[derive(Clone)]
pub struct Flushed {
    pub writer: Arc<Writer>,
    pub usage: Arc<QueryUsage>,
    pub catalog: Arc<dyn ProfileStore>,
}

/// Query usage is saved every this many statistics flushes: it is one document of up to 8,192
/// entries per querying tenant and only ranks suggestions, so a crash losing half a minute of
/// counts costs nothing, while rewriting it every second would.
const USAGE_SAVE_EVERY_FLUSHES: u64 = 30;

impl Flushed {
    /// Flushes everything (at shutdown).
    pub async fn flush(&self) {
        self.writer.flush_stats().await;
        save_usage(&self.usage, self.catalog.as_ref()).await;
    }
}

pub fn spawn_flusher(flushed: Flushed, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for tick in 1u64.. {
            ticker.tick().await;
            flushed.writer.flush_stats().await;
            if tick.is_multiple_of(USAGE_SAVE_EVERY_FLUSHES) {
                save_usage(&flushed.usage, flushed.catalog.as_ref()).await;
            }
        }
    })
}

/// Saves each tenant's usage that changed; one that fails is retried at the next flush.
async fn save_usage(usage: &QueryUsage, catalog: &dyn ProfileStore) {
    for (tenant, snapshot) in usage.take_changed() {
        if let Err(error) = catalog.store_query_usage(tenant, snapshot.encode()).await {
            tracing::warn!(%tenant, %error, "saving query usage failed; retrying at the next flush");
            usage.mark_changed(tenant);
        }
    }
}

/// Restores the query usage saved before the last stop. A document that does not decode (a
/// newer format, a damaged row) is skipped: usage only ranks suggestions, it is never data.
pub async fn restore_usage(usage: &QueryUsage, catalog: &dyn ProfileStore) {
    let saved = match catalog.query_usages().await {
        Ok(saved) => saved,
        Err(error) => {
            tracing::warn!(%error, "reading saved query usage failed; starting without it");
            return;
        }
    };
    for (tenant, document) in saved {
        match UsageSnapshot::decode(&document) {
            Ok(snapshot) => usage.restore(tenant, snapshot),
            Err(error) => tracing::warn!(%tenant, %error, "saved query usage does not decode"),
        }
    }
}
