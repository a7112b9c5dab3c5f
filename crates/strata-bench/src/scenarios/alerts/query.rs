//! Part 3: evaluation lag of many query rules while ingest runs. `query_rules` rules, each an
//! average over one device's last 10 seconds of `thermostat` evaluated `every` second, while a
//! writer sends one event per device every `query_ingest_interval_ms`. Every
//! `query_sample_secs` the rule list (`GET /api/v1/alerts`) is read, and each rule's lag is the
//! time since its `last_evaluated_at` (since its `created_at` while it was never evaluated): a
//! rule evaluated on time never lags more than `every` plus the scheduler's tick.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strata_core::now_ms;

use super::api::AlertApi;
use super::{AlertsConfig, NAME_PREFIX};
use crate::progress::Progress;
use crate::stats::LatencySummary;
use crate::BenchError;

/// The metric of the query rules.
pub const QUERY_METRIC: &str = "thermostat";

/// What part 3 measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryLag {
    pub rules: usize,
    pub devices: usize,
    pub every_ms: u64,
    /// The SQL of the first rule (the others name another device).
    pub sql: String,
    /// Seconds it took to create every rule (each is planned on creation).
    pub creation_s: f64,
    /// Events written while the rules ran, and per second.
    pub ingest_events: u64,
    pub ingest_events_per_s: f64,
    pub ingest_error: Option<String>,
    /// One entry per reading of the rule list.
    pub samples: Vec<LagSample>,
    /// Every rule's lag at every reading (milliseconds): the time since its last evaluation,
    /// or since its creation when it was never evaluated.
    pub lag: Option<LatencySummary>,
    /// Rules never evaluated at the last reading.
    pub never_evaluated: usize,
    /// Most rules with `health: "error"` at one reading.
    pub unhealthy: usize,
}

/// One reading of the rule list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagSample {
    /// Seconds since the ingest started.
    pub at_s: f64,
    pub p50_ms: f64,
    pub max_ms: f64,
    pub never_evaluated: usize,
    /// Rules whose lag was at most `every` + 1 s (the target).
    pub on_time: usize,
    pub unhealthy: usize,
    /// Round trip of `GET /api/v1/alerts`.
    pub list_ms: f64,
}

fn device(i: usize) -> String {
    format!("d{i}")
}

/// Rule `i`: the average temperature of one device over the last 10 seconds.
fn rule(i: usize, config: &AlertsConfig) -> Value {
    json!({
        "name": format!("{NAME_PREFIX}q{i:04}"),
        "kind": "query",
        "sql": rule_sql(&device(i % config.query_devices)),
        "condition": "value > 90",
        "every": format!("{}ms", config.query_every_ms),
        "channels": [],
    })
}

fn rule_sql(device: &str) -> String {
    format!(
        "SELECT name, avg(temp) AS value FROM {QUERY_METRIC} WHERE timestamp > now() - \
         INTERVAL '10 seconds' AND name = '{device}' GROUP BY name"
    )
}

/// The ingest that runs beside the rules.
#[derive(Default)]
struct Ingest {
    events: Mutex<(u64, Option<String>)>,
    stop: AtomicBool,
}

pub(super) fn run(
    api: &AlertApi,
    config: &AlertsConfig,
    progress: &dyn Progress,
) -> Result<QueryLag, BenchError> {
    api.declare_metric(QUERY_METRIC, &["name"], &["temp"])?;
    // Every device has data before the rules are planned and first evaluated.
    api.write(device_events(config.query_devices, 0))?;
    let rules: Vec<Value> = (0..config.query_rules).map(|i| rule(i, config)).collect();
    let names: Vec<String> = rules
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    progress.phase("query rules: creating", 0);
    let creation = api.create_rules(&rules)?;
    let ingest = Ingest::default();
    let start = Instant::now();
    let samples = std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_until_stopped(api, config, &ingest));
        let samples = sample_lags(api, config, start, progress);
        ingest.stop.store(true, Ordering::SeqCst);
        writer
            .join()
            .map_err(|_| BenchError::ThreadPanicked("query-rule ingest"))?;
        samples
    });
    let ingest_secs = start.elapsed().as_secs_f64();
    progress.phase("query rules: deleting", 0);
    api.delete_rules(&names)?;
    let (samples, lags) = samples?;
    let (ingest_events, ingest_error) = ingest.events.into_inner().unwrap_or_default();
    Ok(QueryLag {
        rules: config.query_rules,
        devices: config.query_devices,
        every_ms: config.query_every_ms,
        sql: rule_sql(&device(0)),
        creation_s: creation.as_secs_f64(),
        ingest_events,
        ingest_events_per_s: ingest_events as f64 / ingest_secs.max(f64::EPSILON),
        ingest_error,
        never_evaluated: samples.last().map_or(0, |s| s.never_evaluated),
        unhealthy: samples.iter().map(|s| s.unhealthy).max().unwrap_or(0),
        lag: LatencySummary::from_millis(lags),
        samples,
    })
}

