//! Tenant isolation under a heavy query (issue 24): tenant A runs a cross join that can only
//! end at the server's query time limit, again and again, while tenant B does small durable
//! writes and `SELECT count(*)` in a loop. B's latencies are measured alone first, then next to
//! A's load. The target: B's write-ack p99 and count(*) p99 stay under 100 ms while A runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use strata_client::Client;

use crate::plot::{write_latency_plot_if_any, LatencySeries, PlotFile, Plots};
use crate::progress::{NoProgress, Progress};
use crate::report::{format_ms, ReportRow, ReportRows, RunInfo};
use crate::scenarios::BenchTarget;
use crate::stats::LatencySummary;
use crate::BenchError;

/// Rows of each `generate_series` in issue 24's cross join: 10^10 rows to sort, so it always
/// runs into the time limit.
pub const HEAVY_ROWS: u64 = 100_000;

/// Issue 24's cross join with `rows` rows on each side.
pub fn heavy_sql(rows: u64) -> String {
    format!(
        "SELECT a.value FROM generate_series(1,{rows}) a CROSS JOIN generate_series(1,{rows}) b \
         ORDER BY a.value DESC, b.value DESC LIMIT 1"
    )
}
/// Issue 24's target for B's write-ack p99 and count(*) p99 next to A's query.
pub const TARGET_P99_MS: f64 = 100.0;
/// Error messages kept per phase; the count of failures is always exact.
const MAX_KEPT_ERRORS: usize = 5;
/// Bound on one of A's queries. Far above any time limit: the issue measured answers 65-79 s
/// after a 30 s limit, and the run must wait for every answer, or the server would still be
/// running the query when it is asked to stop.
const HEAVY_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationConfig {
    /// Seconds B is measured alone.
    pub baseline_secs: u64,
    /// Seconds B is measured while A's heavy queries run.
    pub loaded_secs: u64,
    /// A's concurrent clients, each repeating the heavy query until the phase ends.
    pub heavy_clients: usize,
    /// Milliseconds between A starting its queries and B's measurement starting, so the
    /// queries are executing, not still being planned, when the measurement starts.
    pub heavy_head_start_ms: u64,
    /// Rows of each side of A's cross join ([`heavy_sql`]); tests make it small so A's
    /// queries end quickly whatever the server's deadline handling.
    pub heavy_rows: u64,
    /// Events in each of B's writes.
    pub events_per_write: usize,
    /// Milliseconds B waits between two operations: a small tenant, not a load generator.
    pub pause_ms: u64,
    /// B's metric.
    pub metric: String,
}

impl Default for IsolationConfig {
    fn default() -> Self {
        IsolationConfig {
            baseline_secs: 10,
            loaded_secs: 30,
            heavy_clients: 1,
            heavy_head_start_ms: 1_000,
            heavy_rows: HEAVY_ROWS,
            events_per_write: 10,
            pause_ms: 10,
            metric: "isolation_probe".to_string(),
        }
    }
}

/// Tenant B's figures in one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeFigures {
    pub seconds: f64,
    /// Round trip of each acknowledged (durable) write.
    pub write_ack: Option<LatencySummary>,
    /// Round trip of each `SELECT count(*)`.
    pub count: Option<LatencySummary>,
    pub failed_writes: usize,
    pub failed_counts: usize,
    /// The first few failures, verbatim.
    pub errors: Vec<String>,
}

/// Tenant A's heavy queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeavyFigures {
    pub queries: usize,
    /// How the queries ended: HTTP status ("422": the time limit), or "error" (no answer).
    pub outcomes: BTreeMap<String, usize>,
    /// Wall time of each query, from sending to the end of the answer; with a working
    /// deadline this sits near the server's query time limit.
    pub elapsed: Option<LatencySummary>,
    /// The first answer's error text (the time-limit message, normally).
    pub first_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsolationReport {
    pub run: RunInfo,
    pub parameters: IsolationConfig,
    pub target_p99_ms: f64,
    /// B alone.
    pub baseline: ProbeFigures,
    /// B while A's heavy queries run.
    pub loaded: ProbeFigures,
    pub heavy: HeavyFigures,
}

