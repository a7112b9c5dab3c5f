use strata_core::{NameError, TimestampUnit};
use thiserror::Error;

/// Why the whole write body was refused (HTTP 400). Per-event problems are [`EventError`]s
/// instead, so one bad event never costs the others.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BodyError {
    #[error("malformed JSON body at byte {offset} (line {line}, column {column}): {message}")]
    Malformed {
        line: usize,
        column: usize,
        /// 0-based byte offset of the byte where the parser gave up.
        offset: usize,
        message: String,
    },
    #[error("the body must be a JSON object or an array of objects, but it is a JSON {found}")]
    NotObjectOrArray { found: &'static str },
    #[error("the body is empty; send a JSON object, a JSON array of objects, or NDJSON (one object per line)")]
    Empty,
}

/// Why one event was rejected. The message names the problem and where it is (key or line), since
/// it is returned to the device and kept in the tenant's error log.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EventError {
    /// Only NDJSON produces this per event; `line` is the 1-based line of the body.
    #[error("malformed JSON on line {line}, column {column}: {message}")]
    Malformed {
        line: usize,
        column: usize,
        message: String,
    },
    /// A line protocol line that does not parse; `line` is the 1-based line of the body.
    #[error("line {line}: {message}")]
    BadLine { line: usize, message: String },
    #[error("the event must be a JSON object, but it is a JSON {found}")]
    NotAnObject { found: &'static str },
    #[error("the event is {bytes} bytes; the limit is {limit} bytes")]
    TooLarge { bytes: usize, limit: usize },

    #[error("the event names no metric: none of the keys {tried:?} holds a non-empty string (or pass ?metric=NAME)")]
    NoMetric { tried: Vec<String> },
    #[error("metric key {key:?} must hold the metric's name as a string")]
    MetricNotString { key: String },
    #[error("the metric name under key {key:?} is invalid: {source}")]
    InvalidMetricName {
        key: String,
        #[source]
        source: NameError,
    },
    #[error("the metric name {name:?} under key {key:?} is reserved (every metric has a `timestamp` column); name the metric otherwise")]
    ReservedMetricName { key: String, name: String },

    #[error("the event has no timestamp: none of the keys {tried:?} is present")]
    MissingTimestamp { tried: Vec<String> },
    #[error("timestamp key {key:?} holds {value}, which is not a timestamp; accepted forms: {}{}{}", ACCEPTED_TIMESTAMP_FORMS, unit_note(*.unit), configured_patterns(.patterns))]
    BadTimestamp {
        key: String,
        /// The offending value as JSON text, truncated to 100 characters.
        value: String,
        /// The metric's `timestamp_unit`, named when it is not milliseconds.
        unit: TimestampUnit,
        /// The metric and tenant patterns that were tried after the built-in forms.
        patterns: Vec<String>,
    },

    #[error("timestamp key {key:?} holds {value}, which is outside the supported range {MIN_TIMESTAMP_TEXT} to {MAX_TIMESTAMP_TEXT} (epoch milliseconds {} to {}){read_as}; such an event could not be read back by every client", strata_core::MIN_TIMESTAMP_MS, strata_core::MAX_TIMESTAMP_MS)]
    TimestampOutOfRange {
        key: String,
        /// The offending value as JSON text, truncated to 100 characters.
        value: String,
        /// Empty, or how a number was read when not as epoch milliseconds
        /// (" when read as epoch seconds (the metric's timestamp_unit)").
        read_as: String,
    },

    #[error("metric {metric:?} already holds {known} distinct field names and this event adds {adding} more; the limit is {limit} per metric (declare aliases, or send such keys inside one array or text field)")]
    TooManyFieldNames {
        metric: String,
        known: usize,
        adding: usize,
        limit: usize,
    },
    #[error("invalid field name: {source}")]
    InvalidFieldName {
        name: String,
        #[source]
        source: NameError,
    },
    #[error("field {name:?} contains an empty key segment; nested keys must not be empty")]
    EmptyKeySegment { name: String },
    #[error("the event has {count} fields after flattening nested objects; the limit is {limit}")]
    TooManyFields { count: usize, limit: usize },
    #[error("key {key:?} nests objects deeper than the limit of {limit} levels")]
    TooDeep { key: String, limit: usize },
    #[error(
        "field {name:?} appears twice (a dotted key and a nested object flatten to the same name)"
    )]
    DuplicateField { name: String },
}

/// [`strata_core::MIN_TIMESTAMP_MS`] as RFC 3339 (checked by a test).
pub const MIN_TIMESTAMP_TEXT: &str = "1677-09-21T00:12:43.146Z";
/// [`strata_core::MAX_TIMESTAMP_MS`] as RFC 3339 (checked by a test).
pub const MAX_TIMESTAMP_TEXT: &str = "2262-04-11T23:47:16.854Z";

/// Shown in every `BadTimestamp` message so a device author learns what would have worked.
pub const ACCEPTED_TIMESTAMP_FORMS: &str = "epoch milliseconds as a JSON number or a string of \
digits; RFC 3339 (2015-01-12T10:12:15Z, offsets and fractional seconds allowed); RFC 1123/2822 \
(Mon, 12 Jan 2015 10:12:15 GMT); date-time text read as UTC (January 12, 2015 10:12:15, \
Jan 12, 2015 10:12:15, 2015-01-12 10:12:15.123, 2015-01-12T10:12:15, 2015/01/12 10:12:15, \
2015-01-12); epoch milliseconds with a fraction are rounded down to the millisecond";

/// Said after the accepted forms when a metric reads numbers in another unit than the default.
fn unit_note(unit: TimestampUnit) -> String {
    if unit.is_default() {
        String::new()
    } else {
        format!(
            "; this metric's timestamp_unit is {unit}: numbers and digit strings are {}",
            unit.describe()
        )
    }
}

fn configured_patterns(patterns: &[String]) -> String {
    if patterns.is_empty() {
        String::new()
    } else {
        format!("; configured patterns: {patterns:?}")
    }
}

impl EventError {
    /// The pipeline stage that rejected the event, recorded in `strata.errors.stage`.
    pub fn stage(&self) -> &'static str {
        match self {
            EventError::Malformed { .. }
            | EventError::BadLine { .. }
            | EventError::NotAnObject { .. }
            | EventError::TooLarge { .. } => "parse",
            EventError::NoMetric { .. }
            | EventError::MetricNotString { .. }
            | EventError::InvalidMetricName { .. }
            | EventError::ReservedMetricName { .. } => "metric",
            EventError::MissingTimestamp { .. }
            | EventError::BadTimestamp { .. }
            | EventError::TimestampOutOfRange { .. } => "timestamp",
            EventError::InvalidFieldName { .. }
            | EventError::EmptyKeySegment { .. }
            | EventError::TooManyFields { .. }
            | EventError::TooDeep { .. }
            | EventError::DuplicateField { .. }
            | EventError::TooManyFieldNames { .. } => "validate",
        }
    }
}

/// Cuts `text` to at most `max_chars` characters, marking the cut, so an oversized input never
/// produces an oversized error or sample.
pub(crate) fn truncate_chars(text: &str, max_chars: usize) -> &str {
    // No more bytes than `max_chars` means no more characters: skips the character walk for
    // the short texts that statistics samples compare on every event (issue 14).
    if text.len() <= max_chars {
        return text;
    }
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}
