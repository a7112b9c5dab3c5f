//! Reading events for `strata write` from NDJSON, JSON or CSV input, one record at a time, each
//! turned into one NDJSON line and tagged with the input line it started on so a rejection can
//! be reported where the user can find it.
//!
//! JSON records are forwarded as the bytes the user wrote (only line breaks outside strings are
//! changed): parsing and re-serializing would round large integers and long decimals through
//! f64, and the server is the one place that decides what is a valid event.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context};

use crate::cli::InputFormat;

/// Longest single record read into memory. Far above any event the server accepts (1 MiB by
/// default), low enough that a file without line breaks cannot exhaust memory.
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

/// One event ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line of the input where the record starts.
    pub line: u64,
    /// 1-based position of the record among all records of the input.
    pub number: u64,
    /// The event as one line of JSON, without the line break.
    pub json: Vec<u8>,
}

/// Counts bytes as they are read, so the progress bar can show how far into a file we are.
pub struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> CountingReader<R> {
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (
            CountingReader {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The format named by a file's extension, if it names one.
pub fn format_from_extension(path: &Path) -> Option<InputFormat> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "ndjson" | "jsonl" | "ldjson" => Some(InputFormat::Ndjson),
        "json" => Some(InputFormat::Json),
        "csv" => Some(InputFormat::Csv),
        _ => None,
    }
}

/// The format implied by the first non-blank byte: `[` is a JSON array, `{` is NDJSON (the
/// common case for event dumps), anything else is taken as a CSV header.
pub fn format_from_first_byte(byte: Option<u8>) -> InputFormat {
    match byte {
        Some(b'[') => InputFormat::Json,
        Some(b'{') => InputFormat::Ndjson,
        _ => InputFormat::Csv,
    }
}

/// Skips a UTF-8 byte order mark and leading whitespace, returning the first non-blank byte
/// (still unread) and how many line breaks were skipped.
pub fn skip_leading_blank<R: BufRead>(reader: &mut R) -> io::Result<(Option<u8>, u64)> {
    let mut newlines = 0;
    let mut at_start = true;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((None, newlines));
        }
        if at_start {
            at_start = false;
            if buf.starts_with(b"\xEF\xBB\xBF") {
                reader.consume(3);
                continue;
            }
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(pos) => {
                newlines += buf[..pos].iter().filter(|b| **b == b'\n').count() as u64;
                let first = buf[pos];
                reader.consume(pos);
                return Ok((Some(first), newlines));
            }
            None => {
                newlines += buf.iter().filter(|b| **b == b'\n').count() as u64;
                let len = buf.len();
                reader.consume(len);
            }
        }
    }
}

/// Builds the reader for `format`; `first_line` is the line number of the reader's first byte.
pub fn reader<R: BufRead + Send + 'static>(
    format: InputFormat,
    input: R,
    first_line: u64,
) -> Box<dyn Iterator<Item = anyhow::Result<Record>> + Send> {
    match format {
        InputFormat::Ndjson => Box::new(NdjsonRecords::new(input, first_line)),
        InputFormat::Json => Box::new(JsonRecords::new(input, first_line)),
        InputFormat::Csv => Box::new(CsvRecords::new(input, first_line)),
    }
}

/// One record per non-blank line, forwarded as is.
pub struct NdjsonRecords<R> {
    input: R,
    next_line: u64,
    count: u64,
    done: bool,
}