impl IsolationReport {
    /// B lost no operation and kept both p99s under the target next to A's load.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for (name, figures) in [("baseline", &self.baseline), ("loaded", &self.loaded)] {
            if figures.failed_writes + figures.failed_counts > 0 {
                failures.push(format!(
                    "isolation {name}: {} writes and {} counts of tenant B failed: {:?}",
                    figures.failed_writes, figures.failed_counts, figures.errors
                ));
            }
        }
        for (measure, summary) in [
            ("write-ack", &self.loaded.write_ack),
            ("count(*)", &self.loaded.count),
        ] {
            match summary {
                Some(s) if s.p99_ms < self.target_p99_ms => {}
                Some(s) => failures.push(format!(
                    "isolation: tenant B's {measure} p99 was {} next to the heavy query \
                     (target < {} ms)",
                    format_ms(s.p99_ms),
                    self.target_p99_ms
                )),
                None => failures.push(format!("isolation: no {measure} of tenant B completed")),
            }
        }
        failures
    }
}

impl ReportRows for IsolationReport {
    fn report_rows(&self) -> Vec<ReportRow> {
        let target = format!("p99 < {} ms under load", self.target_p99_ms);
        let mut rows = Vec::new();
        for (phase, figures) in [("alone", &self.baseline), ("loaded", &self.loaded)] {
            for (measure, summary) in [
                ("B write ack", &figures.write_ack),
                ("B count(*)", &figures.count),
            ] {
                let value = summary.as_ref().map_or("-".to_string(), |s| {
                    format!(
                        "{} / {} / {}",
                        format_ms(s.p50_ms),
                        format_ms(s.p99_ms),
                        format_ms(s.max_ms)
                    )
                });
                let shown_target = if phase == "loaded" { &target[..] } else { "" };
                rows.push(ReportRow::new(
                    "isolation",
                    &format!("{measure} p50 / p99 / max, {phase}"),
                    value,
                    shown_target,
                ));
            }
        }
        let outcomes: Vec<String> = self
            .heavy
            .outcomes
            .iter()
            .map(|(outcome, n)| format!("{n} x {outcome}"))
            .collect();
        let elapsed = self
            .heavy
            .elapsed
            .as_ref()
            .map_or("-".to_string(), |s| format!("max {}", format_ms(s.max_ms)));
        rows.push(ReportRow::new(
            "isolation",
            "A cross joins: outcomes, wall time",
            format!("{}; {elapsed}", outcomes.join(", ")),
            "ends at the query time limit",
        ));
        rows
    }
}

impl Plots for IsolationReport {
    /// `PREFIX-latency.png`: B's write ack and count(*), alone and next to A's query.
    fn write_plots(&self, dir: &Path, prefix: &str) -> Result<Vec<PlotFile>, BenchError> {
        let mut series = Vec::new();
        for (label, summary) in [
            ("B write ack, alone", &self.baseline.write_ack),
            ("B count(*), alone", &self.baseline.count),
            ("B write ack, A cross join", &self.loaded.write_ack),
            ("B count(*), A cross join", &self.loaded.count),
        ] {
            if let Some(summary) = summary {
                series.push(LatencySeries::from_summary(label, summary));
            }
        }
        Ok(write_latency_plot_if_any(
            dir,
            &format!("{prefix}-latency"),
            &format!("{prefix}: tenant B next to tenant A's cross join"),
            &series,
        )?
        .into_iter()
        .collect())
    }
}

/// Runs the scenario: `heavy` is tenant A (a read key suffices), `probe` tenant B (writes and
/// reads).
pub fn run_isolation(
    heavy: &BenchTarget,
    probe: &BenchTarget,
    config: &IsolationConfig,
) -> Result<IsolationReport, BenchError> {
    run_isolation_with(heavy, probe, config, &NoProgress)
}

