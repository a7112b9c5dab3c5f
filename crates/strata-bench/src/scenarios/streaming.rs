//! Streaming SQL (issue 16), measured from outside over HTTP.
//!
//! 1. Live query latency: a tail (`POST /api/v1/sql/live`, read as Server-Sent Events by
//!    [`strata_client::Client::sql_live`] on a thread of its own), then one write at a time;
//!    from each write's acknowledgement to the `rows` event carrying it (target: p99 at most
//!    50 ms).
//! 2. Rollup freshness: a 1-minute rollup of the same metric, then one write at a time; from
//!    each write's acknowledgement to the answer of `SELECT sum(n)` over the rollup, which must
//!    count the write (a read of a rollup waits for the maintenance cycle that includes every
//!    acknowledged write). Every answer is checked against the number of writes.
//! 3. Ingest with rollups: the ingest workload in phases without rollups and with
//!    `ingest_rollups` 1-minute rollups over `readings` and `diagnostics` (target: at most 15%
//!    slower). Rollups are created, and their backfill awaited, between phases.
//! 4. A query over `history_days` days of `history_devices` devices (one reading a minute)
//!    answered from a 1-minute rollup against the same answer from raw data: daily means per
//!    device, timed `query_runs` times each, and the two answers compared.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strata_client::Client;
use strata_core::now_ms;

use crate::generator::{
    GeneratorConfig, DIAGNOSTICS, DIAGNOSTICS_FIELDS, READINGS, READINGS_FIELDS,
};
use crate::progress::{NoProgress, Progress};
use crate::report::{ReportRow, ReportRows, RunInfo};
use crate::scenarios::alerts::{
    self, compare_phases, run_phase, verdict, with_rules as with_rollups, IngestComparison,
};
use crate::scenarios::BenchTarget;
use crate::schema::{apply_schema, workload_schema};
use crate::stats::LatencySummary;
use crate::{BenchError, IngestConfig};

/// The metric parts 1 and 2 write.
pub const LIVE_METRIC: &str = "bench_live";
/// Names of the rollups a run creates (and deletes, with any an interrupted run left).
pub const ROLLUP_PREFIX: &str = "bench_rollup_";
/// Target of part 1.
pub const LIVE_TARGET_P99_MS: f64 = 50.0;
/// Target of part 3: ingest with rollups over ingest without.
pub const INGEST_TARGET_RATIO: f64 = 0.85;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamingConfig {
    /// Parts 1 and 2: measured writes after `warmup` unmeasured ones (0 skips the part).
    pub live_samples: usize,
    pub rollup_samples: usize,
    pub warmup: usize,
    /// How long one live update is waited for.
    pub sample_timeout_ms: u64,
    /// Part 3: rollups, rounds (each one phase without and one with) and the ingest of a phase.
    pub ingest_rollups: usize,
    pub ingest_rounds: usize,
    pub ingest: IngestConfig,
    /// Part 4: days and devices of history (0 days skips the part), and timed runs per side.
    pub history_days: u32,
    pub history_devices: u32,
    pub query_runs: usize,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            live_samples: 300,
            rollup_samples: 300,
            warmup: 10,
            sample_timeout_ms: 5_000,
            ingest_rollups: 10,
            ingest_rounds: 2,
            ingest: IngestConfig {
                workload: GeneratorConfig {
                    trucks: 1_000,
                    // 2M events per phase.
                    intervals: 1_000,
                    ..GeneratorConfig::default()
                },
                verify_counts: false,
                ..IngestConfig::default()
            },
            history_days: 30,
            history_devices: 20,
            query_runs: 5,
        }
    }
}

impl StreamingConfig {
    pub fn validate(&self) -> Result<(), BenchError> {
        let invalid = |what: &str| Err(BenchError::InvalidConfig(what.to_string()));
        if self.live_samples > 100_000 || self.rollup_samples > 100_000 {
            return invalid("samples: at most 100,000 per part");
        }
        if self.sample_timeout_ms == 0 {
            return invalid("the sample timeout must be positive");
        }
        if self.ingest_rollups > 100 {
            return invalid("ingest rollups: at most 100 (the limit per tenant)");
        }
        if self.ingest_rounds > 0 {
            self.ingest.validate()?;
        }
        if self.history_days > 366 || self.history_devices > 1_000 || self.query_runs > 1_000 {
            return invalid("history: at most 366 days, 1,000 devices and 1,000 runs");
        }
        Ok(())
    }
}

