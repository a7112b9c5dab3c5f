//! Time units in milliseconds (the unit of every event time and of the hot key), the wall
//! clock, and the unit a metric reads numeric event timestamps in, written once for every crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

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

/// The unit a metric reads numeric timestamps in (JSON numbers and strings of digits); text
/// forms such as RFC 3339 are unaffected. Milliseconds are the default and the v1 contract.
/// `Auto` chooses by magnitude (see `strata_ingest::parse_timestamp` for the thresholds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TimestampUnit {
    #[serde(rename = "s")]
    Seconds,
    #[default]
    #[serde(rename = "ms")]
    Millis,
    #[serde(rename = "us")]
    Micros,
    #[serde(rename = "ns")]
    Nanos,
    #[serde(rename = "auto")]
    Auto,
}

/// The names [`TimestampUnit`] accepts, for error messages.
pub const TIMESTAMP_UNIT_NAMES: &str = "ms (the default), s, us, ns, auto";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown timestamp unit {0:?}; expected one of {TIMESTAMP_UNIT_NAMES}")]
pub struct UnknownTimestampUnit(pub String);

impl TimestampUnit {
    pub const ALL: [TimestampUnit; 5] = [
        TimestampUnit::Millis,
        TimestampUnit::Seconds,
        TimestampUnit::Micros,
        TimestampUnit::Nanos,
        TimestampUnit::Auto,
    ];

    /// The name the API and the catalog use.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampUnit::Seconds => "s",
            TimestampUnit::Millis => "ms",
            TimestampUnit::Micros => "us",
            TimestampUnit::Nanos => "ns",
            TimestampUnit::Auto => "auto",
        }
    }

    /// The unit in words, for messages ("epoch seconds").
    pub fn describe(self) -> &'static str {
        match self {
            TimestampUnit::Seconds => "epoch seconds",
            TimestampUnit::Millis => "epoch milliseconds",
            TimestampUnit::Micros => "epoch microseconds",
            TimestampUnit::Nanos => "epoch nanoseconds",
            TimestampUnit::Auto => {
                "epoch seconds, milliseconds, microseconds or nanoseconds by magnitude"
            }
        }
    }

    /// Whether this is the default (milliseconds); lets serializers leave the default out.
    pub fn is_default(&self) -> bool {
        *self == TimestampUnit::default()
    }
}

impl FromStr for TimestampUnit {
    type Err = UnknownTimestampUnit;

    /// Exactly the API names: a unit is a setting, not free text to be guessed at.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TimestampUnit::ALL
            .into_iter()
            .find(|unit| unit.as_str() == s)
            .ok_or_else(|| UnknownTimestampUnit(s.to_string()))
    }
}

impl fmt::Display for TimestampUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

    #[test]
    fn timestamp_units_round_trip_and_refuse_others() {
        use serde::de::{value::Error, IntoDeserializer};
        for unit in TimestampUnit::ALL {
            assert_eq!(unit.as_str().parse::<TimestampUnit>(), Ok(unit));
            // serde's names (the catalog's JSON, the fingerprint) are the API names.
            let from_serde = TimestampUnit::deserialize(
                IntoDeserializer::<Error>::into_deserializer(unit.as_str()),
            );
            assert_eq!(from_serde, Ok(unit));
        }
        assert_eq!(TimestampUnit::default(), TimestampUnit::Millis);
        let err = "sec".parse::<TimestampUnit>().unwrap_err().to_string();
        assert!(
            err.contains("\"sec\"") && err.contains("ms (the default), s, us, ns, auto"),
            "{err}"
        );
        assert!("MS".parse::<TimestampUnit>().is_err());
    }
}
