//! The write-ahead log: one frame per group commit, appended and fsync'd before any caller of the
//! group is answered (the ack point). Frames live in segment files `wal/<first seq>.log`; a flush
//! ingests the buffered rows into fjall, records `flushed_seq`, and then deletes every segment
//! that began at or below it. At open, frames above `flushed_seq` are replayed into the buffer.
//!
//! Frame: `payload length (u32 LE) | xxh3 of the payload (u64 LE) | payload`. A torn last frame
//! (a group that was never acknowledged) fails its length or checksum and ends the segment.
//! Payload: `first seq | last seq (u64 LE) | rows | errors (u32 LE)`, then per row
//! `flags (u8, bit 0 = late) | key | value length (u32 LE) | value` and per error record
//! `key | json length (u32 LE) | json`. A row's value is its full fjall value (version, seq, body),
//! so a replayed or buffered row is byte-for-byte what fjall stores.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::buffer::RowRef;
use super::codec;
use super::key::{ERROR_KEY_LEN, KEY_LEN};
use crate::error::StorageError;

/// Bytes before a frame's payload: length and checksum.
pub(crate) const FRAME_HEADER_LEN: usize = 12;
const PAYLOAD_HEADER_LEN: usize = 24;
const FLAG_LATE: u8 = 1;
const SEGMENT_SUFFIX: &str = ".log";

fn io_error(context: &'static str, source: std::io::Error) -> StorageError {
    StorageError::Io {
        context,
        source: Arc::new(source),
    }
}

/// One group's frame, built row by row on the writer thread. Offsets in its rows are offsets in
/// the whole frame, header included, so the frame buffer itself becomes the chunk's bytes.
pub(crate) struct GroupFrame {
    pub bytes: Vec<u8>,
    pub rows: Vec<RowRef>,
    pub late: Vec<RowRef>,
    pub errors: Vec<(usize, usize)>,
}

impl GroupFrame {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + PAYLOAD_HEADER_LEN + bytes);
        frame.resize(FRAME_HEADER_LEN + PAYLOAD_HEADER_LEN, 0);
        GroupFrame {
            bytes: frame,
            rows: Vec::new(),
            late: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Appends a row: its fjall value is `codec::encode_record(seq, body)`, written in place.
    pub fn push_row(&mut self, key: &[u8; KEY_LEN], late: bool, seq: u64, body: &[u8]) {
        self.bytes.push(if late { FLAG_LATE } else { 0 });
        self.bytes.extend_from_slice(key);
        let length_at = self.bytes.len();
        self.bytes.extend_from_slice(&[0; 4]);
        let value_start = self.bytes.len();
        self.bytes.push(codec::FORMAT_VERSION);
        codec::put_varint(&mut self.bytes, seq);
        self.bytes.extend_from_slice(body);
        let value_end = self.bytes.len();
        let length = u32::try_from(value_end - value_start).unwrap_or(u32::MAX);
        self.bytes[length_at..value_start].copy_from_slice(&length.to_le_bytes());
        let row = RowRef {
            key: *key,
            value_start,
            value_end,
        };
        if late {
            self.late.push(row);
        }
        self.rows.push(row);
    }

    /// Appends an error record; must come after every row of the frame.
    pub fn push_error(&mut self, key: &[u8; ERROR_KEY_LEN], json: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        let length = u32::try_from(json.len()).unwrap_or(u32::MAX);
        self.bytes.extend_from_slice(&length.to_le_bytes());
        self.bytes.extend_from_slice(json);
        self.errors.push((start, self.bytes.len()));
    }

    /// Writes the headers; the frame is then ready to append.
    pub fn seal(&mut self, first_seq: u64, last_seq: u64) {
        let header = FRAME_HEADER_LEN;
        let rows = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
        let errors = u32::try_from(self.errors.len()).unwrap_or(u32::MAX);
        self.bytes[header..header + 8].copy_from_slice(&first_seq.to_le_bytes());
        self.bytes[header + 8..header + 16].copy_from_slice(&last_seq.to_le_bytes());
        self.bytes[header + 16..header + 20].copy_from_slice(&rows.to_le_bytes());
        self.bytes[header + 20..header + 24].copy_from_slice(&errors.to_le_bytes());
        let payload = &self.bytes[header..];
        let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let checksum = xxhash_rust::xxh3::xxh3_64(payload);
        self.bytes[0..4].copy_from_slice(&length.to_le_bytes());
        self.bytes[4..12].copy_from_slice(&checksum.to_le_bytes());
    }

    /// The error record `(key, json)` at `index`.
    pub fn error(&self, index: usize) -> (&[u8], &[u8]) {
        let (start, end) = self.errors[index];
        let key = &self.bytes[start..start + ERROR_KEY_LEN];
        (key, &self.bytes[start + ERROR_KEY_LEN + 4..end])
    }
}

