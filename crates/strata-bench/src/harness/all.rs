//! `bench all`: the six scenarios on one server in one run and one markdown report.
//!
//! Ingest first: it also loads what recent queries, and its count check must run before
//! anything else writes to the workload's metrics. Recent measures the hot tier, so it precedes
//! compaction; analytics reads the files compaction wrote. Freshness comes last: its probes
//! carry the wall-clock time, which is too recent to compact (compaction stops at the hour
//! before now), so probes written earlier would be rows that Strata counts and the cold files
//! lack, failing compaction's and analytics' checks.

use std::process::ExitCode;

use serde::Serialize;

use super::disk_check::{check_disk, disk_estimate};
use super::session::{ServerFigures, Session};
use super::suite::{
    analytics_section, compaction_config, compaction_section, ingest_config, load_passed,
    recent_passed, step, ColdOptions, Findings, Workload,
};
use super::Invocation;
use crate::{
    run_aliases_with, run_analytics_with, run_compaction_with, run_freshness_with, run_ingest_with,
    run_recent_with, AliasConfig, AliasReport, AnalyticsConfig, AnalyticsReport, BenchError,
    CompactionReport, FreshnessConfig, FreshnessReport, IngestReport, RecentConfig, RecentReport,
};

/// `bench all`: each scenario's size.
#[derive(Debug, Clone)]
pub struct AllOptions {
    /// Freshness probes.
    pub samples: usize,
    /// Recent-window queries.
    pub runs: usize,
    pub alias: AliasConfig,
    /// Measured runs of the compaction step's query on each tier.
    pub compaction_runs: usize,
    pub analytics: AnalyticsConfig,
    pub cold: ColdOptions,
}

#[derive(Serialize)]
struct AllOutput {
    ingest: IngestReport,
    recent: RecentReport,
    aliases: AliasReport,
    compaction: CompactionReport,
    /// `None` when the cold directory was unknown (see `notes`).
    analytics: Option<AnalyticsReport>,
    freshness: FreshnessReport,
    notes: Vec<String>,
}

/// Runs the six scenarios and emits one report.
pub fn all(
    inv: &Invocation<'_>,
    workload: &Workload,
    options: &AllOptions,
) -> Result<ExitCode, BenchError> {
    options.analytics.validate()?;
    let mut session = Session::open(&inv.server.for_cold_scenarios())?;
    let estimate = disk_estimate(&workload.config, options.alias.rows, true);
    check_disk(&mut session, estimate, workload.long)?;
    let report = run_steps(inv, &session, workload, options)?;
    let server = session.server_figures();
    session.stop()?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    emit_all(inv, &server, report)
}

/// Steps 1 to 6 against the session's server.
fn run_steps(
    inv: &Invocation<'_>,
    session: &Session,
    workload: &Workload,
    options: &AllOptions,
) -> Result<AllOutput, BenchError> {
    let command = Some(inv.command.clone());
    let compaction_config =
        compaction_config(session, &options.cold, options.compaction_runs, 1, None)?;
    let target = &session.target;
    let ingest_settings = ingest_config(&workload.send, workload.config.clone(), session.pid)?;
    let mut ingest = step(inv, "1/6 ingest", |bar| {
        run_ingest_with(target, &ingest_settings, bar)
    })?;
    ingest.run.command = command.clone();
    let recent_config = RecentConfig {
        runs: options.runs,
        ..RecentConfig::for_workload(&workload.config)
    };
    let mut recent = step(inv, "2/6 recent", |bar| {
        run_recent_with(target, &recent_config, bar)
    })?;
    recent.run.command = command.clone();
    let mut aliases = step(inv, "3/6 aliases", |bar| {
        run_aliases_with(target, &options.alias, bar)
    })?;
    aliases.run.command = command.clone();
    let mut compaction = step(inv, "4/6 compaction", |bar| {
        run_compaction_with(target, &compaction_config, bar)
    })?;
    compaction.run.command = command.clone();
    let mut notes = Vec::new();
    let analytics = analytics_step(inv, session, &compaction, options, &mut notes);
    let freshness_config = FreshnessConfig {
        samples: options.samples,
        ..FreshnessConfig::default()
    };
    let mut freshness = step(inv, "6/6 freshness", |bar| {
        run_freshness_with(target, &freshness_config, bar)
    })?;
    freshness.run.command = command;
    Ok(AllOutput {
        ingest,
        recent,
        aliases,
        compaction,
        analytics,
        freshness,
        notes,
    })
}

