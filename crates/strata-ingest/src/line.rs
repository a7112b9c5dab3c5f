//! InfluxDB line protocol bodies (issue 19): each line becomes one event of the metric its
//! measurement names, with its tags and fields as fields, so it takes the same path as a JSON
//! event (unknown fields kept, aliases, types, identical re-sends stored once).
//!
//! Lines are parsed by `influxdb-line-protocol`, InfluxDB 3's own parser. A line that does not
//! parse is one rejected event, reported with its 1-based line number; the other lines are
//! stored, as InfluxDB 3 does with `accept_partial` (its default), because a good reading must
//! not be lost to a neighbour's typo, and the bad line stays in the error log.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat};
use influxdb_line_protocol::{parse_lines, split_lines, EscapedStr, FieldValue, ParsedLine};
use serde_json::{Number, Value as JsonValue};
use strata_core::{Limits, RESERVED_FIELD_NAME};

use crate::body::RawEvent;
use crate::error::{BodyError, EventError};
use crate::object::EventObject;

/// The unit of a line's timestamp (`precision=` on the request; nanoseconds by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
}

impl Precision {
    /// The `precision=` values of InfluxDB 2 and 3 (`ns`, `us`, `ms`, `s`) and of InfluxDB 1
    /// (`n`, `u`, `ms`, `s`).
    pub fn parse(text: &str) -> Option<Precision> {
        match text {
            "ns" | "n" | "nanosecond" => Some(Precision::Nanoseconds),
            "us" | "u" | "µs" | "microsecond" => Some(Precision::Microseconds),
            "ms" | "millisecond" => Some(Precision::Milliseconds),
            "s" | "second" => Some(Precision::Seconds),
            _ => None,
        }
    }

    /// Milliseconds since the epoch (event times are stored in milliseconds; finer digits are
    /// dropped, rounding down). `None` when seconds overflow.
    fn to_ms(self, value: i64) -> Option<i64> {
        match self {
            Precision::Nanoseconds => Some(value.div_euclid(1_000_000)),
            Precision::Microseconds => Some(value.div_euclid(1_000)),
            Precision::Milliseconds => Some(value),
            Precision::Seconds => value.checked_mul(1_000),
        }
    }
}

/// The events of a line protocol body: one per non-blank line, in order, each with its
/// measurement as the metric. Lines without a timestamp get `now_ms`.
pub(crate) fn line_events<'a>(
    body: &'a [u8],
    precision: Precision,
    limits: &Limits,
    now_ms: i64,
) -> Result<Vec<RawEvent<'a>>, BodyError> {
    let text = std::str::from_utf8(body).map_err(|error| BodyError::Malformed {
        line: line_of(body, error.valid_up_to()),
        column: 0,
        offset: error.valid_up_to(),
        message: "line protocol must be UTF-8".to_string(),
    })?;
    let mut events = Vec::new();
    let mut numbers = LineNumbers::default();
    for line in split_lines(text) {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let offset = line.as_ptr() as usize - text.as_ptr() as usize;
        let number = numbers.at(body, offset);
        let raw = line.as_bytes();
        let parsed = if raw.len() > limits.event_bytes {
            Err(EventError::TooLarge {
                bytes: raw.len(),
                limit: limits.event_bytes,
            })
        } else {
            event_of(line, number, precision, now_ms)
        };
        let (metric, series_keys, parsed) = match parsed {
            Ok(line) => (Some(line.measurement), line.tags, Ok(line.object)),
            Err(error) => (None, Vec::new(), Err(error)),
        };
        events.push(RawEvent {
            index: events.len(),
            raw,
            parsed,
            metric,
            series_keys,
        });
    }
    if events.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(events)
}

/// 1-based line numbers of increasing offsets, each counting only the newlines since the last:
/// counting from the body's start for every line made a 5,000-line body cost 12.5 million
/// byte comparisons, 54% of the server's CPU during line protocol ingest (issue 14).
#[derive(Default)]
struct LineNumbers {
    counted_to: usize,
    newlines: usize,
}

