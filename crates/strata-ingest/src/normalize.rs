//! Turning a parsed event into a timestamp and a sorted list of flat, validated fields.

use std::borrow::Cow;

use serde_json::{Number, Value as JsonValue};
use strata_core::{validate_name, JsonKind, Limits, Value, RESERVED_FIELD_NAME};

use crate::error::{truncate_chars, EventError};
use crate::object::EventObject;
use crate::timestamp::{parse_timestamp_at, TimestampConfig};

/// Most levels of nested objects in one event; `{"a":{"b":1}}` has two. Deeper nesting is almost
/// always a mistake (or an attack on the recursion), and names that long are useless columns.
pub const MAX_NESTING_DEPTH: usize = 32;

/// How much of an over-deep key path an error message echoes.
const MAX_ECHOED_KEY_CHARS: usize = 200;

/// One flat field: its name (borrowed from the body for a top-level key without escapes), value
/// and the JSON kind it was sent as.
pub type Field<'a> = (Cow<'a, str>, Value, JsonKind);

/// An event ready to store: its timestamp and its fields, flattened and sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedEvent<'a> {
    pub index: usize,
    pub timestamp_ms: i64,
    /// Sorted by name, names unique. Arrays are `Value::Str` of their compact JSON text with
    /// `JsonKind::Array`.
    pub fields: Vec<Field<'a>>,
}

/// Removes the metric key and the timestamp from `event`, then flattens and validates the rest.
///
/// The timestamp is read from the first present key among `timestamp` and `ts.aliases`; that key
/// is removed from the fields, other aliases stay fields. Nested objects flatten to dotted names
/// (an empty nested object contributes no field), JSON null is kept as `Value::Null`, numbers
/// that serde_json reads as integers within i64 are `Value::Int` and all others `Value::Float`
/// (so `1.0` stays a float, as sent), and strings are never parsed.
pub fn normalize<'a>(
    index: usize,
    event: EventObject<'a>,
    metric_key: Option<&str>,
    ts: &TimestampConfig<'_>,
    limits: &Limits,
) -> Result<NormalizedEvent<'a>, EventError> {
    // The metric key and the timestamp member are skipped rather than removed, so the members
    // move into fields without shifting. The metric key is not a timestamp candidate even when
    // a misconfiguration names the same key for both.
    let metric_position = metric_key.and_then(|key| event.position(key));

    let candidates =
        std::iter::once(RESERVED_FIELD_NAME).chain(ts.aliases.iter().map(String::as_str));
    let Some((timestamp_key, timestamp_position)) = candidates.clone().find_map(|key| {
        event
            .position(key)
            .filter(|&position| Some(position) != metric_position)
            .map(|position| (key, position))
    }) else {
        return Err(EventError::MissingTimestamp {
            tried: candidates.map(str::to_string).collect(),
        });
    };
    let (members, sent_numbers) = event.into_parts();
    let timestamp_value = &members[timestamp_position].1;
    let timestamp_ms = parse_timestamp_at(timestamp_key, timestamp_value, ts)?;

    let mut fields = Vec::with_capacity(members.len());
    for (position, (key, value)) in members.into_iter().enumerate() {
        if position == timestamp_position || Some(position) == metric_position {
            continue;
        }
        flatten_into(&mut fields, key, value, 1, &sent_numbers)?;
    }
    if fields.len() > limits.fields_per_event {
        return Err(EventError::TooManyFields {
            count: fields.len(),
            limit: limits.fields_per_event,
        });
    }

    fields.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = fields.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(EventError::DuplicateField {
            name: pair[0].0.to_string(),
        });
    }
    debug_assert!(
        fields
            .iter()
            .all(|(name, _, _)| name != RESERVED_FIELD_NAME),
        "a top-level `timestamp` key is always consumed as the timestamp"
    );

    Ok(NormalizedEvent {
        index,
        timestamp_ms,
        fields,
    })
}

