//! Compaction: how fast `POST /api/v1/compact` moves the loaded workload into Parquet (rows/s),
//! and how the same analytic query runs on hot rows before and on cold files after.
//!
//! The server must not compact on its own during the measurement (`--compact-interval-secs 0`)
//! and must compact everything (`--compact-after-secs 0`): the workload's timestamps are in the
//! past, so the whole of it lands in cold files, which the run checks against `count(*)`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use strata_client::{Client, CompactAnswer};

use crate::cold_files::{locate_compacted_files, parquet_files_under, ColdFileSet};
use crate::generator::{DIAGNOSTICS, READINGS};
use crate::normalize::{canonical_rows, first_difference};
use crate::plot::{write_latency_plot_if_any, LatencySeries, PlotFile, Plots};
use crate::progress::{NoProgress, Progress};
use crate::report::{format_ms, thousands, ReportRow, ReportRows, RunInfo};
use crate::scenarios::{peak_rss_kib, BenchTarget};
use crate::stats::LatencySummary;
use crate::BenchError;

pub const MAX_RUNS: usize = 100_000;
/// Default bound on the compaction request: 20M rows take minutes on a busy 2-core machine.
pub const DEFAULT_COMPACT_TIMEOUT: Duration = Duration::from_secs(3600);

/// The default query: a full-range aggregate over every row of `diagnostics`, reading a
/// declared field, a field with an alias (`fuel_state` / `fuel`) and two tags.
pub const DEFAULT_QUERY: &str =
    "SELECT fleet, model, count(*) AS events, avg(current_load) AS avg_load, \
min(fuel_state) AS min_fuel FROM diagnostics GROUP BY fleet, model ORDER BY fleet, model";

/// Columns that only one workload metric's cold files hold, to tell their directories apart.
pub const WORKLOAD_MARKERS: [(&str, &str); 2] =
    [(READINGS, "velocity"), (DIAGNOSTICS, "current_load")];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactionConfig {
    pub sql: String,
    /// Measured runs of the query on each tier.
    pub runs: usize,
    pub warmup_runs: usize,
    /// The server's cold directory (DATA_DIR/cold), to find the files the compaction writes;
    /// without it nothing is located and the analytics scenario cannot run.
    pub cold_dir: Option<PathBuf>,
    pub compact_timeout_s: u64,
    /// The server's pid, for its peak RSS right after compaction.
    pub server_pid: Option<u32>,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            sql: DEFAULT_QUERY.to_string(),
            runs: 10,
            warmup_runs: 1,
            cold_dir: None,
            compact_timeout_s: DEFAULT_COMPACT_TIMEOUT.as_secs(),
            server_pid: None,
        }
    }
}

impl CompactionConfig {
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.runs == 0 || self.runs > MAX_RUNS {
            return Err(BenchError::InvalidConfig(format!(
                "runs must be 1..={MAX_RUNS}, got {}",
                self.runs
            )));
        }
        if self.compact_timeout_s == 0 {
            return Err(BenchError::InvalidConfig(
                "the compaction timeout must be at least 1 s".to_string(),
            ));
        }
        Ok(())
    }
}

/// A metric's rows in cold files (from `/api/v1/status`) against `count(*)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierCheck {
    pub metric: String,
    pub stored: u64,
    pub cold_rows: u64,
    pub cold_files: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactionReport {
    pub run: RunInfo,
    pub parameters: CompactionConfig,
    pub answer: CompactAnswer,
    pub compact_s: f64,
    pub rows_per_s: f64,
    /// Rows the tenant's metrics hold (`count(*)` of each compacted metric).
    pub rows_stored: u64,
    /// Every compacted metric's rows are all in cold files, and the compaction moved exactly
    /// the rows stored.
    pub complete: bool,
    pub tiers: Vec<TierCheck>,
    pub hot: Option<LatencySummary>,
    pub cold: Option<LatencySummary>,
    /// Hot median / cold median: above 1 means the cold files are faster.
    pub speedup: Option<f64>,
    pub hot_rows: usize,
    pub answers_equal: bool,
    /// The first difference between the answers (see [`crate::normalize`]), when they differ.
    pub difference: Option<String>,
    /// The federated scan line of `EXPLAIN` after compaction: which plan ran.
    pub cold_plan: Option<String>,
    /// The files the compaction wrote, per workload metric (when the cold directory is known).
    pub files: Option<ColdFileSet>,
    pub server_peak_rss_kib: Option<u64>,
}

impl CompactionReport {
    pub fn passed(&self) -> bool {
        self.complete && self.answers_equal
    }

    /// Every correctness problem, in words.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if !self.complete {
            failures.push(format!(
                "compaction: moved {} rows but the tenant stores {} (per metric: {:?})",
                self.answer.rows, self.rows_stored, self.tiers
            ));
        }
        if !self.answers_equal {
            failures.push(format!(
                "compaction: the query answers differ between hot and cold: {}",
                self.difference.as_deref().unwrap_or("(empty answer)")
            ));
        }
        failures
    }
}