impl<R: BufRead> NdjsonRecords<R> {
    pub fn new(input: R, first_line: u64) -> Self {
        NdjsonRecords {
            input,
            next_line: first_line,
            count: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Iterator for NdjsonRecords<R> {
    type Item = anyhow::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let mut line = Vec::new();
            let limit = MAX_RECORD_BYTES as u64 + 1;
            let read = match (&mut self.input).take(limit).read_until(b'\n', &mut line) {
                Ok(read) => read,
                Err(err) => {
                    self.done = true;
                    return Some(Err(
                        anyhow!(err).context(format!("reading line {}", self.next_line))
                    ));
                }
            };
            if read == 0 {
                self.done = true;
                return None;
            }
            let line_number = self.next_line;
            if line.last() == Some(&b'\n') {
                line.pop();
                self.next_line += 1;
            } else if line.len() > MAX_RECORD_BYTES {
                self.done = true;
                return Some(Err(anyhow!(
                    "line {line_number} is longer than {MAX_RECORD_BYTES} bytes; is this really NDJSON?"
                )));
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.count += 1;
            return Some(Ok(Record {
                line: line_number,
                number: self.count,
                json: line,
            }));
        }
        None
    }
}

/// The elements of a top-level JSON array, or a sequence of top-level JSON values (one pretty
/// printed object, or objects one per line), split by a small scanner that tracks nesting and
/// strings only.
pub struct JsonRecords<R> {
    bytes: Bytes<R>,
    state: JsonState,
    count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonState {
    Start,
    /// Inside `[`, expecting an element or `]`.
    ArrayElement,
    /// After an array element, expecting `,` or `]`.
    ArrayDelimiter,
    /// After the closing `]`; only whitespace may follow.
    AfterArray,
    /// A sequence of top-level values.
    Values,
    Done,
}

impl<R: BufRead> JsonRecords<R> {
    pub fn new(input: R, first_line: u64) -> Self {
        JsonRecords {
            bytes: Bytes::new(input, first_line),
            state: JsonState::Start,
            count: 0,
        }
    }

    fn step(&mut self) -> anyhow::Result<Option<Record>> {
        loop {
            self.bytes.skip_whitespace()?;
            let line = self.bytes.line;
            let next = self.bytes.peek()?;
            match (self.state, next) {
                (JsonState::Done, _) => return Ok(None),
                (JsonState::Start, Some(b'[')) => {
                    self.bytes.advance()?;
                    self.state = JsonState::ArrayElement;
                }
                (JsonState::Start, _) => self.state = JsonState::Values,
                (JsonState::ArrayElement, Some(b']')) if self.count == 0 => {
                    self.bytes.advance()?;
                    self.state = JsonState::AfterArray;
                }
                (JsonState::ArrayElement, None) | (JsonState::ArrayDelimiter, None) => {
                    bail!("line {line}: the JSON array is not closed with `]`")
                }
                (JsonState::ArrayElement, Some(_)) => {
                    let json = self.bytes.value(true)?;
                    self.state = JsonState::ArrayDelimiter;
                    return Ok(Some(self.record(line, json)));
                }
                (JsonState::ArrayDelimiter, Some(b',')) => {
                    self.bytes.advance()?;
                    self.state = JsonState::ArrayElement;
                }
                (JsonState::ArrayDelimiter, Some(b']')) => {
                    self.bytes.advance()?;
                    self.state = JsonState::AfterArray;
                }
                (JsonState::ArrayDelimiter, Some(other)) => bail!(
                    "line {line}: expected `,` or `]` between array elements, found {:?}",
                    char::from(other)
                ),
                (JsonState::AfterArray, None) | (JsonState::Values, None) => {
                    self.state = JsonState::Done;
                    return Ok(None);
                }
                (JsonState::AfterArray, Some(other)) => bail!(
                    "line {line}: unexpected {:?} after the end of the JSON array",
                    char::from(other)
                ),
                (JsonState::Values, Some(_)) => {
                    let json = self.bytes.value(false)?;
                    return Ok(Some(self.record(line, json)));
                }
            }
        }
    }

    fn record(&mut self, line: u64, json: Vec<u8>) -> Record {
        self.count += 1;
        Record {
            line,
            number: self.count,
            json,
        }
    }
}

impl<R: BufRead> Iterator for JsonRecords<R> {
    type Item = anyhow::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => None,
            Err(err) => {
                self.state = JsonState::Done;
                Some(Err(err))
            }
        }
    }
}

/// A byte cursor over buffered input that tracks the current line.
struct Bytes<R> {
    input: R,
    line: u64,
}

impl<R: BufRead> Bytes<R> {
    fn new(input: R, first_line: u64) -> Self {
        Bytes {
            input,
            line: first_line,
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.input.fill_buf()?.first().copied())
    }

    fn advance(&mut self) -> io::Result<Option<u8>> {
        let byte = self.peek()?;
        if let Some(byte) = byte {
            self.input.consume(1);
            if byte == b'\n' {
                self.line += 1;
            }
        }
        Ok(byte)
    }

