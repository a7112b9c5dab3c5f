//! Hot-tier key layout and the calendar arithmetic behind weekly partitions.
//!
//! A row key is 48 bytes, big-endian, so that byte order equals logical order:
//! `tenant i64 | metric i64 | hour bucket i64 | series u64 | timestamp_ms i64 | content_hash u64`.
//! Signed integers have their sign bit flipped so negative values sort before positive ones.
//! Because byte order is logical order, a time range is a contiguous key range per metric, and an
//! equality on the series hash is a seek to `tenant|metric|hour|series` in each hour bucket.

use strata_core::{MetricId, TenantId};

/// Length of a full row key.
pub const KEY_LEN: usize = 48;
/// Length of the `tenant | metric | hour` prefix that bounds a bucket scan.
pub const HOUR_PREFIX_LEN: usize = 24;
/// The hot key's time units (hour buckets, weekly partitions), from `strata-core`.
pub use strata_core::{DAY_MS, HOUR_MS, WEEK_MS};
/// 1970-01-01 was a Thursday; weeks are aligned to the Monday before it, 1969-12-29 00:00 UTC.
const MONDAY_EPOCH_OFFSET_MS: i64 = -3 * DAY_MS;

/// The decoded fields of a row key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HotKey {
    pub tenant: TenantId,
    pub metric: MetricId,
    pub hour: i64,
    pub series: u64,
    pub timestamp_ms: i64,
    pub content_hash: u64,
}

