//! Profiles of what devices send, kept at ingest in bounded memory: per incoming name its JSON
//! kinds, how its strings parse as each candidate type, its range and a reservoir of values;
//! per metric the name sets events carry (which names never co-occur) and, per series, when each
//! set was first and last seen. Schema suggestions (issue 17) read these and never scan data.

use std::collections::BTreeMap;
use std::hash::Hasher;

use base64::Engine as _;
use rustc_hash::{FxHashMap, FxHasher};
use serde::{Deserialize, Serialize};
use strata_core::{JsonKind, MetricId, NameId, TenantId, Value};

use crate::error::truncate_chars;

/// Values kept per name in its reservoir sample.
pub const RESERVOIR_VALUES: usize = 16;
/// Failed parses kept per candidate type: the counter-examples a type suggestion shows.
pub const COUNTER_EXAMPLES: usize = 3;
/// Distinct name sets (event shapes) tracked per metric. Devices of one firmware send one
/// shape, so 256 covers many firmware versions; events of further shapes are only counted.
pub const SHAPES_PER_METRIC: usize = 256;
/// (series, shape) pairs tracked per metric: when each shape was first and last seen in each
/// series, which shows a rename handing over within a series. The first 4,096 pairs are kept.
pub const SERIES_SHAPES_PER_METRIC: usize = 4096;
/// Characters kept of a sampled or counter-example text.
const SAMPLE_CHARS: usize = 100;
/// A name's strings are parsed as every candidate type up to this many per write request, then
/// one in [`STRING_TEST_STRIDE`]: a share over a few hundred values per request is as good as
/// over all of them, and testing every string cost 20% of ingest (docs/benchmarks.md).
const STRINGS_TESTED_IN_FULL: u64 = 256;
const STRING_TEST_STRIDE: u64 = 32;
/// Month and weekday abbreviations a date-time text may start with (RFC 1123, `January 12`).
const DATE_WORDS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", "mon",
    "tue", "wed", "thu", "fri", "sat", "sun",
];
/// Shortest text counted as base64: shorter ones are words and codes far more often.
const MIN_BASE64_CHARS: usize = 8;

/// A type a name's string values might have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Candidate {
    Boolean,
    Integer,
    Double,
    Timestamp,
    Base64,
}

impl Candidate {
    /// In order of preference: a value that parses as several reads as the narrowest.
    pub const ALL: [Candidate; 5] = [
        Candidate::Boolean,
        Candidate::Integer,
        Candidate::Double,
        Candidate::Timestamp,
        Candidate::Base64,
    ];

    /// Whether `text` (trimmed) reads as this type.
    pub fn parses(self, text: &str) -> bool {
        match self {
            Candidate::Boolean => {
                text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false")
            }
            Candidate::Integer => text.parse::<i64>().is_ok(),
            Candidate::Double => text.parse::<f64>().is_ok_and(f64::is_finite),
            Candidate::Timestamp => parses_as_timestamp_text(text),
            Candidate::Base64 => parses_as_base64(text),
        }
    }
}

/// Date and time text in the forms ingest reads (RFC 3339, RFC 1123, the built-in texts). Digit
/// strings are epoch numbers, counted as integers, not as timestamp text.
fn parses_as_timestamp_text(text: &str) -> bool {
    if !looks_like_date_time(text) {
        return false;
    }
    let value = serde_json::Value::String(text.to_string());
    crate::parse_timestamp(&value, &[], &[]).is_ok()
}

/// The cheap shape of the date-time texts ingest reads: a year then `-` or `/` (ISO and the
/// naive forms), or a month or weekday name first (RFC 1123, `January 12, 2015`). Rejects
/// the usual ids and words before any format is tried.
fn looks_like_date_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() < 8 || !bytes.iter().any(u8::is_ascii_digit) {
        return false;
    }
    if bytes[..4].iter().all(u8::is_ascii_digit) {
        return matches!(bytes[4], b'-' | b'/');
    }
    DATE_WORDS
        .iter()
        .any(|word| bytes[..3].eq_ignore_ascii_case(word.as_bytes()))
}

