//! Deterministic IoT workload modelled on TSBS "iot": a fleet of trucks, each sending one
//! `readings` and one `diagnostics` event per interval, plus the mess real devices make (renamed
//! fields, unknown extras, numbers sent as text, out-of-order, late and duplicated events).
//!
//! Every event the generator invents is distinct by construction: base events sit on a
//! per-truck timestamp grid, and late events are moved off that grid to timestamps no other
//! event of the same truck and metric uses. Only the deliberate duplicates repeat a line, so the
//! number of distinct events is known exactly without hashing the output.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::io::Write;

use serde::{Deserialize, Serialize};
use strata_core::DAY_MS;

use crate::rng::SplitMix64;
use crate::BenchError;

/// The two metrics of the workload.
pub const READINGS: &str = "readings";
pub const DIAGNOSTICS: &str = "diagnostics";
/// The name of the tag that identifies one truck; declared as the series key of both metrics.
pub const SERIES_KEY: &str = "name";

/// Tag fields every event carries, in the order they are written.
pub const TAG_FIELDS: [&str; 5] = ["name", "fleet", "driver", "model", "device_version"];
/// Numeric fields of `readings`, in the order they are written.
pub const READINGS_FIELDS: [&str; 7] = [
    "latitude",
    "longitude",
    "elevation",
    "velocity",
    "heading",
    "grade",
    "fuel_consumption",
];
/// Numeric fields of `diagnostics`, in the order they are written.
pub const DIAGNOSTICS_FIELDS: [&str; 3] = ["fuel_state", "current_load", "status"];
/// (canonical name, the name renamed devices send instead).
pub const RENAMED_FIELDS: [(&str, &str); 3] = [
    ("latitude", "lat"),
    ("longitude", "lon"),
    ("fuel_state", "fuel"),
];
/// Fields no schema ever declares; they stay unknown fields on the server.
pub const EXTRA_FIELDS: [&str; 2] = ["firmware_note", "debug_code"];

const FLEETS: [&str; 5] = ["East", "West", "North", "South", "Central"];
const DRIVERS: [&str; 10] = [
    "Albert", "Derek", "Eric", "Ringo", "Rodney", "Seth", "Trish", "Andy", "Annie", "Maria",
];
const MODELS: [&str; 5] = ["F-150", "G-2000", "H-2", "F-250", "G-1000"];
const DEVICE_VERSIONS: [&str; 4] = ["v1.0", "v1.5", "v2.0", "v2.3"];
const FIRMWARE_NOTES: [&str; 4] = [
    "ota pending",
    "watchdog reset",
    "gps cold start",
    "battery low",
];
const LOAD_CAPACITIES: [f64; 3] = [1500.0, 2000.0, 5000.0];

/// Most trucks one generator simulates; keeps per-truck state bounded in memory.
pub const MAX_TRUCKS: u32 = 1_000_000;
/// Most intervals per truck (one per second for a year at the smallest interval we allow).
pub const MAX_INTERVALS: u64 = 100_000_000;
/// Interval bounds. At least 2 ms so late events always have an off-grid millisecond to land on.
pub const MIN_INTERVAL_MS: i64 = 2;
pub const MAX_INTERVAL_MS: i64 = DAY_MS;
/// The first timestamp must leave room for late events (up to 3 days earlier) to stay positive.
pub const MIN_START_MS: i64 = 4 * DAY_MS;
/// 9999-12-31T23:59:59.999Z: the last instant every timestamp parser agrees on.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// How often each kind of real-world mess occurs, as a share in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shares {
    /// Trucks that send `lat`/`lon`/`fuel` instead of `latitude`/`longitude`/`fuel_state`.
    pub renamed_trucks: f64,
    /// Events that carry the unknown fields `firmware_note` and `debug_code`.
    pub extra_fields: f64,
    /// Numeric values sent as JSON strings ("12.5").
    pub string_numbers: f64,
    /// Events sent after the next event of the same truck and metric.
    pub out_of_order: f64,
    /// Events whose timestamp is 1-3 days in the past.
    pub late: f64,
    /// Events sent twice, byte for byte.
    pub duplicates: f64,
}

