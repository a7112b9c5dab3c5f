//! Unknown-field statistics are accumulated in memory by the write path and written to the
//! catalog in batches, so tracking costs no catalog write per event. A crash loses at most one
//! interval of statistics, never data.

use std::time::Duration;

use crate::state::AppState;

pub fn spawn_flusher(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            flush(&state).await;
        }
    })
}

pub async fn flush(state: &AppState) {
    let drained = match state.stats().lock() {
        Ok(mut stats) => stats.drain(),
        Err(_) => return,
    };
    for (tenant, deltas) in drained {
        let deltas = deltas
            .into_iter()
            .map(|d| strata_catalog::IncomingStatsDelta {
                metric: d.metric,
                name: d.name,
                count: d.count,
                first_seen_ms: d.first_seen_ms,
                last_seen_ms: d.last_seen_ms,
                kinds: d.kinds,
                samples: d.samples,
            })
            .collect();
        if let Err(err) = state.catalog().record_incoming_stats(tenant, deltas).await {
            tracing::warn!(tenant, "could not record unknown-field statistics: {err}");
        }
    }
}
