//! The federated planner's cost model: where a query range may be cut between the tiers, what
//! each cut is estimated to cost (from the manifest's row counts), and which cut runs.

use strata_catalog::ColdFile;
use strata_core::{HOUR_MS, WEEK_MS};

use super::TierPreference;

/// Cost model, in estimated microseconds on the reference machine (see ARCHITECTURE.md):
/// opening a file and reading its footer; decoding one value from a column; decoding one hot row
/// (all its values, whatever the projection); one series seek in one hour bucket.
const COST_FILE_OPEN: f64 = 300.0;
const COST_COLD_VALUE: f64 = 0.01;
const COST_HOT_ROW: f64 = 0.4;
const COST_HOT_SEEK: f64 = 5.0;
/// Share of rows a series filter keeps, when the number of series is unknown.
const SERIES_SELECTIVITY: f64 = 0.01;
/// Most cut points tried; each is one candidate plan in EXPLAIN.
const MAX_CUTS: usize = 64;

/// One way to split the range between tiers.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Rows in `[start, cut)` come from cold + late, `[cut, end)` from hot partitions.
    pub cut_ms: i64,
    pub cost: f64,
    pub cold_files: usize,
    pub cold_rows: f64,
}

/// Everything EXPLAIN shows about the choice.
#[derive(Debug, Clone)]
pub struct PlanChoice {
    pub watermark_ms: i64,
    pub compacted_seq: u64,
    pub candidates: Vec<Candidate>,
    pub chosen: usize,
    pub late_rows: usize,
}

/// What the cost of a plan depends on besides the files.
#[derive(Debug, Clone, Copy)]
pub(super) struct QueryShape {
    /// Projected columns (at least one).
    pub columns: usize,
    /// How many series the scan seeks, `None` when it reads every series.
    pub seeking: Option<usize>,
}

/// Candidate cuts for the cold-covered range `[start, cold_end)`: the start, each week start
/// inside the compacted data, and `cold_end`.
pub(super) fn candidate_cuts(files: &[ColdFile], start: i64, cold_end: i64) -> Vec<i64> {
    let mut cuts = vec![start];
    let first_data = files
        .iter()
        .map(|f| f.min_ts_ms)
        .min()
        .unwrap_or(cold_end)
        .max(start);
    let last_data = files
        .iter()
        .map(|f| f.max_ts_ms.saturating_add(1))
        .max()
        .unwrap_or(cold_end)
        .min(cold_end);
    // Only weeks that hold compacted data give distinct plans.
    let mut week = strata_storage::key::week_start_ms(first_data).saturating_add(WEEK_MS);
    while week < last_data && cuts.len() < MAX_CUTS {
        if week > start {
            cuts.push(week);
        }
        week = week.saturating_add(WEEK_MS);
    }
    cuts.push(cold_end);
    cuts.dedup();
    cuts
}

/// The costed candidates among `cuts`. A cut is possible only while the hot tier still holds
/// `[cut, cold_end)`: retention drops whole old weeks (everything below `dropped_before`).
pub(super) fn candidates(
    files: &[ColdFile],
    cuts: &[i64],
    start: i64,
    cold_end: i64,
    dropped_before: i64,
    shape: QueryShape,
) -> Vec<Candidate> {
    cuts.iter()
        .filter(|&&cut| cut >= cold_end || cut >= dropped_before)
        .map(|&cut| {
            let (cold_files, cold_rows) = estimate(files, start, cut);
            let (_, hot_rows) = estimate(files, cut, cold_end);
            let hours = ((cold_end.saturating_sub(cut)) / HOUR_MS).max(0) as f64;
            Candidate {
                cut_ms: cut,
                cost: cost(cold_files, cold_rows, hot_rows, hours, shape),
                cold_files,
                cold_rows,
            }
        })
        .collect()
}

/// Estimated microseconds for reading `cold_rows` from `cold_files` files and `hot_rows` (over
/// `hours` hour buckets) from the hot partitions.
fn cost(cold_files: usize, cold_rows: f64, hot_rows: f64, hours: f64, shape: QueryShape) -> f64 {
    let columns = shape.columns.max(1) as f64;
    let mut cost = cold_files as f64 * COST_FILE_OPEN;
    match shape.seeking {
        None => {
            cost += cold_rows * COST_COLD_VALUE * (columns + 1.0);
            cost += hot_rows * COST_HOT_ROW;
        }
        Some(series) => {
            cost += cold_rows * SERIES_SELECTIVITY * COST_COLD_VALUE * (columns + 1.0);
            cost += hours * series as f64 * COST_HOT_SEEK
                + hot_rows * SERIES_SELECTIVITY * COST_HOT_ROW;
        }
    }
    cost
}

/// The index of the candidate that runs. `candidates` must not be empty.
pub(super) fn choose(candidates: &[Candidate], preference: TierPreference) -> usize {
    match preference {
        TierPreference::Cost => candidates
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| a.cost.total_cmp(&b.cost))
            .map(|(i, _)| i)
            .unwrap_or(0),
        TierPreference::Hot => 0,
        TierPreference::Cold => candidates.len().saturating_sub(1),
    }
}