impl Default for Shares {
    fn default() -> Self {
        Shares {
            renamed_trucks: 0.10,
            extra_fields: 0.05,
            string_numbers: 0.05,
            out_of_order: 0.02,
            late: 0.01,
            duplicates: 0.01,
        }
    }
}

impl Shares {
    /// A perfectly behaved fleet: no mess at all.
    pub fn none() -> Self {
        Shares {
            renamed_trucks: 0.0,
            extra_fields: 0.0,
            string_numbers: 0.0,
            out_of_order: 0.0,
            late: 0.0,
            duplicates: 0.0,
        }
    }

    fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("renamed_trucks", self.renamed_trucks),
            ("extra_fields", self.extra_fields),
            ("string_numbers", self.string_numbers),
            ("out_of_order", self.out_of_order),
            ("late", self.late),
            ("duplicates", self.duplicates),
        ]
    }
}

/// What to generate. The same config always yields the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    pub seed: u64,
    /// Number of trucks (the TSBS "scale").
    pub trucks: u32,
    /// Number of intervals each truck reports for.
    pub intervals: u64,
    /// Timestamp of the first interval, epoch millis.
    pub start_ms: i64,
    pub interval_ms: i64,
    pub shares: Shares,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 1,
            trucks: 100,
            // One hour at the default 10 s interval.
            intervals: 360,
            // 2026-01-01T00:00:00Z
            start_ms: 1_767_225_600_000,
            interval_ms: 10_000,
            shares: Shares::default(),
        }
    }
}

impl GeneratorConfig {
    pub fn validate(&self) -> Result<(), BenchError> {
        let invalid = |message: String| Err(BenchError::InvalidConfig(message));
        if self.trucks == 0 || self.trucks > MAX_TRUCKS {
            return invalid(format!(
                "trucks must be 1..={MAX_TRUCKS}, got {}",
                self.trucks
            ));
        }
        if self.intervals == 0 || self.intervals > MAX_INTERVALS {
            return invalid(format!(
                "intervals must be 1..={MAX_INTERVALS}, got {}",
                self.intervals
            ));
        }
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.interval_ms) {
            return invalid(format!(
                "interval_ms must be {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS}, got {}",
                self.interval_ms
            ));
        }
        if self.start_ms < MIN_START_MS {
            return invalid(format!(
                "start_ms must be at least {MIN_START_MS} so late events keep positive timestamps, got {}",
                self.start_ms
            ));
        }
        let last = i64::try_from(self.intervals - 1)
            .ok()
            .and_then(|steps| steps.checked_mul(self.interval_ms))
            .and_then(|span| span.checked_add(self.start_ms));
        match last {
            Some(last) if last <= MAX_TIMESTAMP_MS => {}
            _ => {
                return invalid(format!(
                    "the last timestamp (start_ms + (intervals - 1) * interval_ms) must not pass {MAX_TIMESTAMP_MS}"
                ))
            }
        }
        for (name, share) in self.shares.named() {
            if !(0.0..=1.0).contains(&share) {
                return invalid(format!("share {name} must be within 0..=1, got {share}"));
            }
        }
        Ok(())
    }

    /// Events the server must hold after ingesting everything once: every event the generator
    /// invents is distinct, and only duplicates repeat one.
    pub fn distinct_events(&self) -> u64 {
        u64::from(self.trucks) * self.intervals * 2
    }

    /// Distinct events of one metric (`readings` and `diagnostics` hold the same number).
    pub fn distinct_events_per_metric(&self) -> u64 {
        u64::from(self.trucks) * self.intervals
    }

    /// Timestamp of the last interval, epoch millis.
    pub fn last_timestamp_ms(&self) -> i64 {
        // Validated configs cannot overflow; saturate anyway for unvalidated ones.
        let steps = i64::try_from(self.intervals.saturating_sub(1)).unwrap_or(i64::MAX);
        self.start_ms
            .saturating_add(steps.saturating_mul(self.interval_ms))
    }

    /// Whether `timestamp_ms` lies on the grid of regular (not late) event timestamps.
    pub fn is_on_grid(&self, timestamp_ms: i64) -> bool {
        timestamp_ms >= self.start_ms
            && timestamp_ms <= self.last_timestamp_ms()
            && (timestamp_ms - self.start_ms) % self.interval_ms == 0
    }

    /// The name of truck number `index` (`truck_0`, `truck_1`, ...).
    pub fn truck_name(index: u32) -> String {
        format!("truck_{index}")
    }
}