impl LineNumbers {
    fn at(&mut self, body: &[u8], offset: usize) -> usize {
        let offset = offset.min(body.len());
        if offset < self.counted_to {
            return line_of(body, offset);
        }
        self.newlines += memchr::memchr_iter(b'\n', &body[self.counted_to..offset]).count();
        self.counted_to = offset;
        1 + self.newlines
    }
}

/// 1-based line number of byte `offset`.
fn line_of(body: &[u8], offset: usize) -> usize {
    1 + memchr::memchr_iter(b'\n', &body[..offset.min(body.len())]).count()
}

fn bad_line(line: usize, message: impl Into<String>) -> EventError {
    EventError::BadLine {
        line,
        message: message.into(),
    }
}

/// One parsed line.
struct Line<'a> {
    measurement: Cow<'a, str>,
    /// Tag keys in the line's order.
    tags: Vec<Cow<'a, str>>,
    object: EventObject<'a>,
}

/// One line as an event object, its measurement and its tag keys.
fn event_of(
    line: &str,
    number: usize,
    precision: Precision,
    now_ms: i64,
) -> Result<Line<'_>, EventError> {
    let parsed = match parse_lines(line).next() {
        Some(Ok(parsed)) => parsed,
        Some(Err(error)) => return Err(bad_line(number, error.to_string())),
        None => return Err(bad_line(number, "no line protocol on this line")),
    };
    let timestamp_ms = match parsed.timestamp {
        None => now_ms,
        Some(value) => precision
            .to_ms(value)
            .ok_or_else(|| bad_line(number, format!("timestamp {value} overflows")))?,
    };
    // RFC 3339 rather than a number: a metric's `timestamp_unit` must not reinterpret it.
    let timestamp = DateTime::from_timestamp_millis(timestamp_ms)
        .ok_or_else(|| {
            bad_line(
                number,
                format!("timestamp {timestamp_ms} ms is out of range"),
            )
        })?
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let ParsedLine {
        series, field_set, ..
    } = parsed;
    let mut members: Vec<(Cow<'_, str>, JsonValue)> = Vec::new();
    members.push((
        Cow::Borrowed(RESERVED_FIELD_NAME),
        JsonValue::String(timestamp),
    ));
    let mut tags = Vec::new();
    for (key, value) in series.tag_set.into_iter().flatten() {
        let key = owned_or_borrowed(key);
        tags.push(key.clone());
        members.push((key, JsonValue::String(value.to_string())));
    }
    for (key, value) in field_set {
        let value = json_of(&value)
            .ok_or_else(|| bad_line(number, format!("field {:?} is not a finite number", &*key)))?;
        members.push((owned_or_borrowed(key), value));
    }
    if let Some(clash) = repeated_key(&members) {
        return Err(bad_line(number, clash));
    }
    Ok(Line {
        measurement: owned_or_borrowed(series.measurement),
        tags,
        object: EventObject::from_members(members),
    })
}