/// Standard base64 that decodes. Words and ids of the right length decode too, so a profile
/// also counts the values that look encoded ([`looks_encoded`]). The alphabet is checked
/// first: most strings fail there without a decode.
fn parses_as_base64(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() < MIN_BASE64_CHARS || !bytes.len().is_multiple_of(4) {
        return false;
    }
    let body = text.trim_end_matches('=');
    let in_alphabet = body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    in_alphabet
        && bytes.len() - body.len() <= 2
        && base64::engine::general_purpose::STANDARD
            .decode(text)
            .is_ok()
}

/// Text that looks like encoded bytes rather than a word or an id: it has a `+`, `/` or `=`,
/// or mixes digits with both letter cases. Random bytes almost always do (16 characters lack
/// all of them 4% of the time), `Critical` and `dev00001` never.
fn looks_encoded(text: &str) -> bool {
    let bytes = text.as_bytes();
    let symbol = bytes.iter().any(|b| matches!(b, b'+' | b'/' | b'='));
    let mixed = bytes.iter().any(u8::is_ascii_digit)
        && bytes.iter().any(u8::is_ascii_uppercase)
        && bytes.iter().any(u8::is_ascii_lowercase);
    symbol || mixed
}

/// One counter or list per candidate type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PerCandidate<T> {
    pub boolean: T,
    pub integer: T,
    pub double: T,
    pub timestamp: T,
    pub base64: T,
}

impl<T> PerCandidate<T> {
    pub fn get(&self, candidate: Candidate) -> &T {
        match candidate {
            Candidate::Boolean => &self.boolean,
            Candidate::Integer => &self.integer,
            Candidate::Double => &self.double,
            Candidate::Timestamp => &self.timestamp,
            Candidate::Base64 => &self.base64,
        }
    }

    pub fn get_mut(&mut self, candidate: Candidate) -> &mut T {
        match candidate {
            Candidate::Boolean => &mut self.boolean,
            Candidate::Integer => &mut self.integer,
            Candidate::Double => &mut self.double,
            Candidate::Timestamp => &mut self.timestamp,
            Candidate::Base64 => &mut self.base64,
        }
    }
}

/// Values seen per JSON kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KindCounts {
    pub null: u64,
    pub boolean: u64,
    pub number: u64,
    pub string: u64,
    pub array: u64,
}

impl KindCounts {
    fn count_mut(&mut self, kind: JsonKind) -> &mut u64 {
        match kind {
            JsonKind::Null => &mut self.null,
            JsonKind::Boolean => &mut self.boolean,
            JsonKind::Number => &mut self.number,
            JsonKind::String => &mut self.string,
            JsonKind::Array => &mut self.array,
        }
    }

    /// Values that were not null.
    pub fn non_null(&self) -> u64 {
        self.boolean + self.number + self.string + self.array
    }

    fn add(&mut self, other: &KindCounts) {
        self.null += other.null;
        self.boolean += other.boolean;
        self.number += other.number;
        self.string += other.string;
        self.array += other.array;
    }
}

/// What devices sent under one incoming name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NameProfile {
    pub kinds: KindCounts,
    /// JSON numbers without a fraction.
    pub integers: u64,
    /// JSON strings parsed as every candidate (see [`STRINGS_TESTED_IN_FULL`]).
    pub strings_tested: u64,
    /// Of the tested strings, how many parsed as each candidate.
    pub parsed: PerCandidate<u64>,
    /// Tested strings that decode as base64 and look encoded ([`looks_encoded`]).
    pub base64_looking: u64,
    /// Up to [`COUNTER_EXAMPLES`] distinct tested strings that did not parse, per candidate.
    pub counter_examples: PerCandidate<Vec<String>>,
    /// Smallest and largest number seen, from JSON numbers and numeric strings.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// A uniform sample of up to [`RESERVOIR_VALUES`] non-null values, as text.
    pub reservoir: Vec<String>,
    /// Non-null values offered to the reservoir.
    pub offered: u64,
}

impl NameProfile {
    /// Records one value of JSON kind `kind`; `infer_type` false skips parsing strings as each
    /// candidate type (the name's field already has a declared type).
    pub fn observe(&mut self, kind: JsonKind, value: &Value, infer_type: bool) {
        *self.kinds.count_mut(kind) += 1;
        match value {
            Value::Null => return,
            Value::Int(number) => {
                self.integers += 1;
                self.extend_range(*number as f64);
            }
            Value::Float(number) => self.extend_range(*number),
            Value::Str(text) if infer_type && kind == JsonKind::String => self.test_string(text),
            Value::Str(_) | Value::Bool(_) => {}
        }
        self.offer(value);
    }

