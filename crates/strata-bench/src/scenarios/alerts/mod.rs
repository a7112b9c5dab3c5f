//! Alerts (issue 15), measured from outside: a webhook receiver inside the benchmark
//! ([`crate::webhook`]) and the alert API over HTTP.
//!
//! 1. [`event`]: write acknowledgement to webhook received, for an event rule (target: p99 at
//!    most 100 ms).
//! 2. [`absence`]: detection delay of an absence rule when a device goes silent (target: at
//!    most the rule's duration plus 1 s).
//! 3. [`query`]: evaluation lag of 1,000 query rules every second over 1,000 devices while
//!    ingest runs (target: p99 at most `every` plus 1 s).
//! 4. [`throughput`]: ingest throughput with 100 event rules active against none (target: at
//!    most 10% below).
//!
//! Each part deletes its rules when done; a count of 0 skips a part.

mod absence;
mod api;
mod event;
mod query;
mod throughput;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use absence::{AbsenceDelay, ABSENCE_METRIC};
pub use api::NAME_PREFIX;
pub use event::{EventLatency, EVENT_CONDITION, EVENT_METRIC};
pub use query::{LagSample, QueryLag, QUERY_METRIC};
pub(crate) use throughput::{compare_phases, run_phase, with_rules};
pub use throughput::{IngestComparison, IngestPhase};

use crate::generator::GeneratorConfig;
use crate::plot::{write_latency_plot_if_any, LatencySeries, PlotFile, Plots};
use crate::progress::{NoProgress, Progress};
use crate::report::{ReportRow, ReportRows, RunInfo};
use crate::scenarios::BenchTarget;
use crate::webhook::WebhookReceiver;
use crate::{BenchError, IngestConfig};

/// The webhook channel of parts 1 and 2.
const CHANNEL: &str = "bench_alerts_hook";
/// Target of part 1: write ack to webhook p99.
pub const EVENT_TARGET_P99_MS: f64 = 100.0;
/// Target of parts 2 and 3: at most the rule's duration (or interval) plus this.
pub const SLACK_MS: f64 = 1_000.0;
/// Target of part 4: ingest with rules over ingest without.
pub const INGEST_TARGET_RATIO: f64 = 0.9;
/// Most query rules (the server's limit per tenant).
pub const MAX_QUERY_RULES: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsConfig {
    /// Part 1: measured writes (each one notification), after `event_warmup` unmeasured ones.
    pub event_samples: usize,
    pub event_warmup: usize,
    /// Part 1: how long one notification is waited for.
    pub sample_timeout_ms: u64,
    /// Part 2: devices stopped (one sample each), the rule's duration, the heartbeat
    /// interval, and the time between two devices stopping.
    pub absence_samples: usize,
    pub absence_for_ms: u64,
    pub absence_heartbeat_ms: u64,
    pub absence_stagger_ms: u64,
    /// Part 3: query rules, devices, each rule's interval, and the ingest beside them.
    pub query_rules: usize,
    pub query_devices: usize,
    pub query_every_ms: u64,
    /// Part 3: seconds the rules run under ingest; lags are read every `query_sample_secs`
    /// after `query_warmup_secs`.
    pub query_secs: u64,
    pub query_warmup_secs: u64,
    pub query_sample_secs: u64,
    /// Part 3: every this many milliseconds, one event per device.
    pub query_ingest_interval_ms: u64,
    /// Part 4: event rules, rounds (each one phase without rules and one with), and the
    /// ingest of one phase.
    pub ingest_rules: usize,
    pub ingest_rounds: usize,
    pub ingest: IngestConfig,
    /// Where the webhook receiver listens, and the URL the server is given for it (default:
    /// `http://` + the address it listens on).
    pub webhook_listen: String,
    pub webhook_url: Option<String>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            event_samples: 300,
            event_warmup: 10,
            sample_timeout_ms: 5_000,
            absence_samples: 5,
            absence_for_ms: 2_000,
            absence_heartbeat_ms: 200,
            absence_stagger_ms: 1_000,
            query_rules: 1_000,
            query_devices: 1_000,
            query_every_ms: 1_000,
            query_secs: 60,
            query_warmup_secs: 15,
            query_sample_secs: 5,
            query_ingest_interval_ms: 200,
            ingest_rules: 100,
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
            webhook_listen: "127.0.0.1:0".to_string(),
            webhook_url: None,
        }
    }
}

