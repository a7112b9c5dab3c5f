//! Splitting a write body into events. Whole-body problems (the body is not JSON at all) are a
//! [`BodyError`]; everything that concerns one event is that event's [`EventError`], so the other
//! events in the body are still accepted.

use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use strata_core::Limits;

use crate::error::{BodyError, EventError};
use crate::object::EventObject;

/// How the write body is framed. The server picks `Ndjson` for `Content-Type: application/x-ndjson`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON object, or a JSON array of objects.
    Json,
    /// One JSON object per line; blank lines are skipped.
    Ndjson,
    /// InfluxDB line protocol, timestamps in the given unit (issue 19).
    LineProtocol(crate::line::Precision),
}

/// One event before metric resolution.
#[derive(Debug)]
pub struct RawEvent<'a> {
    /// Position in the body, 0-based, counting every event including rejected ones. Blank NDJSON
    /// lines are not events and do not count.
    pub index: usize,
    /// The event's exact bytes in the body, for the error log.
    pub raw: &'a [u8],
    pub parsed: Result<EventObject<'a>, EventError>,
    /// The event's metric when the format names it outside the object (a line protocol
    /// line's measurement); otherwise the metric keys or `?metric=` decide.
    pub metric: Option<std::borrow::Cow<'a, str>>,
    /// The names that identify the event's series in its format (a line protocol line's tag
    /// keys, issue 19); empty for JSON. A metric a write creates takes them as series keys.
    pub series_keys: Vec<std::borrow::Cow<'a, str>>,
}

/// Splits a write body into events and parses each one.
///
/// Collects [`events`]; prefer that iterator on hot paths, so each event can be normalized (and
/// its parsed map dropped) while it is still in cache instead of holding every map at once.
///
/// An NDJSON body of at least [`PARALLEL_PARSE_MIN_BYTES`] is parsed in two halves on two threads,
/// with the same events, indexes and error positions as a serial parse.
pub fn split_body<'a>(
    body: &'a [u8],
    format: BodyFormat,
    limits: &Limits,
) -> Result<Vec<RawEvent<'a>>, BodyError> {
    if let BodyFormat::LineProtocol(precision) = format {
        return crate::line::line_events(body, precision, limits, strata_core::now_ms());
    }
    if format == BodyFormat::Ndjson && body.len() >= PARALLEL_PARSE_MIN_BYTES {
        if let Some(events) = split_ndjson_in_halves(body, limits) {
            return Ok(events);
        }
    }
    Ok(events(body, format, limits)?.collect())
}

/// NDJSON bodies at least this large are parsed on two threads (issue 14: one request's parse
/// ran on one core, about 2 µs per event). 256 KiB is about 1,000 events, 2 ms of parsing,
/// against about 20 µs to start a thread.
pub const PARALLEL_PARSE_MIN_BYTES: usize = 256 * 1024;

/// Parses the halves of `body` (cut after the newline nearest its middle) on this thread and a
/// scoped one, then renumbers the second half's events. `None` when the body has no such cut, is
/// blank (the serial path reports it), or no thread could be started.
fn split_ndjson_in_halves<'a>(body: &'a [u8], limits: &Limits) -> Option<Vec<RawEvent<'a>>> {
    if body.iter().all(|&b| is_json_whitespace(b)) {
        return None;
    }
    let middle = body.len() / 2;
    let cut = middle + memchr::memchr(b'\n', &body[middle..])? + 1;
    let (left, right) = body.split_at(cut);
    let right_first_line = memchr::memchr_iter(b'\n', left).count();
    let (mut events, right_events) = std::thread::scope(|scope| {
        let right_half = std::thread::Builder::new()
            .name("strata-parse".to_string())
            .spawn_scoped(scope, || {
                ndjson_events(right, right_first_line, limits).collect::<Vec<_>>()
            })
            .ok()?;
        let left_events: Vec<_> = ndjson_events(left, 0, limits).collect();
        Some((left_events, right_half.join().ok()?))
    })?;
    let offset = events.len();
    events.extend(right_events.into_iter().map(|mut event| {
        event.index += offset;
        event
    }));
    Some(events)
}

