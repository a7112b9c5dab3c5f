//! The write buffer: rows that are durable in the write-ahead log but not yet ingested into
//! fjall. Each group commit adds one immutable, key-sorted chunk; scans merge the chunks with
//! their fjall range; the flusher ingests the oldest chunks in bulk and then drops them.
//!
//! Readers take the chunk list as one `Arc` (a short read lock, no copy of rows), so a scan never
//! waits for the writer or the flusher, and keeps its view for as long as it runs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::key::KEY_LEN;
use super::scan::RawHotRow;
use super::wal::GroupFrame;

/// One buffered row: its key and where its encoded value lies in the chunk's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowRef {
    pub key: [u8; KEY_LEN],
    pub value_start: usize,
    pub value_end: usize,
}

/// The rows of one group commit, sorted by key, one row per key (the newest).
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The group's write-ahead-log payload; every row's value is a range of it.
    pub bytes: Arc<Vec<u8>>,
    /// Rows for the weekly or archive keyspaces.
    pub rows: Vec<RowRef>,
    /// Copies of the rows that were late when written, for the late index.
    pub late: Vec<RowRef>,
    /// Highest sequence number in the group.
    pub last_seq: u64,
}

impl Chunk {
    /// The buffered form of a group's frame.
    pub fn from_frame(frame: GroupFrame, last_seq: u64) -> Self {
        let GroupFrame {
            bytes,
            mut rows,
            mut late,
            ..
        } = frame;
        sort_newest_per_key(&mut rows);
        sort_newest_per_key(&mut late);
        Chunk {
            bytes: Arc::new(bytes),
            rows,
            late,
            last_seq,
        }
    }

    /// The rows (or late rows) with `low <= key < high`.
    pub fn range(&self, late: bool, low: &[u8], high: &[u8]) -> &[RowRef] {
        let rows = if late { &self.late } else { &self.rows };
        let start = rows.partition_point(|row| row.key.as_slice() < low);
        let end = rows.partition_point(|row| row.key.as_slice() < high);
        &rows[start..end.max(start)]
    }
}

/// Sorts rows given in sequence order by key and keeps, for each key, the last one given: an
/// identical re-send in the same group has its twin's key, and the newest write wins, as it
/// would in fjall.
pub(crate) fn sort_newest_per_key(rows: &mut Vec<RowRef>) {
    rows.reverse();
    // Stable: among equal keys the newest (now first) stays first, and dedup keeps the first.
    rows.sort_by_key(|row| row.key);
    rows.dedup_by(|later, kept| later.key == kept.key);
}

/// The chunks in commit order (oldest first).
pub(crate) type BufferView = Arc<Vec<Arc<Chunk>>>;

/// Rows of `view` with `low <= key < high`, sorted by key, the newest chunk's row on equal keys.
pub(crate) fn rows_in_range(
    view: &[Arc<Chunk>],
    late: bool,
    low: &[u8],
    high: &[u8],
) -> Vec<RawHotRow> {
    // (row, chunk position): sorting by key then by newer chunk first lets dedup keep the newest.
    let mut found: Vec<(&RowRef, usize, &Chunk)> = Vec::new();
    for (position, chunk) in view.iter().enumerate() {
        for row in chunk.range(late, low, high) {
            found.push((row, position, chunk));
        }
    }
    let single_chunk = found.windows(2).all(|pair| pair[0].1 == pair[1].1);
    if !single_chunk {
        found.sort_unstable_by(|a, b| a.0.key.cmp(&b.0.key).then(b.1.cmp(&a.1)));
        found.dedup_by(|later, kept| later.0.key == kept.0.key);
    }
    found
        .into_iter()
        .map(|(row, _, chunk)| RawHotRow::buffered(row, Arc::clone(&chunk.bytes)))
        .collect()
}

/// Feeds every row of `chunks` (or their late rows) to `emit` in key order, once per key: the
/// newest chunk's row. A streaming k-way merge of the sorted chunks; returns the rows emitted.
pub(crate) fn merge_newest<E>(
    chunks: &[Arc<Chunk>],
    late: bool,
    mut emit: impl FnMut(&[u8; KEY_LEN], &[u8]) -> Result<(), E>,
) -> Result<usize, E> {
    let rows_of = |position: usize| -> &[RowRef] {
        let chunk = &chunks[position];
        if late {
            &chunk.late
        } else {
            &chunk.rows
        }
    };
    // Min-heap on (key, newest chunk first): `Reverse` of the key, plain position.
    let mut heads: BinaryHeap<(Reverse<[u8; KEY_LEN]>, usize, usize)> = (0..chunks.len())
        .filter_map(|position| {
            let first = rows_of(position).first()?;
            Some((Reverse(first.key), position, 0))
        })
        .collect();
    let mut emitted = 0;
    let mut last_key: Option<[u8; KEY_LEN]> = None;
    while let Some((Reverse(key), position, index)) = heads.pop() {
        let rows = rows_of(position);
        if let Some(next) = rows.get(index + 1) {
            heads.push((Reverse(next.key), position, index + 1));
        }
        // Equal keys pop newest chunk first; the older copies are skipped.
        if last_key == Some(key) {
            continue;
        }
        last_key = Some(key);
        let row = &rows[index];
        emit(
            &key,
            &chunks[position].bytes[row.value_start..row.value_end],
        )?;
        emitted += 1;
    }
    Ok(emitted)
}