/// Part 1 or 2: one latency per measured write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteToAnswer {
    pub writes: usize,
    /// Writes whose update never came (part 1) or whose answer did not count them (part 2).
    pub missed: usize,
    pub latency: Option<LatencySummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamingReport {
    pub run: RunInfo,
    pub parameters: StreamingConfig,
    pub live: Option<WriteToAnswer>,
    pub rollup: Option<WriteToAnswer>,
    pub ingest: Option<IngestComparison>,
    pub history: Option<RollupQuery>,
}

/// Part 4: the same answer from raw data and from a rollup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupQuery {
    pub days: u32,
    pub devices: u32,
    pub raw_rows: u64,
    pub raw_sql: String,
    pub rollup_sql: String,
    pub raw: Option<LatencySummary>,
    pub from_rollup: Option<LatencySummary>,
    /// Median raw time over median rollup time.
    pub speedup: Option<f64>,
    /// Whether both answers had the same groups and means (to 1e-9).
    pub same_answer: bool,
}

pub fn run_streaming(
    target: &BenchTarget,
    config: &StreamingConfig,
) -> Result<StreamingReport, BenchError> {
    run_streaming_with(target, config, &NoProgress)
}

pub fn run_streaming_with(
    target: &BenchTarget,
    config: &StreamingConfig,
    progress: &dyn Progress,
) -> Result<StreamingReport, BenchError> {
    config.validate()?;
    let run = RunInfo::new("streaming", &target.base_url);
    let admin = Client::new(&target.base_url, Some(target.admin_key.clone()))?;
    remove_rollups(&admin)?;
    let live = (config.live_samples > 0)
        .then(|| live_latency(target, config, progress))
        .transpose()?;
    let rollup = (config.rollup_samples > 0)
        .then(|| rollup_freshness(target, &admin, config, progress))
        .transpose()?;
    let ingest = (config.ingest_rounds > 0)
        .then(|| ingest_with_rollups(target, &admin, config, progress))
        .transpose()?;
    let history = (config.history_days > 0 && config.query_runs > 0)
        .then(|| history_query(target, &admin, config, progress))
        .transpose()?;
    remove_rollups(&admin)?;
    Ok(StreamingReport {
        run,
        parameters: config.clone(),
        live,
        rollup,
        ingest,
        history,
    })
}

fn write_one(target: &BenchTarget, client: &Client, device: &str) -> Result<(), BenchError> {
    let event =
        json!({"metrictype": LIVE_METRIC, "timestamp": now_ms(), "name": device, "temp": 1.0});
    let answer = client.write_ndjson(&target.write_key, format!("{event}\n"))?;
    if answer.accepted != 1 {
        return Err(BenchError::InvalidConfig(format!(
            "a streaming benchmark write was not accepted: {answer:?}"
        )));
    }
    Ok(())
}

/// Part 1.
fn live_latency(
    target: &BenchTarget,
    config: &StreamingConfig,
    progress: &dyn Progress,
) -> Result<WriteToAnswer, BenchError> {
    let client = target.client()?;
    write_one(target, &client, "seed")?;
    let reader = Client::new(&target.base_url, Some(target.read_key.clone()))?;
    let (rows, arrived) = mpsc::channel::<(Instant, Value)>();
    let sql = format!("SELECT name FROM {LIVE_METRIC} WHERE name <> 'seed'");
    std::thread::spawn(move || {
        let _ = reader.sql_live(&json!({ "sql": sql }), |event, data| {
            event == "snapshot" || rows.send((Instant::now(), data)).is_ok()
        });
    });
    // The first write's update also says the stream is open.
    std::thread::sleep(Duration::from_millis(200));
    let total = config.warmup + config.live_samples;
    progress.phase("live query: write ack -> SSE rows event", total as u64);
    let timeout = Duration::from_millis(config.sample_timeout_ms);
    let (mut latencies, mut missed) = (Vec::new(), 0);
    for write in 0..total {
        let device = format!("live_{write}");
        write_one(target, &client, &device)?;
        let acked = Instant::now();
        let seen = wait_for_row(&arrived, &device, acked + timeout);
        if write >= config.warmup {
            match seen {
                Some(at) => latencies.push(at.saturating_duration_since(acked)),
                None => missed += 1,
            }
        }
        progress.advance(1);
    }
    Ok(WriteToAnswer {
        writes: config.live_samples,
        missed,
        latency: LatencySummary::from_durations(&latencies),
    })
}