/// The events of NDJSON `part`, whose first line is line `first_line` (0-based) of its body.
fn ndjson_events<'a>(part: &'a [u8], first_line: usize, limits: &Limits) -> EventIter<'a> {
    EventIter {
        body: part,
        event_bytes: limits.event_bytes,
        next_index: 0,
        source: EventSource::Ndjson {
            lines: NumberedLines {
                rest: Some(part),
                next_index: first_line,
            },
        },
    }
}

/// Checks the body as a whole and returns an iterator that parses one event per step.
///
/// Every whole-body error is found before the iterator is returned: a single-object body is
/// parsed at once, an array body is validated and split into element slices at once (elements are
/// parsed lazily), and NDJSON has no whole-body error other than being empty.
pub fn events<'a>(
    body: &'a [u8],
    format: BodyFormat,
    limits: &Limits,
) -> Result<EventIter<'a>, BodyError> {
    match format {
        BodyFormat::Json => Ok(EventIter {
            body,
            event_bytes: limits.event_bytes,
            next_index: 0,
            source: json_source(body, limits)?,
        }),
        BodyFormat::Ndjson if body.iter().all(|&b| is_json_whitespace(b)) => Err(BodyError::Empty),
        BodyFormat::Ndjson => Ok(ndjson_events(body, 0, limits)),
        BodyFormat::LineProtocol(precision) => {
            let lines = crate::line::line_events(body, precision, limits, strata_core::now_ms())?;
            Ok(EventIter {
                body,
                event_bytes: limits.event_bytes,
                next_index: lines.len(),
                source: EventSource::Parsed(lines.into_iter()),
            })
        }
    }
}

/// The events of one body, parsed one per `next`. See [`events`].
pub struct EventIter<'a> {
    body: &'a [u8],
    event_bytes: usize,
    next_index: usize,
    source: EventSource<'a>,
}

enum EventSource<'a> {
    /// A body that was a single object, already parsed (or already found too large).
    Single(Option<RawEvent<'a>>),
    Array(std::vec::IntoIter<&'a RawValue>),
    Ndjson {
        lines: NumberedLines<'a>,
    },
    /// Events parsed when the body was checked (line protocol).
    Parsed(std::vec::IntoIter<RawEvent<'a>>),
}

/// The body's lines, each with its 0-based line index, found with `memchr` (splitting with a
/// per-byte predicate was 8% of issue 14's parse profile). Like `split(b'\n')`: a body ending in
/// a newline has a last, empty line.
struct NumberedLines<'a> {
    /// What is left to split; `None` once the last line was handed out.
    rest: Option<&'a [u8]>,
    next_index: usize,
}

impl<'a> Iterator for NumberedLines<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<(usize, &'a [u8])> {
        let rest = self.rest?;
        let line = match memchr::memchr(b'\n', rest) {
            Some(end) => {
                self.rest = Some(&rest[end + 1..]);
                &rest[..end]
            }
            None => {
                self.rest = None;
                rest
            }
        };
        let index = self.next_index;
        self.next_index += 1;
        Some((index, line))
    }
}

impl<'a> Iterator for EventIter<'a> {
    type Item = RawEvent<'a>;

    fn next(&mut self) -> Option<RawEvent<'a>> {
        let event = match &mut self.source {
            EventSource::Single(event) => event.take()?,
            EventSource::Parsed(events) => return events.next(),
            EventSource::Array(elements) => {
                let raw = elements.next()?.get().as_bytes();
                if raw.len() > self.event_bytes {
                    return self.advance(too_large(self.next_index, raw, self.event_bytes));
                }
                let body = self.body;
                self.parse_one(raw, |err, raw| {
                    // The array was validated as a whole, so this is only reachable through
                    // limits the element parse applies on its own (nesting depth).
                    let offset = byte_offset_in(body, raw) + line_column_offset(raw, err);
                    let (line, column) = line_and_column(body, offset);
                    (line, column)
                })
            }
            EventSource::Ndjson { lines } => {
                let (line_index, line, raw) = lines.find_map(|(line_index, line)| {
                    // Trimming also drops the `\r` of CRLF line ends.
                    let raw = trim_json_whitespace(line);
                    (!raw.is_empty()).then_some((line_index, line, raw))
                })?;
                let line_number = line_index + 1;
                if raw.len() > self.event_bytes {
                    too_large(self.next_index, raw, self.event_bytes)
                } else {
                    // The untrimmed line is parsed so serde's column counts from the line start.
                    let mut event = self.parse_one(line, |err, _| (line_number, err.column()));
                    event.raw = raw;
                    event
                }
            }
        };
        self.advance(event)
    }
}