/// Step 5. A failed analytics step (an engine outside Strata: DuckDB's script, Python) is
/// reported as a failure of the run, but the steps before and after it still land in the
/// report: they took most of the run's time. The failure is the note that starts with
/// [`ANALYTICS_FAILED`].
fn analytics_step(
    inv: &Invocation<'_>,
    session: &Session,
    compaction: &CompactionReport,
    options: &AllOptions,
    notes: &mut Vec<String>,
) -> Option<AnalyticsReport> {
    let Some(files) = &compaction.files else {
        notes.push(
            "analytics: skipped, the server's cold directory is unknown (pass --data-dir or \
             --cold-dir)"
                .to_string(),
        );
        return None;
    };
    let result = step(inv, "5/6 analytics", |bar| {
        run_analytics_with(&session.target, &options.analytics, files, bar)
    });
    match result {
        Ok(mut analytics) => {
            analytics.run.command = Some(inv.command.clone());
            if let Some(note) = &analytics.duckdb_note {
                notes.push(format!("analytics: DuckDB {note}"));
            }
            Some(analytics)
        }
        Err(err) => {
            let message = format!("{ANALYTICS_FAILED}{err}");
            eprintln!("error: {message}");
            notes.push(message);
            None
        }
    }
}

/// How a failed analytics step's note (and failure) begins.
const ANALYTICS_FAILED: &str = "analytics: the step failed: ";

/// Whether every step passed; each failure is added to `failures`.
fn all_passed(report: &AllOutput, failures: &mut Vec<String>) -> bool {
    let mut passed = load_passed(&report.ingest, failures);
    passed &= recent_passed(&report.recent, failures);
    let aliases = &report.aliases;
    if !aliases.passed() {
        passed = false;
        failures.push(format!(
            "aliases: {} rows rejected, answers equal: {}",
            aliases.rejected, aliases.answers_equal
        ));
    }
    let cold_failures: Vec<String> = report
        .compaction
        .failures()
        .into_iter()
        .chain(report.analytics.iter().flat_map(AnalyticsReport::failures))
        .collect();
    passed &= cold_failures.is_empty();
    failures.extend(cold_failures);
    let analytics_errors = report
        .notes
        .iter()
        .filter(|note| note.starts_with(ANALYTICS_FAILED));
    for message in analytics_errors {
        passed = false;
        failures.push(message.clone());
    }
    let freshness = &report.freshness;
    if !freshness.passed() {
        passed = false;
        failures.push(format!(
            "freshness: {} probes never visible, {} counted more than once",
            freshness.timeouts, freshness.overcounted
        ));
    }
    passed
}

/// Rows, checks, sections and plots of the six steps, printed as one report.
fn emit_all(
    inv: &Invocation<'_>,
    server: &ServerFigures,
    report: AllOutput,
) -> Result<ExitCode, BenchError> {
    let mut findings = Findings::new();
    findings.scenario(&report.ingest, "ingest");
    findings.scenario(&report.recent, "recent");
    findings.scenario(&report.aliases, "aliases");
    findings.scenario(&report.compaction, "compaction");
    if let Some(analytics) = &report.analytics {
        findings.scenario(analytics, "analytics");
    }
    findings.scenario(&report.freshness, "freshness");
    let mut failures = Vec::new();
    let passed = all_passed(&report, &mut failures);
    findings.outcome(passed, failures);
    let mut extra = compaction_section(&report.compaction);
    if let Some(analytics) = &report.analytics {
        extra.push('\n');
        extra.push_str(&analytics_section(analytics));
    }
    for note in &report.notes {
        extra.push_str(&format!("\nNote: {note}\n"));
    }
    findings.emit(inv, server, "all", &extra, &report)
}
