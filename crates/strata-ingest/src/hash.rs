//! Stable hashes for event identity (dedup of re-sends) and series identity (hot-tier key order).
//!
//! Both are persisted inside storage keys, so their byte encodings must never change; the tests
//! pin known values.

use std::cell::RefCell;
use std::fmt::Write as _;

use strata_core::{JsonKind, MetricId, Value};
use xxhash_rust::xxh3::xxh3_64;

use crate::normalize::Field;

/// Bumping this changes every content hash; only do it together with a storage format change.
const CONTENT_HASH_VERSION: u8 = 1;

const TAG_NULL: u8 = 0;
const TAG_BOOL: u8 = 1;
const TAG_INT: u8 = 2;
const TAG_FLOAT: u8 = 3;
const TAG_STRING: u8 = 4;
/// An array's JSON text differs from a string holding the same text; the tag keeps them apart.
const TAG_ARRAY_TEXT: u8 = 5;
const TAG_OTHER_TEXT: u8 = 6;

const SERIES_VALUE_ABSENT: u8 = 0;
const SERIES_VALUE_PRESENT: u8 = 1;

/// The series hash of a metric without series keys; no non-empty key list hashes to it.
pub const NO_SERIES: u64 = 0;

/// Stable 64-bit hash of an event's identity: its metric, timestamp and fields. `fields` must be
/// sorted by name (as [`crate::normalize`] returns them), which makes the hash independent of key
/// order in the JSON. Every value is tagged by its variant (and arrays apart from strings), so
/// `1` and `"1"` hash differently; floats hash by their bits.
pub fn content_hash(metric: MetricId, timestamp_ms: i64, fields: &[Field<'_>]) -> u64 {
    debug_assert!(
        fields.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "content_hash needs fields sorted by unique name"
    );
    with_hash_input(|hasher| content_hash_input(hasher, metric, timestamp_ms, fields))
}

fn content_hash_input(
    hasher: &mut HashInput,
    metric: MetricId,
    timestamp_ms: i64,
    fields: &[Field<'_>],
) {
    hasher.update(&[CONTENT_HASH_VERSION]);
    hasher.update(&metric.0.to_le_bytes());
    hasher.update(&timestamp_ms.to_le_bytes());
    hasher.update(&(fields.len() as u64).to_le_bytes());
    for (name, value, kind) in fields {
        update_with_bytes(hasher, name.as_bytes());
        match value {
            Value::Null => hasher.update(&[TAG_NULL]),
            Value::Bool(b) => hasher.update(&[TAG_BOOL, u8::from(*b)]),
            Value::Int(int) => {
                hasher.update(&[TAG_INT]);
                hasher.update(&int.to_le_bytes());
            }
            Value::Float(float) => {
                hasher.update(&[TAG_FLOAT]);
                hasher.update(&float.to_bits().to_le_bytes());
            }
            Value::Str(text) => {
                let tag = match kind {
                    JsonKind::String => TAG_STRING,
                    JsonKind::Array => TAG_ARRAY_TEXT,
                    JsonKind::Null | JsonKind::Boolean | JsonKind::Number => TAG_OTHER_TEXT,
                };
                hasher.update(&[tag]);
                update_with_bytes(hasher, text.as_bytes());
            }
        }
    }
}

/// Series identity from the values of a metric's series-key fields, in series-key order (`None`
/// = the event lacks that field; `Value::Null` counts as absent too, as it has no text). Hashes
/// each value's text form, so [`series_hash_of_text`] gives the same hash from SQL literals.
/// Returns [`NO_SERIES`] only for an empty list.
pub fn series_hash(values: &[Option<&Value>]) -> u64 {
    series_hash_of(values.iter().copied())
}

/// [`series_hash`] of values handed one by one, so callers need not collect them first.
pub fn series_hash_of<'v>(values: impl IntoIterator<Item = Option<&'v Value>>) -> u64 {
    let mut values = values.into_iter().peekable();
    if values.peek().is_none() {
        return NO_SERIES;
    }
    nonzero_series(with_hash_input(|hasher| series_hash_input(hasher, values)))
}

fn series_hash_input<'v>(hasher: &mut HashInput, values: impl Iterator<Item = Option<&'v Value>>) {
    let mut text_buffer = String::new();
    for value in values {
        match value {
            None | Some(Value::Null) => update_series_value(hasher, None),
            Some(Value::Str(text)) => update_series_value(hasher, Some(text)),
            Some(other) => {
                text_buffer.clear();
                // Writing the Display form matches `Value::to_text` without a fresh String;
                // writing to a String cannot fail.
                let _ = match other {
                    Value::Bool(b) => write!(text_buffer, "{b}"),
                    Value::Int(int) => write!(text_buffer, "{int}"),
                    Value::Float(float) => write!(text_buffer, "{float}"),
                    Value::Null | Value::Str(_) => Ok(()),
                };
                update_series_value(hasher, Some(&text_buffer));
            }
        }
    }
}

/// [`series_hash`] from the values' text forms, for the SQL layer's `WHERE name = 'truck_7'`.
pub fn series_hash_of_text(values: &[Option<&str>]) -> u64 {
    if values.is_empty() {
        return NO_SERIES;
    }
    nonzero_series(with_hash_input(|hasher| {
        for value in values {
            update_series_value(hasher, *value);
        }
    }))
}

fn update_series_value(hasher: &mut HashInput, text: Option<&str>) {
    match text {
        None => hasher.update(&[SERIES_VALUE_ABSENT]),
        Some(text) => {
            hasher.update(&[SERIES_VALUE_PRESENT]);
            update_with_bytes(hasher, text.as_bytes());
        }
    }
}

/// Length-prefixing keeps ("ab","c") and ("a","bc") apart.
fn update_with_bytes(hasher: &mut HashInput, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// The bytes a hash covers, gathered into one buffer and hashed in one call. XXH3 of the
/// concatenation equals its streaming digest, so the stored hashes do not change (the tests pin
/// them), but the streaming hasher's per-call buffering was 60% of `content_hash`'s time, and
/// `content_hash` 8% of the ingest workers' (issue 14, docs/benchmarks.md "Session 23: the workers' CPU, step 2").
struct HashInput {
    bytes: Vec<u8>,
}

impl HashInput {
    fn update(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }
}

/// An input buffer larger than this is not kept for the thread's next hash (one odd event with
/// a huge field must not pin that much memory per thread).
const KEPT_HASH_INPUT_BYTES: usize = 64 * 1024;

thread_local! {
    /// One reused buffer per thread: hashing runs for every event, on every ingest thread.
    static HASH_INPUT: RefCell<HashInput> = const { RefCell::new(HashInput { bytes: Vec::new() }) };
}

/// XXH3-64 of what `fill` writes.
fn with_hash_input(fill: impl FnOnce(&mut HashInput)) -> u64 {
    HASH_INPUT.with(|cell| match cell.try_borrow_mut() {
        Ok(mut input) => {
            input.bytes.clear();
            fill(&mut input);
            let hash = xxh3_64(&input.bytes);
            if input.bytes.capacity() > KEPT_HASH_INPUT_BYTES {
                input.bytes = Vec::new();
            }
            hash
        }
        // Not reachable (hashing never hashes), but a fresh buffer is correct either way.
        Err(_) => {
            let mut input = HashInput { bytes: Vec::new() };
            fill(&mut input);
            xxh3_64(&input.bytes)
        }
    })
}

fn nonzero_series(hash: u64) -> u64 {
    if hash == NO_SERIES {
        1
    } else {
        hash
    }
}
