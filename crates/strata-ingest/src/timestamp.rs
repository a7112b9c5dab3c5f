//! Recognizing an event's timestamp in the many shapes devices send it, always as UTC epoch
//! milliseconds; numbers in the metric's `timestamp_unit` (seconds, milliseconds, micro- or
//! nanoseconds, or chosen by magnitude).

use chrono::format::{parse as parse_with_items, Item, Parsed, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Value as JsonValue;
use strata_core::{TimestampUnit, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, RESERVED_FIELD_NAME};

use crate::error::{truncate_chars, EventError};

/// Where an event's timestamp may be, the unit of numeric timestamps, and which text patterns it
/// may follow.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimestampConfig<'a> {
    /// The metric's timestamp aliases, tried in order after `timestamp`.
    pub aliases: &'a [String],
    /// The metric's `timestamp_unit`: how JSON numbers and digit strings are read.
    pub unit: TimestampUnit,
    /// The metric's own patterns, tried before the tenant's.
    pub metric_patterns: &'a [String],
    pub tenant_patterns: &'a [String],
}

/// How much of an unparseable timestamp value an error message echoes.
const MAX_ECHOED_VALUE_CHARS: usize = 100;

/// Longest digit string read as an epoch number: i64 has 19 digits. Longer ones are out of
/// range (or not epoch numbers at all) either way; 38 digits still fit the i128 they are read into.
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

/// `timestamp_unit` `auto` reads an absolute value below this as epoch seconds. 1e11 s is the
/// year 5138, far past anything a device sends; 1e11 ms is 1973-03-03, so only a millisecond
/// timestamp before March 1973 would be misread (as seconds).
pub const AUTO_SECONDS_BELOW: i128 = 100_000_000_000;
/// `auto` reads an absolute value from [`AUTO_SECONDS_BELOW`] up to this as epoch
/// milliseconds: 1e14 ms is the year 5138 again and 1e14 µs is 1973-03-03.
pub const AUTO_MILLIS_BELOW: i128 = 100_000_000_000_000;
/// `auto` reads an absolute value from [`AUTO_MILLIS_BELOW`] up to this as epoch microseconds
/// and anything larger as epoch nanoseconds (1e17 µs is the year 5138, 1e17 ns 1973-03-03).
/// Today is about 1.8e9 s, 1.8e12 ms, 1.8e15 µs and 1.8e18 ns: each boundary lies between two
/// units' readings of every instant from 1973-03-03 to 2262 (the supported end), so all of those
/// read correctly in any unit.
pub const AUTO_MICROS_BELOW: i128 = 100_000_000_000_000_000;

/// A concrete unit: the setting, or what `auto` chose for one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl Scale {
    /// The power of ten from this unit to milliseconds.
    fn exponent(self) -> i32 {
        match self {
            Scale::Seconds => 3,
            Scale::Millis => 0,
            Scale::Micros => -3,
            Scale::Nanos => -6,
        }
    }

    fn unit(self) -> TimestampUnit {
        match self {
            Scale::Seconds => TimestampUnit::Seconds,
            Scale::Millis => TimestampUnit::Millis,
            Scale::Micros => TimestampUnit::Micros,
            Scale::Nanos => TimestampUnit::Nanos,
        }
    }

    /// The setting's scale; `auto` asks `by_magnitude`.
    fn of(unit: TimestampUnit, by_magnitude: impl FnOnce() -> Scale) -> Scale {
        match unit {
            TimestampUnit::Seconds => Scale::Seconds,
            TimestampUnit::Millis => Scale::Millis,
            TimestampUnit::Micros => Scale::Micros,
            TimestampUnit::Nanos => Scale::Nanos,
            TimestampUnit::Auto => by_magnitude(),
        }
    }

    /// `auto`'s choice for an exact integer: compared as an integer, since near 1e17 an `f64`
    /// rounds 99,999,999,999,999,999 up to the boundary.
    fn of_integer(value: i128) -> Scale {
        match value.unsigned_abs() {
            abs if abs < AUTO_SECONDS_BELOW.unsigned_abs() => Scale::Seconds,
            abs if abs < AUTO_MILLIS_BELOW.unsigned_abs() => Scale::Millis,
            abs if abs < AUTO_MICROS_BELOW.unsigned_abs() => Scale::Micros,
            _ => Scale::Nanos,
        }
    }

    /// `auto`'s choice for a number with a fraction (the boundaries are exact in `f64`).
    fn of_float(value: f64) -> Scale {
        match value.abs() {
            abs if abs < AUTO_SECONDS_BELOW as f64 => Scale::Seconds,
            abs if abs < AUTO_MILLIS_BELOW as f64 => Scale::Millis,
            abs if abs < AUTO_MICROS_BELOW as f64 => Scale::Micros,
            _ => Scale::Nanos,
        }
    }
}

