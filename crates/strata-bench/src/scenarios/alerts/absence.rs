//! Part 2: how long after a device went silent its absence rule notifies. Devices `ab_0` ...
//! send a heartbeat every `absence_heartbeat_ms`; once every instance is known, they stop one
//! after another (`absence_stagger_ms` apart) while `ab_live` keeps sending. The delay of a
//! device is from the acknowledgement of the last write that carried it to the `firing`
//! webhook naming it; the rule's duration (`for`) is part of it by definition.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use strata_core::now_ms;

use super::api::AlertApi;
use super::{AlertsConfig, CHANNEL, NAME_PREFIX};
use crate::progress::Progress;
use crate::stats::LatencySummary;
use crate::webhook::{Delivery, Inbox};
use crate::BenchError;

/// The metric the absence rule watches.
pub const ABSENCE_METRIC: &str = "bench_alert_absence";
/// The device that never stops: a notification naming it is a false alarm.
const LIVE_DEVICE: &str = "ab_live";
/// How long past its expected time a device's notification is waited for.
const GRACE: Duration = Duration::from_secs(10);

/// What part 2 measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbsenceDelay {
    pub rule: String,
    /// The rule's silence duration.
    pub for_ms: u64,
    pub heartbeat_ms: u64,
    /// Devices stopped (one sample each).
    pub devices_stopped: usize,
    /// From the last acknowledged write of a stopped device to its `firing` webhook.
    pub delay: Option<LatencySummary>,
    /// Stopped devices whose notification did not arrive.
    pub missed: usize,
    /// Notifications that came sooner than `for` after the device's last write.
    pub early: usize,
    /// `firing` notifications for the device that never stopped.
    pub false_alarms: usize,
    /// Heartbeat writes made, and the first error of one that failed.
    pub heartbeats: u64,
    pub heartbeat_error: Option<String>,
}

/// The heartbeat writer's state, shared with the measuring thread.
struct Heartbeats {
    /// For each stopping device, when the last write carrying it was acknowledged.
    last_ack: Mutex<Vec<Option<Instant>>>,
    writes: Mutex<(u64, Option<String>)>,
    stop: AtomicBool,
}

/// When device `k` stops sending, from the start of the heartbeats: once every instance has
/// been seen for longer than `for`, then `stagger` apart.
fn stop_after(config: &AlertsConfig, k: usize) -> Duration {
    Duration::from_millis(config.absence_for_ms + 1_000 + k as u64 * config.absence_stagger_ms)
}

pub(super) fn run(
    api: &AlertApi,
    inbox: &mut Inbox,
    config: &AlertsConfig,
    progress: &dyn Progress,
) -> Result<AbsenceDelay, BenchError> {
    api.declare_metric(ABSENCE_METRIC, &["name"], &["temp"])?;
    let rule = format!("{NAME_PREFIX}absence");
    api.create_rule(&json!({
        "name": rule, "kind": "absence", "metric": ABSENCE_METRIC, "by": ["name"],
        "for": format!("{}ms", config.absence_for_ms), "channels": [CHANNEL],
        "send_resolved": false,
    }))?;
    let devices = config.absence_samples;
    progress.phase("absence rule: silence -> webhook", devices as u64);
    let beats = Heartbeats {
        last_ack: Mutex::new(vec![None; devices]),
        writes: Mutex::new((0, None)),
        stop: AtomicBool::new(false),
    };
    let start = Instant::now();
    let received = std::thread::scope(|scope| {
        let writer = scope.spawn(|| heartbeat(api, config, &beats, start));
        let received = wait_for_each(inbox, &rule, config, start, progress);
        beats.stop.store(true, Ordering::SeqCst);
        writer
            .join()
            .map_err(|_| BenchError::ThreadPanicked("absence heartbeat"))?;
        Ok::<_, BenchError>(received)
    })?;
    let false_alarms = inbox
        .drain()
        .iter()
        .filter(|d| d.alert_and_state() == (rule.as_str(), "firing"))
        .filter(|d| d.label("name") == Some(LIVE_DEVICE))
        .count();
    api.delete_rules(std::slice::from_ref(&rule))?;
    let last_ack = beats.last_ack.into_inner().unwrap_or_default();
    let (heartbeats, heartbeat_error) = beats.writes.into_inner().unwrap_or_default();
    let mut figures = delays(config, &received, &last_ack);
    figures.rule = rule;
    figures.false_alarms = false_alarms;
    figures.heartbeats = heartbeats;
    figures.heartbeat_error = heartbeat_error;
    Ok(figures)
}