/// When the `rows` event carrying `device` arrived, if before `deadline`.
fn wait_for_row(
    arrived: &mpsc::Receiver<(Instant, Value)>,
    device: &str,
    deadline: Instant,
) -> Option<Instant> {
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let (at, data) = arrived.recv_timeout(left).ok()?;
        let rows = data["rows"].as_array().cloned().unwrap_or_default();
        if rows.iter().any(|row| row[0] == device) {
            return Some(at);
        }
    }
}

/// Part 2.
fn rollup_freshness(
    target: &BenchTarget,
    admin: &Client,
    config: &StreamingConfig,
    progress: &dyn Progress,
) -> Result<WriteToAnswer, BenchError> {
    let client = target.client()?;
    write_one(target, &client, "seed")?;
    let name = format!("{ROLLUP_PREFIX}fresh");
    let sql = format!(
        "SELECT date_bin(INTERVAL '1 minute', timestamp) AS timestamp, count(*) AS n \
         FROM {LIVE_METRIC} GROUP BY 1"
    );
    create_rollup(admin, &name, &sql)?;
    let total = config.warmup + config.rollup_samples;
    progress.phase(
        "rollup: write ack -> rollup answer counting it",
        total as u64,
    );
    let (mut latencies, mut missed) = (Vec::new(), 0);
    for write in 0..total {
        write_one(target, &client, &format!("fresh_{write}"))?;
        let acked = Instant::now();
        // A strict time bound keeps the count over raw rows: query routing (which takes only
        // bounds on bucket boundaries) would otherwise answer it from the rollup itself.
        let raw = client.sql(
            &target.read_key,
            &format!("SELECT count(*) FROM {LIVE_METRIC} WHERE timestamp > '1970-01-01T00:00:00Z'"),
        );
        let answer = client.sql(&target.read_key, &format!("SELECT sum(n) FROM {name}"));
        let answered = Instant::now();
        let rollup_count = answer?.single_count()?;
        let raw_count = raw?.single_count()?;
        if write >= config.warmup {
            if rollup_count == raw_count {
                latencies.push(answered - acked);
            } else {
                missed += 1;
            }
        }
        progress.advance(1);
    }
    Ok(WriteToAnswer {
        writes: config.rollup_samples,
        missed,
        latency: LatencySummary::from_durations(&latencies),
    })
}

fn create_rollup(admin: &Client, name: &str, sql: &str) -> Result<(), BenchError> {
    admin.post(
        &["api", "v1", "rollups"],
        &json!({"name": name, "sql": sql}),
    )?;
    admin.get_with_query(&["api", "v1", "rollups", name], &[("sync", "true")])?;
    Ok(())
}

/// Deletes every rollup this benchmark creates, including an interrupted run's.
fn remove_rollups(admin: &Client) -> Result<(), BenchError> {
    let listed = admin.get(&["api", "v1", "rollups"])?;
    for rollup in listed["rollups"].as_array().cloned().unwrap_or_default() {
        let Some(name) = rollup["name"].as_str() else {
            continue;
        };
        if name.starts_with(ROLLUP_PREFIX) {
            admin.delete(&["api", "v1", "rollups", name])?;
        }
    }
    Ok(())
}

/// Rollup `i` of part 3: a sensor of `readings` (even) or `diagnostics` (odd) per fleet and
/// minute.
fn ingest_rollup(i: usize) -> (String, String) {
    let (metric, field) = if i.is_multiple_of(2) {
        (READINGS, READINGS_FIELDS[(i / 2) % READINGS_FIELDS.len()])
    } else {
        (
            DIAGNOSTICS,
            DIAGNOSTICS_FIELDS[(i / 2) % DIAGNOSTICS_FIELDS.len()],
        )
    };
    let sql = format!(
        "SELECT date_bin(INTERVAL '1 minute', timestamp) AS timestamp, fleet, avg({field}) AS \
         mean, max({field}) AS top, count(*) AS n FROM {metric} GROUP BY 1, 2"
    );
    (format!("{ROLLUP_PREFIX}ingest{i:02}"), sql)
}

/// Part 3, phases none, rollups, rollups, none ... (as the alerts benchmark's part 4).
fn ingest_with_rollups(
    target: &BenchTarget,
    admin: &Client,
    config: &StreamingConfig,
    progress: &dyn Progress,
) -> Result<IngestComparison, BenchError> {
    let client = target.client()?;
    apply_schema(&client, &target.admin_key, &workload_schema())?;
    let rollups: Vec<(String, String)> = (0..config.ingest_rollups).map(ingest_rollup).collect();
    let mut created = false;
    let mut phases = Vec::new();
    for phase in 0..config.ingest_rounds * 2 {
        let want = with_rollups(phase) && !rollups.is_empty();
        if want && !created {
            for (name, sql) in &rollups {
                create_rollup(admin, name, sql)?;
            }
        } else if !want && created {
            remove_rollups(admin)?;
        }
        created = want;
        let active = if want { rollups.len() } else { 0 };
        phases.push(run_phase(target, &config.ingest, phase, active, progress)?);
    }
    let example = rollups
        .first()
        .map(|(_, sql)| sql.clone())
        .unwrap_or_default();
    Ok(compare_phases(config.ingest_rollups, example, phases))
}

