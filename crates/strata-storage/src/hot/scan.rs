//! Reading a time range of one tenant's metric over a fjall snapshot merged with the write
//! buffer's view (rows acknowledged but not yet flushed; a buffered row wins over a stored one
//! with the same key, being newer).
//!
//! Without a series filter each week is one contiguous key range (its hour buckets are adjacent
//! in key order), so the scan streams it and only re-checks timestamps, which matter in the two
//! boundary hours. With a series filter it seeks to `tenant|metric|hour|series|start` once per
//! hour bucket per series, so the key bounds are exact and nothing else in the bucket is read.

use std::cmp::Ordering;
use std::sync::Arc;

use fjall::{Keyspace, Readable, Slice, Snapshot};
use strata_core::{MetricId, NameId, TenantId};

use super::buffer::{self, BufferView, RowRef};
use super::codec::{self, ValueReader};
use super::key::{self, HOUR_MS, KEY_LEN};
use super::{HotRow, ScanRequest};
use crate::error::StorageError;

/// Where a row's encoded value lives: a fjall slice, or a range of a buffered chunk.
#[derive(Clone)]
enum RawValue {
    Stored(Slice),
    Buffered {
        bytes: Arc<Vec<u8>>,
        start: usize,
        end: usize,
    },
}

impl RawValue {
    fn bytes(&self) -> &[u8] {
        match self {
            RawValue::Stored(slice) => slice,
            RawValue::Buffered { bytes, start, end } => &bytes[*start..*end],
        }
    }
}

/// One stored row, still encoded. Cheap to obtain (the key and a reference-counted value), for
/// readers that decode values straight into their own buffers.
#[derive(Clone)]
pub struct RawHotRow {
    key: [u8; KEY_LEN],
    value: RawValue,
}

impl RawHotRow {
    /// A buffered row; `bytes` (its chunk's) keep its value alive.
    pub(crate) fn buffered(row: &RowRef, bytes: Arc<Vec<u8>>) -> Self {
        RawHotRow {
            key: row.key,
            value: RawValue::Buffered {
                bytes,
                start: row.value_start,
                end: row.value_end,
            },
        }
    }
}

impl RawHotRow {
    pub fn timestamp_ms(&self) -> i64 {
        key::timestamp_of(&self.key)
    }

    pub fn series(&self) -> u64 {
        key::series_of(&self.key)
    }

    pub fn content_hash(&self) -> u64 {
        key::content_hash_of(&self.key)
    }

    pub fn key_bytes(&self) -> &[u8] {
        &self.key
    }

    pub fn value_bytes(&self) -> &[u8] {
        self.value.bytes()
    }

    /// A reader over the row's values; its `seq()` is the row's sequence number.
    pub fn values(&self) -> Result<ValueReader<'_>, StorageError> {
        ValueReader::new(self.value.bytes())
    }

    /// Decodes into an owned row, keeping only `names` (sorted ascending) when given.
    pub fn to_row(&self, names: Option<&[NameId]>) -> Result<HotRow, StorageError> {
        let mut values = Vec::new();
        let seq = codec::decode_value(self.value.bytes(), names, &mut values)?;
        Ok(HotRow {
            timestamp_ms: self.timestamp_ms(),
            series: self.series(),
            seq,
            content_hash: self.content_hash(),
            values,
        })
    }
}

/// The series hashes `[low, high)` (`high` `None`: to the end) a scan of every series keeps,
/// so that several threads can each read a part of one scan (see [`HotScan::shard`]).
#[derive(Debug, Clone, Copy)]
struct SeriesShard {
    low: u64,
    high: Option<u64>,
}

/// Position within one week while seeking series by series, or hour by hour within a shard.
struct SeriesCursor {
    keyspace: Keyspace,
    /// The request's time range clipped to this week.
    start_ms: i64,
    end_ms: i64,
    hour: i64,
    last_hour: i64,
    series_index: usize,
}

/// Iterator over the rows of a [`ScanRequest`], in key order (week, hour, series, timestamp,
/// content hash). Holds a snapshot: rows committed after the scan started are not seen.
pub struct HotScan {
    snapshot: Snapshot,
    /// The write buffer as it was just before the snapshot was taken.
    buffer: BufferView,
    /// Whether this scan reads the late index (the buffer's late rows) rather than the weeks.
    late: bool,
    /// Buffered rows of the current key range, in key order.
    buffered: std::iter::Peekable<std::vec::IntoIter<RawHotRow>>,
    /// The next stored row of the current range, read ahead to merge with `buffered`.
    stored_head: Option<RawHotRow>,
    tenant: TenantId,
    metric: MetricId,
    start_ms: i64,
    end_ms: i64,
    /// Sorted, deduplicated.
    series: Option<Vec<u64>>,
    /// Sorted, deduplicated.
    names: Option<Vec<NameId>>,
    /// Set by [`HotScan::shard`]; only for scans without a series filter.
    shard: Option<SeriesShard>,
    /// Remaining weeks: (week start, week end, keyspace), oldest first.
    weeks: std::vec::IntoIter<(i64, i64, Keyspace)>,
    /// Set while a series-filtered or sharded scan walks the hours of one week.
    series_cursor: Option<SeriesCursor>,
    range: Option<fjall::Iter>,
    /// Whether rows of the current range need a timestamp check (whole-week ranges only).
    check_timestamps: bool,
    failed: bool,
}