/// A frame read back from a segment.
pub(crate) struct ReplayedFrame {
    pub frame: GroupFrame,
    pub last_seq: u64,
}

fn le_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let word: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let word: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(word))
}

/// Splits a whole frame (headers included) into rows and error records; `None` when it is
/// malformed.
fn decode_frame(bytes: Vec<u8>) -> Option<ReplayedFrame> {
    let last_seq = le_u64(&bytes, FRAME_HEADER_LEN + 8)?;
    let row_count = le_u32(&bytes, FRAME_HEADER_LEN + 16)?;
    let error_count = le_u32(&bytes, FRAME_HEADER_LEN + 20)?;
    let mut at = FRAME_HEADER_LEN + PAYLOAD_HEADER_LEN;
    let mut rows = Vec::with_capacity(row_count.min(bytes.len() / KEY_LEN));
    let mut late = Vec::new();
    for _ in 0..row_count {
        let flags = *bytes.get(at)?;
        let key: [u8; KEY_LEN] = bytes.get(at + 1..at + 1 + KEY_LEN)?.try_into().ok()?;
        let length = le_u32(&bytes, at + 1 + KEY_LEN)?;
        let value_start = at + 1 + KEY_LEN + 4;
        let value_end = value_start
            .checked_add(length)
            .filter(|end| *end <= bytes.len())?;
        let row = RowRef {
            key,
            value_start,
            value_end,
        };
        if flags & FLAG_LATE != 0 {
            late.push(row);
        }
        rows.push(row);
        at = value_end;
    }
    let mut errors = Vec::with_capacity(error_count.min(bytes.len() / ERROR_KEY_LEN));
    for _ in 0..error_count {
        let length = le_u32(&bytes, at + ERROR_KEY_LEN)?;
        let end = (at + ERROR_KEY_LEN + 4)
            .checked_add(length)
            .filter(|end| *end <= bytes.len())?;
        errors.push((at, end));
        at = end;
    }
    let frame = GroupFrame {
        bytes,
        rows,
        late,
        errors,
    };
    Some(ReplayedFrame { frame, last_seq })
}

/// Segment files in `dir` with the first sequence number in their name, oldest first.
pub(crate) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(error) => return Err(io_error("listing the write-ahead log", error)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error("listing the write-ahead log", e))?;
        let name = entry.file_name();
        let first_seq = name
            .to_str()
            .and_then(|name| name.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|seq| seq.parse::<u64>().ok());
        match first_seq {
            Some(first_seq) => found.push((first_seq, entry.path())),
            None => tracing::warn!(file = ?name, "ignoring unknown file in the write-ahead log"),
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// The frames of one segment, in order, up to the first torn one. A torn tail is cut off the
/// file, so that a segment later created under the same name (its group was never acknowledged,
/// so its first seq is handed out again) appends after the last whole frame.
pub(crate) fn read_segment(path: &Path) -> Result<Vec<ReplayedFrame>, StorageError> {
    let bytes = fs::read(path).map_err(|e| io_error("reading the write-ahead log", e))?;
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let whole = le_u32(&bytes, at)
            .and_then(|length| at.checked_add(FRAME_HEADER_LEN + length))
            .filter(|end| *end <= bytes.len());
        let Some(end) = whole else {
            tracing::warn!(segment = %path.display(), offset = at, "torn write-ahead-log frame (never acknowledged); ignoring the rest");
            break;
        };
        let checksum = le_u64(&bytes, at + 4);
        if checksum
            != Some(xxhash_rust::xxh3::xxh3_64(
                &bytes[at + FRAME_HEADER_LEN..end],
            ))
        {
            tracing::warn!(segment = %path.display(), offset = at, "write-ahead-log frame fails its checksum (never acknowledged); ignoring the rest");
            break;
        }
        let Some(frame) = decode_frame(bytes[at..end].to_vec()) else {
            return Err(StorageError::Corrupt {
                what: format!("write-ahead-log frame at {} in {}", at, path.display()),
            });
        };
        frames.push(frame);
        at = end;
    }
    if at < bytes.len() {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|file| {
                file.set_len(at as u64)?;
                file.sync_all()
            })
            .map_err(|e| io_error("cutting a torn WAL frame", e))?;
    }
    Ok(frames)
}