/// Exact counts of what was generated so far (final once the generator is exhausted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorStats {
    /// NDJSON lines emitted, duplicates included.
    pub lines: u64,
    /// Bytes emitted, one `\n` per line included.
    pub bytes: u64,
    /// Distinct events (what the server must store).
    pub distinct_events: u64,
    pub readings: u64,
    pub diagnostics: u64,
    pub renamed_trucks: u64,
    /// Distinct events sent by renamed trucks.
    pub events_from_renamed_trucks: u64,
    pub events_with_extra_fields: u64,
    /// Numeric field values written (tags and extras not included).
    pub numeric_values: u64,
    /// Of those, values written as JSON strings.
    pub string_numbers: u64,
    /// Events sent after the next event of their truck and metric.
    pub out_of_order_swaps: u64,
    pub late_events: u64,
    /// Extra copies emitted (lines = distinct_events + duplicates).
    pub duplicates: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Readings,
    Diagnostics,
}

impl Metric {
    fn from_index(index: u8) -> Metric {
        if index == 0 {
            Metric::Readings
        } else {
            Metric::Diagnostics
        }
    }

    fn name(self) -> &'static str {
        match self {
            Metric::Readings => READINGS,
            Metric::Diagnostics => DIAGNOSTICS,
        }
    }
}

/// One simulated truck: fixed tags plus the random-walk state of its sensors.
#[derive(Debug, Clone)]
struct Truck {
    name: String,
    fleet: &'static str,
    driver: &'static str,
    model: &'static str,
    device_version: &'static str,
    renamed: bool,
    load_capacity: f64,
    latitude: f64,
    longitude: f64,
    elevation: f64,
    velocity: f64,
    heading: f64,
    grade: f64,
    fuel_consumption: f64,
    fuel_state: f64,
    current_load: f64,
}

impl Truck {
    fn new(index: u32, rng: &mut SplitMix64, renamed_share: f64) -> Truck {
        let renamed = rng.chance(renamed_share);
        let load_capacity = rng.pick(&LOAD_CAPACITIES);
        Truck {
            name: GeneratorConfig::truck_name(index),
            fleet: rng.pick(&FLEETS),
            driver: rng.pick(&DRIVERS),
            model: rng.pick(&MODELS),
            device_version: rng.pick(&DEVICE_VERSIONS),
            renamed,
            load_capacity,
            latitude: rng.uniform(-90.0, 90.0),
            longitude: rng.uniform(-180.0, 180.0),
            elevation: rng.uniform(0.0, 5000.0),
            velocity: rng.uniform(0.0, 100.0),
            heading: rng.uniform(0.0, 360.0),
            grade: rng.uniform(0.0, 100.0),
            fuel_consumption: rng.uniform(0.0, 50.0),
            fuel_state: rng.uniform(0.2, 1.0),
            current_load: rng.uniform(0.0, load_capacity),
        }
    }