impl AlertsConfig {
    pub fn validate(&self) -> Result<(), BenchError> {
        let check = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(BenchError::InvalidConfig(what.to_string()))
            }
        };
        check(
            self.event_samples <= 100_000,
            "event samples: at most 100,000",
        )?;
        check(
            self.sample_timeout_ms >= 1,
            "the sample timeout must be positive",
        )?;
        check(self.absence_samples <= 100, "absence samples: at most 100")?;
        check(
            (1_000..=3_600_000).contains(&self.absence_for_ms),
            "the absence duration must be 1 s to 1 h",
        )?;
        check(
            (10..=60_000).contains(&self.absence_heartbeat_ms)
                && self.absence_heartbeat_ms < self.absence_for_ms,
            "the heartbeat must be 10 ms to 60 s and shorter than the absence duration",
        )?;
        check(
            self.query_rules <= MAX_QUERY_RULES,
            "query rules: at most 1,000",
        )?;
        check(
            self.query_rules == 0 || (1..=1_000_000).contains(&self.query_devices),
            "query devices: 1 to 1,000,000",
        )?;
        check(
            (1_000..=86_400_000).contains(&self.query_every_ms),
            "the query rules' interval must be 1 s to 1 day",
        )?;
        check(
            self.query_rules == 0
                || (self.query_secs >= 1
                    && self.query_sample_secs >= 1
                    && self.query_ingest_interval_ms >= 1),
            "query seconds, sample seconds and the ingest interval must be positive",
        )?;
        check(
            self.ingest_rules <= MAX_QUERY_RULES,
            "ingest rules: at most 1,000",
        )?;
        if self.ingest_rounds > 0 {
            self.ingest.validate()?;
        }
        Ok(())
    }
}

/// Everything the alerts benchmark measured; a part that was skipped is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsReport {
    pub run: RunInfo,
    pub parameters: AlertsConfig,
    /// The URL the server delivered notifications to.
    pub webhook_url: String,
    /// Rules and channels of an earlier, interrupted run that were deleted first.
    pub leftovers_removed: usize,
    pub event: Option<EventLatency>,
    pub absence: Option<AbsenceDelay>,
    pub query: Option<QueryLag>,
    pub ingest: Option<IngestComparison>,
    /// Notifications delivered twice (same id) and dropped by the receiver.
    pub duplicate_notifications: u64,
}

/// Runs the alerts benchmark.
pub fn run_alerts(target: &BenchTarget, config: &AlertsConfig) -> Result<AlertsReport, BenchError> {
    run_alerts_with(target, config, &NoProgress)
}

/// [`run_alerts`] reporting progress, one phase per part.
pub fn run_alerts_with(
    target: &BenchTarget,
    config: &AlertsConfig,
    progress: &dyn Progress,
) -> Result<AlertsReport, BenchError> {
    config.validate()?;
    let run = RunInfo::new("alerts", &target.base_url);
    let api = api::AlertApi::new(target)?;
    let leftovers_removed = api.remove_leftovers()?;
    let (receiver, mut inbox) = WebhookReceiver::start(&config.webhook_listen)?;
    let webhook_url = config
        .webhook_url
        .clone()
        .unwrap_or_else(|| receiver.url("/strata-bench"));
    let notifying = config.event_samples > 0 || config.absence_samples > 0;
    if notifying {
        api.create_webhook(CHANNEL, &webhook_url)?;
    }
    let event = (config.event_samples > 0)
        .then(|| event::run(&api, &mut inbox, config, progress))
        .transpose()?;
    let absence = (config.absence_samples > 0)
        .then(|| absence::run(&api, &mut inbox, config, progress))
        .transpose()?;
    if notifying {
        api.delete_channel(CHANNEL)?;
    }
    drop(receiver);
    let query = (config.query_rules > 0)
        .then(|| query::run(&api, config, progress))
        .transpose()?;
    let ingest = (config.ingest_rounds > 0)
        .then(|| throughput::run(target, &api, config, progress))
        .transpose()?;
    Ok(AlertsReport {
        run,
        parameters: config.clone(),
        webhook_url,
        leftovers_removed,
        event,
        absence,
        query,
        ingest,
        duplicate_notifications: inbox.duplicates(),
    })
}

/// `12.345 / 67.890 / 99.000 ms`.
pub(crate) fn three(p50: f64, p99: f64, max: f64) -> String {
    format!("{p50:.3} / {p99:.3} / {max:.3} ms")
}

pub(crate) fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

impl AlertsReport {
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// Every target missed and every check failed, in words.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if let Some(event) = &self.event {
            failures.extend(event_failures(event));
        }
        if let Some(absence) = &self.absence {
            failures.extend(absence_failures(absence));
        }
        if let Some(query) = &self.query {
            failures.extend(query_failures(query));
        }
        if let Some(ingest) = &self.ingest {
            failures.extend(ingest_failures(ingest));
        }
        failures
    }
}