/// Files and rows of `files` that fall in `[from, to)`, prorated by each file's time span.
fn estimate(files: &[ColdFile], from: i64, to: i64) -> (usize, f64) {
    if from >= to {
        return (0, 0.0);
    }
    let mut count = 0;
    let mut rows = 0.0;
    for file in files {
        let low = file.min_ts_ms.max(from);
        let high = file.max_ts_ms.saturating_add(1).min(to);
        if low >= high {
            continue;
        }
        count += 1;
        let span = (file.max_ts_ms - file.min_ts_ms).saturating_add(1).max(1) as f64;
        rows += file.rows as f64 * ((high - low) as f64 / span).min(1.0);
    }
    (count, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::DAY_MS;
    use strata_core::{MetricId, TenantId};

    /// 1970-01-05, a Monday: the start of a hot week.
    const MONDAY: i64 = 4 * DAY_MS;

    fn file(min_ts_ms: i64, max_ts_ms: i64, rows: u64) -> ColdFile {
        ColdFile {
            id: 1,
            tenant: TenantId(1),
            metric: MetricId(1),
            day_ms: min_ts_ms.div_euclid(DAY_MS) * DAY_MS,
            path: "t1/m1/x.parquet".to_string(),
            rows,
            bytes: 1,
            min_ts_ms,
            max_ts_ms,
            columns: Vec::new(),
            series_generation: 0,
            created_at_ms: 0,
        }
    }

    const SCAN_ALL: QueryShape = QueryShape {
        columns: 1,
        seeking: None,
    };

    #[test]
    fn estimates_prorate_rows_by_each_files_time_span() {
        let files = [file(0, 99, 100), file(100, 199, 1000)];
        assert_eq!(estimate(&files, 0, 50), (1, 50.0));
        assert_eq!(estimate(&files, 50, 150), (2, 550.0));
        assert_eq!(estimate(&files, 200, 300), (0, 0.0));
        assert_eq!(estimate(&files, 10, 10), (0, 0.0));
    }

    #[test]
    fn cuts_are_the_start_each_week_inside_the_data_and_the_cold_end() {
        let files = [file(MONDAY + 1, MONDAY + 2 * WEEK_MS + 5, 10)];
        let end = MONDAY + 3 * WEEK_MS;
        let cuts = candidate_cuts(&files, MONDAY, end);
        assert_eq!(
            cuts,
            vec![MONDAY, MONDAY + WEEK_MS, MONDAY + 2 * WEEK_MS, end]
        );
        // No files: only the two ends.
        assert_eq!(candidate_cuts(&[], MONDAY, end), vec![MONDAY, end]);
    }

    #[test]
    fn cuts_into_dropped_hot_weeks_are_no_candidates() {
        let files = [file(MONDAY, MONDAY + 2 * WEEK_MS - 1, 10)];
        let end = MONDAY + 2 * WEEK_MS;
        let cuts = candidate_cuts(&files, MONDAY, end);
        let kept = candidates(&files, &cuts, MONDAY, end, MONDAY + WEEK_MS + 1, SCAN_ALL);
        // Only the cut at the cold end needs no hot week below the watermark.
        assert_eq!(kept.iter().map(|c| c.cut_ms).collect::<Vec<_>>(), vec![end]);
        assert_eq!(kept[0].cold_files, 1);
        assert_eq!(kept[0].cold_rows, 10.0);
    }

    #[test]
    fn a_full_scan_prefers_cold_files_and_a_short_seek_prefers_hot_rows() {
        let files = [file(MONDAY, MONDAY + DAY_MS - 1, 1_000_000)];
        let end = MONDAY + DAY_MS;
        let cuts = candidate_cuts(&files, MONDAY, end);
        let scan = candidates(&files, &cuts, MONDAY, end, i64::MIN, SCAN_ALL);
        assert_eq!(scan.len(), 2);
        assert_eq!(choose(&scan, TierPreference::Cost), 1);
        assert_eq!(
            scan[1].cost,
            COST_FILE_OPEN + 1_000_000.0 * COST_COLD_VALUE * 2.0
        );
        assert_eq!(scan[0].cost, 1_000_000.0 * COST_HOT_ROW);

        let small = [file(MONDAY, MONDAY + DAY_MS - 1, 100)];
        let seek = QueryShape {
            columns: 1,
            seeking: Some(1),
        };
        let hour = MONDAY + HOUR_MS;
        let cuts = candidate_cuts(&small, MONDAY, hour);
        let short = candidates(&small, &cuts, MONDAY, hour, i64::MIN, seek);
        assert_eq!(short.len(), 2);
        assert_eq!(choose(&short, TierPreference::Cost), 0);
    }

    #[test]
    fn a_forced_tier_takes_the_first_or_the_last_candidate() {
        let candidate = |cut_ms, cost| Candidate {
            cut_ms,
            cost,
            cold_files: 0,
            cold_rows: 0.0,
        };
        let all = [candidate(0, 5.0), candidate(1, 1.0), candidate(2, 9.0)];
        assert_eq!(choose(&all, TierPreference::Cost), 1);
        assert_eq!(choose(&all, TierPreference::Hot), 0);
        assert_eq!(choose(&all, TierPreference::Cold), 2);
    }
}