fn sorted_unique<T: Ord + Copy>(items: &[T]) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort_unstable();
    items.dedup();
    items
}

impl HotScan {
    pub(crate) fn new(
        snapshot: Snapshot,
        buffer: BufferView,
        late: bool,
        weeks: Vec<(i64, i64, Keyspace)>,
        request: &ScanRequest,
    ) -> Self {
        HotScan {
            snapshot,
            buffer,
            late,
            buffered: Vec::new().into_iter().peekable(),
            stored_head: None,
            tenant: request.tenant,
            metric: request.metric,
            start_ms: request.start_ms,
            end_ms: request.end_ms,
            series: request.series.as_deref().map(sorted_unique),
            names: request.names.as_deref().map(sorted_unique),
            shard: None,
            weeks: weeks.into_iter(),
            series_cursor: None,
            range: None,
            check_timestamps: false,
            failed: false,
        }
    }

    /// Keeps only shard `index` of `count` equal ranges of series hashes. The shards of one
    /// request read disjoint rows that together are the request's rows, so `count` threads can
    /// share a scan of every series; hashes are uniform, so shards get similar numbers of series
    /// whatever the rows' time distribution. Each shard opens one range per hour bucket instead of
    /// one per week. A scan with a series filter ignores this (its seeks are already exact).
    /// `index` must be below `count`: callers number their partitions from 0.
    pub fn shard(mut self, index: usize, count: usize) -> Self {
        debug_assert!(index < count, "shard {index} of {count}");
        if count < 2 {
            return self;
        }
        let index = index.min(count - 1);
        let bound = |i: usize| ((u128::from(u64::MAX) + 1) * i as u128 / count as u128) as u64;
        self.shard = Some(SeriesShard {
            low: bound(index),
            high: (index + 1 < count).then(|| bound(index + 1)),
        });
        self
    }

    /// The name projection in effect (sorted), for callers decoding [`RawHotRow`]s themselves.
    pub fn names(&self) -> Option<&[NameId]> {
        self.names.as_deref()
    }

    /// The next row without decoding its values.
    pub fn next_raw(&mut self) -> Option<Result<RawHotRow, StorageError>> {
        if self.failed {
            return None;
        }
        loop {
            if self.stored_head.is_none() {
                if let Err(error) = self.read_stored_head() {
                    self.failed = true;
                    return Some(Err(error));
                }
            }
            let row = match (&self.stored_head, self.buffered.peek()) {
                (None, None) => {
                    if !self.open_next_range() {
                        return None;
                    }
                    continue;
                }
                (Some(stored), Some(buffered)) => match stored.key.cmp(&buffered.key) {
                    Ordering::Less => self.stored_head.take(),
                    Ordering::Greater => self.buffered.next(),
                    // The buffered row is the newer write of the same key.
                    Ordering::Equal => {
                        self.stored_head = None;
                        self.buffered.next()
                    }
                },
                (Some(_), None) => self.stored_head.take(),
                (None, Some(_)) => self.buffered.next(),
            };
            let Some(row) = row else { continue };
            if self.check_timestamps {
                let timestamp = key::timestamp_of(&row.key);
                if timestamp < self.start_ms || timestamp >= self.end_ms {
                    continue;
                }
            }
            return Some(Ok(row));
        }
    }

    /// Reads the current fjall range's next row into `stored_head` (nothing at its end).
    fn read_stored_head(&mut self) -> Result<(), StorageError> {
        let Some(range) = &mut self.range else {
            return Ok(());
        };
        let Some(guard) = range.next() else {
            self.range = None;
            return Ok(());
        };
        let (key, value) = guard
            .into_inner()
            .map_err(|e| StorageError::engine("scanning the hot tier", e))?;
        let key: [u8; KEY_LEN] = key.as_ref().try_into().map_err(|_| StorageError::Corrupt {
            what: format!("hot row key of {} bytes", key.len()),
        })?;
        self.stored_head = Some(RawHotRow {
            key,
            value: RawValue::Stored(value),
        });
        Ok(())
    }

