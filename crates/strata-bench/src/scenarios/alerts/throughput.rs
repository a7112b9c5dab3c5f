//! Part 4: ingest throughput with event rules active against none. The ingest scenario's
//! workload (trucks sending `readings` and `diagnostics`) is sent in phases, alternately
//! without rules and with `ingest_rules` event rules on both metrics, in the order none, rules,
//! rules, none ... so neither side always runs on the fuller store. Each phase sends the same
//! shape of workload moved to a later time range, so no event repeats an earlier one.
//!
//! The rules' conditions compare a sensor with a threshold the workload never reaches: what is
//! measured is evaluating them on every committed batch, not notification traffic (parts 1
//! and 2 measure that).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strata_core::DAY_MS;

use super::api::AlertApi;
use super::{AlertsConfig, NAME_PREFIX};
use crate::generator::{DIAGNOSTICS, DIAGNOSTICS_FIELDS, READINGS, READINGS_FIELDS};
use crate::progress::Progress;
use crate::scenarios::ingest::run_ingest_with;
use crate::scenarios::{settle, BenchTarget};
use crate::schema::{apply_schema, workload_schema};
use crate::{BenchError, IngestConfig};

/// One ingest phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestPhase {
    /// Event rules active during the phase (0 or `ingest_rules`).
    pub rules: usize,
    pub accepted: u64,
    pub rejected: u64,
    pub failed_batches: u64,
    /// Sending time, to the last acknowledgement.
    pub elapsed_s: f64,
    /// Then until the server was idle again: the phase's compaction and stream consumers.
    #[serde(default)]
    pub drain_s: f64,
    /// Accepted over sending time (the drain left out).
    pub events_per_s: f64,
    /// CPU time (user plus system) the server used over sending and drain; `None` for a
    /// server on another machine.
    #[serde(default)]
    pub server_cpu_s: Option<f64>,
    pub batch_p99_ms: Option<f64>,
    pub failures: Vec<String>,
}

/// What part 4 measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestComparison {
    pub rules: usize,
    /// One rule's condition, for the report.
    pub example_condition: String,
    pub phases: Vec<IngestPhase>,
    /// Accepted events over sending plus drain time, of the phases without rules and with
    /// them: each side pays for all the work its writes caused.
    pub without_rules_events_per_s: f64,
    pub with_rules_events_per_s: f64,
    /// With over without (1.0 = no cost).
    pub ratio: Option<f64>,
    /// With over without in each adjacent pair of phases (one of each side, in the order
    /// of [`with_rules`]), and their median: the verdict. A store that grows sets off a long
    /// compaction at a fixed volume whatever runs (session 17: a run with no rules at all
    /// spent 14.5 s after its 7th phase of 4M events, a rules phase in this order); the total
    /// `ratio` charges it to one side, the median of the pairs sets it aside.
    #[serde(default)]
    pub pair_ratios: Vec<f64>,
    #[serde(default)]
    pub median_pair_ratio: Option<f64>,
    /// Server CPU microseconds per accepted event, without and with: the cost the rules add
    /// to the server, apart from the disk and the client's share of the cores.
    #[serde(default)]
    pub server_cpu_us_per_event: Option<(f64, f64)>,
}

/// Event rule `i`: a sensor of `readings` (even `i`) or `diagnostics` (odd) above a value the
/// workload never sends; every third also names a fleet.
fn rule(i: usize) -> Value {
    let (metric, field) = if i.is_multiple_of(2) {
        (READINGS, READINGS_FIELDS[(i / 2) % READINGS_FIELDS.len()])
    } else {
        (
            DIAGNOSTICS,
            DIAGNOSTICS_FIELDS[(i / 2) % DIAGNOSTICS_FIELDS.len()],
        )
    };
    let mut condition = format!("{field} > {}", 1_000_000 + i);
    if i.is_multiple_of(3) {
        condition.push_str(" AND fleet = 'East'");
    }
    json!({
        "name": format!("{NAME_PREFIX}ingest{i:03}"),
        "kind": "event",
        "metric": metric,
        "condition": condition,
        "channels": [],
    })
}

/// Whether phase `phase` runs with rules (or rollups): none, rules, rules, none, none, rules ...
pub(crate) fn with_rules(phase: usize) -> bool {
    let round = phase / 2;
    (phase % 2 == 1) == round.is_multiple_of(2)
}