/// The metric part 4 fills.
pub const HISTORY_METRIC: &str = "bench_history";
const MINUTE_MS: i64 = 60_000;

/// Part 4.
fn history_query(
    target: &BenchTarget,
    admin: &Client,
    config: &StreamingConfig,
    progress: &dyn Progress,
) -> Result<RollupQuery, BenchError> {
    let client = target.client()?;
    let minutes = i64::from(config.history_days) * 1_440;
    let start_ms = (now_ms() / MINUTE_MS - minutes) * MINUTE_MS;
    progress.phase("history: one reading a minute per device", minutes as u64);
    let mut body = String::new();
    for minute in 0..minutes {
        for device in 0..config.history_devices {
            let temp = ((minute * 7 + i64::from(device) * 13) % 400) as f64 / 4.0;
            let at = start_ms + minute * MINUTE_MS + i64::from(device);
            body.push_str(&format!(
                "{{\"metrictype\":\"{HISTORY_METRIC}\",\"timestamp\":{at},\"name\":\"d{device}\",\"temp\":{temp}}}\n"
            ));
        }
        if body.len() > 4 << 20 || minute + 1 == minutes {
            client.write_ndjson(&target.write_key, std::mem::take(&mut body))?;
        }
        progress.advance(1);
    }
    let name = format!("{ROLLUP_PREFIX}history");
    create_rollup(
        admin,
        &name,
        &format!(
            "SELECT date_bin(INTERVAL '1 minute', timestamp) AS timestamp, name, sum(CAST(temp AS DOUBLE)) \
             AS total, count(temp) AS n FROM {HISTORY_METRIC} GROUP BY 1, 2"
        ),
    )?;
    let raw_sql = format!(
        "SELECT name, date_trunc('day', timestamp) AS day, avg(CAST(temp AS DOUBLE)) AS mean \
         FROM \
         {HISTORY_METRIC} GROUP BY 1, 2 ORDER BY 1, 2"
    );
    let rollup_sql = format!(
        "SELECT name, date_trunc('day', timestamp) AS day, sum(total) / sum(n) AS mean FROM \
         {name} GROUP BY 1, 2 ORDER BY 1, 2"
    );
    let (raw, raw_answer) = timed(&client, target, &raw_sql, config.query_runs)?;
    let (from_rollup, rollup_answer) = timed(&client, target, &rollup_sql, config.query_runs)?;
    let raw_rows = client
        .sql(
            &target.read_key,
            &format!("SELECT count(*) FROM {HISTORY_METRIC}"),
        )?
        .single_count()?;
    let speedup = match (&raw, &from_rollup) {
        (Some(r), Some(f)) if f.p50_ms > 0.0 => Some(r.p50_ms / f.p50_ms),
        _ => None,
    };
    Ok(RollupQuery {
        days: config.history_days,
        devices: config.history_devices,
        raw_rows,
        same_answer: same_means(&raw_answer, &rollup_answer),
        raw_sql,
        rollup_sql,
        raw,
        from_rollup,
        speedup,
    })
}

/// Runs `sql` `runs` times; the latencies and the last answer's rows.
fn timed(
    client: &Client,
    target: &BenchTarget,
    sql: &str,
    runs: usize,
) -> Result<(Option<LatencySummary>, Vec<Value>), BenchError> {
    let mut times = Vec::with_capacity(runs);
    let mut rows = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let answer = client.sql(&target.read_key, sql)?;
        times.push(started.elapsed());
        rows = answer.rows.into_iter().map(Value::Array).collect();
    }
    Ok((LatencySummary::from_durations(&times), rows))
}