/// Waits for the `firing` notification of each stopping device, in stopping order.
fn wait_for_each(
    inbox: &mut Inbox,
    rule: &str,
    config: &AlertsConfig,
    start: Instant,
    progress: &dyn Progress,
) -> Vec<Option<Delivery>> {
    (0..config.absence_samples)
        .map(|k| {
            let device = format!("ab_{k}");
            let expected =
                start + stop_after(config, k) + Duration::from_millis(config.absence_for_ms);
            let delivery = inbox.wait_for(expected + GRACE, |d| {
                d.alert_and_state() == (rule, "firing") && d.label("name") == Some(&device)
            });
            progress.advance(1);
            delivery
        })
        .collect()
}

/// Writes one event per sending device every heartbeat until told to stop.
fn heartbeat(api: &AlertApi, config: &AlertsConfig, beats: &Heartbeats, start: Instant) {
    let interval = Duration::from_millis(config.absence_heartbeat_ms);
    while !beats.stop.load(Ordering::SeqCst) {
        let beat = Instant::now();
        let elapsed = beat - start;
        let sending: Vec<usize> = (0..config.absence_samples)
            .filter(|&k| elapsed < stop_after(config, k))
            .collect();
        let now = now_ms();
        let mut body = String::new();
        let names = sending
            .iter()
            .map(|k| format!("ab_{k}"))
            .chain([LIVE_DEVICE.to_string()]);
        for (i, name) in names.enumerate() {
            let event = json!({"metrictype": ABSENCE_METRIC, "timestamp": now, "name": name, "temp": 20.0 + i as f64});
            body.push_str(&format!("{event}\n"));
        }
        let written = api.write(body);
        let acked = Instant::now();
        if let Ok(mut writes) = beats.writes.lock() {
            writes.0 += 1;
            if let (Err(error), None) = (&written, &writes.1) {
                writes.1 = Some(error.to_string());
            }
        }
        if written.is_ok() {
            if let Ok(mut last) = beats.last_ack.lock() {
                for &k in &sending {
                    last[k] = Some(acked);
                }
            }
        }
        std::thread::sleep(interval.saturating_sub(beat.elapsed()));
    }
}

/// Each stopped device's delay from its last acknowledged write to its notification.
fn delays(
    config: &AlertsConfig,
    received: &[Option<Delivery>],
    last_ack: &[Option<Instant>],
) -> AbsenceDelay {
    let for_duration = Duration::from_millis(config.absence_for_ms);
    let mut delays = Vec::new();
    let (mut missed, mut early) = (0, 0);
    for (delivery, last) in received.iter().zip(last_ack) {
        let (Some(delivery), Some(last)) = (delivery, last) else {
            missed += 1;
            continue;
        };
        let delay = delivery.at.saturating_duration_since(*last);
        if delay < for_duration {
            early += 1;
        }
        delays.push(delay);
    }
    AbsenceDelay {
        rule: String::new(),
        for_ms: config.absence_for_ms,
        heartbeat_ms: config.absence_heartbeat_ms,
        devices_stopped: config.absence_samples,
        delay: LatencySummary::from_durations(&delays),
        missed,
        early,
        false_alarms: 0,
        heartbeats: 0,
        heartbeat_error: None,
    }
}