/// Reads a timestamp value as UTC epoch milliseconds, numbers as epoch milliseconds (the v1
/// contract): [`parse_timestamp_in`] with [`TimestampUnit::Millis`].
pub fn parse_timestamp(
    value: &JsonValue,
    metric_patterns: &[String],
    tenant_patterns: &[String],
) -> Result<i64, EventError> {
    parse_timestamp_in(
        value,
        TimestampUnit::Millis,
        metric_patterns,
        tenant_patterns,
    )
}

/// Reads a timestamp value as UTC epoch milliseconds, reading numbers in `unit` (a metric's
/// `timestamp_unit`).
///
/// Accepted, in order: a JSON number, integer or with a fraction, and a string of digits
/// (optionally negative), both in `unit`; RFC 3339; RFC 1123/2822; the built-in date-time texts
/// (read as UTC); then each of `metric_patterns` and `tenant_patterns` (chrono strftime; a
/// pattern without a zone reads as UTC, one with only a date reads as midnight).
///
/// Numbers become whole milliseconds rounded down (toward negative infinity), like a
/// sub-millisecond RFC 3339 fraction: the hot key holds whole milliseconds, and rejecting would
/// lose the readings of devices that send `time.time() * 1000` (ms `1.9` is 1 and `-1.1` is
/// -2; s `1.0019` is 1001; µs `-1` is -1). Seconds with a fraction are scaled on the number's
/// decimal text, not in binary floating point, which would read `1.001` s as 1000 ms.
///
/// `auto` chooses the unit by the absolute value: below 1e11 seconds, below 1e14 milliseconds,
/// below 1e17 microseconds, else nanoseconds ([`AUTO_SECONDS_BELOW`] and the next two say why).
///
/// The instant must lie in [`MIN_TIMESTAMP_MS`, `MAX_TIMESTAMP_MS`] (years 1677 to 2262, what
/// an Arrow nanosecond timestamp holds); outside it the error is
/// [`EventError::TimestampOutOfRange`], saying which unit the number was read in. The error
/// names the key as `timestamp`; [`crate::normalize`] names the key it read.
pub fn parse_timestamp_in(
    value: &JsonValue,
    unit: TimestampUnit,
    metric_patterns: &[String],
    tenant_patterns: &[String],
) -> Result<i64, EventError> {
    let config = TimestampConfig {
        aliases: &[],
        unit,
        metric_patterns,
        tenant_patterns,
    };
    parse_timestamp_at(RESERVED_FIELD_NAME, value, &config)
}

/// [`parse_timestamp_in`] for the value under `key`, which the errors name.
pub(crate) fn parse_timestamp_at(
    key: &str,
    value: &JsonValue,
    config: &TimestampConfig<'_>,
) -> Result<i64, EventError> {
    let parsed: Option<(i128, Option<Scale>)> = match value {
        JsonValue::Number(number) => epoch_millis_of_number(number, config.unit),
        JsonValue::String(text) => {
            let text = text.trim();
            match parse_epoch_digits(text) {
                Some(digits) => Some(scale_integer(digits, config.unit)),
                None => parse_text(text, config).map(|millis| (i128::from(millis), None)),
            }
        }
        JsonValue::Null | JsonValue::Bool(_) | JsonValue::Array(_) | JsonValue::Object(_) => None,
    };
    let Some((millis, scale)) = parsed else {
        return Err(bad_timestamp(key, value, config));
    };
    match i64::try_from(millis) {
        Ok(millis) if (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&millis) => Ok(millis),
        _ => Err(out_of_range(key, value, config.unit, scale)),
    }
}

/// The text forms: built-in, then the metric's and the tenant's patterns.
fn parse_text(text: &str, config: &TimestampConfig<'_>) -> Option<i64> {
    parse_builtin_text(text).or_else(|| {
        config
            .metric_patterns
            .iter()
            .chain(config.tenant_patterns)
            .find_map(|pattern| parse_with_pattern(text, pattern))
    })
}