/// Same groups in the same order, means equal to 1e-9.
fn same_means(left: &[Value], right: &[Value]) -> bool {
    left.len() == right.len()
        && !left.is_empty()
        && left.iter().zip(right).all(|(a, b)| {
            a[0] == b[0]
                && a[1] == b[1]
                && match (a[2].as_f64(), b[2].as_f64()) {
                    (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                    _ => false,
                }
        })
}

fn three(l: &LatencySummary) -> String {
    alerts::three(l.p50_ms, l.p99_ms, l.max_ms)
}

impl StreamingReport {
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if let Some(live) = &self.live {
            match &live.latency {
                Some(l) if l.p99_ms <= LIVE_TARGET_P99_MS && live.missed == 0 => {}
                _ => failures.push(format!(
                    "streaming live: p99 {:?} ms, {} of {} updates missing (target p99 <= \
                     {LIVE_TARGET_P99_MS} ms, none missing)",
                    live.latency.as_ref().map(|l| l.p99_ms),
                    live.missed,
                    live.writes
                )),
            }
        }
        if let Some(rollup) = &self.rollup {
            if rollup.missed > 0 {
                failures.push(format!(
                    "streaming rollup: {} of {} answers did not equal the raw count",
                    rollup.missed, rollup.writes
                ));
            }
        }
        if let Some(history) = &self.history {
            if !history.same_answer {
                failures.push(
                    "streaming history: the rollup's answer differs from the raw data's".into(),
                );
            }
        }
        if let Some(ingest) = &self.ingest {
            match ingest.verdict_ratio() {
                Some(r) if r >= INGEST_TARGET_RATIO => {}
                other => failures.push(format!(
                    "streaming ingest: {other:?} of the rate without rollups with {} rollups \
                     (target >= {INGEST_TARGET_RATIO})",
                    ingest.rules
                )),
            }
        }
        failures
    }

    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }
}

impl ReportRows for StreamingReport {
    fn report_rows(&self) -> Vec<ReportRow> {
        let row = |measure: &str, value: String, target: &str| {
            ReportRow::new("streaming", measure, value, target)
        };
        let mut rows = Vec::new();
        if let Some(live) = &self.live {
            if let Some(l) = &live.latency {
                let met = l.p99_ms <= LIVE_TARGET_P99_MS && live.missed == 0;
                rows.push(row(
                    "live tail: write ack -> SSE rows event p50 / p99 / max",
                    format!("{}: {}", three(l), verdict(met)),
                    "p99 <= 50 ms",
                ));
            }
            rows.push(row(
                "live tail: updates missing / writes",
                format!("{} / {}", live.missed, live.writes),
                "0",
            ));
        }
        if let Some(rollup) = &self.rollup {
            if let Some(l) = &rollup.latency {
                rows.push(row(
                    "rollup: write ack -> rollup answer counting it p50 / p99 / max",
                    three(l),
                    "",
                ));
            }
            rows.push(row(
                "rollup: answers not equal to the raw count / writes",
                format!("{} / {}", rollup.missed, rollup.writes),
                "0",
            ));
        }
        if let Some(ingest) = &self.ingest {
            rows.push(row(
                &format!("ingest events/s: no rollups / {} rollups", ingest.rules),
                format!(
                    "{:.0} / {:.0} ({} phases)",
                    ingest.without_rules_events_per_s,
                    ingest.with_rules_events_per_s,
                    ingest.phases.len()
                ),
                "",
            ));
            if let Some(text) = ingest.ratio_text(INGEST_TARGET_RATIO) {
                rows.push(row("ingest with rollups / without", text, ">= 0.85"));
            }
        }
        if let Some(history) = &self.history {
            if let (Some(raw), Some(fast)) = (&history.raw, &history.from_rollup) {
                rows.push(row(
                    &format!(
                        "daily means of {} devices over {} days ({} rows): raw / 1-minute rollup, median",
                        history.devices, history.days, history.raw_rows
                    ),
                    format!(
                        "{:.3} / {:.3} ms ({:.1}x), same answer: {}",
                        raw.p50_ms,
                        fast.p50_ms,
                        history.speedup.unwrap_or(0.0),
                        history.same_answer
                    ),
                    "same answer",
                ));
            }
        }
        rows
    }
}

impl crate::plot::Plots for StreamingReport {
    fn write_plots(
        &self,
        _dir: &std::path::Path,
        _prefix: &str,
    ) -> Result<Vec<crate::plot::PlotFile>, BenchError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_rollups_cover_both_metrics_with_distinct_names() {
        let (first, sql) = ingest_rollup(0);
        assert_eq!(first, "bench_rollup_ingest00");
        assert!(sql.contains("FROM readings"), "{sql}");
        assert!(ingest_rollup(1).1.contains("FROM diagnostics"));
        let order: Vec<bool> = (0..4).map(with_rollups).collect();
        assert_eq!(order, [false, true, true, false]);
    }
}