pub(super) fn run(
    target: &BenchTarget,
    api: &AlertApi,
    config: &AlertsConfig,
    progress: &dyn Progress,
) -> Result<IngestComparison, BenchError> {
    let client = target.client()?;
    apply_schema(&client, &target.admin_key, &workload_schema())?;
    let rules: Vec<Value> = (0..config.ingest_rules).map(rule).collect();
    let names: Vec<String> = rules
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    let mut created = false;
    let mut phases = Vec::new();
    for phase in 0..config.ingest_rounds * 2 {
        let want = with_rules(phase) && !rules.is_empty();
        if want && !created {
            api.create_rules(&rules)?;
        } else if !want && created {
            api.delete_rules(&names)?;
        }
        created = want;
        let active = if want { rules.len() } else { 0 };
        phases.push(run_phase(target, &config.ingest, phase, active, progress)?);
    }
    if created {
        api.delete_rules(&names)?;
    }
    Ok(compare(config.ingest_rules, phases))
}

/// Sends phase `phase` of a comparison to a settled server: first waits until the server is
/// idle (no work left from earlier phases), then sends, then counts the time until it is
/// idle again as part of the phase (see `settle` for the profile behind this).
pub(crate) fn run_phase(
    target: &BenchTarget,
    base: &IngestConfig,
    phase: usize,
    active: usize,
    progress: &dyn Progress,
) -> Result<IngestPhase, BenchError> {
    progress.phase("waiting for the server to go idle", 0);
    settle::until_idle(base.server_pid);
    let cpu_before_s = base.server_pid.and_then(settle::cpu_time_s);
    let report = run_ingest_with(target, &shifted(base, phase), progress)?;
    progress.phase("draining: the phase's compaction and consumers", 0);
    let drain_s = settle::until_idle(base.server_pid).as_secs_f64();
    let cpu_after_s = base.server_pid.and_then(settle::cpu_time_s);
    let server_cpu_s = cpu_before_s.zip(cpu_after_s).map(|(b, a)| a - b);
    Ok(IngestPhase {
        rules: active,
        accepted: report.accepted,
        rejected: report.rejected,
        failed_batches: report.failed_batches,
        elapsed_s: report.elapsed_s,
        drain_s,
        events_per_s: report.events_per_s,
        server_cpu_s,
        batch_p99_ms: report.batch_latency.as_ref().map(|l| l.p99_ms),
        failures: report.failures,
    })
}

/// Rules over none in phases `(0, 1)`, `(2, 3)` ...; a pair without one of each is skipped.
fn pair_ratios(phases: &[IngestPhase]) -> Vec<f64> {
    let rate = |p: &IngestPhase| p.accepted as f64 / (p.elapsed_s + p.drain_s);
    phases
        .chunks_exact(2)
        .filter_map(|pair| {
            let with = pair.iter().find(|p| p.rules > 0)?;
            let without = pair.iter().find(|p| p.rules == 0)?;
            let (with, without) = (rate(with), rate(without));
            (with.is_finite() && without.is_finite() && without > 0.0).then(|| with / without)
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[middle]),
        _ => Some((values[middle - 1] + values[middle]) / 2.0),
    }
}

impl IngestComparison {
    /// The ratio the target is checked against: the median of the pairs, else the total.
    pub fn verdict_ratio(&self) -> Option<f64> {
        self.median_pair_ratio.or(self.ratio)
    }

    /// The verdict ratio with the figures behind it, for a report row.
    pub(crate) fn ratio_text(&self, target: f64) -> Option<String> {
        let ratio = self.verdict_ratio()?;
        let pairs: Vec<String> = self.pair_ratios.iter().map(|r| format!("{r:.3}")).collect();
        let total = self.ratio.map_or("-".to_string(), |r| format!("{r:.3}"));
        Some(format!(
            "{ratio:.3}: {} (median of the pairs {}; all phases together {total})",
            super::verdict(ratio >= target),
            pairs.join(", ")
        ))
    }
}

/// The ingest configuration of phase `phase`: the workload moved past every earlier phase's
/// time range (late events reach 3 days back), schema already declared, no count check.
pub(crate) fn shifted(base: &IngestConfig, phase: usize) -> IngestConfig {
    let mut config = base.clone();
    let span = config.workload.last_timestamp_ms() - config.workload.start_ms;
    let step = span + config.workload.interval_ms + 4 * DAY_MS;
    config.workload.start_ms += step * phase as i64;
    config.apply_schema = false;
    config.verify_counts = false;
    config
}

fn compare(rules: usize, phases: Vec<IngestPhase>) -> IngestComparison {
    let example = rule(0)["condition"].as_str().unwrap_or("").to_string();
    compare_phases(rules, example, phases)
}