/// The shared buffer: the chunk list and its row count.
#[derive(Default)]
pub(crate) struct WriteBuffer {
    chunks: RwLock<BufferView>,
    rows: AtomicUsize,
}

impl WriteBuffer {
    /// The current chunks; later pushes and removals do not change it.
    pub fn view(&self) -> BufferView {
        Arc::clone(&self.chunks.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Rows buffered (late-index copies not counted).
    pub fn rows(&self) -> usize {
        self.rows.load(Ordering::Acquire)
    }

    pub fn push(&self, chunk: Chunk) {
        let added = chunk.rows.len();
        let mut chunks = self.chunks.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = Vec::with_capacity(chunks.len() + 1);
        next.extend(chunks.iter().cloned());
        next.push(Arc::new(chunk));
        *chunks = Arc::new(next);
        self.rows.fetch_add(added, Ordering::AcqRel);
    }

    /// Drops the chunks whose rows all have `seq <= through_seq` (they are in fjall now).
    pub fn remove_through(&self, through_seq: u64) {
        let mut chunks = self.chunks.write().unwrap_or_else(PoisonError::into_inner);
        let (flushed, kept): (Vec<_>, Vec<_>) = chunks
            .iter()
            .cloned()
            .partition(|chunk| chunk.last_seq <= through_seq);
        let removed: usize = flushed.iter().map(|chunk| chunk.rows.len()).sum();
        *chunks = Arc::new(kept);
        self.rows.fetch_sub(removed, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key_byte: u8, value_start: usize) -> RowRef {
        RowRef {
            key: [key_byte; KEY_LEN],
            value_start,
            value_end: value_start + 1,
        }
    }

    fn chunk(rows: Vec<RowRef>, last_seq: u64) -> Arc<Chunk> {
        Arc::new(Chunk {
            bytes: Arc::new(vec![0u8; 16]),
            rows,
            late: Vec::new(),
            last_seq,
        })
    }

    #[test]
    fn the_newest_row_of_a_key_wins_inside_a_group() {
        let mut rows = vec![row(2, 0), row(1, 1), row(2, 2), row(2, 3)];
        sort_newest_per_key(&mut rows);
        let kept: Vec<(u8, usize)> = rows.iter().map(|r| (r.key[0], r.value_start)).collect();
        assert_eq!(kept, vec![(1, 1), (2, 3)]);
    }

    #[test]
    fn the_newest_chunk_wins_across_chunks_and_ranges_are_half_open() {
        let view = vec![
            chunk(vec![row(1, 0), row(3, 1)], 2),
            chunk(vec![row(3, 5), row(4, 6)], 4),
        ];
        let found = rows_in_range(&view, false, &[1; KEY_LEN], &[4; KEY_LEN]);
        let kept: Vec<(u8, &[u8])> = found
            .iter()
            .map(|r| (r.key_bytes()[0], r.value_bytes()))
            .collect();
        assert_eq!(
            kept,
            vec![(1, &view[0].bytes[0..1]), (3, &view[1].bytes[5..6])]
        );
    }

    #[test]
    fn the_merge_emits_each_key_once_from_the_newest_chunk_in_key_order() {
        let view = vec![
            chunk(vec![row(1, 0), row(3, 1), row(5, 2)], 2),
            chunk(vec![row(3, 5), row(4, 6)], 4),
            chunk(vec![row(0, 7), row(3, 8)], 6),
        ];
        let mut seen = Vec::new();
        // Which chunk a value came from is checked by address below; an offset from the first
        // chunk's address underflowed when a later chunk was allocated below it.
        let emitted = merge_newest(&view, false, |key, _value| {
            seen.push(key[0]);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(emitted, 5);
        assert_eq!(seen, vec![0, 1, 3, 4, 5]);
        let found = rows_in_range(&view, false, &[3; KEY_LEN], &[4; KEY_LEN]);
        assert!(
            std::ptr::eq(found[0].value_bytes(), &view[2].bytes[8..9]),
            "key 3 comes from the newest chunk"
        );
    }

    #[test]
    fn removing_through_a_seq_keeps_newer_chunks_and_the_row_count() {
        let buffer = WriteBuffer::default();
        buffer.push(Chunk {
            bytes: Arc::new(vec![0u8; 4]),
            rows: vec![row(1, 0)],
            late: Vec::new(),
            last_seq: 3,
        });
        buffer.push(Chunk {
            bytes: Arc::new(vec![0u8; 4]),
            rows: vec![row(1, 0), row(2, 1)],
            late: Vec::new(),
            last_seq: 7,
        });
        assert_eq!(buffer.rows(), 3);
        buffer.remove_through(3);
        assert_eq!(buffer.rows(), 2);
        assert_eq!(buffer.view().len(), 1);
    }
}
