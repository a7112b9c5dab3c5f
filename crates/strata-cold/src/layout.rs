//! Object paths in the cold store: `t<tenant id>/m<metric id>/YYYY/MM/DD/<uuid>.parquet`, days in
//! UTC. Ids rather than names, so renaming a metric moves no file.

use chrono::{DateTime, Datelike};
use strata_core::{MetricId, TenantId, DAY_MS};

/// UTC midnight at or before `timestamp_ms`.
pub fn day_start_ms(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(DAY_MS) * DAY_MS
}

/// `t<tenant>/m<metric>/`: every file of one metric is under it.
pub fn metric_prefix(tenant: TenantId, metric: MetricId) -> String {
    format!("t{tenant}/m{metric}/")
}

/// The path of a new file for the day starting at `day_ms`.
pub fn file_path(tenant: TenantId, metric: MetricId, day_ms: i64, id: uuid::Uuid) -> String {
    let day = match DateTime::from_timestamp_millis(day_ms) {
        Some(time) => format!("{:04}/{:02}/{:02}", time.year(), time.month(), time.day()),
        // Beyond chrono's range (±262,000 years): still a unique, sortable directory.
        None => format!("day{day_ms}"),
    };
    format!("{}{day}/{id}.parquet", metric_prefix(tenant, metric))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_use_utc_days_and_ids() {
        // 2015-01-12T23:59:59.999Z and the next millisecond fall on different days.
        let before = 1_421_107_199_999;
        assert_eq!(day_start_ms(before), 1_421_020_800_000);
        assert_eq!(day_start_ms(before + 1), 1_421_107_200_000);
        assert_eq!(day_start_ms(-1), -DAY_MS);
        let id = uuid::Uuid::nil();
        assert_eq!(
            file_path(TenantId(3), MetricId(7), day_start_ms(before), id),
            "t3/m7/2015/01/12/00000000-0000-0000-0000-000000000000.parquet"
        );
    }
}