/// Events over sending time of the phases with (`rules > 0`) and without; `example` is what
/// the report shows of one rule (or rollup).
pub(crate) fn compare_phases(
    rules: usize,
    example: String,
    phases: Vec<IngestPhase>,
) -> IngestComparison {
    let rate = |with: bool| {
        let (events, secs) = phases
            .iter()
            .filter(|p| (p.rules > 0) == with)
            .fold((0u64, 0f64), |(e, s), p| {
                (e + p.accepted, s + p.elapsed_s + p.drain_s)
            });
        if secs > 0.0 {
            events as f64 / secs
        } else {
            0.0
        }
    };
    let (without, with) = (rate(false), rate(true));
    let cpu_per_event = |with: bool| {
        let (events, cpu_s) = phases
            .iter()
            .filter(|p| (p.rules > 0) == with)
            .try_fold((0u64, 0f64), |(e, c), p| {
                Some((e + p.accepted, c + p.server_cpu_s?))
            })?;
        (events > 0).then(|| cpu_s * 1e6 / events as f64)
    };
    IngestComparison {
        rules,
        example_condition: example,
        without_rules_events_per_s: without,
        with_rules_events_per_s: with,
        ratio: (without > 0.0 && with > 0.0).then(|| with / without),
        pair_ratios: pair_ratios(&phases),
        median_pair_ratio: median(pair_ratios(&phases)),
        server_cpu_us_per_event: cpu_per_event(false).zip(cpu_per_event(true)),
        phases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_alternate_so_both_sides_average_the_same_position() {
        let order: Vec<bool> = (0..8).map(with_rules).collect();
        assert_eq!(order, [false, true, true, false, false, true, true, false]);
    }

    #[test]
    fn rules_cover_both_metrics_and_phases_do_not_overlap() {
        assert_eq!(rule(0)["metric"], READINGS);
        assert_eq!(rule(1)["metric"], DIAGNOSTICS);
        assert_eq!(
            rule(0)["condition"],
            "latitude > 1000000 AND fleet = 'East'"
        );
        assert_eq!(rule(99)["name"], "bench_alerts_ingest099");
        let base = IngestConfig::default();
        let (first, second) = (shifted(&base, 0), shifted(&base, 1));
        assert!(second.workload.start_ms - 3 * DAY_MS > first.workload.last_timestamp_ms());
        assert!(!second.apply_schema && !second.verify_counts);
    }

    #[test]
    fn one_slow_phase_moves_the_total_but_not_the_median_of_the_pairs() {
        let phase = |rules, elapsed_s: f64, drain_s| IngestPhase {
            rules,
            accepted: 100,
            rejected: 0,
            failed_batches: 0,
            elapsed_s,
            drain_s,
            events_per_s: 100.0 / elapsed_s,
            server_cpu_s: None,
            batch_p99_ms: None,
            failures: Vec::new(),
        };
        // Phase 7 (a rules phase) meets a long compaction that a run without rules meets too.
        let phases: Vec<IngestPhase> = (0..8)
            .map(|i| {
                let rules = if with_rules(i) { 100 } else { 0 };
                match i {
                    6 => phase(rules, 1.0, 1.0),
                    _ => phase(rules, 1.0, 0.0),
                }
            })
            .collect();
        let comparison = compare(100, phases);
        assert_eq!(comparison.pair_ratios, vec![1.0, 1.0, 1.0, 0.5]);
        assert_eq!(comparison.verdict_ratio(), Some(1.0));
        assert!(comparison.ratio.expect("total") < 0.85);
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
    }

    #[test]
    fn the_ratio_compares_total_events_over_sending_plus_drain_time() {
        let phase = |rules, accepted, elapsed_s, drain_s| IngestPhase {
            rules,
            accepted,
            rejected: 0,
            failed_batches: 0,
            elapsed_s,
            drain_s,
            events_per_s: accepted as f64 / elapsed_s,
            server_cpu_s: Some(elapsed_s),
            batch_p99_ms: None,
            failures: Vec::new(),
        };
        // The rules phases send as fast (90 events in 0.8 s is faster than 100 in 1 s) but
        // leave work behind: the drain counts.
        let comparison = compare(
            100,
            vec![
                phase(0, 100, 1.0, 0.0),
                phase(100, 90, 0.8, 0.2),
                phase(100, 90, 0.8, 0.2),
                phase(0, 100, 1.0, 0.0),
            ],
        );
        assert_eq!(comparison.without_rules_events_per_s, 100.0);
        assert_eq!(comparison.with_rules_events_per_s, 90.0);
        assert_eq!(comparison.ratio, Some(0.9));
        assert_eq!(comparison.pair_ratios.len(), 2);
        assert!((comparison.verdict_ratio().expect("median") - 0.9).abs() < 1e-9);
        let (without, with) = comparison.server_cpu_us_per_event.expect("cpu per event");
        assert!((without - 10_000.0).abs() < 1e-6, "{without}");
        assert!((with - 1.6e6 / 180.0).abs() < 1e-6, "{with}");
    }
}
