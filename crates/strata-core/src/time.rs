//! Time units in milliseconds (the unit of every event time and of the hot key) and the wall
//! clock, written once for every crate.

/// Milliseconds in one hour: the hot key's bucket.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in one UTC day: the cold file layout's unit.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// Milliseconds in one week: the hot tier's partition.
pub const WEEK_MS: i64 = 7 * DAY_MS;

/// Milliseconds since the Unix epoch, by the wall clock; 0 for a clock set before 1970.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_clock_are_consistent() {
        assert_eq!(WEEK_MS, 604_800_000);
        // After 2020-01-01 and before 2262 (Arrow nanoseconds), on any sane machine.
        let now = now_ms();
        assert!(
            now > 1_577_836_800_000 && now < crate::MAX_TIMESTAMP_MS,
            "{now}"
        );
    }
}