    /// Starts reading `[low, high)` from the snapshot and from the buffer view.
    fn open_range<const N: usize>(&mut self, keyspace: &Keyspace, low: [u8; N], high: [u8; N]) {
        self.buffered = buffer::rows_in_range(&self.buffer, self.late, &low, &high)
            .into_iter()
            .peekable();
        self.range = Some(self.snapshot.range(keyspace, low..high));
    }

    /// Positions `self.range` on the next key range to read; false when there is none.
    fn open_next_range(&mut self) -> bool {
        loop {
            if self.series_cursor.is_none() {
                match self.enter_next_week() {
                    WeekStep::Done => return false,
                    WeekStep::Opened => return true,
                    WeekStep::Skipped => continue,
                    WeekStep::Cursor => {}
                }
            }
            if self.open_cursor_range() {
                return true;
            }
        }
    }

    /// Takes the next week: opens it whole when every series is read, or sets a cursor to walk
    /// its hours (series seeks, or a shard's hour ranges).
    fn enter_next_week(&mut self) -> WeekStep {
        let Some((week_start, week_end, keyspace)) = self.weeks.next() else {
            return WeekStep::Done;
        };
        let start_ms = self.start_ms.max(week_start);
        let end_ms = self.end_ms.min(week_end);
        if start_ms >= end_ms {
            return WeekStep::Skipped;
        }
        let first_hour = key::hour_bucket(start_ms);
        let last_hour = key::hour_bucket(end_ms - 1);
        match &self.series {
            None if self.shard.is_none() => {
                // The whole clipped week is one key range: hour buckets are adjacent.
                let low = key::hour_prefix(self.tenant, self.metric, first_hour);
                let high = key::hour_prefix(self.tenant, self.metric, last_hour + 1);
                self.open_range(&keyspace, low, high);
                // Only the first and last hour can hold rows outside the range.
                self.check_timestamps = true;
                WeekStep::Opened
            }
            Some(series) if series.is_empty() => WeekStep::Done,
            _ => {
                self.series_cursor = Some(SeriesCursor {
                    keyspace,
                    start_ms,
                    end_ms,
                    hour: first_hour,
                    last_hour,
                    series_index: 0,
                });
                WeekStep::Cursor
            }
        }
    }

    /// Opens the cursor's next range; false when this step opened none (the cursor may be done).
    fn open_cursor_range(&mut self) -> bool {
        let Some(cursor) = &mut self.series_cursor else {
            return false;
        };
        if cursor.hour > cursor.last_hour {
            self.series_cursor = None;
            return false;
        }
        let hour = cursor.hour;
        let (tenant, metric) = (self.tenant, self.metric);
        let (low, high) = match (&self.series, self.shard) {
            (Some(series_list), _) => {
                let series = series_list[cursor.series_index];
                cursor.series_index += 1;
                if cursor.series_index == series_list.len() {
                    cursor.series_index = 0;
                    cursor.hour += 1;
                }
                let hour_start = hour.saturating_mul(HOUR_MS);
                let low_ts = cursor.start_ms.max(hour_start);
                let high_ts = cursor.end_ms.min(hour_start.saturating_add(HOUR_MS));
                if low_ts >= high_ts {
                    return false;
                }
                // Content hash 0 is the smallest key at a timestamp, so [low, high) is exact.
                self.check_timestamps = false;
                (
                    key::encode_parts(tenant, metric, hour, series, low_ts, 0),
                    key::encode_parts(tenant, metric, hour, series, high_ts, 0),
                )
            }
            (None, Some(shard)) => {
                cursor.hour += 1;
                // The first and last hour can hold rows outside the range.
                self.check_timestamps = true;
                let high = match shard.high {
                    Some(high) => key::encode_parts(tenant, metric, hour, high, i64::MIN, 0),
                    None => key::encode_parts(tenant, metric, hour + 1, 0, i64::MIN, 0),
                };
                (
                    key::encode_parts(tenant, metric, hour, shard.low, i64::MIN, 0),
                    high,
                )
            }
            (None, None) => {
                self.series_cursor = None;
                return false;
            }
        };
        let keyspace = cursor.keyspace.clone();
        self.open_range(&keyspace, low, high);
        true
    }
}

/// What taking the next week did.
enum WeekStep {
    /// No weeks left (or a series filter that matches nothing).
    Done,
    /// The week is open as one key range.
    Opened,
    /// The week lies outside the range.
    Skipped,
    /// A cursor walks the week's hours now.
    Cursor,
}

impl Iterator for HotScan {
    type Item = Result<HotRow, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let raw = match self.next_raw()? {
            Ok(raw) => raw,
            Err(e) => return Some(Err(e)),
        };
        let row = raw.to_row(self.names.as_deref());
        if row.is_err() {
            self.failed = true;
        }
        Some(row)
    }
}
