//! Batching unknown-field statistics so the catalog is written per batch, not per event.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use strata_core::{JsonKind, MetricId, NameId, TenantId, Value};

use crate::error::truncate_chars;

/// Distinct text samples kept per incoming name.
pub const MAX_SAMPLES: usize = 5;
/// Characters kept of each sample.
pub const MAX_SAMPLE_CHARS: usize = 100;

/// What one batch observed of one incoming name of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsDelta {
    pub metric: MetricId,
    pub name: NameId,
    /// Events that carried the name (a JSON null counts: the name was seen).
    pub count: u64,
    /// Smallest and largest event timestamp seen with the name.
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Union of [`JsonKind::bit`] of the JSON types seen.
    pub kinds: u8,
    /// Up to [`MAX_SAMPLES`] distinct texts, each cut to [`MAX_SAMPLE_CHARS`] characters, in
    /// order of first sight. Nulls give no sample.
    pub samples: Vec<String>,
}

impl StatsDelta {
    fn first(metric: MetricId, name: NameId, timestamp_ms: i64) -> Self {
        StatsDelta {
            metric,
            name,
            count: 0,
            first_seen_ms: timestamp_ms,
            last_seen_ms: timestamp_ms,
            kinds: 0,
            samples: Vec::new(),
        }
    }

    /// Adds another delta of the same metric and name.
    pub fn merge(&mut self, other: StatsDelta) {
        debug_assert_eq!((self.metric, self.name), (other.metric, other.name));
        self.count += other.count;
        self.first_seen_ms = self.first_seen_ms.min(other.first_seen_ms);
        self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
        self.kinds |= other.kinds;
        for sample in other.samples {
            self.add_sample(&sample);
        }
    }

    fn add_sample(&mut self, text: &str) {
        if self.samples.len() >= MAX_SAMPLES {
            return;
        }
        let text = truncate_chars(text, MAX_SAMPLE_CHARS);
        if !self.samples.iter().any(|sample| sample == text) {
            self.samples.push(text.to_string());
        }
    }
}

/// Accumulates statistics of incoming names per (tenant, metric, name). It holds one entry per
/// distinct triple; callers drain it per write batch (or when [`StatsAccumulator::len`] grows)
/// and write the deltas to the catalog.
#[derive(Debug, Default)]
pub struct StatsAccumulator {
    /// Updated once per field of every event written, with keys the server made (not attacker-
    /// chosen strings), so a fast non-keyed hash is safe here; SipHash showed in ingest profiles.
    entries: FxHashMap<(TenantId, MetricId, NameId), StatsDelta>,
}

impl StatsAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that an event at `timestamp_ms` carried `name` with `value` of JSON type `kind`.
    pub fn observe(
        &mut self,
        tenant: TenantId,
        metric: MetricId,
        name: NameId,
        kind: JsonKind,
        value: &Value,
        timestamp_ms: i64,
    ) {
        let delta = self
            .entries
            .entry((tenant, metric, name))
            .or_insert_with(|| StatsDelta::first(metric, name, timestamp_ms));
        delta.count += 1;
        delta.first_seen_ms = delta.first_seen_ms.min(timestamp_ms);
        delta.last_seen_ms = delta.last_seen_ms.max(timestamp_ms);
        delta.kinds |= kind.bit();
        // Once the samples are full, observing costs no allocation.
        if delta.samples.len() < MAX_SAMPLES {
            match value {
                Value::Null => {}
                Value::Str(text) => delta.add_sample(text),
                other => {
                    if let Some(text) = other.to_text() {
                        delta.add_sample(&text);
                    }
                }
            }
        }
    }

    /// Folds another accumulator (e.g. from another worker) into this one.
    pub fn merge(&mut self, other: StatsAccumulator) {
        for (key, delta) in other.entries {
            match self.entries.get_mut(&key) {
                Some(existing) => existing.merge(delta),
                None => {
                    self.entries.insert(key, delta);
                }
            }
        }
    }

    /// Distinct (tenant, metric, name) entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes everything accumulated, grouped by tenant; tenants ascending, and each tenant's
    /// deltas by metric then name, so catalog writes happen in a stable order.
    pub fn drain(&mut self) -> Vec<(TenantId, Vec<StatsDelta>)> {
        let mut by_tenant: BTreeMap<TenantId, Vec<StatsDelta>> = BTreeMap::new();
        for ((tenant, _, _), delta) in self.entries.drain() {
            by_tenant.entry(tenant).or_default().push(delta);
        }
        by_tenant
            .into_iter()
            .map(|(tenant, mut deltas)| {
                deltas.sort_unstable_by_key(|delta| (delta.metric, delta.name));
                (tenant, deltas)
            })
            .collect()
    }
}
