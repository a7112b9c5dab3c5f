//! Splitting a write body into events. Whole-body problems (the body is not JSON at all) are a
//! [`BodyError`]; everything that concerns one event is that event's [`EventError`], so the other
//! events in the body are still accepted.

use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Map, Value as JsonValue};
use strata_core::Limits;

use crate::error::{BodyError, EventError};

/// How the write body is framed. The server picks `Ndjson` for `Content-Type: application/x-ndjson`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON object, or a JSON array of objects.
    Json,
    /// One JSON object per line; blank lines are skipped.
    Ndjson,
}

/// One event before metric resolution.
#[derive(Debug)]
pub struct RawEvent<'a> {
    /// Position in the body, 0-based, counting every event including rejected ones. Blank NDJSON
    /// lines are not events and do not count.
    pub index: usize,
    /// The event's exact bytes in the body, for the error log.
    pub raw: &'a [u8],
    pub parsed: Result<Map<String, JsonValue>, EventError>,
}

/// Splits a write body into events and parses each one.
pub fn split_body<'a>(
    body: &'a [u8],
    format: BodyFormat,
    limits: &Limits,
) -> Result<Vec<RawEvent<'a>>, BodyError> {
    match format {
        BodyFormat::Json => split_json(body, limits),
        BodyFormat::Ndjson => split_ndjson(body, limits),
    }
}

fn split_json<'a>(body: &'a [u8], limits: &Limits) -> Result<Vec<RawEvent<'a>>, BodyError> {
    let trimmed = trim_json_whitespace(body);
    let Some(&first) = trimmed.first() else {
        return Err(BodyError::Empty);
    };
    match first {
        b'{' => {
            if trimmed.len() > limits.event_bytes {
                return Ok(vec![too_large(0, trimmed, limits)]);
            }
            // The whole body is parsed (not `trimmed`) so error positions are the body's own.
            let map = serde_json::from_slice::<Map<String, JsonValue>>(body).map_err(|err| {
                let mut error = body_error(body, &err);
                // The usual cause is NDJSON sent without its content type; say so.
                if let BodyError::Malformed { message, .. } = &mut error {
                    if message == "trailing characters" {
                        message.push_str(
                            "; to send one object per line use Content-Type: application/x-ndjson",
                        );
                    }
                }
                error
            })?;
            Ok(vec![RawEvent {
                index: 0,
                raw: trimmed,
                parsed: Ok(map),
            }])
        }
        b'[' => {
            // Borrowed raw slices give every element's exact bytes without re-serializing; each
            // element is then parsed on its own so one bad element rejects only itself.
            let elements = serde_json::from_slice::<Vec<&RawValue>>(body)
                .map_err(|err| body_error(body, &err))?;
            let events = elements
                .into_iter()
                .enumerate()
                .map(|(index, element)| {
                    let raw = element.get().as_bytes();
                    if raw.len() > limits.event_bytes {
                        return too_large(index, raw, limits);
                    }
                    let parsed = parse_event(raw).map_err(|failure| match failure {
                        EventParseFailure::NotAnObject(found) => EventError::NotAnObject { found },
                        EventParseFailure::Malformed(err) => {
                            // Already validated as a whole, so this is only reachable through
                            // limits the element parse applies on its own (nesting depth).
                            let offset = byte_offset_in(body, raw) + line_column_offset(raw, &err);
                            let (line, column) = line_and_column(body, offset);
                            EventError::Malformed {
                                line,
                                column,
                                message: error_message(&err),
                            }
                        }
                    });
                    RawEvent { index, raw, parsed }
                })
                .collect();
            Ok(events)
        }
        _ => match serde_json::from_slice::<IgnoredAny>(body) {
            Err(err) => Err(body_error(body, &err)),
            Ok(_) => Err(BodyError::NotObjectOrArray {
                found: json_kind_of_first_byte(first),
            }),
        },
    }
}