    fn extend_range(&mut self, number: f64) {
        if !number.is_finite() {
            return;
        }
        self.min = Some(self.min.map_or(number, |min| min.min(number)));
        self.max = Some(self.max.map_or(number, |max| max.max(number)));
    }

    fn test_string(&mut self, text: &str) {
        let seen = self.kinds.string;
        if seen > STRINGS_TESTED_IN_FULL && !seen.is_multiple_of(STRING_TEST_STRIDE) {
            return;
        }
        self.strings_tested += 1;
        let text = text.trim();
        for candidate in Candidate::ALL {
            if candidate.parses(text) {
                *self.parsed.get_mut(candidate) += 1;
                if candidate == Candidate::Base64 && looks_encoded(text) {
                    self.base64_looking += 1;
                }
            } else {
                add_distinct(
                    self.counter_examples.get_mut(candidate),
                    text,
                    COUNTER_EXAMPLES,
                );
            }
        }
        if let Ok(number) = text.parse::<f64>() {
            self.extend_range(number);
        }
    }

    /// Reservoir sampling (Algorithm R) with a hash of the running count as its random source,
    /// so a profile is reproducible from the same input.
    fn offer(&mut self, value: &Value) {
        self.offered += 1;
        let slot = if self.reservoir.len() < RESERVOIR_VALUES {
            self.reservoir.len()
        } else {
            // Multiply-shift: a draw below `offered` without a division per value.
            ((u128::from(mix(self.offered)) * u128::from(self.offered)) >> 64) as usize
        };
        if slot >= RESERVOIR_VALUES {
            return;
        }
        let Some(text) = value.to_text() else { return };
        let text = truncate_chars(&text, SAMPLE_CHARS).to_string();
        if slot == self.reservoir.len() {
            self.reservoir.push(text);
        } else {
            self.reservoir[slot] = text;
        }
    }

    /// Adds another profile of the same name.
    pub fn merge(&mut self, other: &NameProfile) {
        self.kinds.add(&other.kinds);
        self.integers += other.integers;
        self.strings_tested += other.strings_tested;
        self.base64_looking += other.base64_looking;
        for candidate in Candidate::ALL {
            *self.parsed.get_mut(candidate) += other.parsed.get(candidate);
            let examples = self.counter_examples.get_mut(candidate);
            for example in other.counter_examples.get(candidate) {
                add_distinct(examples, example, COUNTER_EXAMPLES);
            }
        }
        for bound in [other.min, other.max].into_iter().flatten() {
            self.extend_range(bound);
        }
        self.reservoir = merge_reservoirs(
            (&self.reservoir, self.offered),
            (&other.reservoir, other.offered),
        );
        self.offered += other.offered;
    }
}

/// A reservoir of `a.1 + b.1` offered values from two reservoirs: each slot is drawn from one
/// side with probability proportional to what that side was offered.
fn merge_reservoirs(a: (&[String], u64), b: (&[String], u64)) -> Vec<String> {
    let (mut left, mut right) = (a.0.iter(), b.0.iter());
    let total = a.1 + b.1;
    let mut merged = Vec::with_capacity(RESERVOIR_VALUES);
    let mut draw = total;
    while merged.len() < RESERVOIR_VALUES {
        draw += 1;
        let from_left = total > 0 && mix(draw) % total < a.1;
        let next = if from_left {
            left.next().or_else(|| right.next())
        } else {
            right.next().or_else(|| left.next())
        };
        match next {
            Some(text) => merged.push(text.clone()),
            None => break,
        }
    }
    merged
}

fn add_distinct(list: &mut Vec<String>, text: &str, limit: usize) {
    if list.len() < limit && !list.iter().any(|known| known == text) {
        list.push(truncate_chars(text, SAMPLE_CHARS).to_string());
    }
}

/// SplitMix64: a cheap, well-spread hash of a counter.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A set of names events carried together, and how many events carried exactly that set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Ascending name ids.
    pub names: Vec<NameId>,
    pub events: u64,
}