impl<'a> EventIter<'a> {
    fn advance(&mut self, event: RawEvent<'a>) -> Option<RawEvent<'a>> {
        debug_assert_eq!(event.index, self.next_index);
        self.next_index += 1;
        Some(event)
    }

    /// Parses one event's bytes (already checked against the size limit); `position` maps a
    /// parse error to the body's line and column.
    fn parse_one(
        &self,
        bytes: &'a [u8],
        position: impl FnOnce(&serde_json::Error, &[u8]) -> (usize, usize),
    ) -> RawEvent<'a> {
        let index = self.next_index;
        let parsed = parse_event(bytes).map_err(|failure| match failure {
            EventParseFailure::NotAnObject(found) => EventError::NotAnObject { found },
            EventParseFailure::Malformed(err) => {
                let (line, column) = position(&err, bytes);
                EventError::Malformed {
                    line,
                    column,
                    message: error_message(&err),
                }
            }
        });
        RawEvent {
            index,
            raw: bytes,
            parsed,
            metric: None,
            series_keys: Vec::new(),
        }
    }
}

fn json_source<'a>(body: &'a [u8], limits: &Limits) -> Result<EventSource<'a>, BodyError> {
    let trimmed = trim_json_whitespace(body);
    let Some(&first) = trimmed.first() else {
        return Err(BodyError::Empty);
    };
    match first {
        b'{' => {
            if trimmed.len() > limits.event_bytes {
                return Ok(EventSource::Single(Some(too_large(
                    0,
                    trimmed,
                    limits.event_bytes,
                ))));
            }
            // The whole body is parsed (not `trimmed`) so error positions are the body's own.
            let map = serde_json::from_slice::<EventObject<'_>>(body).map_err(|err| {
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
            Ok(EventSource::Single(Some(RawEvent {
                index: 0,
                raw: trimmed,
                parsed: Ok(map.with_sent_numbers(trimmed)),
                metric: None,
                series_keys: Vec::new(),
            })))
        }
        b'[' => {
            // Borrowed raw slices give every element's exact bytes without re-serializing; each
            // element is then parsed on its own so one bad element rejects only itself.
            let elements = serde_json::from_slice::<Vec<&RawValue>>(body)
                .map_err(|err| body_error(body, &err))?;
            Ok(EventSource::Array(elements.into_iter()))
        }
        _ => match serde_json::from_slice::<IgnoredAny>(body) {
            Err(err) => Err(body_error(body, &err)),
            Ok(_) => Err(BodyError::NotObjectOrArray {
                found: json_kind_of_first_byte(first),
            }),
        },
    }
}

enum EventParseFailure {
    NotAnObject(&'static str),
    Malformed(serde_json::Error),
}

/// Parses one event's bytes, which must hold a single JSON value, into an object.
fn parse_event(bytes: &[u8]) -> Result<EventObject<'_>, EventParseFailure> {
    let first = trim_json_whitespace(bytes).first().copied();
    if first == Some(b'{') {
        return serde_json::from_slice::<EventObject<'_>>(bytes)
            .map(|object| object.with_sent_numbers(bytes))
            .map_err(EventParseFailure::Malformed);
    }
    // Report "not JSON" ahead of "not an object" so `tru` does not read as a boolean.
    match serde_json::from_slice::<IgnoredAny>(bytes) {
        Err(err) => Err(EventParseFailure::Malformed(err)),
        Ok(_) => Err(EventParseFailure::NotAnObject(
            first.map_or("nothing", json_kind_of_first_byte),
        )),
    }
}

fn too_large(index: usize, raw: &[u8], limit: usize) -> RawEvent<'_> {
    RawEvent {
        index,
        raw,
        parsed: Err(EventError::TooLarge {
            bytes: raw.len(),
            limit,
        }),
        metric: None,
        series_keys: Vec::new(),
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