/// One event per device, with a temperature that never reaches the rules' condition.
fn device_events(devices: usize, round: u64) -> String {
    let now = now_ms();
    let mut body = String::with_capacity(devices * 80);
    for i in 0..devices {
        let temp = 18.0 + ((i as u64 + round) % 7) as f64;
        let event =
            json!({"metrictype": QUERY_METRIC, "timestamp": now, "name": device(i), "temp": temp});
        body.push_str(&format!("{event}\n"));
    }
    body
}

fn write_until_stopped(api: &AlertApi, config: &AlertsConfig, ingest: &Ingest) {
    let interval = Duration::from_millis(config.query_ingest_interval_ms);
    let mut round = 1;
    while !ingest.stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let written = api.write(device_events(config.query_devices, round));
        if let Ok(mut events) = ingest.events.lock() {
            match written {
                Ok(answer) => events.0 += answer.accepted,
                Err(error) => {
                    events.1.get_or_insert(error.to_string());
                }
            }
        }
        round += 1;
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

/// Reads the rule list every `query_sample_secs` after `query_warmup_secs`, until
/// `query_secs` have passed; the readings and every lag seen (milliseconds).
fn sample_lags(
    api: &AlertApi,
    config: &AlertsConfig,
    start: Instant,
    progress: &dyn Progress,
) -> Result<(Vec<LagSample>, Vec<f64>), BenchError> {
    let end = start + Duration::from_secs(config.query_secs);
    let mut next = start + Duration::from_secs(config.query_warmup_secs);
    let readings = config
        .query_secs
        .saturating_sub(config.query_warmup_secs)
        .div_ceil(config.query_sample_secs.max(1))
        .max(1);
    progress.phase("query rules: evaluating under ingest", readings);
    let (mut samples, mut lags) = (Vec::new(), Vec::new());
    loop {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let asked = Instant::now();
        let rules = api.list_rules()?;
        let answered_ms = now_ms();
        let list_ms = asked.elapsed().as_secs_f64() * 1000.0;
        let bound_ms = config.query_every_ms as f64 + super::SLACK_MS;
        let (sample, sample_lags) = read_lags(&rules, answered_ms, bound_ms);
        lags.extend(&sample_lags);
        samples.push(LagSample {
            at_s: (asked - start).as_secs_f64(),
            list_ms,
            ..sample
        });
        progress.advance(1);
        next += Duration::from_secs(config.query_sample_secs.max(1));
        if next > end {
            return Ok((samples, lags));
        }
    }
}

/// The lags of the scenario's query rules in one rule list read at `now_ms`; those at most
/// `bound_ms` are on time.
fn read_lags(rules: &[Value], now_ms: i64, bound_ms: f64) -> (LagSample, Vec<f64>) {
    let mut lags = Vec::new();
    let (mut never, mut unhealthy) = (0, 0);
    let ours = rules.iter().filter(|r| {
        r["kind"] == "query"
            && r["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(NAME_PREFIX))
    });
    for rule in ours {
        if rule["health"] == "error" {
            unhealthy += 1;
        }
        // A rule never evaluated lags since it was created.
        let evaluated = match rule["last_evaluated_at"].as_str() {
            Some(at) => Some(at),
            None => {
                never += 1;
                rule["created_at"].as_str()
            }
        };
        if let Some(at) = evaluated.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
            lags.push((now_ms - at.timestamp_millis()).max(0) as f64);
        }
    }
    let summary = LatencySummary::from_millis(lags.clone());
    let sample = LagSample {
        at_s: 0.0,
        p50_ms: summary.as_ref().map_or(0.0, |s| s.p50_ms),
        max_ms: summary.as_ref().map_or(0.0, |s| s.max_ms),
        never_evaluated: never,
        on_time: lags.iter().filter(|&&lag| lag <= bound_ms).count(),
        unhealthy,
        list_ms: 0.0,
    };
    (sample, lags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lags_are_read_from_last_evaluated_at() {
        let rules = vec![
            json!({"name": "bench_alerts_q0000", "kind": "query", "health": "ok",
                   "last_evaluated_at": "2026-01-01T00:00:00.000Z"}),
            json!({"name": "bench_alerts_q0001", "kind": "query", "health": "error",
                   "last_evaluated_at": "2026-01-01T00:00:01.500Z"}),
            json!({"name": "bench_alerts_q0002", "kind": "query", "health": "ok",
                   "last_evaluated_at": null, "created_at": "2026-01-01T00:00:01.000Z"}),
            // Not one of the scenario's rules.
            json!({"name": "user_rule", "kind": "query", "health": "ok",
                   "last_evaluated_at": "2025-01-01T00:00:00.000Z"}),
        ];
        // 2026-01-01T00:00:02Z
        let (sample, lags) = read_lags(&rules, 1_767_225_602_000, 1500.0);
        assert_eq!(lags, [2000.0, 500.0, 1000.0]);
        assert_eq!(sample.on_time, 2);
        assert_eq!(sample.never_evaluated, 1);
        assert_eq!(sample.unhealthy, 1);
        assert_eq!(sample.max_ms, 2000.0);
        let config = AlertsConfig::default();
        let first = rule(0, &config);
        assert_eq!(first["every"], "1000ms");
        assert!(first["sql"].as_str().unwrap().contains("name = 'd0'"));
    }
}