/// Maps a signed integer onto an unsigned one with the same ordering.
#[inline]
pub fn ordered_i64(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

/// Inverse of [`ordered_i64`].
#[inline]
pub fn unordered_i64(value: u64) -> i64 {
    (value ^ (1 << 63)) as i64
}

/// The hour bucket a timestamp falls in (floor division, so negative timestamps work).
#[inline]
pub fn hour_bucket(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(HOUR_MS)
}

/// Start of the UTC week (Monday 00:00) holding `timestamp_ms`, without clamping. Near the ends
/// of the i64 range the true Monday lies outside i64, hence i128.
fn week_start_wide(timestamp_ms: i64) -> i128 {
    let offset = i128::from(MONDAY_EPOCH_OFFSET_MS);
    let week = i128::from(WEEK_MS);
    (i128::from(timestamp_ms) - offset).div_euclid(week) * week + offset
}

fn clamp_to_i64(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// Start (inclusive) of the UTC week holding `timestamp_ms`: the Monday 00:00 UTC at or before
/// it. Clamped to `i64::MIN` for the partial week at the very start of the range.
pub fn week_start_ms(timestamp_ms: i64) -> i64 {
    clamp_to_i64(week_start_wide(timestamp_ms))
}

/// End (exclusive) of the UTC week holding `timestamp_ms`, clamped to `i64::MAX`.
pub fn week_end_ms(timestamp_ms: i64) -> i64 {
    clamp_to_i64(week_start_wide(timestamp_ms) + i128::from(WEEK_MS))
}

/// Name of the fjall keyspace that holds the week of `timestamp_ms`, e.g. `hot_2017-04-24`.
pub fn week_keyspace_name(timestamp_ms: i64) -> String {
    let day = week_start_wide(timestamp_ms).div_euclid(i128::from(DAY_MS));
    // The day number of any i64 millisecond fits easily in i64 (about 1e11 days).
    let day = i64::try_from(day).unwrap_or_default();
    let (year, month, day_of_month) = civil_from_days(day);
    format!("{WEEK_KEYSPACE_PREFIX}{year:04}-{month:02}-{day_of_month:02}")
}

/// Prefix of every weekly keyspace name.
pub const WEEK_KEYSPACE_PREFIX: &str = "hot_";

/// Parses a name made by [`week_keyspace_name`] back into the week's start (clamped like
/// [`week_start_ms`]). `None` for names that are not weekly keyspaces or not Monday-aligned.
pub fn parse_week_keyspace_name(name: &str) -> Option<i64> {
    let date = name.strip_prefix(WEEK_KEYSPACE_PREFIX)?;
    let mut parts = date.rsplitn(3, '-');
    let day: u32 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let year: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let start = i128::from(days) * i128::from(DAY_MS);
    let clamped = clamp_to_i64(start);
    // Reject anything that does not round-trip, so a stray keyspace is never mistaken for a week.
    (week_keyspace_name(clamped) == name && clamp_to_i64(week_start_wide(clamped)) == clamped)
        .then_some(clamped)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Encodes a full key; the hour bucket is derived from the timestamp.
pub fn encode(
    tenant: TenantId,
    metric: MetricId,
    series: u64,
    timestamp_ms: i64,
    content_hash: u64,
) -> [u8; KEY_LEN] {
    encode_parts(
        tenant,
        metric,
        hour_bucket(timestamp_ms),
        series,
        timestamp_ms,
        content_hash,
    )
}

/// Encodes a key from explicit parts. Scans use it for range bounds whose timestamp lies just
/// past the hour being read, which [`encode`] would move into the next bucket.
pub fn encode_parts(
    tenant: TenantId,
    metric: MetricId,
    hour: i64,
    series: u64,
    timestamp_ms: i64,
    content_hash: u64,
) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    key[0..8].copy_from_slice(&ordered_i64(tenant.0).to_be_bytes());
    key[8..16].copy_from_slice(&ordered_i64(metric.0).to_be_bytes());
    key[16..24].copy_from_slice(&ordered_i64(hour).to_be_bytes());
    key[24..32].copy_from_slice(&series.to_be_bytes());
    key[32..40].copy_from_slice(&ordered_i64(timestamp_ms).to_be_bytes());
    key[40..48].copy_from_slice(&content_hash.to_be_bytes());
    key
}

/// The `tenant | metric | hour` prefix: every row of that hour bucket starts with it.
pub fn hour_prefix(tenant: TenantId, metric: MetricId, hour: i64) -> [u8; HOUR_PREFIX_LEN] {
    let mut prefix = [0u8; HOUR_PREFIX_LEN];
    prefix[0..8].copy_from_slice(&ordered_i64(tenant.0).to_be_bytes());
    prefix[8..16].copy_from_slice(&ordered_i64(metric.0).to_be_bytes());
    prefix[16..24].copy_from_slice(&ordered_i64(hour).to_be_bytes());
    prefix
}

#[inline]
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(word)
}

/// Decodes a key; `None` if it is not exactly [`KEY_LEN`] bytes.
pub fn decode(key: &[u8]) -> Option<HotKey> {
    if key.len() != KEY_LEN {
        return None;
    }
    Some(HotKey {
        tenant: TenantId(unordered_i64(read_u64(key, 0))),
        metric: MetricId(unordered_i64(read_u64(key, 8))),
        hour: unordered_i64(read_u64(key, 16)),
        series: read_u64(key, 24),
        timestamp_ms: unordered_i64(read_u64(key, 32)),
        content_hash: read_u64(key, 40),
    })
}

/// Reads only the timestamp of a full key, for the hot loop of a scan.
#[inline]
pub(crate) fn timestamp_of(key: &[u8]) -> i64 {
    debug_assert_eq!(key.len(), KEY_LEN);
    unordered_i64(read_u64(key, 32))
}

#[inline]
pub(crate) fn series_of(key: &[u8]) -> u64 {
    debug_assert_eq!(key.len(), KEY_LEN);
    read_u64(key, 24)
}

#[inline]
pub(crate) fn content_hash_of(key: &[u8]) -> u64 {
    debug_assert_eq!(key.len(), KEY_LEN);
    read_u64(key, 40)
}

impl HotKey {
    pub fn encode(&self) -> [u8; KEY_LEN] {
        encode_parts(
            self.tenant,
            self.metric,
            self.hour,
            self.series,
            self.timestamp_ms,
            self.content_hash,
        )
    }
}

/// Length of an error record's key.
pub(crate) const ERROR_KEY_LEN: usize = 24;

/// Key of an error record: `tenant i64 | time_ms i64 | seq u64`, order-preserving.
pub(crate) fn error_key(tenant: TenantId, time_ms: i64, seq: u64) -> [u8; ERROR_KEY_LEN] {
    let mut out = [0u8; ERROR_KEY_LEN];
    out[0..8].copy_from_slice(&ordered_i64(tenant.0).to_be_bytes());
    out[8..16].copy_from_slice(&ordered_i64(time_ms).to_be_bytes());
    out[16..24].copy_from_slice(&seq.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_utc() {
        // 2017-04-27 12:00 UTC is a Thursday; its week starts Monday 2017-04-24.
        let thursday = 1_493_294_400_000;
        assert_eq!(week_start_ms(thursday), 1_492_992_000_000);
        assert_eq!(week_keyspace_name(thursday), "hot_2017-04-24");
        assert_eq!(week_end_ms(thursday), 1_492_992_000_000 + WEEK_MS);
        assert_eq!(week_start_ms(0), -3 * DAY_MS);
        assert_eq!(week_keyspace_name(0), "hot_1969-12-29");
        assert_eq!(week_start_ms(-3 * DAY_MS - 1), -10 * DAY_MS);
    }

    #[test]
    fn week_names_round_trip_including_extremes() {
        for ts in [
            0,
            -1,
            1_493_294_400_000,
            -62_135_596_800_000, // year 1
            -62_198_755_200_000, // year 0
            -80_000_000_000_000, // before year 0
            i64::MIN,
            i64::MIN + WEEK_MS,
            i64::MAX,
            i64::MAX - WEEK_MS,
        ] {
            let name = week_keyspace_name(ts);
            assert_eq!(
                parse_week_keyspace_name(&name),
                Some(week_start_ms(ts)),
                "{name}"
            );
        }
        assert_eq!(
            parse_week_keyspace_name("hot_2017-04-25"),
            None,
            "not a Monday"
        );
        assert_eq!(parse_week_keyspace_name("errors"), None);
        assert_eq!(parse_week_keyspace_name("hot_x"), None);
    }
}