/// When events of one shape were first and last seen in one series (event time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesShape {
    pub series: u64,
    /// Index into [`MetricProfile::shapes`].
    pub shape: usize,
    pub events: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Everything profiled of one metric. The index maps are rebuilt by [`MetricProfile::reindex`]
/// after decoding, so they are never stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricProfile {
    pub names: FxHashMap<NameId, NameProfile>,
    pub shapes: Vec<Shape>,
    /// Events whose shape was not tracked (more than [`SHAPES_PER_METRIC`] shapes).
    pub untracked_shape_events: u64,
    pub series: Vec<SeriesShape>,
    #[serde(skip)]
    shape_index: FxHashMap<u64, usize>,
    #[serde(skip)]
    series_index: FxHashMap<(u64, usize), usize>,
}

impl MetricProfile {
    /// Decodes a stored profile; the caller decides what a corrupt one means.
    pub fn decode(text: &str) -> Result<MetricProfile, serde_json::Error> {
        let mut profile: MetricProfile = serde_json::from_str(text)?;
        profile.reindex();
        Ok(profile)
    }

    pub fn encode(&self) -> String {
        // A map of plain data with integer keys always serializes.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }

    fn reindex(&mut self) {
        self.shape_index = self
            .shapes
            .iter()
            .enumerate()
            .map(|(index, shape)| (shape_hash(&shape.names), index))
            .collect();
        self.series.retain(|span| span.shape < self.shapes.len());
        self.series_index = self
            .series
            .iter()
            .enumerate()
            .map(|(index, span)| ((span.series, span.shape), index))
            .collect();
    }

    /// Records one value of one field of an event (see [`NameProfile::observe`]).
    pub fn observe_value(&mut self, name: NameId, kind: JsonKind, value: &Value, infer_type: bool) {
        self.names
            .entry(name)
            .or_default()
            .observe(kind, value, infer_type);
    }

    /// Records the set of names one event carried (`names` ascending) in `series` at
    /// `timestamp_ms`.
    pub fn observe_event(
        &mut self,
        series: u64,
        timestamp_ms: i64,
        names: impl Iterator<Item = NameId> + Clone,
    ) {
        let mut hasher = FxHasher::default();
        for name in names.clone() {
            hasher.write_u32(name);
        }
        let Some(shape) = self.shape_of(hasher.finish(), names) else {
            self.untracked_shape_events += 1;
            return;
        };
        self.shapes[shape].events += 1;
        self.note_series(series, shape, 1, timestamp_ms, timestamp_ms);
    }

    /// The index of the shape with this hash and these names, added while there is room.
    fn shape_of(&mut self, hash: u64, names: impl Iterator<Item = NameId>) -> Option<usize> {
        if let Some(&index) = self.shape_index.get(&hash) {
            // A 64-bit hash collision between two shapes would merge them; compare to be sure.
            return self.shapes[index]
                .names
                .iter()
                .copied()
                .eq(names)
                .then_some(index);
        }
        if self.shapes.len() >= SHAPES_PER_METRIC {
            return None;
        }
        self.shapes.push(Shape {
            names: names.collect(),
            events: 0,
        });
        self.shape_index.insert(hash, self.shapes.len() - 1);
        Some(self.shapes.len() - 1)
    }

    fn note_series(&mut self, series: u64, shape: usize, events: u64, first_ms: i64, last_ms: i64) {
        if let Some(&index) = self.series_index.get(&(series, shape)) {
            let span = &mut self.series[index];
            span.events += events;
            span.first_ms = span.first_ms.min(first_ms);
            span.last_ms = span.last_ms.max(last_ms);
        } else if self.series.len() < SERIES_SHAPES_PER_METRIC {
            self.series.push(SeriesShape {
                series,
                shape,
                events,
                first_ms,
                last_ms,
            });
            self.series_index
                .insert((series, shape), self.series.len() - 1);
        }
    }

    /// Adds another profile of the same metric.
    pub fn merge(&mut self, other: &MetricProfile) {
        for (name, profile) in &other.names {
            self.names.entry(*name).or_default().merge(profile);
        }
        self.untracked_shape_events += other.untracked_shape_events;
        let mut shape_map = Vec::with_capacity(other.shapes.len());
        for shape in &other.shapes {
            let index = self.shape_of(shape_hash(&shape.names), shape.names.iter().copied());
            match index {
                Some(index) => self.shapes[index].events += shape.events,
                None => self.untracked_shape_events += shape.events,
            }
            shape_map.push(index);
        }
        for span in &other.series {
            if let Some(Some(shape)) = shape_map.get(span.shape) {
                self.note_series(
                    span.series,
                    *shape,
                    span.events,
                    span.first_ms,
                    span.last_ms,
                );
            }
        }
    }

    /// Events that carried `name`, counted over tracked shapes.
    pub fn events_with(&self, name: NameId) -> u64 {
        self.shapes
            .iter()
            .filter(|shape| shape.names.binary_search(&name).is_ok())
            .map(|shape| shape.events)
            .sum()
    }

    /// Events that carried both names, counted over tracked shapes.
    pub fn events_with_both(&self, a: NameId, b: NameId) -> u64 {
        self.shapes
            .iter()
            .filter(|shape| {
                shape.names.binary_search(&a).is_ok() && shape.names.binary_search(&b).is_ok()
            })
            .map(|shape| shape.events)
            .sum()
    }

    /// Per series, the first and last event time at which `name` was seen.
    pub fn series_spans(&self, name: NameId) -> BTreeMap<u64, (i64, i64)> {
        let mut spans: BTreeMap<u64, (i64, i64)> = BTreeMap::new();
        for span in &self.series {
            if self.shapes[span.shape].names.binary_search(&name).is_err() {
                continue;
            }
            let entry = spans
                .entry(span.series)
                .or_insert((span.first_ms, span.last_ms));
            entry.0 = entry.0.min(span.first_ms);
            entry.1 = entry.1.max(span.last_ms);
        }
        spans
    }
}

fn shape_hash(names: &[NameId]) -> u64 {
    let mut hasher = FxHasher::default();
    for name in names {
        hasher.write_u32(*name);
    }
    hasher.finish()
}

/// Profiles per (tenant, metric): one per write request, merged into the writer's shared one
/// after the commit (so nothing unstored is profiled), drained by the statistics flush.
#[derive(Debug, Default)]
pub struct ProfileAccumulator {
    metrics: FxHashMap<(TenantId, MetricId), MetricProfile>,
}

impl ProfileAccumulator {
    pub fn metric(&mut self, tenant: TenantId, metric: MetricId) -> &mut MetricProfile {
        self.metrics.entry((tenant, metric)).or_default()
    }

