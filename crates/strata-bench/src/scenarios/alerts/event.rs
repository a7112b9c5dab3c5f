//! Part 1: from a write's acknowledgement to the webhook notification it causes, for an event
//! rule (`temp > 90`, one instance per device). Writes alternately trigger and clear the rule,
//! each for a device of its own (`dev_N` is triggered, then cleared), so every notification
//! (`firing`, then `resolved`) is matched to its write by the device label and the state.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use strata_core::now_ms;

use super::api::AlertApi;
use super::{AlertsConfig, CHANNEL, NAME_PREFIX};
use crate::progress::Progress;
use crate::stats::LatencySummary;
use crate::webhook::Inbox;
use crate::BenchError;

/// The metric the event rule watches.
pub const EVENT_METRIC: &str = "bench_alert_event";
/// The event rule's condition.
pub const EVENT_CONDITION: &str = "temp > 90";

/// What part 1 measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLatency {
    pub rule: String,
    pub condition: String,
    /// Measured writes, each expecting one notification (warm-ups not included).
    pub writes: usize,
    /// Measured writes whose notification arrived.
    pub received: usize,
    /// Measured writes whose notification did not arrive within the sample timeout.
    pub timeouts: usize,
    /// Notifications that arrived before the write's own answer (counted as 0 ms).
    pub before_ack: usize,
    /// From the write's HTTP 200 to the webhook request's last byte, every notification.
    pub ack_to_webhook: Option<LatencySummary>,
    /// The same, `firing` notifications only.
    pub firing: Option<LatencySummary>,
    /// The same, `resolved` notifications only.
    pub resolved: Option<LatencySummary>,
    /// Round trip of the write itself (one event, durable before its answer).
    pub write_ack: Option<LatencySummary>,
}

/// Times collected while running.
#[derive(Default)]
struct Samples {
    all: Vec<Duration>,
    firing: Vec<Duration>,
    resolved: Vec<Duration>,
    writes: Vec<Duration>,
    timeouts: usize,
    before_ack: usize,
}

pub(super) fn rule_name() -> String {
    format!("{NAME_PREFIX}event")
}

/// Runs part 1 and deletes its rule.
pub(super) fn run(
    api: &AlertApi,
    inbox: &mut Inbox,
    config: &AlertsConfig,
    progress: &dyn Progress,
) -> Result<EventLatency, BenchError> {
    api.declare_metric(EVENT_METRIC, &["name"], &["temp"])?;
    let rule = rule_name();
    api.create_rule(&json!({
        "name": rule, "kind": "event", "metric": EVENT_METRIC, "condition": EVENT_CONDITION,
        "by": ["name"], "value": "temp", "channels": [CHANNEL],
    }))?;
    let total = config.event_warmup + config.event_samples;
    progress.phase("event rule: write -> webhook", total as u64);
    let mut samples = Samples::default();
    let timeout = Duration::from_millis(config.sample_timeout_ms);
    for write in 0..total {
        let measured = write >= config.event_warmup;
        one_write(api, inbox, &rule, write, timeout, measured, &mut samples)?;
        progress.advance(1);
    }
    api.delete_rules(std::slice::from_ref(&rule))?;
    let received = samples.all.len();
    Ok(EventLatency {
        rule,
        condition: EVENT_CONDITION.to_string(),
        writes: config.event_samples,
        received,
        timeouts: samples.timeouts,
        before_ack: samples.before_ack,
        ack_to_webhook: LatencySummary::from_durations(&samples.all),
        firing: LatencySummary::from_durations(&samples.firing),
        resolved: LatencySummary::from_durations(&samples.resolved),
        write_ack: LatencySummary::from_durations(&samples.writes),
    })
}

/// Write number `write`: even ones trigger device `dev_{write/2}` (temp above 90), odd ones
/// clear it; then wait for the matching notification.
fn one_write(
    api: &AlertApi,
    inbox: &mut Inbox,
    rule: &str,
    write: usize,
    timeout: Duration,
    measured: bool,
    samples: &mut Samples,
) -> Result<(), BenchError> {
    let device = format!("dev_{}", write / 2);
    let trigger = write.is_multiple_of(2);
    let (temp, state) = if trigger {
        (95.0 + (write % 7) as f64, "firing")
    } else {
        (20.0, "resolved")
    };
    let event =
        json!({"metrictype": EVENT_METRIC, "timestamp": now_ms(), "name": device, "temp": temp});
    let sent = Instant::now();
    api.write(format!("{event}\n"))?;
    let acked = Instant::now();
    let delivery = inbox.wait_for(acked + timeout, |d| {
        d.alert_and_state() == (rule, state) && d.label("name") == Some(device.as_str())
    });
    if !measured {
        return Ok(());
    }
    samples.writes.push(acked - sent);
    let Some(delivery) = delivery else {
        samples.timeouts += 1;
        return Ok(());
    };
    let latency = match delivery.at.checked_duration_since(acked) {
        Some(latency) => latency,
        None => {
            samples.before_ack += 1;
            Duration::ZERO
        }
    };
    samples.all.push(latency);
    if trigger {
        samples.firing.push(latency);
    } else {
        samples.resolved.push(latency);
    }
    Ok(())
}