    fn field_name(&self, canonical: &'static str) -> &'static str {
        if self.renamed {
            for (from, to) in RENAMED_FIELDS {
                if from == canonical {
                    return to;
                }
            }
        }
        canonical
    }

    /// Advances the sensors of one metric and returns (field name, value, decimals) in write order.
    fn step(&mut self, metric: Metric, rng: &mut SplitMix64) -> Vec<(&'static str, f64, usize)> {
        match metric {
            Metric::Readings => {
                self.latitude = (self.latitude + rng.uniform(-0.01, 0.01)).clamp(-90.0, 90.0);
                self.longitude = (self.longitude + rng.uniform(-0.01, 0.01)).clamp(-180.0, 180.0);
                self.elevation = (self.elevation + rng.uniform(-10.0, 10.0)).clamp(0.0, 5000.0);
                self.velocity = (self.velocity + rng.uniform(-5.0, 5.0)).clamp(0.0, 100.0);
                self.heading = (self.heading + rng.uniform(-10.0, 10.0)).rem_euclid(360.0);
                self.grade = (self.grade + rng.uniform(-1.0, 1.0)).clamp(0.0, 100.0);
                self.fuel_consumption =
                    (self.fuel_consumption + rng.uniform(-1.0, 1.0)).clamp(0.0, 50.0);
                vec![
                    (self.field_name("latitude"), self.latitude, 5),
                    (self.field_name("longitude"), self.longitude, 5),
                    ("elevation", self.elevation, 1),
                    ("velocity", self.velocity, 1),
                    ("heading", self.heading, 1),
                    ("grade", self.grade, 1),
                    ("fuel_consumption", self.fuel_consumption, 2),
                ]
            }
            Metric::Diagnostics => {
                self.fuel_state -= rng.uniform(0.0, 0.01);
                if self.fuel_state < 0.05 {
                    // Refuelled.
                    self.fuel_state = 1.0;
                }
                self.current_load =
                    (self.current_load + rng.uniform(-100.0, 100.0)).clamp(0.0, self.load_capacity);
                let status = rng.below(6) as f64;
                vec![
                    (self.field_name("fuel_state"), self.fuel_state, 2),
                    ("current_load", self.current_load, 1),
                    ("status", status, 0),
                ]
            }
        }
    }
}

/// An event waiting to be emitted after the next event of its truck and metric.
#[derive(Debug)]
struct HeldEvent {
    line: String,
    duplicate: bool,
}

/// Streams the workload as NDJSON lines (no trailing newline). Iterating yields every line,
/// duplicates included; [`Generator::stats`] counts what has been generated so far.
#[derive(Debug)]
pub struct Generator {
    config: GeneratorConfig,
    rng: SplitMix64,
    trucks: Vec<Truck>,
    /// Next position to generate: interval, truck, metric (0 readings, 1 diagnostics).
    next_interval: u64,
    next_truck: u32,
    next_metric: u8,
    /// One slot per (truck, metric): the event waiting for its successor to overtake it.
    held: Vec<Option<HeldEvent>>,
    /// (truck, metric, timestamp) of every late event, so no two share a timestamp.
    late_keys: HashSet<(u32, u8, i64)>,
    ready: VecDeque<String>,
    stats: GeneratorStats,
}

impl Generator {
    pub fn new(config: GeneratorConfig) -> Result<Generator, BenchError> {
        config.validate()?;
        let mut rng = SplitMix64::new(config.seed);
        let trucks: Vec<Truck> = (0..config.trucks)
            .map(|index| Truck::new(index, &mut rng, config.shares.renamed_trucks))
            .collect();
        let stats = GeneratorStats {
            renamed_trucks: trucks.iter().filter(|truck| truck.renamed).count() as u64,
            ..GeneratorStats::default()
        };
        let held = (0..config.trucks as usize * 2).map(|_| None).collect();
        Ok(Generator {
            config,
            rng,
            trucks,
            next_interval: 0,
            next_truck: 0,
            next_metric: 0,
            held,
            late_keys: HashSet::new(),
            ready: VecDeque::new(),
            stats,
        })
    }

    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Counts of everything generated so far; final once the iterator returned `None`.
    pub fn stats(&self) -> &GeneratorStats {
        &self.stats
    }

    /// Appends up to `max_events` lines, each ending in `\n`, to `body`; returns how many.
    pub fn next_batch(&mut self, max_events: usize, body: &mut String) -> usize {
        let mut added = 0;
        while added < max_events {
            match self.next() {
                Some(line) => {
                    body.push_str(&line);
                    body.push('\n');
                    added += 1;
                }
                None => break,
            }
        }
        added
    }

    fn is_exhausted(&self) -> bool {
        self.next_interval >= self.config.intervals
    }