/// [`run_isolation`] reporting progress (phases `"alone"` and `"loaded"`, in seconds).
pub fn run_isolation_with(
    heavy: &BenchTarget,
    probe: &BenchTarget,
    config: &IsolationConfig,
    progress: &dyn Progress,
) -> Result<IsolationReport, BenchError> {
    check_config(config)?;
    let run = RunInfo::new("isolation", &probe.base_url);
    let client = probe.client()?;
    // One write first so count(*) has a table to count from the start.
    let mut clock = ProbeClock::default();
    client.write_ndjson(&probe.write_key, probe_batch(config, &mut clock))?;

    progress.phase("alone", config.baseline_secs);
    let baseline = measure_probe(
        &client,
        probe,
        config,
        &mut clock,
        config.baseline_secs,
        progress,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::with_capacity(config.heavy_clients);
    for _ in 0..config.heavy_clients {
        let client = Client::with_timeout(&heavy.base_url, HEAVY_REQUEST_TIMEOUT)?;
        let key = heavy.read_key.clone();
        let (sql, stop, results) = (heavy_sql(config.heavy_rows), stop.clone(), results.clone());
        workers.push(std::thread::spawn(move || {
            heavy_loop(&client, &key, &sql, &stop, &results)
        }));
    }
    std::thread::sleep(Duration::from_millis(config.heavy_head_start_ms));
    progress.phase("loaded", config.loaded_secs);
    let loaded = measure_probe(
        &client,
        probe,
        config,
        &mut clock,
        config.loaded_secs,
        progress,
    );
    stop.store(true, Ordering::Relaxed);
    // The queries in flight run to the server's time limit; wait for their answers.
    progress.phase("waiting for A's last queries", 0);
    for worker in workers {
        worker
            .join()
            .map_err(|_| BenchError::ThreadPanicked("heavy query"))?;
    }
    let results = std::mem::take(
        &mut *results
            .lock()
            .map_err(|_| BenchError::ThreadPanicked("heavy query"))?,
    );
    Ok(IsolationReport {
        run,
        parameters: config.clone(),
        target_p99_ms: TARGET_P99_MS,
        baseline,
        loaded,
        heavy: heavy_figures(results),
    })
}

fn check_config(config: &IsolationConfig) -> Result<(), BenchError> {
    if config.baseline_secs == 0 || config.loaded_secs == 0 {
        return Err(BenchError::InvalidConfig(
            "both phases need at least 1 second".to_string(),
        ));
    }
    if config.heavy_rows == 0 {
        return Err(BenchError::InvalidConfig(
            "the cross join needs at least 1 row a side".to_string(),
        ));
    }
    if config.heavy_clients == 0 || config.heavy_clients > 64 {
        return Err(BenchError::InvalidConfig(format!(
            "heavy clients must be 1..=64, got {}",
            config.heavy_clients
        )));
    }
    if config.events_per_write == 0 || config.events_per_write > 10_000 {
        return Err(BenchError::InvalidConfig(format!(
            "events per write must be 1..=10000, got {}",
            config.events_per_write
        )));
    }
    if !config
        .metric
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(BenchError::InvalidConfig(format!(
            "the probe metric must be a plain SQL identifier, got {:?}",
            config.metric
        )));
    }
    Ok(())
}

/// How one heavy query ended.
struct HeavyResult {
    elapsed: Duration,
    outcome: String,
    error: Option<String>,
}

fn heavy_loop(
    client: &Client,
    key: &str,
    sql: &str,
    stop: &AtomicBool,
    results: &Mutex<Vec<HeavyResult>>,
) {
    let body = serde_json::json!({ "sql": sql, "format": "json" });
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let result =
            match client.send_json_raw(strata_client::Method::POST, "/api/v1/sql", key, &body) {
                Ok((status, text)) => HeavyResult {
                    elapsed: started.elapsed(),
                    outcome: status.as_u16().to_string(),
                    error: serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v["error"].as_str().map(str::to_string)),
                },
                Err(error) => HeavyResult {
                    elapsed: started.elapsed(),
                    outcome: "error".to_string(),
                    error: Some(error.to_string()),
                },
            };
        match results.lock() {
            Ok(mut results) => results.push(result),
            Err(_) => return,
        }
    }
}

fn heavy_figures(results: Vec<HeavyResult>) -> HeavyFigures {
    let mut outcomes = BTreeMap::new();
    for result in &results {
        *outcomes.entry(result.outcome.clone()).or_insert(0) += 1;
    }
    let elapsed: Vec<Duration> = results.iter().map(|r| r.elapsed).collect();
    HeavyFigures {
        queries: results.len(),
        outcomes,
        elapsed: LatencySummary::from_durations(&elapsed),
        first_error: results.iter().find_map(|r| r.error.clone()),
    }
}

/// Strictly increasing wall-clock timestamps for B's events, so every event is distinct.
#[derive(Default)]
struct ProbeClock {
    last_ms: i64,
}