    pub fn merge(&mut self, other: ProfileAccumulator) {
        for (key, profile) in other.metrics {
            match self.metrics.get_mut(&key) {
                Some(existing) => existing.merge(&profile),
                None => {
                    self.metrics.insert(key, profile);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// Takes everything accumulated, in (tenant, metric) order.
    pub fn drain(&mut self) -> Vec<(TenantId, MetricId, MetricProfile)> {
        let mut drained: Vec<_> = self
            .metrics
            .drain()
            .map(|((tenant, metric), profile)| (tenant, metric, profile))
            .collect();
        drained.sort_unstable_by_key(|(tenant, metric, _)| (*tenant, *metric));
        drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> Value {
        Value::Str(value.to_string())
    }

    #[test]
    fn strings_count_parses_per_candidate_with_counter_examples() {
        let mut profile = NameProfile::default();
        for value in ["21.5", "22", "n/a", "23.25", "true"] {
            profile.observe(JsonKind::String, &text(value), true);
        }
        assert_eq!(profile.kinds.string, 5);
        assert_eq!(profile.strings_tested, 5);
        assert_eq!(profile.parsed.double, 3);
        assert_eq!(profile.parsed.integer, 1);
        assert_eq!(profile.parsed.boolean, 1);
        assert_eq!(profile.counter_examples.double, vec!["n/a", "true"]);
        assert_eq!((profile.min, profile.max), (Some(21.5), Some(23.25)));
    }

    #[test]
    fn timestamp_and_base64_candidates_need_their_shape_not_just_digits() {
        assert!(Candidate::Timestamp.parses("2026-12-07T03:30:00Z"));
        assert!(Candidate::Timestamp.parses("January 12, 2015 10:12:15"));
        assert!(
            !Candidate::Timestamp.parses("1733542200000"),
            "digits are integers"
        );
        assert!(!Candidate::Timestamp.parses("truck_7"));
        assert!(Candidate::Base64.parses("aGVsbG8gd29ybGQ="));
        assert!(Candidate::Base64.parses("q2Xz9KpL"));
        assert!(looks_encoded("q2Xz9KpL") && looks_encoded("aGVsbG8gd29ybGQ="));
        assert!(Candidate::Base64.parses("dev00001"), "ids decode too ...");
        assert!(
            !looks_encoded("dev00001") && !looks_encoded("Critical"),
            "... but do not look encoded"
        );
        assert!(
            !Candidate::Base64.parses("aGVsbG8"),
            "length not a multiple of 4"
        );
    }

    #[test]
    fn strings_beyond_the_full_test_budget_are_sampled_one_in_a_stride() {
        let mut profile = NameProfile::default();
        let total = STRINGS_TESTED_IN_FULL + 10 * STRING_TEST_STRIDE;
        for i in 0..total {
            profile.observe(JsonKind::String, &text(&i.to_string()), true);
        }
        assert_eq!(profile.kinds.string, total);
        assert_eq!(profile.strings_tested, STRINGS_TESTED_IN_FULL + 10);
        assert_eq!(profile.parsed.integer, profile.strings_tested);
    }

    #[test]
    fn the_reservoir_stays_bounded_and_draws_from_the_whole_stream() {
        let mut profile = NameProfile::default();
        for i in 0..10_000 {
            profile.observe(JsonKind::Number, &Value::Int(i), true);
        }
        assert_eq!(profile.reservoir.len(), RESERVOIR_VALUES);
        assert_eq!(profile.offered, 10_000);
        let late = profile
            .reservoir
            .iter()
            .filter(|v| v.parse::<i64>().is_ok_and(|n| n >= 5_000))
            .count();
        assert!(
            late >= 3,
            "a uniform sample holds values from the second half: {late}"
        );
        assert_eq!(profile.integers, 10_000);
    }

    #[test]
    fn shapes_show_which_names_never_meet_and_series_show_the_hand_over() {
        let mut profile = MetricProfile::default();
        // Firmware 1 sends names 1 and 2; firmware 2 renamed 2 to 3, in the same series.
        for t in 0..10 {
            profile.observe_event(7, t, [1, 2].into_iter());
        }
        for t in 10..20 {
            profile.observe_event(7, t, [1, 3].into_iter());
        }
        assert_eq!(profile.events_with(1), 20);
        assert_eq!(profile.events_with_both(2, 3), 0);
        assert_eq!(profile.events_with_both(1, 3), 10);
        assert_eq!(profile.series_spans(2)[&7], (0, 9));
        assert_eq!(profile.series_spans(3)[&7], (10, 19));
    }

    #[test]
    fn a_profile_survives_encoding_and_merges_by_shape_not_by_index() {
        let mut stored = MetricProfile::default();
        stored.observe_event(1, 5, [1, 2].into_iter());
        stored.observe_value(1, JsonKind::Number, &Value::Float(2.5), true);
        let mut stored = MetricProfile::decode(&stored.encode()).expect("decodes");
        let mut delta = MetricProfile::default();
        delta.observe_event(1, 9, [4].into_iter());
        delta.observe_event(1, 3, [1, 2].into_iter());
        delta.observe_value(1, JsonKind::Number, &Value::Float(-1.0), true);
        stored.merge(&delta);
        assert_eq!(stored.shapes.len(), 2);
        assert_eq!(stored.events_with(2), 2);
        assert_eq!(stored.series_spans(2)[&1], (3, 5));
        assert_eq!(stored.names[&1].kinds.number, 2);
        assert_eq!(
            (stored.names[&1].min, stored.names[&1].max),
            (Some(-1.0), Some(2.5))
        );
    }

    #[test]
    fn shapes_beyond_the_cap_are_counted_not_tracked() {
        let mut profile = MetricProfile::default();
        for name in 0..(SHAPES_PER_METRIC as u32 + 5) {
            profile.observe_event(0, 0, [name].into_iter());
        }
        assert_eq!(profile.shapes.len(), SHAPES_PER_METRIC);
        assert_eq!(profile.untracked_shape_events, 5);
    }
}