/// Deletes every segment that began at or below `through_seq`: each one ended before the flush
/// that covers `through_seq` was requested, because requesting a flush starts a new segment.
pub(crate) fn delete_through(dir: &Path, through_seq: u64) -> Result<usize, StorageError> {
    let mut deleted = 0;
    for (first_seq, path) in segments(dir)? {
        if first_seq > through_seq {
            break;
        }
        fs::remove_file(&path).map_err(|e| io_error("deleting a flushed WAL segment", e))?;
        deleted += 1;
    }
    Ok(deleted)
}

/// The segment being appended to; owned by the writer thread.
pub(crate) struct WalWriter {
    dir: PathBuf,
    current: Option<File>,
    sync: bool,
}

impl WalWriter {
    pub fn new(dir: PathBuf, sync: bool) -> Result<Self, StorageError> {
        fs::create_dir_all(&dir).map_err(|e| io_error("creating the write-ahead log", e))?;
        Ok(WalWriter {
            dir,
            current: None,
            sync,
        })
    }

    /// Appends a sealed frame whose first row or record has `first_seq`, and fsyncs it. After a
    /// failure the segment is abandoned: part of the frame may be on disk, and a later frame
    /// appended behind that torn one would be unreadable at replay (reading stops at the first
    /// bad frame of a segment). The next append starts a new segment.
    pub fn append(&mut self, first_seq: u64, frame: &[u8]) -> Result<(), StorageError> {
        let appended = self.append_to_segment(first_seq, frame);
        if appended.is_err() {
            self.current = None;
        }
        appended
    }

    fn append_to_segment(&mut self, first_seq: u64, frame: &[u8]) -> Result<(), StorageError> {
        let file = match &mut self.current {
            Some(file) => file,
            None => {
                let path = self.dir.join(format!("{first_seq:020}{SEGMENT_SUFFIX}"));
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| io_error("creating a WAL segment", e))?;
                if self.sync {
                    // The new file's directory entry must survive a crash, like its contents.
                    File::open(&self.dir)
                        .and_then(|dir| dir.sync_all())
                        .map_err(|e| io_error("syncing the WAL directory", e))?;
                }
                self.current.insert(file)
            }
        };
        file.write_all(frame)
            .map_err(|e| io_error("appending to the write-ahead log", e))?;
        if self.sync {
            file.sync_data()
                .map_err(|e| io_error("syncing the write-ahead log", e))?;
        }
        Ok(())
    }

    /// Ends the current segment: the next append starts a new one, named by its first seq.
    pub fn rotate(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Vec<u8> {
        let mut frame = GroupFrame::with_capacity(64);
        frame.push_row(&[seq as u8; KEY_LEN], false, seq, b"body");
        frame.push_error(&[7; ERROR_KEY_LEN], b"{}");
        frame.seal(seq, seq + 1);
        frame.bytes
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_next_segment_is_still_read() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut wal = WalWriter::new(dir.path().to_path_buf(), false).unwrap();
        wal.append(1, &frame(1)).unwrap();
        let torn = frame(3);
        wal.append(3, &torn[..torn.len() / 2]).unwrap();
        // What the writer does after a failed append: the next frame starts a new segment.
        wal.rotate();
        wal.append(5, &frame(5)).unwrap();

        let segments = segments(dir.path()).unwrap();
        assert_eq!(segments.len(), 2);
        let first = read_segment(&segments[0].1).unwrap();
        assert_eq!(first.len(), 1, "the whole frame before the torn one");
        assert_eq!(first[0].last_seq, 2);
        assert_eq!(
            first[0].frame.error(0),
            (&[7; ERROR_KEY_LEN][..], &b"{}"[..])
        );
        assert_eq!(
            std::fs::metadata(&segments[0].1).unwrap().len(),
            frame(1).len() as u64,
            "the torn tail is cut off"
        );
        let second = read_segment(&segments[1].1).unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].last_seq, 6);
        assert_eq!(second[0].frame.rows[0].key, [5; KEY_LEN]);
    }
}
