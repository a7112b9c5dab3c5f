//! Issue 14's design input for the worker side of ingest: what parsing an NDJSON body costs today
//! (`serde_json` into owned keys and values, then normalization) against a borrowed parse with
//! `sonic-rs`'s lazy object iterator, where each key is looked up in a name table before it is
//! ever copied, and a serde parse into borrowed keys and scalars (serde_json and sonic-rs), on
//! one core and split over two.
//!
//! Run on the benchmark's own events:
//! `strata bench gen --trucks 1000 --events 200000 --output /tmp/events.ndjson`, then
//! `cargo bench -p strata-ingest --bench parse_events -- /tmp/events.ndjson`.

use std::fmt;
use std::time::Instant;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

use rustc_hash::FxHashMap;
use sonic_rs::{JsonNumberTrait, JsonValueTrait};
use strata_core::Limits;
use strata_ingest::{events, normalize, split_body, BodyFormat, TimestampConfig};

/// Passes over the body per variant; the best is reported (the first warms the caches).
const PASSES: usize = 3;

fn main() {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "/tmp/events.ndjson".to_string());
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let lines = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    println!("{path}: {lines} events, {} bytes", body.len());
    println!("| parse | events/s | ns/event |");
    println!("| --- | --- | --- |");
    best("serde_json into owned members (today)", lines, || {
        parse_today(&body)
    });
    best("today + normalize", lines, || parse_and_normalize(&body));
    let bodies = bodies_of(&body, 5_000);
    best("5,000-event bodies, one thread (events())", lines, || {
        let limits = Limits::default();
        bodies
            .iter()
            .map(|part| {
                let iter = events(part, BodyFormat::Ndjson, &limits).expect("an NDJSON body");
                iter.filter(|event| event.parsed.is_ok()).count()
            })
            .sum()
    });
    best(
        "5,000-event bodies, split_body (halves on 2 threads)",
        lines,
        || {
            let limits = Limits::default();
            bodies
                .iter()
                .map(|part| {
                    let parsed =
                        split_body(part, BodyFormat::Ndjson, &limits).expect("an NDJSON body");
                    parsed.iter().filter(|event| event.parsed.is_ok()).count()
                })
                .sum()
        },
    );
    best("sonic-rs lazy, borrowed keys, name table", lines, || {
        parse_borrowed(&body)
    });
    best("serde_json, borrowed keys and scalars", lines, || {
        parse_serde(&body, |line| {
            serde_json::from_slice::<Borrowed<'_>>(line).ok()
        })
    });
    best("sonic-rs, borrowed keys and scalars", lines, || {
        parse_serde(&body, |line| {
            sonic_rs::from_slice::<Borrowed<'_>>(line).ok()
        })
    });
    best(
        "serde_json borrowed, body split over 2 threads",
        lines,
        || {
            let (left, right) = halves(&body);
            let parse = |part| {
                parse_serde(part, |line| {
                    serde_json::from_slice::<Borrowed<'_>>(line).ok()
                })
            };
            std::thread::scope(|scope| {
                let other = scope.spawn(|| parse(right));
                parse(left) + other.join().unwrap_or(0)
            })
        },
    );
}

/// `body` cut into bodies of `lines_per_body` lines, as clients send them.
fn bodies_of(body: &[u8], lines_per_body: usize) -> Vec<&[u8]> {
    let mut bodies = Vec::new();
    let mut start = 0;
    let mut lines = 0;
    for (at, byte) in body.iter().enumerate() {
        if *byte == b'\n' {
            lines += 1;
            if lines == lines_per_body {
                bodies.push(&body[start..=at]);
                start = at + 1;
                lines = 0;
            }
        }
    }
    if start < body.len() {
        bodies.push(&body[start..]);
    }
    bodies
}

fn best(label: &str, events: usize, mut pass: impl FnMut() -> usize) {
    // `STRATA_BENCH_ONLY=normalize` runs the matching variants alone, for a clean profile.
    if std::env::var("STRATA_BENCH_ONLY").is_ok_and(|only| !label.contains(only.as_str())) {
        return;
    }
    let mut fastest = f64::MAX;
    for _ in 0..PASSES {
        let started = Instant::now();
        let parsed = pass();
        fastest = fastest.min(started.elapsed().as_secs_f64());
        assert_eq!(parsed, events, "{label}: every event must parse");
    }
    let rate = events as f64 / fastest;
    println!("| {label} | {rate:.0} | {:.0} |", 1e9 / rate);
}

