//! Stable hashes for event identity (dedup of re-sends) and series identity (hot-tier key order).
//!
//! Both are persisted inside storage keys, so their byte encodings must never change; the tests
//! pin known values.

use std::fmt::Write as _;

use strata_core::{JsonKind, MetricId, Value};
use xxhash_rust::xxh3::Xxh3Default;

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
    let mut hasher = Xxh3Default::new();
    hasher.update(&[CONTENT_HASH_VERSION]);
    hasher.update(&metric.0.to_le_bytes());
    hasher.update(&timestamp_ms.to_le_bytes());
    hasher.update(&(fields.len() as u64).to_le_bytes());
    for (name, value, kind) in fields {
        update_with_bytes(&mut hasher, name.as_bytes());
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
                update_with_bytes(&mut hasher, text.as_bytes());
            }
        }
    }
    hasher.digest()
}

/// Series identity from the values of a metric's series-key fields, in series-key order (`None`
/// = the event lacks that field; `Value::Null` counts as absent too, as it has no text). Hashes
/// each value's text form, so [`series_hash_of_text`] gives the same hash from SQL literals.
/// Returns [`NO_SERIES`] only for an empty list.
pub fn series_hash(values: &[Option<&Value>]) -> u64 {
    if values.is_empty() {
        return NO_SERIES;
    }
    let mut hasher = Xxh3Default::new();
    let mut text_buffer = String::new();
    for value in values {
        match value {
            None | Some(Value::Null) => update_series_value(&mut hasher, None),
            Some(Value::Str(text)) => update_series_value(&mut hasher, Some(text)),
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
                update_series_value(&mut hasher, Some(&text_buffer));
            }
        }
    }
    nonzero_series(hasher.digest())
}

/// [`series_hash`] from the values' text forms, for the SQL layer's `WHERE name = 'truck_7'`.
pub fn series_hash_of_text(values: &[Option<&str>]) -> u64 {
    if values.is_empty() {
        return NO_SERIES;
    }
    let mut hasher = Xxh3Default::new();
    for value in values {
        update_series_value(&mut hasher, *value);
    }
    nonzero_series(hasher.digest())
}

fn update_series_value(hasher: &mut Xxh3Default, text: Option<&str>) {
    match text {
        None => hasher.update(&[SERIES_VALUE_ABSENT]),
        Some(text) => {
            hasher.update(&[SERIES_VALUE_PRESENT]);
            update_with_bytes(hasher, text.as_bytes());
        }
    }
}

/// Length-prefixing keeps ("ab","c") and ("a","bc") apart.
fn update_with_bytes(hasher: &mut Xxh3Default, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

fn nonzero_series(hash: u64) -> u64 {
    if hash == NO_SERIES {
        1
    } else {
        hash
    }
}