/// Why the line's keys clash: a tag or field named `timestamp`, or a name used twice.
fn repeated_key(members: &[(Cow<'_, str>, JsonValue)]) -> Option<String> {
    for (position, (key, _)) in members.iter().enumerate().skip(1) {
        if key == RESERVED_FIELD_NAME {
            return Some(format!(
                "a tag or field named {RESERVED_FIELD_NAME:?} would hide the line's time; rename it"
            ));
        }
        if members[1..position].iter().any(|(other, _)| other == key) {
            return Some(format!("{key:?} is both a tag and a field, or repeated"));
        }
    }
    None
}

fn owned_or_borrowed(text: EscapedStr<'_>) -> Cow<'_, str> {
    match text {
        EscapedStr::SingleSlice(slice) => Cow::Borrowed(slice),
        EscapedStr::CopiedValue(owned) => Cow::Owned(owned),
    }
}

fn json_of(value: &FieldValue<'_>) -> Option<JsonValue> {
    Some(match value {
        FieldValue::I64(v) => JsonValue::Number((*v).into()),
        FieldValue::U64(v) => JsonValue::Number((*v).into()),
        FieldValue::F64(v) => JsonValue::Number(Number::from_f64(*v)?),
        FieldValue::String(text) => JsonValue::String(text.to_string()),
        FieldValue::Boolean(b) => JsonValue::Bool(*b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(body: &str) -> Vec<RawEvent<'_>> {
        line_events(
            body.as_bytes(),
            Precision::Nanoseconds,
            &Limits::default(),
            7,
        )
        .unwrap()
    }

    #[test]
    fn tags_and_fields_become_members_and_the_measurement_the_metric() {
        let body = "cpu,host=a\\ b,region=west usage=0.5,count=3i,ok=true,note=\"x y\" \
                    1700000000123456789\n\n# comment\nmem free=1u\n";
        let events = events(body);
        assert_eq!(events.len(), 2);
        let first = events[0].parsed.as_ref().unwrap();
        assert_eq!(events[0].metric.as_deref(), Some("cpu"));
        assert_eq!(first.get("host"), Some(&JsonValue::from("a b")));
        assert_eq!(first.get("count"), Some(&JsonValue::from(3)));
        assert_eq!(first.get("usage"), Some(&JsonValue::from(0.5)));
        assert_eq!(first.get("ok"), Some(&JsonValue::from(true)));
        assert_eq!(first.get("note"), Some(&JsonValue::from("x y")));
        assert_eq!(
            first.get("timestamp"),
            Some(&JsonValue::from("2023-11-14T22:13:20.123Z"))
        );
        let second = events[1].parsed.as_ref().unwrap();
        assert_eq!(events[1].index, 1);
        assert_eq!(
            second.get("timestamp"),
            Some(&JsonValue::from("1970-01-01T00:00:00.007Z"))
        );
    }

    #[test]
    fn a_bad_line_is_one_rejected_event_with_its_line_number() {
        let body = "ok v=1 1\nbroken v= 2\n\nclash,v=1 v=2 3\ntime timestamp=1 4\nok v=2 5";
        let events = events(body);
        assert_eq!(events.len(), 5);
        assert!(events[0].parsed.is_ok() && events[4].parsed.is_ok());
        let broken = events[1].parsed.as_ref().unwrap_err();
        assert!(broken.to_string().starts_with("line 2:"), "{broken}");
        assert_eq!(events[1].raw, b"broken v= 2");
        let clash = events[2].parsed.as_ref().unwrap_err();
        assert!(clash.to_string().starts_with("line 4:"), "{clash}");
        let time = events[3].parsed.as_ref().unwrap_err();
        assert!(time.to_string().contains("timestamp"), "{time}");
        assert!(matches!(
            line_events(b"\n \n", Precision::Seconds, &Limits::default(), 0),
            Err(BodyError::Empty)
        ));
    }

    #[test]
    fn line_numbers_stay_exact_across_a_long_body_with_blank_and_comment_lines() {
        let mut body = String::new();
        let mut bad_lines = Vec::new();
        for n in 1..=3_000 {
            match n % 7 {
                0 => body.push('\n'),
                3 => body.push_str("# a comment\n"),
                5 => {
                    bad_lines.push(n);
                    body.push_str("broken v= 2\n");
                }
                _ => body.push_str(&format!("ok v={n} {n}\n")),
            }
        }
        let events = events(&body);
        let reported: Vec<String> = events
            .iter()
            .filter_map(|event| event.parsed.as_ref().err())
            .map(|error| error.to_string())
            .collect();
        assert_eq!(reported.len(), bad_lines.len());
        for (error, line) in reported.iter().zip(&bad_lines) {
            assert!(error.starts_with(&format!("line {line}:")), "{error}");
        }
    }

    #[test]
    fn precisions_convert_to_milliseconds_rounding_down() {
        assert_eq!(Precision::Nanoseconds.to_ms(-1), Some(-1));
        assert_eq!(Precision::Microseconds.to_ms(1_999), Some(1));
        assert_eq!(Precision::Seconds.to_ms(2), Some(2_000));
        assert_eq!(Precision::Seconds.to_ms(i64::MAX), None);
        assert_eq!(Precision::parse("u"), Some(Precision::Microseconds));
        assert_eq!(Precision::parse("h"), None);
    }
}