fn split_ndjson<'a>(body: &'a [u8], limits: &Limits) -> Result<Vec<RawEvent<'a>>, BodyError> {
    let mut events = Vec::new();
    let mut index = 0usize;
    for (line_index, line) in body.split(|&byte| byte == b'\n').enumerate() {
        // Trimming also drops the `\r` of CRLF line ends.
        let raw = trim_json_whitespace(line);
        if raw.is_empty() {
            continue;
        }
        let line_number = line_index + 1;
        let event = if raw.len() > limits.event_bytes {
            too_large(index, raw, limits)
        } else {
            // The untrimmed line is parsed so serde's column counts from the line's start.
            let parsed = parse_event(line).map_err(|failure| match failure {
                EventParseFailure::NotAnObject(found) => EventError::NotAnObject { found },
                EventParseFailure::Malformed(err) => EventError::Malformed {
                    line: line_number,
                    column: err.column(),
                    message: error_message(&err),
                },
            });
            RawEvent { index, raw, parsed }
        };
        events.push(event);
        index += 1;
    }
    if events.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(events)
}

enum EventParseFailure {
    NotAnObject(&'static str),
    Malformed(serde_json::Error),
}

/// Parses one event's bytes, which must hold a single JSON value, into an object.
fn parse_event(bytes: &[u8]) -> Result<Map<String, JsonValue>, EventParseFailure> {
    let first = trim_json_whitespace(bytes).first().copied();
    if first == Some(b'{') {
        return serde_json::from_slice(bytes).map_err(EventParseFailure::Malformed);
    }
    // Report "not JSON" ahead of "not an object" so `tru` does not read as a boolean.
    match serde_json::from_slice::<IgnoredAny>(bytes) {
        Err(err) => Err(EventParseFailure::Malformed(err)),
        Ok(_) => Err(EventParseFailure::NotAnObject(
            first.map_or("nothing", json_kind_of_first_byte),
        )),
    }
}

fn too_large<'a>(index: usize, raw: &'a [u8], limits: &Limits) -> RawEvent<'a> {
    RawEvent {
        index,
        raw,
        parsed: Err(EventError::TooLarge {
            bytes: raw.len(),
            limit: limits.event_bytes,
        }),
    }
}

/// The JSON type a valid value starting with `byte` has.
fn json_kind_of_first_byte(byte: u8) -> &'static str {
    match byte {
        b'{' => "object",
        b'[' => "array",
        b'"' => "string",
        b't' | b'f' => "boolean",
        b'n' => "null",
        _ => "number",
    }
}

fn is_json_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

fn trim_json_whitespace(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_json_whitespace(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_json_whitespace(b))
        .map_or(start, |last| last + 1);
    &bytes[start..end]
}

fn body_error(body: &[u8], err: &serde_json::Error) -> BodyError {
    BodyError::Malformed {
        line: err.line(),
        column: err.column(),
        offset: line_column_offset(body, err),
        message: error_message(err),
    }
}

/// serde_json's message without its trailing " at line L column C", which our messages already
/// state in their own words.
fn error_message(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match full.strip_suffix(&suffix) {
        Some(message) => message.to_string(),
        None => full,
    }
}

/// The 0-based byte offset in `text` of the byte an error's line/column points at. serde_json
/// counts columns in bytes from 1, so column C of line L is byte C-1 after that line's start.
fn line_column_offset(text: &[u8], err: &serde_json::Error) -> usize {
    let line_start = if err.line() <= 1 {
        0
    } else {
        text.iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .nth(err.line() - 2)
            .map_or(text.len(), |(newline, _)| newline + 1)
    };
    (line_start + err.column().saturating_sub(1)).min(text.len().saturating_sub(1))
}

/// 1-based line and column (in bytes) of a 0-based byte offset.
fn line_and_column(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    (line, offset - line_start + 1)
}

/// Where `part` (a sub-slice of `whole`) starts inside `whole`.
fn byte_offset_in(whole: &[u8], part: &[u8]) -> usize {
    let offset = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    debug_assert!(
        offset + part.len() <= whole.len(),
        "part is not inside whole"
    );
    offset.min(whole.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_json_whitespace_only() {
        assert_eq!(trim_json_whitespace(b" \r\n\t{}\r\n"), b"{}");
        assert_eq!(trim_json_whitespace(b"   "), b"");
        assert_eq!(trim_json_whitespace(b"\x0b{}"), b"\x0b{}");
    }

    #[test]
    fn line_and_column_are_one_based() {
        let text = b"ab\ncd";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 4), (2, 2));
    }
}
