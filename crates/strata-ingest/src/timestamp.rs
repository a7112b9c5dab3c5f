//! Recognizing an event's timestamp in the many shapes devices send it, always as UTC epoch
//! milliseconds.

use chrono::format::{parse as parse_with_items, Item, Parsed, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Value as JsonValue;
use strata_core::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, RESERVED_FIELD_NAME};

use crate::error::{truncate_chars, EventError};

/// How much of an unparseable timestamp value an error message echoes.
const MAX_ECHOED_VALUE_CHARS: usize = 100;

/// Longest digit string read as epoch millis: i64 has 19 digits. Longer ones are out of range
/// (or not epoch millis at all) either way; 38 digits still fit the i128 they are read into.
const MAX_EPOCH_DIGITS: usize = 38;

/// Date-time text without a zone, read as UTC. `%.f` also matches no fraction at all, and `%B`
/// also matches the abbreviated month name, so each line covers several spellings.
const NAIVE_DATE_TIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y/%m/%d %H:%M:%S%.f",
    "%B %d, %Y %H:%M:%S%.f",
    "%B %d %Y %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y/%m/%d %H:%M",
    "%B %d, %Y %H:%M",
];

/// Dates without a time, read as midnight UTC.
const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d", "%B %d, %Y", "%B %d %Y"];

/// Reads a timestamp value as UTC epoch milliseconds.
///
/// Accepted, in order: a JSON integer (epoch millis); a JSON number with a fraction (epoch millis,
/// rounded down to the millisecond like a sub-millisecond RFC 3339 fraction, so `1.9` is 1 and
/// `-1.1` is -2: the hot key holds whole milliseconds, and Python's `time.time() * 1000` sends
/// fractions that rejecting would turn into lost readings); a string of digits, optionally
/// negative (epoch millis); RFC 3339; RFC 1123/2822; the built-in date-time texts (read as UTC);
/// then each of `metric_patterns` and `tenant_patterns` (chrono strftime; a pattern without a
/// zone reads as UTC, one with only a date reads as midnight).
///
/// The instant must lie in [`MIN_TIMESTAMP_MS`, `MAX_TIMESTAMP_MS`] (years 1677 to 2262, what
/// an Arrow nanosecond timestamp holds); outside it the error is
/// [`EventError::TimestampOutOfRange`]. The error names the key as `timestamp`; callers that read
/// an alias replace it.
pub fn parse_timestamp(
    value: &JsonValue,
    metric_patterns: &[String],
    tenant_patterns: &[String],
) -> Result<i64, EventError> {
    let parsed: Option<i128> = match value {
        JsonValue::Number(number) => epoch_millis_of_number(number),
        JsonValue::String(text) => {
            let text = text.trim();
            parse_epoch_digits(text).or_else(|| {
                parse_builtin_text(text)
                    .or_else(|| {
                        metric_patterns
                            .iter()
                            .chain(tenant_patterns)
                            .find_map(|pattern| parse_with_pattern(text, pattern))
                    })
                    .map(i128::from)
            })
        }
        JsonValue::Null | JsonValue::Bool(_) | JsonValue::Array(_) | JsonValue::Object(_) => None,
    };
    let Some(millis) = parsed else {
        return Err(bad_timestamp(
            RESERVED_FIELD_NAME,
            value,
            metric_patterns,
            tenant_patterns,
        ));
    };
    match i64::try_from(millis) {
        Ok(millis) if (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&millis) => Ok(millis),
        _ => Err(out_of_range(RESERVED_FIELD_NAME, value)),
    }
}

pub(crate) fn out_of_range(key: &str, value: &JsonValue) -> EventError {
    EventError::TimestampOutOfRange {
        key: key.to_string(),
        value: echoed(value),
    }
}

/// The value as JSON text, cut to [`MAX_ECHOED_VALUE_CHARS`].
fn echoed(value: &JsonValue) -> String {
    let text = value.to_string();
    let shown = truncate_chars(&text, MAX_ECHOED_VALUE_CHARS);
    if shown.len() < text.len() {
        format!("{shown}...")
    } else {
        text
    }
}

/// Checks that a configured pattern is a valid chrono strftime pattern, so settings can refuse a
/// typo when it is made instead of every event failing later.
pub fn validate_timestamp_pattern(pattern: &str) -> Result<(), String> {
    if pattern.trim().is_empty() {
        return Err("timestamp pattern is empty".to_string());
    }
    if StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error)) {
        return Err(format!(
            "timestamp pattern {pattern:?} is not a valid strftime pattern (e.g. \"%d/%m/%Y %H:%M\")"
        ));
    }
    Ok(())
}

pub(crate) fn bad_timestamp(
    key: &str,
    value: &JsonValue,
    metric_patterns: &[String],
    tenant_patterns: &[String],
) -> EventError {
    EventError::BadTimestamp {
        key: key.to_string(),
        value: echoed(value),
        patterns: metric_patterns
            .iter()
            .chain(tenant_patterns)
            .cloned()
            .collect(),
    }
}

/// Epoch millis of a JSON number, widened so a value past i64 is still "a number out of range"
/// rather than "not a timestamp".
fn epoch_millis_of_number(number: &serde_json::Number) -> Option<i128> {
    if let Some(millis) = number.as_i64() {
        return Some(i128::from(millis));
    }
    if let Some(millis) = number.as_u64() {
        return Some(i128::from(millis));
    }
    let floored = number.as_f64()?.floor();
    if floored.is_nan() {
        return None;
    }
    // `as` saturates; anything past ±1e30 is out of range whatever its exact value, and an
    // infinite or NaN value saturates the same way (serde_json never produces those).
    Some(floored.clamp(-1e30, 1e30) as i128)
}

fn parse_epoch_digits(text: &str) -> Option<i128> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty()
        || digits.len() > MAX_EPOCH_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    text.parse::<i128>().ok()
}

fn parse_builtin_text(text: &str) -> Option<i64> {
    // Every built-in form starts with a digit or a letter; anything else skips the chrono calls.
    let first = text.as_bytes().first()?;
    if !first.is_ascii_alphanumeric() {
        return None;
    }
    if let Ok(date_time) = DateTime::parse_from_rfc3339(text) {
        return Some(date_time.timestamp_millis());
    }
    if let Ok(date_time) = DateTime::parse_from_rfc2822(text) {
        return Some(date_time.timestamp_millis());
    }
    NAIVE_DATE_TIME_FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .or_else(|| {
            DATE_FORMATS
                .iter()
                .find_map(|format| NaiveDate::parse_from_str(text, format).ok())
                .map(|date| date.and_time(NaiveTime::MIN))
        })
        .map(|naive| naive.and_utc().timestamp_millis())
}

fn parse_with_pattern(text: &str, pattern: &str) -> Option<i64> {
    let mut parsed = Parsed::new();
    parse_with_items(&mut parsed, text, StrftimeItems::new(pattern)).ok()?;
    if parsed.offset().is_some() {
        return parsed.to_datetime().ok().map(|dt| dt.timestamp_millis());
    }
    if let Ok(naive) = parsed.to_naive_datetime_with_offset(0) {
        return Some(naive.and_utc().timestamp_millis());
    }
    // Midnight only when the pattern has no time at all; a partial time (an hour without minutes)
    // must not silently become midnight.
    let has_time_fields = parsed.hour_div_12().is_some()
        || parsed.hour_mod_12().is_some()
        || parsed.minute().is_some();
    if has_time_fields {
        return None;
    }
    let date = parsed.to_naive_date().ok()?;
    Some(date.and_time(NaiveTime::MIN).and_utc().timestamp_millis())
}