impl ReportRows for CompactionReport {
    fn report_rows(&self) -> Vec<ReportRow> {
        let mut rows = self.compaction_rows();
        rows.extend(self.query_rows());
        if let Some(rss) = self.server_peak_rss_kib {
            rows.push(ReportRow::new(
                "compaction",
                "server peak RSS",
                format!("{:.1} MiB", rss as f64 / 1024.0),
                "",
            ));
        }
        rows
    }
}

impl CompactionReport {
    /// What the compaction moved, how fast, and the bytes it wrote when they were located.
    fn compaction_rows(&self) -> Vec<ReportRow> {
        let mut rows = vec![
            ReportRow::new(
                "compaction",
                "rows compacted / stored",
                format!("{} / {}", self.answer.rows, self.rows_stored),
                "equal",
            ),
            ReportRow::new(
                "compaction",
                "files written",
                self.answer.files_written.to_string(),
                "",
            ),
            ReportRow::new(
                "compaction",
                "compaction time",
                format!("{:.3} s", self.compact_s),
                "",
            ),
            ReportRow::new(
                "compaction",
                "rows/s",
                format!("{:.0}", self.rows_per_s),
                "",
            ),
        ];
        if let Some(files) = &self.files {
            let bytes: u64 = files.metrics.iter().map(|m| m.bytes).sum();
            rows.push(ReportRow::new(
                "compaction",
                "Parquet bytes (workload metrics)",
                format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0),
                "",
            ));
        }
        rows
    }

    /// The query on hot rows against cold files: latencies, speed-up and equality.
    fn query_rows(&self) -> Vec<ReportRow> {
        let mut rows = Vec::new();
        if let (Some(hot), Some(cold)) = (&self.hot, &self.cold) {
            rows.push(ReportRow::new(
                "compaction",
                "query on hot: median / p99",
                format!("{} / {}", format_ms(hot.p50_ms), format_ms(hot.p99_ms)),
                "",
            ));
            rows.push(ReportRow::new(
                "compaction",
                "query on cold: median / p99",
                format!("{} / {}", format_ms(cold.p50_ms), format_ms(cold.p99_ms)),
                "",
            ));
        }
        if let Some(speedup) = self.speedup {
            rows.push(ReportRow::new(
                "compaction",
                "speed-up cold vs hot (median)",
                format!("{speedup:.2}x"),
                "",
            ));
        }
        rows.push(ReportRow::new(
            "compaction",
            "answers equal (hot, cold)",
            self.answers_equal.to_string(),
            "true",
        ));
        rows
    }
}

impl Plots for CompactionReport {
    /// `PREFIX-query-latency.png`: the same query on hot rows before and on cold files after.
    fn write_plots(&self, dir: &Path, prefix: &str) -> Result<Vec<PlotFile>, BenchError> {
        let mut series = Vec::new();
        if let Some(hot) = &self.hot {
            series.push(LatencySeries::from_summary("hot tier (before)", hot));
        }
        if let Some(cold) = &self.cold {
            series.push(LatencySeries::from_summary("cold files (after)", cold));
        }
        Ok(write_latency_plot_if_any(
            dir,
            &format!("{prefix}-query-latency"),
            &format!(
                "{prefix}: one aggregate over {} rows, hot vs cold",
                thousands(self.rows_stored)
            ),
            &series,
        )?
        .into_iter()
        .collect())
    }
}

pub fn run_compaction(
    target: &BenchTarget,
    config: &CompactionConfig,
) -> Result<CompactionReport, BenchError> {
    run_compaction_with(target, config, &NoProgress)
}

/// [`run_compaction`] reporting progress (`"hot queries"`, `"compacting"`, `"cold queries"`).
pub fn run_compaction_with(
    target: &BenchTarget,
    config: &CompactionConfig,
    progress: &dyn Progress,
) -> Result<CompactionReport, BenchError> {
    config.validate()?;
    let run = RunInfo::new("compaction", &target.base_url);
    let client = target.client()?;

    progress.phase("hot queries", (config.warmup_runs + config.runs) as u64);
    let (hot_latencies, hot_answer) = time_query(&client, target, config, progress)?;

    let Compacted {
        answer,
        compact_s,
        server_peak_rss_kib,
        files,
    } = compact_and_locate(&client, target, config, progress)?;
    let tiers = tier_checks(&client, target, &answer)?;
    let rows_stored = tiers.iter().map(|t| t.stored).sum();
    let complete = !tiers.is_empty()
        && rows_stored == answer.rows
        && tiers.iter().all(|t| t.cold_rows == t.stored);

    let cold_plan = explain_scan(&client, target, &config.sql)?;
    progress.phase("cold queries", (config.warmup_runs + config.runs) as u64);
    let (cold_latencies, cold_answer) = time_query(&client, target, config, progress)?;

    let hot = LatencySummary::from_durations(&hot_latencies);
    let cold = LatencySummary::from_durations(&cold_latencies);
    let speedup = median_speedup(hot.as_ref(), cold.as_ref());
    let hot_normal = canonical_rows(&hot_answer);
    let cold_normal = canonical_rows(&cold_answer);
    let difference = first_difference(&hot_normal, &cold_normal);
    Ok(CompactionReport {
        run,
        parameters: config.clone(),
        rows_per_s: if compact_s > 0.0 {
            answer.rows as f64 / compact_s
        } else {
            0.0
        },
        answer,
        compact_s,
        rows_stored,
        complete,
        tiers,
        hot,
        cold,
        speedup,
        hot_rows: hot_answer.len(),
        answers_equal: !hot_normal.is_empty() && difference.is_none(),
        difference,
        cold_plan,
        files,
        server_peak_rss_kib,
    })
}