    fn skip_whitespace(&mut self) -> io::Result<()> {
        while let Some(byte) = self.peek()? {
            if !byte.is_ascii_whitespace() {
                break;
            }
            self.advance()?;
        }
        Ok(())
    }

    /// Reads one JSON value starting at the current (non-blank) byte. Objects and arrays end at
    /// their matching bracket; strings at their closing quote; other scalars at whitespace, or
    /// also at `,`/`]` inside an array. The result is one line: line breaks between tokens become
    /// spaces, and raw line breaks inside strings (invalid JSON) become escapes so they cannot
    /// split the NDJSON body.
    fn value(&mut self, in_array: bool) -> anyhow::Result<Vec<u8>> {
        let start_line = self.line;
        let mut out = Vec::new();
        let mut depth: usize = 0;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let Some(byte) = self.peek()? else {
                if depth > 0 || in_string {
                    bail!("line {start_line}: the JSON value starting here is not closed before the end of the input");
                }
                return Ok(out);
            };
            if out.len() >= MAX_RECORD_BYTES {
                bail!("line {start_line}: the JSON value starting here is longer than {MAX_RECORD_BYTES} bytes");
            }
            if in_string {
                self.advance()?;
                match byte {
                    _ if escaped => {
                        escaped = false;
                        out.push(byte);
                    }
                    b'\\' => {
                        escaped = true;
                        out.push(byte);
                    }
                    b'"' => {
                        in_string = false;
                        out.push(byte);
                        if depth == 0 {
                            return Ok(out);
                        }
                    }
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(byte),
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    self.advance()?;
                    out.push(byte);
                    if depth == 0 {
                        return Ok(out);
                    }
                    continue;
                }
                b',' | b']' | b'}' if depth == 0 && in_array => return Ok(out),
                _ if depth == 0 && byte.is_ascii_whitespace() => return Ok(out),
                _ => {}
            }
            self.advance()?;
            match byte {
                b'\n' | b'\r' => out.push(b' '),
                _ => out.push(byte),
            }
        }
    }
}

/// One event per CSV row after the header; every cell becomes a JSON string under its column's
/// name, and empty cells are left out so they read as absent, not as empty text.
pub struct CsvRecords<R> {
    reader: csv::Reader<NewlineTracker<R>>,
    newlines: Arc<Mutex<NewlineIndex>>,
    headers: Option<Vec<String>>,
    count: u64,
    done: bool,
}

/// Line numbers by byte offset. The csv crate's own line count does not follow newlines inside
/// quoted cells, so lines are counted here from the bytes it reads.
pub struct NewlineTracker<R> {
    inner: R,
    index: Arc<Mutex<NewlineIndex>>,
}

struct NewlineIndex {
    /// Bytes read so far.
    offset: u64,
    /// Offsets of line-break bytes (`\r` or `\n`) read but not yet behind a record start;
    /// bounded by the csv reader's read-ahead plus the line breaks inside one record.
    pending: VecDeque<(u64, u8)>,
    /// Line of the byte just after the last popped line break.
    line: u64,
}

impl NewlineIndex {
    /// The line where the record reported at byte `offset` really starts. The csv reader
    /// reports a record's position before the empty lines it skips, so line breaks right at the
    /// start are stepped over. Offsets must not decrease between calls.
    fn line_at(&mut self, offset: u64) -> u64 {
        let mut start = offset;
        while let Some(&(at, byte)) = self.pending.front() {
            if at > start {
                break;
            }
            if at == start {
                start += 1;
            }
            self.pending.pop_front();
            if byte == b'\n' {
                self.line += 1;
            }
        }
        self.line
    }
}

impl<R: Read> Read for NewlineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut index = self
            .index
            .lock()
            .map_err(|_| io::Error::other("line index poisoned"))?;
        let base = index.offset;
        for (i, byte) in buf[..n].iter().enumerate() {
            if matches!(byte, b'\n' | b'\r') {
                index.pending.push_back((base + i as u64, *byte));
            }
        }
        index.offset += n as u64;
        Ok(n)
    }
}