impl ProbeClock {
    fn next(&mut self) -> i64 {
        // A clock before 1970 is a broken host; 0 still yields increasing timestamps.
        let now = strata_core::now_ms();
        self.last_ms = now.max(self.last_ms + 1);
        self.last_ms
    }
}

fn probe_batch(config: &IsolationConfig, clock: &mut ProbeClock) -> String {
    let mut body = String::new();
    for i in 0..config.events_per_write {
        let event = serde_json::json!({
            "metrictype": config.metric,
            "timestamp": clock.next(),
            "sensor": format!("s{i}"),
            "value": i,
        });
        body.push_str(&event.to_string());
        body.push('\n');
    }
    body
}

/// B's loop for `seconds`: one durable write, one count(*), a pause; repeated.
fn measure_probe(
    client: &Client,
    probe: &BenchTarget,
    config: &IsolationConfig,
    clock: &mut ProbeClock,
    seconds: u64,
    progress: &dyn Progress,
) -> ProbeFigures {
    let count_sql = format!("SELECT count(*) FROM {}", config.metric);
    let (mut writes, mut counts) = (Vec::new(), Vec::new());
    let (mut failed_writes, mut failed_counts) = (0, 0);
    let mut errors = Vec::new();
    let mut keep = |error: BenchError| {
        if errors.len() < MAX_KEPT_ERRORS {
            errors.push(error.to_string());
        }
    };
    let started = Instant::now();
    let mut reported = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        let body = probe_batch(config, clock);
        let sent = Instant::now();
        match client.write_ndjson(&probe.write_key, body) {
            Ok(ack) if ack.accepted == config.events_per_write as u64 => {
                writes.push(sent.elapsed())
            }
            Ok(ack) => {
                failed_writes += 1;
                keep(BenchError::Check(format!(
                    "write not fully accepted: {ack:?}"
                )));
            }
            Err(error) => {
                failed_writes += 1;
                keep(error.into());
            }
        }
        let sent = Instant::now();
        match client.sql(&probe.read_key, &count_sql) {
            Ok(_) => counts.push(sent.elapsed()),
            Err(error) => {
                failed_counts += 1;
                keep(error.into());
            }
        }
        let elapsed = started.elapsed().as_secs().min(seconds);
        progress.advance(elapsed - reported);
        reported = elapsed;
        std::thread::sleep(Duration::from_millis(config.pause_ms));
    }
    ProbeFigures {
        seconds: started.elapsed().as_secs_f64(),
        write_ack: LatencySummary::from_durations(&writes),
        count: LatencySummary::from_durations(&counts),
        failed_writes,
        failed_counts,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(p99: f64) -> Option<LatencySummary> {
        LatencySummary::from_millis(vec![1.0, p99])
    }

    fn figures(p99: f64) -> ProbeFigures {
        ProbeFigures {
            seconds: 1.0,
            write_ack: summary(p99),
            count: summary(p99),
            failed_writes: 0,
            failed_counts: 0,
            errors: Vec::new(),
        }
    }

    fn report(loaded_p99: f64) -> IsolationReport {
        IsolationReport {
            run: RunInfo::new("isolation", "http://x"),
            parameters: IsolationConfig::default(),
            target_p99_ms: TARGET_P99_MS,
            baseline: figures(5.0),
            loaded: figures(loaded_p99),
            heavy: heavy_figures(vec![HeavyResult {
                elapsed: Duration::from_secs(30),
                outcome: "422".to_string(),
                error: Some("time limit".to_string()),
            }]),
        }
    }

    #[test]
    fn passes_only_when_both_loaded_p99s_are_under_the_target() {
        assert!(report(20.0).passed());
        let slow = report(76_700.0);
        assert_eq!(slow.failures().len(), 2, "{:?}", slow.failures());
        assert_eq!(slow.heavy.outcomes["422"], 1);
        assert_eq!(slow.report_rows().len(), 5);
    }

    #[test]
    fn probe_events_are_distinct_and_named_by_the_metric() {
        let config = IsolationConfig::default();
        let mut clock = ProbeClock::default();
        let body = probe_batch(&config, &mut clock);
        let stamps: Vec<i64> = body
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .inspect(|event| assert_eq!(event["metrictype"], "isolation_probe"))
            .map(|event| event["timestamp"].as_i64().unwrap())
            .collect();
        assert_eq!(stamps.len(), config.events_per_write);
        assert!(stamps.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