    /// Generates the event at the current position and moves the position on.
    fn generate_one(&mut self) {
        debug_assert!(!self.is_exhausted());
        let interval = self.next_interval;
        let truck_index = self.next_truck;
        let metric_index = self.next_metric;
        let metric = Metric::from_index(metric_index);
        self.advance_position();

        // Draw order is part of the output format: changing it changes every byte.
        let (timestamp_ms, late) = self.draw_timestamp(interval, truck_index, metric_index);
        let (line, extra) = self.draw_line(truck_index, metric, timestamp_ms);
        let duplicate = self.rng.chance(self.config.shares.duplicates);
        let wants_swap = self.rng.chance(self.config.shares.out_of_order);

        self.stats.distinct_events += 1;
        match metric {
            Metric::Readings => self.stats.readings += 1,
            Metric::Diagnostics => self.stats.diagnostics += 1,
        }
        let renamed = self.trucks[truck_index as usize].renamed;
        self.stats.events_from_renamed_trucks += u64::from(renamed);
        self.stats.events_with_extra_fields += u64::from(extra);
        self.stats.late_events += u64::from(late);
        self.stats.duplicates += u64::from(duplicate);

        let slot = truck_index as usize * 2 + metric_index as usize;
        let current = HeldEvent { line, duplicate };
        let has_successor = interval + 1 < self.config.intervals;
        self.hold_or_emit(slot, current, late, wants_swap && has_successor);
        if self.is_exhausted() {
            debug_assert!(self.held.iter().all(Option::is_none));
        }
    }

    /// Emits `current` and the event held in `slot` in swapped order, or holds `current` back
    /// for its successor to overtake when it `may_be_overtaken`.
    fn hold_or_emit(
        &mut self,
        slot: usize,
        current: HeldEvent,
        late: bool,
        may_be_overtaken: bool,
    ) {
        match self.held[slot].take() {
            // The held event is overtaken by this one, unless this one is late: a late
            // event is out of place anyway, and the swap would not be visible on the grid.
            Some(held) if !late => {
                self.stats.out_of_order_swaps += 1;
                self.emit(current);
                self.emit(held);
            }
            Some(held) => {
                self.emit(held);
                self.emit(current);
            }
            // Only grid events with a successor can be overtaken, so every slot empties by
            // the end and each swap is visible as one inversion on the truck's grid.
            None if may_be_overtaken && !late => {
                self.held[slot] = Some(current);
            }
            None => self.emit(current),
        }
    }

    /// Moves the position on: metrics within a truck, trucks within an interval.
    fn advance_position(&mut self) {
        self.next_metric += 1;
        if self.next_metric == 2 {
            self.next_metric = 0;
            self.next_truck += 1;
            if self.next_truck == self.config.trucks {
                self.next_truck = 0;
                self.next_interval += 1;
            }
        }
    }

    /// The event's timestamp: on the grid, or (drawn as late) one to three days before it.
    fn draw_timestamp(&mut self, interval: u64, truck_index: u32, metric_index: u8) -> (i64, bool) {
        let grid_ms = self.config.start_ms + interval as i64 * self.config.interval_ms;
        let late = self.rng.chance(self.config.shares.late);
        let timestamp_ms = if late {
            let shift = DAY_MS + self.rng.below(2 * DAY_MS as u64) as i64;
            self.late_timestamp(truck_index, metric_index, grid_ms - shift)
        } else {
            grid_ms
        };
        (timestamp_ms, late)
    }

    /// The event's NDJSON line, and whether it carries the extra fields.
    fn draw_line(&mut self, truck_index: u32, metric: Metric, timestamp_ms: i64) -> (String, bool) {
        let truck = &mut self.trucks[truck_index as usize];
        let fields = truck.step(metric, &mut self.rng);
        let mut line = String::with_capacity(320);
        push_tags(&mut line, metric, timestamp_ms, truck);
        for (name, value, decimals) in &fields {
            let as_string = self.rng.chance(self.config.shares.string_numbers);
            push_number(&mut line, name, *value, *decimals, as_string);
            self.stats.numeric_values += 1;
            self.stats.string_numbers += u64::from(as_string);
        }
        let extra = self.rng.chance(self.config.shares.extra_fields);
        if extra {
            let note = self.rng.pick(&FIRMWARE_NOTES);
            let code = self.rng.below(1000);
            // fmt::Write for String cannot fail.
            let _ = write!(
                line,
                ",\"{}\":\"{note}\",\"{}\":{code}",
                EXTRA_FIELDS[0], EXTRA_FIELDS[1]
            );
        }
        line.push('}');
        (line, extra)
    }