impl<R: Read> CsvRecords<R> {
    pub fn new(input: R, first_line: u64) -> Self {
        let newlines = Arc::new(Mutex::new(NewlineIndex {
            offset: 0,
            pending: VecDeque::new(),
            line: first_line,
        }));
        let tracked = NewlineTracker {
            inner: input,
            index: newlines.clone(),
        };
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(tracked);
        CsvRecords {
            reader,
            newlines,
            headers: None,
            count: 0,
            done: false,
        }
    }

    fn line_at(&self, position: Option<&csv::Position>) -> u64 {
        let offset = position.map_or(0, csv::Position::byte);
        match self.newlines.lock() {
            Ok(mut index) => index.line_at(offset),
            Err(_) => 0,
        }
    }

    fn step(&mut self) -> anyhow::Result<Option<Record>> {
        let mut row = csv::StringRecord::new();
        loop {
            let more = match self.reader.read_record(&mut row) {
                Ok(more) => more,
                Err(err) => {
                    let line = self.line_at(err.position());
                    bail!("CSV line {line}: {err}");
                }
            };
            if !more {
                return Ok(None);
            }
            let line = self.line_at(row.position());
            let Some(headers) = &self.headers else {
                self.headers = Some(parse_header(&row, line)?);
                continue;
            };
            if row.iter().all(str::is_empty) {
                continue;
            }
            if row.len() > headers.len() {
                bail!(
                    "CSV line {line} has {} cells but the header has {} columns",
                    row.len(),
                    headers.len()
                );
            }
            let mut object = serde_json::Map::new();
            for (name, cell) in headers.iter().zip(row.iter()) {
                if !cell.is_empty() {
                    object.insert(name.clone(), serde_json::Value::String(cell.to_string()));
                }
            }
            let json = serde_json::to_vec(&object).context("encoding a CSV row as JSON")?;
            self.count += 1;
            return Ok(Some(Record {
                line,
                number: self.count,
                json,
            }));
        }
    }
}

fn parse_header(row: &csv::StringRecord, line: u64) -> anyhow::Result<Vec<String>> {
    let mut headers: Vec<String> = Vec::with_capacity(row.len());
    for (column, name) in row.iter().enumerate() {
        if name.is_empty() {
            bail!(
                "CSV header (line {line}): column {} has no name",
                column + 1
            );
        }
        if headers.iter().any(|h| h == name) {
            bail!("CSV header (line {line}): column {name:?} appears twice");
        }
        headers.push(name.to_string());
    }
    Ok(headers)
}

impl<R: Read> Iterator for CsvRecords<R> {
    type Item = anyhow::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read_all(format: InputFormat, text: &str) -> Vec<(u64, u64, String)> {
        let mut input = Cursor::new(text.as_bytes().to_vec());
        let (_, skipped) = skip_leading_blank(&mut input).unwrap();
        reader(format, input, 1 + skipped)
            .map(|r| {
                let r = r.unwrap();
                (r.line, r.number, String::from_utf8(r.json).unwrap())
            })
            .collect()
    }

    fn first_error(format: InputFormat, text: &str) -> String {
        reader(format, Cursor::new(text.as_bytes().to_vec()), 1)
            .find_map(Result::err)
            .expect("an error")
            .to_string()
    }

    #[test]
    fn ndjson_skips_blank_lines_and_keeps_line_numbers() {
        let got = read_all(
            InputFormat::Ndjson,
            "\n{\"a\":1}\r\n\n   \n{\"b\":2}\n{\"c\":3}",
        );
        assert_eq!(
            got,
            vec![
                (2, 1, "{\"a\":1}".to_string()),
                (5, 2, "{\"b\":2}".to_string()),
                (6, 3, "{\"c\":3}".to_string()),
            ]
        );
    }

    #[test]
    fn json_array_elements_keep_raw_text_and_lines() {
        let text = "[\n  {\"a\": 1,\n   \"s\": \"x, ] {\\\"\"},\n  {\"big\": 123456789012345678901234567890},\n  [1,2], 7, \"str\"\n]\n";
        let got = read_all(InputFormat::Json, text);
        assert_eq!(
            got,
            vec![
                (2, 1, "{\"a\": 1,    \"s\": \"x, ] {\\\"\"}".to_string()),
                (
                    4,
                    2,
                    "{\"big\": 123456789012345678901234567890}".to_string()
                ),
                (5, 3, "[1,2]".to_string()),
                (5, 4, "7".to_string()),
                (5, 5, "\"str\"".to_string()),
            ]
        );
    }

