//! A recent-window query for one device, the hot path that series keys make a seek.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use strata_core::HOUR_MS;

use crate::generator::{GeneratorConfig, READINGS};
use crate::plot::{write_latency_plot_if_any, LatencySeries, PlotFile, Plots};
use crate::progress::{NoProgress, Progress};
use crate::report::{format_ms, ReportRow, ReportRows, RunInfo};
use crate::scenarios::{sql_string_literal, sql_timestamp_literal, BenchTarget};
use crate::stats::LatencySummary;
use crate::BenchError;

pub const MAX_RUNS: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentConfig {
    pub metric: String,
    /// The device (`name`) queried.
    pub device: String,
    /// The window is (window_end_ms - window_ms, ...]: everything newer than its start.
    pub window_end_ms: i64,
    pub window_ms: i64,
    pub runs: usize,
    pub warmup_runs: usize,
}

impl RecentConfig {
    /// The last hour of a generated workload for `truck_42` (or the last truck when the fleet
    /// is smaller).
    pub fn for_workload(workload: &GeneratorConfig) -> RecentConfig {
        let device_index = 42.min(workload.trucks.saturating_sub(1));
        RecentConfig {
            metric: READINGS.to_string(),
            device: GeneratorConfig::truck_name(device_index),
            window_end_ms: workload.last_timestamp_ms(),
            window_ms: HOUR_MS,
            runs: 200,
            warmup_runs: 5,
        }
    }

    /// The query each run sends.
    pub fn sql(&self) -> Result<String, BenchError> {
        Ok(format!(
            "SELECT * FROM {} WHERE name = {} AND timestamp > {}",
            self.metric,
            sql_string_literal(&self.device),
            sql_timestamp_literal(self.window_end_ms.saturating_sub(self.window_ms))?
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentReport {
    pub run: RunInfo,
    pub parameters: RecentConfig,
    pub sql: String,
    pub latency: Option<LatencySummary>,
    /// Rows the first measured run returned.
    pub rows: usize,
    /// Whether every run returned the same number of rows (the data did not change).
    pub rows_stable: bool,
}

impl ReportRows for RecentReport {
    fn report_rows(&self) -> Vec<ReportRow> {
        let mut rows = Vec::new();
        if let Some(latency) = &self.latency {
            rows.push(ReportRow::new(
                "recent",
                "one device, last hour: p50 / p99",
                format!(
                    "{} / {}",
                    format_ms(latency.p50_ms),
                    format_ms(latency.p99_ms)
                ),
                "p99 <= 10 ms",
            ));
        }
        rows.push(ReportRow::new(
            "recent",
            "rows returned",
            self.rows.to_string(),
            "",
        ));
        rows
    }
}

impl Plots for RecentReport {
    /// `PREFIX-latency.png`: the distribution of the query's latency.
    fn write_plots(&self, dir: &Path, prefix: &str) -> Result<Vec<PlotFile>, BenchError> {
        let Some(latency) = &self.latency else {
            return Ok(Vec::new());
        };
        let title = format!(
            "{prefix}: {} of {}, last {} min, {} rows",
            self.parameters.device,
            self.parameters.metric,
            self.parameters.window_ms / 60_000,
            self.rows
        );
        Ok(write_latency_plot_if_any(
            dir,
            &format!("{prefix}-latency"),
            &title,
            &[LatencySeries::from_summary("query", latency)],
        )?
        .into_iter()
        .collect())
    }
}

pub fn run_recent(target: &BenchTarget, config: &RecentConfig) -> Result<RecentReport, BenchError> {
    run_recent_with(target, config, &NoProgress)
}

/// [`run_recent`] reporting progress (phase `"querying"`, in queries).
pub fn run_recent_with(
    target: &BenchTarget,
    config: &RecentConfig,
    progress: &dyn Progress,
) -> Result<RecentReport, BenchError> {
    if config.runs == 0 || config.runs > MAX_RUNS {
        return Err(BenchError::InvalidConfig(format!(
            "runs must be 1..={MAX_RUNS}, got {}",
            config.runs
        )));
    }
    let run = RunInfo::new("recent", &target.base_url);
    let client = target.client()?;
    let sql = config.sql()?;
    let mut latencies = Vec::with_capacity(config.runs);
    let mut first_rows = None;
    let mut rows_stable = true;
    progress.phase("querying", (config.warmup_runs + config.runs) as u64);
    for attempt in 0..config.warmup_runs + config.runs {
        let started = Instant::now();
        let answer = client.sql(&target.read_key, &sql)?;
        let latency = started.elapsed();
        progress.advance(1);
        if attempt < config.warmup_runs {
            continue;
        }
        latencies.push(latency);
        match first_rows {
            None => first_rows = Some(answer.rows.len()),
            Some(rows) => rows_stable &= rows == answer.rows.len(),
        }
    }
    Ok(RecentReport {
        run,
        parameters: config.clone(),
        sql,
        latency: LatencySummary::from_durations(&latencies),
        rows: first_rows.unwrap_or(0),
        rows_stable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_the_last_hour_of_the_workload() {
        let workload = GeneratorConfig::default();
        let config = RecentConfig::for_workload(&workload);
        assert_eq!(config.device, "truck_42");
        assert_eq!(config.window_end_ms, workload.last_timestamp_ms());
        // The default workload ends at 2026-01-01T00:59:50Z; one hour earlier:
        assert_eq!(
            config.sql().unwrap(),
            "SELECT * FROM readings WHERE name = 'truck_42' AND timestamp > '2025-12-31T23:59:50.000Z'"
        );
        let small = GeneratorConfig {
            trucks: 5,
            ..GeneratorConfig::default()
        };
        assert_eq!(RecentConfig::for_workload(&small).device, "truck_4");
    }
}
