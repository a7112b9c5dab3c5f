//! The events one live query has already taken in, so an identical re-send (a device retrying
//! a write whose answer it missed) is shown and counted once, as SQL over the stored data
//! counts it. The store keeps one row per key (metric, time, series, content), but the stream
//! carries every acknowledged write, re-sends included.
//!
//! Bounded: the newest [`MAX_SEEN_EVENTS`] keys; a re-send of an older event, or of one
//! committed before the live query started, goes through again.

use std::collections::{HashSet, VecDeque};

use strata_core::MetricId;
use strata_storage::HotEvent;

/// Keys remembered per live query: 32 bytes each, about 20 MiB with the set's overhead, and
/// minutes of a busy device fleet's events, where retries happen within seconds.
pub(crate) const MAX_SEEN_EVENTS: usize = 262_144;

type EventKey = (MetricId, i64, u64, u64);

#[derive(Debug, Default)]
pub(crate) struct SeenEvents {
    keys: HashSet<EventKey>,
    /// Insertion order, to forget the oldest first.
    order: VecDeque<EventKey>,
}

impl SeenEvents {
    /// The rows not taken in before (and remembers them).
    pub(crate) fn first_seen<'a>(&mut self, rows: Vec<&'a HotEvent>) -> Vec<&'a HotEvent> {
        rows.into_iter().filter(|row| self.insert(row)).collect()
    }

    fn insert(&mut self, row: &HotEvent) -> bool {
        let key = (row.metric, row.timestamp_ms, row.series, row.content_hash);
        if !self.keys.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > MAX_SEEN_EVENTS {
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(timestamp_ms: i64, content_hash: u64) -> HotEvent {
        HotEvent {
            metric: MetricId(1),
            timestamp_ms,
            series: 7,
            content_hash,
            values: Vec::new(),
        }
    }

    #[test]
    fn a_re_send_is_taken_once_and_the_oldest_keys_are_forgotten_first() {
        let mut seen = SeenEvents::default();
        let (a, b, changed) = (event(1, 10), event(2, 10), event(1, 11));
        assert_eq!(seen.first_seen(vec![&a, &b, &a]).len(), 2);
        assert_eq!(seen.first_seen(vec![&a, &changed]), vec![&changed]);
        for t in 0..MAX_SEEN_EVENTS as i64 {
            seen.insert(&event(100 + t, 0));
        }
        assert_eq!(seen.keys.len(), MAX_SEEN_EVENTS);
        assert_eq!(
            seen.first_seen(vec![&a]).len(),
            1,
            "forgotten after the limit"
        );
    }
}