    #[test]
    fn json_values_sequence_and_pretty_object() {
        let got = read_all(InputFormat::Json, "{\n \"a\": {\"b\": [1]}\n}\n{\"c\":2}\n");
        assert_eq!(
            got,
            vec![
                (1, 1, "{  \"a\": {\"b\": [1]} }".to_string()),
                (4, 2, "{\"c\":2}".to_string()),
            ]
        );
        assert!(read_all(InputFormat::Json, "[ ]").is_empty());
        assert!(read_all(InputFormat::Json, "").is_empty());
    }

    #[test]
    fn json_errors_name_the_line() {
        assert!(first_error(InputFormat::Json, "[{\"a\":1}\n{\"b\":2}]").contains("line 2"));
        assert!(first_error(InputFormat::Json, "[{\"a\":1},\n").contains("not closed"));
        assert!(first_error(InputFormat::Json, "[{\"a\":1}] x").contains("after the end"));
        assert!(first_error(InputFormat::Json, "\n{\"a\":\"x").contains("line 2"));
    }

    #[test]
    fn raw_newline_inside_string_cannot_split_the_record() {
        let got = read_all(InputFormat::Json, "[{\"a\":\"x\ny\"}]");
        assert_eq!(got, vec![(1, 1, "{\"a\":\"x\\ny\"}".to_string())]);
    }

    #[test]
    fn csv_rows_become_string_objects_without_empty_cells() {
        let text = "\u{feff}metrictype,timestamp,temp,note\nt,1420070400000,21.5,\"a,\nb\"\n\nt,1420070401000,,\n";
        let got = read_all(InputFormat::Csv, text);
        let as_values: Vec<(u64, u64, serde_json::Value)> = got
            .into_iter()
            .map(|(line, number, json)| (line, number, serde_json::from_str(&json).unwrap()))
            .collect();
        assert_eq!(
            as_values,
            vec![
                (
                    2,
                    1,
                    serde_json::json!({"metrictype":"t","timestamp":"1420070400000","temp":"21.5","note":"a,\nb"})
                ),
                (
                    5,
                    2,
                    serde_json::json!({"metrictype":"t","timestamp":"1420070401000"})
                ),
            ]
        );
    }

    #[test]
    fn csv_lines_with_crlf_and_blank_lines() {
        let got = read_all(
            InputFormat::Csv,
            "a,b\r\n1,2\r\n\r\n\r\n3,4\r\nx,\"multi\r\nline\"\r\n5,6",
        );
        let lines: Vec<(u64, u64)> = got.iter().map(|(l, n, _)| (*l, *n)).collect();
        assert_eq!(lines, vec![(2, 1), (5, 2), (6, 3), (8, 4)]);
    }

    #[test]
    fn csv_bad_shapes_are_errors() {
        assert!(first_error(InputFormat::Csv, "a,a\n1,2\n").contains("twice"));
        assert!(first_error(InputFormat::Csv, "a,b\n1,2,3\n").contains("line 2 has 3 cells"));
    }

    #[test]
    fn detection() {
        assert_eq!(
            format_from_extension(Path::new("x/e.JSONL")),
            Some(InputFormat::Ndjson)
        );
        assert_eq!(format_from_extension(Path::new("e.txt")), None);
        assert_eq!(format_from_first_byte(Some(b'[')), InputFormat::Json);
        assert_eq!(format_from_first_byte(Some(b'{')), InputFormat::Ndjson);
        assert_eq!(format_from_first_byte(Some(b'm')), InputFormat::Csv);
        let mut input = Cursor::new(b"\xEF\xBB\xBF \n\n {".to_vec());
        assert_eq!(skip_leading_blank(&mut input).unwrap(), (Some(b'{'), 2));
    }

    #[test]
    fn counting_reader_counts() {
        let (mut counting, count) = CountingReader::new(Cursor::new(vec![0u8; 100]));
        let mut sink = Vec::new();
        counting.read_to_end(&mut sink).unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 100);
    }
}