    fn emit(&mut self, event: HeldEvent) {
        let copies = if event.duplicate { 2 } else { 1 };
        let line_bytes = event.line.len() as u64 + 1;
        self.stats.lines += copies;
        self.stats.bytes += copies * line_bytes;
        if event.duplicate {
            self.ready.push_back(event.line.clone());
        }
        self.ready.push_back(event.line);
    }

    /// The nearest free timestamp at or before `ideal_ms` that no grid event and no other late
    /// event of this truck and metric uses, so every late event stays a distinct event.
    fn late_timestamp(&mut self, truck: u32, metric: u8, ideal_ms: i64) -> i64 {
        let mut candidate = ideal_ms;
        // Terminates: grid points are at least 2 ms apart and late keys are finite.
        loop {
            if !self.config.is_on_grid(candidate)
                && self.late_keys.insert((truck, metric, candidate))
            {
                debug_assert!(candidate > 0);
                return candidate;
            }
            candidate -= 1;
        }
    }
}

impl Iterator for Generator {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        while self.ready.is_empty() && !self.is_exhausted() {
            self.generate_one();
        }
        self.ready.pop_front()
    }
}

fn push_tags(line: &mut String, metric: Metric, timestamp_ms: i64, truck: &Truck) {
    let tags = [
        truck.name.as_str(),
        truck.fleet,
        truck.driver,
        truck.model,
        truck.device_version,
    ];
    // fmt::Write for String cannot fail.
    let _ = write!(
        line,
        "{{\"metrictype\":\"{}\",\"timestamp\":{timestamp_ms}",
        metric.name()
    );
    for (name, value) in TAG_FIELDS.iter().zip(tags) {
        // Tag values come from fixed tables of plain ASCII, so no JSON escaping is needed.
        debug_assert!(!value.contains(['"', '\\']));
        let _ = write!(line, ",\"{name}\":\"{value}\"");
    }
}

fn push_number(line: &mut String, name: &str, value: f64, decimals: usize, as_string: bool) {
    let quote = if as_string { "\"" } else { "" };
    // fmt::Write for String cannot fail.
    let _ = write!(line, ",\"{name}\":{quote}{value:.decimals$}{quote}");
}

/// Writes the whole workload as NDJSON to `out` and returns the final counts.
pub fn write_ndjson<W: Write>(
    config: &GeneratorConfig,
    out: W,
) -> Result<GeneratorStats, BenchError> {
    let mut generator = Generator::new(config.clone())?;
    let mut out = std::io::BufWriter::new(out);
    for line in generator.by_ref() {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(generator.stats().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_timestamps_dodge_the_grid_and_each_other() {
        let config = GeneratorConfig {
            trucks: 1,
            intervals: 10,
            interval_ms: 2,
            ..GeneratorConfig::default()
        };
        let mut generator = Generator::new(config.clone()).unwrap();
        let grid_point = config.start_ms + 4;
        // On the grid: moves one millisecond earlier, off the grid.
        assert_eq!(generator.late_timestamp(0, 0, grid_point), grid_point - 1);
        // Taken now: the next candidate is a grid point, so it moves past it too.
        assert_eq!(
            generator.late_timestamp(0, 0, grid_point - 1),
            grid_point - 3
        );
        // Another truck or metric does not collide.
        assert_eq!(
            generator.late_timestamp(0, 1, grid_point - 1),
            grid_point - 1
        );
        assert_eq!(
            generator.late_timestamp(1, 0, grid_point - 1),
            grid_point - 1
        );
    }
}
