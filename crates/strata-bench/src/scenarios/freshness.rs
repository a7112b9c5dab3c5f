//! Ingest-to-queryable latency: write one event, then poll SQL until it is visible.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use strata_client::Client;
use strata_core::now_ms;

use crate::plot::{write_latency_plot_if_any, LatencySeries, PlotFile, Plots};
use crate::progress::{NoProgress, Progress};
use crate::report::{format_ms, ReportRow, ReportRows, RunInfo};
use crate::scenarios::{sql_string_literal, sql_timestamp_literal, BenchTarget};
use crate::stats::LatencySummary;
use crate::BenchError;

pub const MAX_SAMPLES: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreshnessConfig {
    /// Measured samples.
    pub samples: usize,
    /// Unmeasured samples first (connection setup, caches).
    pub warmup_samples: usize,
    /// The metric the probes are written to.
    pub metric: String,
    /// The `name` of the probe events.
    pub probe_name: String,
    /// Give up on one sample after this long and count it as a timeout.
    pub sample_timeout_ms: u64,
}

impl Default for FreshnessConfig {
    fn default() -> Self {
        FreshnessConfig {
            samples: 200,
            warmup_samples: 5,
            metric: crate::generator::READINGS.to_string(),
            probe_name: "fresh_probe".to_string(),
            sample_timeout_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreshnessReport {
    pub run: RunInfo,
    pub parameters: FreshnessConfig,
    /// From the write acknowledgement to the first SQL answer that shows the event.
    pub ack_to_visible: Option<LatencySummary>,
    /// Round trip of the probe write itself.
    pub write_ack: Option<LatencySummary>,
    /// Average SQL polls per sample until visible (1 = visible at the first look).
    pub mean_polls: f64,
    /// Samples not visible within the timeout.
    pub timeouts: usize,
    /// Samples whose count was above 1 (the probe would have been stored twice).
    pub overcounted: usize,
}

impl FreshnessReport {
    pub fn passed(&self) -> bool {
        self.timeouts == 0 && self.overcounted == 0 && self.ack_to_visible.is_some()
    }
}

impl ReportRows for FreshnessReport {
    fn report_rows(&self) -> Vec<ReportRow> {
        let mut rows = Vec::new();
        if let Some(latency) = &self.ack_to_visible {
            rows.push(ReportRow::new(
                "freshness",
                "ack -> visible p50 / p99 / max",
                format!(
                    "{} / {} / {}",
                    format_ms(latency.p50_ms),
                    format_ms(latency.p99_ms),
                    format_ms(latency.max_ms)
                ),
                "p99 <= 10 ms",
            ));
        }
        rows.push(ReportRow::new(
            "freshness",
            "timeouts / samples",
            format!("{} / {}", self.timeouts, self.parameters.samples),
            "0",
        ));
        rows
    }
}

impl Plots for FreshnessReport {
    /// `PREFIX-latency.png`: ack to visible, and the probe write's own round trip.
    fn write_plots(&self, dir: &Path, prefix: &str) -> Result<Vec<PlotFile>, BenchError> {
        let mut series = Vec::new();
        if let Some(visible) = &self.ack_to_visible {
            series.push(LatencySeries::from_summary("ack -> visible", visible));
        }
        if let Some(write) = &self.write_ack {
            series.push(LatencySeries::from_summary("probe write round trip", write));
        }
        Ok(write_latency_plot_if_any(
            dir,
            &format!("{prefix}-latency"),
            &format!(
                "{prefix}: one event written to {}, then polled with SQL",
                self.parameters.metric
            ),
            &series,
        )?
        .into_iter()
        .collect())
    }
}

/// Runs the freshness scenario. Probe events stay in the metric afterwards, so run count
/// checks before it.
pub fn run_freshness(
    target: &BenchTarget,
    config: &FreshnessConfig,
) -> Result<FreshnessReport, BenchError> {
    run_freshness_with(target, config, &NoProgress)
}

/// [`run_freshness`] reporting progress (phase `"probing"`, in samples).
pub fn run_freshness_with(
    target: &BenchTarget,
    config: &FreshnessConfig,
    progress: &dyn Progress,
) -> Result<FreshnessReport, BenchError> {
    if config.samples == 0 || config.samples > MAX_SAMPLES {
        return Err(BenchError::InvalidConfig(format!(
            "samples must be 1..={MAX_SAMPLES}, got {}",
            config.samples
        )));
    }
    let run = RunInfo::new("freshness", &target.base_url);
    let client = target.client()?;
    let mut last_timestamp_ms = 0;
    let mut visible_after = Vec::with_capacity(config.samples);
    let mut write_latencies = Vec::with_capacity(config.samples);
    let mut polls_total = 0u64;
    let mut timeouts = 0;
    let mut overcounted = 0;

    progress.phase("probing", (config.warmup_samples + config.samples) as u64);
    for sample in 0..config.warmup_samples + config.samples {
        // Wall-clock time, as a device would send it; strictly increasing so every probe is a
        // distinct event even when two fall in one millisecond.
        let timestamp_ms = now_ms().max(last_timestamp_ms + 1);
        last_timestamp_ms = timestamp_ms;
        let probe = probe_once(&client, target, config, sample, timestamp_ms)?;
        progress.advance(1);
        if sample < config.warmup_samples {
            continue;
        }
        if probe.overcounted {
            overcounted += 1;
        }
        write_latencies.push(probe.write_latency);
        polls_total += probe.polls;
        match probe.visible_after {
            Some(latency) => visible_after.push(latency),
            None => timeouts += 1,
        }
    }

    Ok(FreshnessReport {
        run,
        parameters: config.clone(),
        ack_to_visible: LatencySummary::from_durations(&visible_after),
        write_ack: LatencySummary::from_durations(&write_latencies),
        mean_polls: polls_total as f64 / config.samples as f64,
        timeouts,
        overcounted,
    })
}

/// What one probe saw.
struct Probe {
    write_latency: Duration,
    /// SQL polls until visible (or until the timeout).
    polls: u64,
    /// From the acknowledgement to visible; `None` on a timeout.
    visible_after: Option<Duration>,
    /// The probe was counted more than once.
    overcounted: bool,
}

/// Writes one probe event stamped `timestamp_ms` and polls until SQL counts it.
fn probe_once(
    client: &Client,
    target: &BenchTarget,
    config: &FreshnessConfig,
    sample: usize,
    timestamp_ms: i64,
) -> Result<Probe, BenchError> {
    let event = serde_json::json!({
        "metrictype": config.metric,
        "timestamp": timestamp_ms,
        "name": config.probe_name,
        "velocity": sample as f64,
    });
    let query = format!(
        "SELECT count(*) FROM {} WHERE name = {} AND timestamp = {}",
        config.metric,
        sql_string_literal(&config.probe_name),
        sql_timestamp_literal(timestamp_ms)?
    );

    let sent_at = Instant::now();
    let ack = client.write_ndjson(&target.write_key, format!("{event}\n"))?;
    let acked_at = Instant::now();
    if ack.accepted != 1 {
        return Err(BenchError::Check(format!(
            "the probe write was not accepted: {ack:?}"
        )));
    }

    let timeout = Duration::from_millis(config.sample_timeout_ms);
    let mut polls = 0u64;
    let mut overcounted = false;
    let visible_after = loop {
        let count = client.sql(&target.read_key, &query)?.single_count()?;
        polls += 1;
        if count >= 1 {
            overcounted = count > 1;
            break Some(acked_at.elapsed());
        }
        if acked_at.elapsed() > timeout {
            break None;
        }
    };
    Ok(Probe {
        write_latency: acked_at - sent_at,
        polls,
        visible_after,
        overcounted,
    })
}
