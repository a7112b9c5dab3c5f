//! Per-tenant ingest rate for `GET /api/v1/status`: events accepted by this server's write door
//! in each of the last 60 seconds, in memory (a restart starts from zero; nothing is persisted
//! because the number only describes the present).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use strata_core::TenantId;

/// Seconds of history kept per tenant.
const WINDOW_SECS: u64 = 60;

#[derive(Default)]
pub struct IngestRate {
    /// Per tenant, (unix second, events accepted in it), oldest first.
    tenants: Mutex<HashMap<TenantId, VecDeque<(u64, u64)>>>,
}

/// What the status page shows.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RateSnapshot {
    /// Events accepted over the last 60 s.
    pub events_last_minute: u64,
    /// That count divided by 60.
    pub events_per_second: f64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl IngestRate {
    pub fn record(&self, tenant: TenantId, accepted: u64) {
        self.record_at(tenant, accepted, now_secs());
    }

    fn record_at(&self, tenant: TenantId, accepted: u64, second: u64) {
        if accepted == 0 {
            return;
        }
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let buckets = tenants.entry(tenant).or_default();
        match buckets.back_mut() {
            Some((s, n)) if *s == second => *n += accepted,
            _ => buckets.push_back((second, accepted)),
        }
        while buckets
            .front()
            .is_some_and(|(s, _)| *s + WINDOW_SECS <= second)
        {
            buckets.pop_front();
        }
    }

    pub fn snapshot(&self, tenant: TenantId) -> RateSnapshot {
        self.snapshot_at(tenant, now_secs())
    }

    fn snapshot_at(&self, tenant: TenantId, second: u64) -> RateSnapshot {
        let tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let events: u64 = tenants.get(&tenant).map_or(0, |buckets| {
            buckets
                .iter()
                .filter(|(s, _)| *s + WINDOW_SECS > second)
                .map(|(_, n)| n)
                .sum()
        });
        RateSnapshot {
            events_last_minute: events,
            events_per_second: events as f64 / WINDOW_SECS as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_last_minute_per_tenant() {
        let rate = IngestRate::default();
        let (a, b) = (TenantId(1), TenantId(2));
        rate.record_at(a, 30, 1000);
        rate.record_at(a, 30, 1030);
        rate.record_at(b, 5, 1030);
        assert_eq!(rate.snapshot_at(a, 1030).events_last_minute, 60);
        assert_eq!(rate.snapshot_at(a, 1030).events_per_second, 1.0);
        // 1000 falls out of the window at 1060.
        assert_eq!(rate.snapshot_at(a, 1060).events_last_minute, 30);
        assert_eq!(rate.snapshot_at(b, 1030).events_last_minute, 5);
        assert_eq!(rate.snapshot_at(TenantId(3), 1030).events_last_minute, 0);
    }
}