fn parse_today(body: &[u8]) -> usize {
    let limits = Limits::default();
    let iter = events(body, BodyFormat::Ndjson, &limits).expect("an NDJSON body");
    iter.filter(|event| event.parsed.is_ok()).count()
}

fn parse_and_normalize(body: &[u8]) -> usize {
    let limits = Limits::default();
    let config = TimestampConfig::default();
    let iter = events(body, BodyFormat::Ndjson, &limits).expect("an NDJSON body");
    iter.filter_map(|event| event.parsed.ok().map(|object| (event.index, object)))
        .filter(|(_, object)| !object.is_empty())
        .map(|(index, object)| normalize(index, object, None, &config, &limits))
        .filter(Result::is_ok)
        .count()
}

/// A parsed value. Text is read in place (its length stands for the bytes a row encoder copies).
enum Scalar {
    Number(f64),
    Text(usize),
    Bool(bool),
    Other,
}

impl Scalar {
    /// Folded into a checksum, so the optimizer cannot skip reading any value.
    fn digest(&self) -> u64 {
        match self {
            Scalar::Number(number) => number.to_bits(),
            Scalar::Text(len) => *len as u64,
            Scalar::Bool(flag) => u64::from(*flag),
            Scalar::Other => 0,
        }
    }
}

/// Parses every line, resolving each key to a name id through `names` (keys are copied only
/// when first seen) and keeping the values in one reused vector.
fn parse_borrowed(body: &[u8]) -> usize {
    let mut names: FxHashMap<Box<str>, u32> = FxHashMap::default();
    let mut row: Vec<(u32, Scalar)> = Vec::with_capacity(16);
    let mut parsed = 0;
    let mut checksum = 0u64;
    for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        row.clear();
        let mut ok = true;
        for member in sonic_rs::to_object_iter(line) {
            let Ok((key, value)) = member else {
                ok = false;
                break;
            };
            let key: &str = &key;
            let id = match names.get(key) {
                Some(id) => *id,
                None => {
                    let id = names.len() as u32 + 1;
                    names.insert(key.into(), id);
                    id
                }
            };
            row.push((id, scalar(&value)));
        }
        parsed += usize::from(ok && !row.is_empty());
        checksum = row.iter().fold(checksum, |sum, (id, value)| {
            sum.wrapping_add(u64::from(*id) ^ value.digest())
        });
    }
    std::hint::black_box(checksum);
    parsed
}

fn scalar(value: &sonic_rs::LazyValue<'_>) -> Scalar {
    if let Some(number) = value.as_number() {
        return Scalar::Number(number.as_f64().unwrap_or_default());
    }
    if let Some(flag) = value.as_bool() {
        return Scalar::Bool(flag);
    }
    match value.as_str() {
        Some(text) => Scalar::Text(text.len()),
        None => Scalar::Other,
    }
}

/// The body cut at the line end nearest its middle.
fn halves(body: &[u8]) -> (&[u8], &[u8]) {
    let middle = body.len() / 2;
    let cut = body[middle..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(body.len(), |at| middle + at + 1);
    body.split_at(cut)
}

/// One event's members with keys borrowed from the body: what a serde parse without an owned
/// `String` or `serde_json::Value` per field gives. (Escaped keys would need a `Cow`.)
struct Borrowed<'de>(Vec<(&'de str, Scalar)>);

impl<'de> Deserialize<'de> for Borrowed<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Borrowed<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Borrowed<'de>, A::Error> {
                let mut members = Vec::with_capacity(16);
                while let Some(key) = map.next_key::<&'de str>()? {
                    members.push((key, map.next_value::<Scalar>()?));
                }
                Ok(Borrowed(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(v as f64))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.len()))
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        deserializer.deserialize_any(Any)
    }
}

/// Parses every line with `parse`, resolving keys through a name table as [`parse_borrowed`].
fn parse_serde<'b>(body: &'b [u8], parse: impl Fn(&'b [u8]) -> Option<Borrowed<'b>>) -> usize {
    let mut names: FxHashMap<Box<str>, u32> = FxHashMap::default();
    let mut checksum = 0u64;
    let mut parsed = 0;
    for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Some(Borrowed(members)) = parse(line) else {
            continue;
        };
        parsed += 1;
        for (key, value) in members {
            let id = match names.get(key) {
                Some(id) => *id,
                None => {
                    let id = names.len() as u32 + 1;
                    names.insert(key.into(), id);
                    id
                }
            };
            checksum = checksum.wrapping_add(u64::from(id) ^ value.digest());
        }
    }
    std::hint::black_box(checksum);
    parsed
}
