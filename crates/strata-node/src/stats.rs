//! The statistics flusher: unknown-field statistics are accumulated in memory by the writer and
//! written to the catalog in batches, so tracking costs no catalog write per event. A crash
//! loses at most one interval of statistics, never data.

use std::sync::Arc;
use std::time::Duration;

use strata_write::Writer;

pub fn spawn_flusher(writer: Arc<Writer>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            writer.flush_stats().await;
        }
    })
}