/// `scale` is the unit a number was read in (`None` for text), which the message names when it
/// is not the default, so a device author sees why 1e12 "seconds" is out of range.
fn out_of_range(
    key: &str,
    value: &JsonValue,
    unit: TimestampUnit,
    scale: Option<Scale>,
) -> EventError {
    let read_as = match scale {
        Some(scale) if unit == TimestampUnit::Auto => format!(
            " when read as {} (timestamp_unit auto, by its magnitude)",
            scale.unit().describe()
        ),
        Some(scale) if scale != Scale::Millis => format!(
            " when read as {} (the metric's timestamp_unit)",
            scale.unit().describe()
        ),
        _ => String::new(),
    };
    EventError::TimestampOutOfRange {
        key: key.to_string(),
        value: echoed(value),
        read_as,
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

fn bad_timestamp(key: &str, value: &JsonValue, config: &TimestampConfig<'_>) -> EventError {
    EventError::BadTimestamp {
        key: key.to_string(),
        value: echoed(value),
        unit: config.unit,
        patterns: config
            .metric_patterns
            .iter()
            .chain(config.tenant_patterns)
            .cloned()
            .collect(),
    }
}

/// Epoch millis of a JSON number read in `unit`, widened so a value past i64 is still "a number
/// out of range" rather than "not a timestamp"; with the scale it was read in.
fn epoch_millis_of_number(
    number: &serde_json::Number,
    unit: TimestampUnit,
) -> Option<(i128, Option<Scale>)> {
    if let Some(integer) = number.as_i64() {
        return Some(scale_integer(i128::from(integer), unit));
    }
    if let Some(integer) = number.as_u64() {
        return Some(scale_integer(i128::from(integer), unit));
    }
    let float = number.as_f64()?;
    if float.is_nan() {
        return None;
    }
    let scale = Scale::of(unit, || Scale::of_float(float));
    let millis = if scale == Scale::Millis {
        // The v1 rule, unchanged: floor in f64. For any value in range it equals the floor of
        // the decimal text (an f64 below 2^53 has no integer inside its rounding interval).
        // `as` saturates; anything past ±1e30 is out of range whatever its exact value.
        float.floor().clamp(-1e30, 1e30) as i128
    } else {
        floor_scaled(&number.to_string(), scale.exponent())?
    };
    Some((millis, Some(scale)))
}

/// An exact integer in `unit` as milliseconds, rounded toward negative infinity.
fn scale_integer(value: i128, unit: TimestampUnit) -> (i128, Option<Scale>) {
    let scale = Scale::of(unit, || Scale::of_integer(value));
    let exponent = scale.exponent();
    let factor = 10_i128.pow(exponent.unsigned_abs());
    let millis = if exponent >= 0 {
        // Saturates far outside the range, which is all that matters then.
        value.saturating_mul(factor)
    } else {
        value.div_euclid(factor)
    };
    (millis, Some(scale))
}

/// Largest magnitude [`floor_scaled`] computes exactly; anything beyond is out of range anyway
/// and saturates here (well inside i128).
const SATURATED: i128 = 10_i128.pow(30);

/// `floor(number × 10^exponent)` computed exactly on a JSON number's decimal text (`-12.5`,
/// `1e-7`, `1.5e20`: what serde_json prints for an `f64`, its shortest round-trip form, so the
/// digits the device sent for any number an `f64` keeps). Saturates at ±[`SATURATED`].
fn floor_scaled(text: &str, exponent: i32) -> Option<i128> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, power) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, power)) => (mantissa, power.parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    // An f64's shortest form has at most 17 significant digits; more would not be one.
    let significand: i128 = digits.parse().ok().filter(|_| digits.len() <= 30)?;
    let value = if negative { -significand } else { significand };
    let shift = power - i64::try_from(fraction.len()).ok()? + i64::from(exponent);
    let saturated = if negative { -SATURATED } else { SATURATED };
    let power_of_ten = |shift: i64| {
        u32::try_from(shift)
            .ok()
            .and_then(|s| 10_i128.checked_pow(s))
    };
    Some(if shift >= 0 {
        power_of_ten(shift)
            .and_then(|factor| value.checked_mul(factor))
            .map_or(saturated, |scaled| scaled.clamp(-SATURATED, SATURATED))
    } else {
        match power_of_ten(-shift) {
            // Euclidean division by a positive divisor is the floor.
            Some(divisor) => value.div_euclid(divisor),
            // A non-zero magnitude below 10^-8 (30 digits over more than 38 places): the floor
            // is 0 or -1.
            None => -i128::from(negative),
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use TimestampUnit::{Auto, Micros, Millis, Nanos, Seconds};

    /// The seed's `2015-01-12T10:12:15Z`.
    const SEED_S: i64 = 1_421_057_535;
    const SEED_MS: i64 = SEED_S * 1000;

    fn read(value: JsonValue, unit: TimestampUnit) -> Result<i64, EventError> {
        parse_timestamp_in(&value, unit, &[], &[])
    }

    fn out_of_range_note(value: JsonValue, unit: TimestampUnit) -> String {
        match read(value.clone(), unit) {
            Err(EventError::TimestampOutOfRange { read_as, .. }) => read_as,
            other => panic!("{value} in {unit}: expected out of range, got {other:?}"),
        }
    }

    #[test]
    fn seconds_scale_integers_fractions_and_digit_strings() {
        assert_eq!(read(json!(SEED_S), Seconds).unwrap(), SEED_MS);
        assert_eq!(read(json!("1421057535"), Seconds).unwrap(), SEED_MS);
        assert_eq!(read(json!(" -1 "), Seconds).unwrap(), -1000);
        // Fractions keep milliseconds, rounded down; on the decimal text, so 1.001 s is not
        // the 1000.9999999999999 ms of binary floating point.
        assert_eq!(read(json!(1421057535.123), Seconds).unwrap(), SEED_MS + 123);
        assert_eq!(read(json!(1421057535.0019), Seconds).unwrap(), SEED_MS + 1);
        assert_eq!(read(json!(1.001), Seconds).unwrap(), 1001);
        assert_eq!(read(json!(-1.5), Seconds).unwrap(), -1500);
        assert_eq!(read(json!(-0.0001), Seconds).unwrap(), -1);
        assert_eq!(read(json!(1e-300), Seconds).unwrap(), 0);
        assert_eq!(read(json!(-1e-300), Seconds).unwrap(), -1);
        // Text forms do not depend on the unit.
        assert_eq!(
            read(json!("2015-01-12T10:12:15Z"), Seconds).unwrap(),
            SEED_MS
        );
    }

    #[test]
    fn millis_stay_the_default_rule() {
        for value in [
            json!(SEED_MS),
            json!("1421057535000"),
            json!(1421057535000.75),
        ] {
            assert_eq!(read(value.clone(), Millis).unwrap(), SEED_MS, "{value}");
            assert_eq!(
                parse_timestamp(&value, &[], &[]).unwrap(),
                SEED_MS,
                "{value}"
            );
        }
        assert_eq!(read(json!(-1.1), Millis).unwrap(), -2);
    }

    #[test]
    fn micros_and_nanos_truncate_toward_negative_infinity() {
        assert_eq!(
            read(json!(1_421_057_535_123_456_i64), Micros).unwrap(),
            SEED_MS + 123
        );
        assert_eq!(
            read(json!("1421057535123999"), Micros).unwrap(),
            SEED_MS + 123
        );
        assert_eq!(read(json!(-1), Micros).unwrap(), -1);
        assert_eq!(read(json!(-1000), Micros).unwrap(), -1);
        assert_eq!(read(json!(-1001), Micros).unwrap(), -2);
        assert_eq!(read(json!(1999.9), Micros).unwrap(), 1);
        assert_eq!(read(json!(-0.5), Micros).unwrap(), -1);
        assert_eq!(
            read(json!(1_421_057_535_123_456_789_i64), Nanos).unwrap(),
            SEED_MS + 123
        );
        assert_eq!(read(json!(999_999), Nanos).unwrap(), 0);
        assert_eq!(read(json!(1_000_000), Nanos).unwrap(), 1);
        assert_eq!(read(json!(-1), Nanos).unwrap(), -1);
        assert_eq!(read(json!("-1000001"), Nanos).unwrap(), -2);
        // i64 nanoseconds reach exactly the end of the range; the floor of i64::MIN does not.
        assert_eq!(read(json!(i64::MAX), Nanos).unwrap(), MAX_TIMESTAMP_MS);
        assert!(read(json!(i64::MIN), Nanos).is_err());
        assert_eq!(
            read(json!(i64::MIN + 1_000_000), Nanos).unwrap(),
            MIN_TIMESTAMP_MS
        );
    }

    #[test]
    fn auto_reads_the_same_instant_in_every_unit() {
        for value in [
            json!(SEED_S),
            json!(SEED_MS),
            json!(SEED_MS * 1000 + 999),
            json!(SEED_MS * 1_000_000 + 999_999),
            json!("1421057535"),
            json!("1421057535000"),
            json!("1421057535000999"),
            json!("1421057535000999999"),
            json!(1421057535.0009),
            json!(1421057535000.5),
            json!(1.4210575350009e15),
        ] {
            assert_eq!(read(value.clone(), Auto).unwrap(), SEED_MS, "{value}");
        }
        assert_eq!(
            read(json!(-1_000_000_000), Auto).unwrap(),
            -1_000_000_000_000
        );
        assert_eq!(read(json!(0), Auto).unwrap(), 0);
    }

    #[test]
    fn auto_switches_units_exactly_at_each_threshold() {
        // Just below a threshold is the coarser unit, which puts these beyond 2262.
        let cases = [
            (99_999_999_999_i64, "epoch seconds"),
            (99_999_999_999_999, "epoch milliseconds"),
            (99_999_999_999_999_999, "epoch microseconds"),
        ];
        for (below, unit) in cases {
            for value in [json!(below), json!(-below), json!(below.to_string())] {
                let note = out_of_range_note(value, Auto);
                assert!(
                    note.contains(unit) && note.contains("auto"),
                    "{below}: {note}"
                );
            }
        }
        // At a threshold the finer unit reads it as 1973-03-03T09:46:40Z.
        for at in [
            100_000_000_000_i64,
            100_000_000_000_000,
            100_000_000_000_000_000,
        ] {
            assert_eq!(read(json!(at), Auto).unwrap(), 100_000_000_000, "{at}");
            assert_eq!(read(json!(-at), Auto).unwrap(), -100_000_000_000, "-{at}");
            assert_eq!(read(json!(at.to_string()), Auto).unwrap(), 100_000_000_000);
        }
        // Numbers with a fraction switch at the same magnitudes.
        assert!(out_of_range_note(json!(99_999_999_999.5), Auto).contains("epoch seconds"));
        assert_eq!(read(json!(1e11), Auto).unwrap(), 100_000_000_000);
        assert_eq!(read(json!(1e14), Auto).unwrap(), 100_000_000_000);
        assert_eq!(read(json!(1e17), Auto).unwrap(), 100_000_000_000);
        assert_eq!(Scale::of_integer(AUTO_SECONDS_BELOW - 1), Scale::Seconds);
        assert_eq!(Scale::of_integer(AUTO_MICROS_BELOW - 1), Scale::Micros);
        assert_eq!(Scale::of_integer(AUTO_MICROS_BELOW), Scale::Nanos);
    }

    #[test]
    fn out_of_range_names_the_key_value_and_unit() {
        let config = TimestampConfig {
            unit: Seconds,
            ..TimestampConfig::default()
        };
        let err = parse_timestamp_at("ts", &json!(9_300_000_000_i64), &config).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("\"ts\"")
                && text.contains("9300000000")
                && text.contains("when read as epoch seconds (the metric's timestamp_unit)")
                && text.contains("1677-09-21T00:12:43.146Z"),
            "{text}"
        );
        for (value, unit) in [
            (json!(1e300), Seconds),
            (json!(-1e300), Seconds),
            (json!(u64::MAX), Nanos),
            (json!("99999999999999999999999999999999999999"), Seconds),
            (json!(i64::MAX), Seconds),
            (json!(i64::MIN), Micros),
            (json!(9.3e18), Micros),
        ] {
            assert!(
                matches!(
                    read(value.clone(), unit),
                    Err(EventError::TimestampOutOfRange { .. })
                ),
                "{value} in {unit}"
            );
        }
        // The default unit's message is the v1 text, without a note.
        assert_eq!(out_of_range_note(json!(i64::MAX), Millis), "");
        // Text out of range says nothing about units.
        assert_eq!(
            out_of_range_note(json!("3000-01-01T00:00:00Z"), Seconds),
            ""
        );
    }

    #[test]
    fn a_bad_timestamp_names_the_metric_unit() {
        let text = read(json!("soon"), Seconds).unwrap_err().to_string();
        assert!(
            text.contains("\"soon\"")
                && text
                    .contains("timestamp_unit is s: numbers and digit strings are epoch seconds"),
            "{text}"
        );
        let default = read(json!("soon"), Millis).unwrap_err().to_string();
        assert!(!default.contains("timestamp_unit"), "{default}");
    }

    #[test]
    fn decimal_text_floors_exactly() {
        for (text, exponent, expected) in [
            ("-12.5", 0, Some(-13)),
            ("12.5", 0, Some(12)),
            ("1.5e20", 0, Some(150_000_000_000_000_000_000)),
            ("1E2", 3, Some(100_000)),
            ("1e-7", 3, Some(0)),
            ("-1e-7", 3, Some(-1)),
            ("0.001", 3, Some(1)),
            ("-0.0", 3, Some(0)),
            ("123.456", -3, Some(0)),
            ("-123.456", -3, Some(-1)),
            ("1e400", 3, Some(SATURATED)),
            ("-1e400", 3, Some(-SATURATED)),
            ("1.2.3", 0, None),
            ("e5", 0, None),
            ("1e", 0, None),
        ] {
            assert_eq!(
                floor_scaled(text, exponent),
                expected,
                "{text} x 10^{exponent}"
            );
        }
    }
}