fn event_failures(event: &EventLatency) -> Vec<String> {
    let mut failures = Vec::new();
    if event.timeouts > 0 {
        failures.push(format!(
            "alerts event: {} of {} notifications did not arrive",
            event.timeouts, event.writes
        ));
    }
    match &event.ack_to_webhook {
        Some(l) if l.p99_ms <= EVENT_TARGET_P99_MS => {}
        Some(l) => failures.push(format!(
            "alerts event: write ack -> webhook p99 {:.3} ms (target <= {EVENT_TARGET_P99_MS} ms)",
            l.p99_ms
        )),
        None => failures.push("alerts event: no notification arrived".to_string()),
    }
    failures
}

fn absence_failures(absence: &AbsenceDelay) -> Vec<String> {
    let mut failures = Vec::new();
    let bound = absence.for_ms as f64 + SLACK_MS;
    if absence.missed + absence.early + absence.false_alarms > 0 {
        failures.push(format!(
            "alerts absence: {} missed, {} early, {} false alarms",
            absence.missed, absence.early, absence.false_alarms
        ));
    }
    match &absence.delay {
        Some(d) if d.max_ms <= bound => {}
        Some(d) => failures.push(format!(
            "alerts absence: detection delay up to {:.3} ms (target <= {bound} ms)",
            d.max_ms
        )),
        None => failures.push("alerts absence: no device's absence was notified".to_string()),
    }
    if let Some(error) = &absence.heartbeat_error {
        failures.push(format!("alerts absence: a heartbeat write failed: {error}"));
    }
    failures
}

fn query_failures(query: &QueryLag) -> Vec<String> {
    let mut failures = Vec::new();
    let bound = query.every_ms as f64 + SLACK_MS;
    match &query.lag {
        Some(l) if l.p99_ms <= bound && query.never_evaluated == 0 => {}
        Some(l) => failures.push(format!(
            "alerts query: evaluation lag p99 {:.0} ms, {} rules never evaluated (target p99 <= \
             {bound} ms, none unevaluated)",
            l.p99_ms, query.never_evaluated
        )),
        None => failures.push("alerts query: no rule was ever evaluated".to_string()),
    }
    if query.unhealthy > 0 {
        failures.push(format!(
            "alerts query: {} rules reported an evaluation error",
            query.unhealthy
        ));
    }
    if let Some(error) = &query.ingest_error {
        failures.push(format!("alerts query: an ingest write failed: {error}"));
    }
    failures
}

fn ingest_failures(ingest: &IngestComparison) -> Vec<String> {
    let mut failures = Vec::new();
    for phase in &ingest.phases {
        if phase.failed_batches + phase.rejected > 0 {
            failures.push(format!(
                "alerts ingest: {} batches failed, {} events rejected: {:?}",
                phase.failed_batches, phase.rejected, phase.failures
            ));
        }
    }
    match ingest.verdict_ratio() {
        Some(ratio) if ratio >= INGEST_TARGET_RATIO => {}
        Some(ratio) => failures.push(format!(
            "alerts ingest: {ratio:.3} of the rate without rules with {} event rules (target >= \
             {INGEST_TARGET_RATIO})",
            ingest.rules
        )),
        None => failures.push("alerts ingest: no rate to compare".to_string()),
    }
    failures
}

impl ReportRows for AlertsReport {
    fn report_rows(&self) -> Vec<ReportRow> {
        let mut rows = Vec::new();
        if let Some(event) = &self.event {
            rows.extend(event_rows(event));
        }
        if let Some(absence) = &self.absence {
            rows.extend(absence_rows(absence));
        }
        if let Some(query) = &self.query {
            rows.extend(query_rows(query));
        }
        if let Some(ingest) = &self.ingest {
            rows.extend(ingest_rows(ingest));
        }
        rows
    }
}

fn row(measure: &str, value: String, target: &str) -> ReportRow {
    ReportRow::new("alerts", measure, value, target)
}

fn event_rows(event: &EventLatency) -> Vec<ReportRow> {
    let mut rows = Vec::new();
    if let Some(l) = &event.ack_to_webhook {
        let met = l.p99_ms <= EVENT_TARGET_P99_MS;
        rows.push(row(
            &format!(
                "event rule `{}`: write ack -> webhook p50 / p99 / max",
                event.condition
            ),
            format!("{}: {}", three(l.p50_ms, l.p99_ms, l.max_ms), verdict(met)),
            "p99 <= 100 ms",
        ));
    }
    for (state, summary) in [("firing", &event.firing), ("resolved", &event.resolved)] {
        if let Some(l) = summary {
            rows.push(row(
                &format!("event rule: {state} notifications p50 / p99 / max"),
                three(l.p50_ms, l.p99_ms, l.max_ms),
                "",
            ));
        }
    }
    rows.push(row(
        "event rule: notifications received / writes",
        format!("{} / {}", event.received, event.writes),
        "all",
    ));
    rows
}