/// What the compaction request answered, how long it took, and the files it wrote.
struct Compacted {
    answer: CompactAnswer,
    compact_s: f64,
    server_peak_rss_kib: Option<u64>,
    files: Option<ColdFileSet>,
}

/// Compacts everything, listing the cold directory (when known) before and after so the
/// new files can be attributed to metrics.
fn compact_and_locate(
    client: &Client,
    target: &BenchTarget,
    config: &CompactionConfig,
    progress: &dyn Progress,
) -> Result<Compacted, BenchError> {
    let before = match &config.cold_dir {
        Some(dir) => Some(parquet_files_under(dir)?),
        None => None,
    };
    progress.phase("compacting", 0);
    let started = Instant::now();
    let answer = client.compact(
        &target.admin_key,
        Duration::from_secs(config.compact_timeout_s),
    )?;
    let compact_s = started.elapsed().as_secs_f64();
    let server_peak_rss_kib = config.server_pid.and_then(|pid| peak_rss_kib(pid).ok());
    let files = match (&config.cold_dir, &before) {
        (Some(dir), Some(before)) => Some(locate_compacted_files(
            dir,
            before,
            &parquet_files_under(dir)?,
            &answer,
            &WORKLOAD_MARKERS,
        )?),
        _ => None,
    };
    Ok(Compacted {
        answer,
        compact_s,
        server_peak_rss_kib,
        files,
    })
}

/// Hot median / cold median; `None` without both or with a zero cold median.
fn median_speedup(hot: Option<&LatencySummary>, cold: Option<&LatencySummary>) -> Option<f64> {
    match (hot, cold) {
        (Some(hot), Some(cold)) if cold.p50_ms > 0.0 => Some(hot.p50_ms / cold.p50_ms),
        _ => None,
    }
}

/// Runs the configured query warmup + runs times; the latencies of the measured runs and the
/// last answer.
fn time_query(
    client: &Client,
    target: &BenchTarget,
    config: &CompactionConfig,
    progress: &dyn Progress,
) -> Result<(Vec<Duration>, Vec<Vec<serde_json::Value>>), BenchError> {
    let mut latencies = Vec::with_capacity(config.runs);
    let mut rows = Vec::new();
    for attempt in 0..config.warmup_runs + config.runs {
        let started = Instant::now();
        let answer = client.sql(&target.read_key, &config.sql)?;
        let latency = started.elapsed();
        progress.advance(1);
        if attempt >= config.warmup_runs {
            latencies.push(latency);
        }
        rows = answer.rows;
    }
    Ok((latencies, rows))
}

/// For each metric the compaction touched: `count(*)` and the cold rows `/api/v1/status` lists.
fn tier_checks(
    client: &Client,
    target: &BenchTarget,
    answer: &CompactAnswer,
) -> Result<Vec<TierCheck>, BenchError> {
    let status = client.status(&target.read_key)?;
    let listed = status
        .get("metrics")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| BenchError::Decode(format!("status has no metrics list: {status}")))?;
    let mut checks = Vec::new();
    for metric in &answer.metrics {
        let entry = listed
            .iter()
            .find(|m| m.get("metric").and_then(serde_json::Value::as_str) == Some(&metric.metric));
        let cold = entry.and_then(|m| m.get("cold"));
        let number = |name: &str| {
            cold.and_then(|c| c.get(name))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        let stored = client
            .sql(
                &target.read_key,
                &format!(
                    "SELECT count(*) FROM \"{}\"",
                    metric.metric.replace('"', "\"\"")
                ),
            )?
            .single_count()?;
        checks.push(TierCheck {
            metric: metric.metric.clone(),
            stored,
            cold_rows: number("rows"),
            cold_files: number("files"),
        });
    }
    Ok(checks)
}

/// The `FederatedScanExec` line(s) of `EXPLAIN <sql>`: the plan the planner picked.
pub fn explain_scan(
    client: &Client,
    target: &BenchTarget,
    sql: &str,
) -> Result<Option<String>, BenchError> {
    let answer = client.sql(&target.read_key, &format!("EXPLAIN {sql}"))?;
    let mut lines = Vec::new();
    for row in &answer.rows {
        for cell in row {
            if let Some(text) = cell.as_str() {
                lines.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|line| line.starts_with("FederatedScanExec"))
                        .map(str::to_string),
                );
            }
        }
    }
    lines.dedup();
    Ok((!lines.is_empty()).then(|| lines.join("\n")))
}