/// Appends the field(s) `value` makes under `name`, `depth` being how many keys `name` joins.
/// `sent_numbers` holds the sent text of numbers i64/f64 would change, by dotted path.
fn flatten_into<'a>(
    out: &mut Vec<Field<'a>>,
    name: Cow<'a, str>,
    value: JsonValue,
    depth: usize,
    sent_numbers: &[(String, String)],
) -> Result<(), EventError> {
    flatten_leaves(name, value, depth, &mut |name, value| {
        let (value, kind) = match value {
            JsonValue::Null => (Value::Null, JsonKind::Null),
            JsonValue::Bool(b) => (Value::Bool(b), JsonKind::Boolean),
            JsonValue::Number(number) => match sent_text(sent_numbers, &name) {
                Some(text) => (Value::Str(text), JsonKind::Number),
                None => (number_value(&number), JsonKind::Number),
            },
            JsonValue::String(text) => (Value::Str(text), JsonKind::String),
            array => match sent_text(sent_numbers, &name) {
                Some(text) => (Value::Str(text), JsonKind::Array),
                None => (Value::Str(array.to_string()), JsonKind::Array),
            },
        };
        out.push((name, value, kind));
        Ok(())
    })
}

/// The one flattening of an event member, shared by the write path and the CLI's
/// `schema create --from-sample` (so a sample is read exactly as its events will be): nested
/// objects become dotted names (an empty object contributes nothing; an empty key, deeper than
/// [`MAX_NESTING_DEPTH`] levels or an invalid name is an error), and every other value is one
/// leaf, handed to `leaf` with its validated name. `depth` is how many keys `name` joins (1 for a
/// top-level member).
pub fn flatten_leaves<'a, F>(
    name: Cow<'a, str>,
    value: JsonValue,
    depth: usize,
    leaf: &mut F,
) -> Result<(), EventError>
where
    F: FnMut(Cow<'a, str>, JsonValue) -> Result<(), EventError>,
{
    let JsonValue::Object(map) = value else {
        validate_name("field", &name).map_err(|source| EventError::InvalidFieldName {
            name: truncate_chars(&name, MAX_ECHOED_KEY_CHARS).to_string(),
            source,
        })?;
        return leaf(name, value);
    };
    if map.is_empty() {
        return Ok(());
    }
    if depth >= MAX_NESTING_DEPTH {
        return Err(EventError::TooDeep {
            key: truncate_chars(&name, MAX_ECHOED_KEY_CHARS).to_string(),
            limit: MAX_NESTING_DEPTH,
        });
    }
    for (key, child) in map {
        if key.is_empty() {
            return Err(EventError::EmptyKeySegment {
                name: format!("{}.", truncate_chars(&name, MAX_ECHOED_KEY_CHARS)),
            });
        }
        let mut child_name = String::with_capacity(name.len() + 1 + key.len());
        child_name.push_str(&name);
        child_name.push('.');
        child_name.push_str(&key);
        flatten_leaves(Cow::Owned(child_name), child, depth + 1, leaf)?;
    }
    Ok(())
}

fn sent_text(sent_numbers: &[(String, String)], name: &str) -> Option<String> {
    sent_numbers
        .iter()
        .find(|(path, _)| path == name)
        .map(|(_, text)| text.clone())
}

fn number_value(number: &Number) -> Value {
    if let Some(int) = number.as_i64() {
        return Value::Int(int);
    }
    match number.as_f64() {
        Some(float) => Value::Float(float),
        // Only reachable with serde_json's arbitrary_precision; keep the number as sent.
        None => Value::Str(number.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> EventObject<'_> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_metric_key_named_like_the_timestamp_is_not_also_the_timestamp() {
        // As when the metric key was removed from a map before the timestamp was looked up.
        let event = object(r#"{"timestamp":"m","ts":5,"v":1}"#);
        let aliases = ["ts".to_string()];
        let ts = TimestampConfig {
            aliases: &aliases,
            ..TimestampConfig::default()
        };
        let normalized =
            normalize(0, event.clone(), Some("timestamp"), &ts, &Limits::default()).unwrap();
        assert_eq!(normalized.timestamp_ms, 5);
        assert_eq!(
            normalized.fields,
            vec![("v".into(), Value::Int(1), JsonKind::Number)]
        );
        let err = normalize(
            0,
            event,
            Some("timestamp"),
            &TimestampConfig::default(),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, EventError::MissingTimestamp { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_repeated_top_level_key_keeps_its_last_value() {
        let event = object(r#"{"timestamp":1,"a":{"x":1},"b":2,"a":{"y":2},"timestamp":7}"#);
        let normalized = normalize(
            0,
            event,
            None,
            &TimestampConfig::default(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(normalized.timestamp_ms, 7);
        assert_eq!(
            normalized.fields,
            vec![
                ("a.y".into(), Value::Int(2), JsonKind::Number),
                ("b".into(), Value::Int(2), JsonKind::Number),
            ]
        );
    }
}