fn absence_rows(absence: &AbsenceDelay) -> Vec<ReportRow> {
    let bound = absence.for_ms as f64 + SLACK_MS;
    let mut rows = Vec::new();
    if let Some(d) = &absence.delay {
        rows.push(row(
            &format!(
                "absence rule (for {:.1} s): last write ack -> webhook p50 / max",
                absence.for_ms as f64 / 1000.0
            ),
            format!(
                "{:.3} / {:.3} s over {} devices: {}",
                d.p50_ms / 1000.0,
                d.max_ms / 1000.0,
                d.samples,
                verdict(d.max_ms <= bound)
            ),
            &format!("<= {:.1} s (for + 1 s)", bound / 1000.0),
        ));
    }
    rows.push(row(
        "absence rule: missed / early / false alarms",
        format!(
            "{} / {} / {}",
            absence.missed, absence.early, absence.false_alarms
        ),
        "0 / 0 / 0",
    ));
    rows
}

fn query_rows(query: &QueryLag) -> Vec<ReportRow> {
    let bound = query.every_ms as f64 + SLACK_MS;
    let mut rows = Vec::new();
    let what = format!(
        "{} query rules every {:.0} s over {} devices",
        query.rules,
        query.every_ms as f64 / 1000.0,
        query.devices
    );
    if let Some(l) = &query.lag {
        rows.push(row(
            &format!("{what}: evaluation lag p50 / p99 / max"),
            format!(
                "{:.3} / {:.3} / {:.3} s ({} readings of every rule): {}",
                l.p50_ms / 1000.0,
                l.p99_ms / 1000.0,
                l.max_ms / 1000.0,
                query.samples.len(),
                verdict(l.p99_ms <= bound && query.never_evaluated == 0)
            ),
            &format!("p99 <= {:.1} s (every + 1 s)", bound / 1000.0),
        ));
    }
    let on_time: Vec<usize> = query.samples.iter().map(|s| s.on_time).collect();
    rows.push(row(
        &format!(
            "query rules on time (lag <= {:.1} s) at a reading: fewest / most",
            bound / 1000.0
        ),
        format!(
            "{} / {} of {}",
            on_time.iter().min().unwrap_or(&0),
            on_time.iter().max().unwrap_or(&0),
            query.rules
        ),
        &format!("{} / {}", query.rules, query.rules),
    ));
    rows.push(row(
        "query rules: never evaluated (last reading) / unhealthy (worst reading)",
        format!("{} / {}", query.never_evaluated, query.unhealthy),
        "0 / 0",
    ));
    rows.push(row(
        "query rules: ingest beside them / rule creation",
        format!(
            "{:.0} events/s / {} rules in {:.1} s",
            query.ingest_events_per_s, query.rules, query.creation_s
        ),
        "",
    ));
    rows
}

fn ingest_rows(ingest: &IngestComparison) -> Vec<ReportRow> {
    let mut rows = vec![row(
        &format!("ingest events/s: no rules / {} event rules", ingest.rules),
        format!(
            "{:.0} / {:.0} ({} phases)",
            ingest.without_rules_events_per_s,
            ingest.with_rules_events_per_s,
            ingest.phases.len()
        ),
        "",
    )];
    if let Some((without, with)) = ingest.server_cpu_us_per_event {
        rows.push(row(
            "server CPU per event: no rules / rules",
            format!("{without:.2} / {with:.2} us ({:.3})", with / without),
            "",
        ));
    }
    if let Some(text) = ingest.ratio_text(INGEST_TARGET_RATIO) {
        rows.push(row("ingest with rules / without", text, ">= 0.90"));
    }
    rows
}

impl Plots for AlertsReport {
    /// `PREFIX-latency.png`: write ack to webhook (both states) of the event rule.
    fn write_plots(&self, dir: &Path, prefix: &str) -> Result<Vec<PlotFile>, BenchError> {
        let mut series = Vec::new();
        if let Some(event) = &self.event {
            for (label, summary) in [("firing", &event.firing), ("resolved", &event.resolved)] {
                if let Some(summary) = summary {
                    series.push(LatencySeries::from_summary(label, summary));
                }
            }
        }
        Ok(write_latency_plot_if_any(
            dir,
            &format!("{prefix}-latency"),
            &format!("{prefix}: event rule, write ack -> webhook received"),
            &series,
        )?
        .into_iter()
        .collect())
    }
}
