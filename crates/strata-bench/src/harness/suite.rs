//! One runner per `strata bench` subcommand (ingest, freshness, isolation, recent, aliases,
//! compaction, analytics, quick, alerts) and `all`, the six scenarios on one server in one report.
//! Each opens the session, runs its scenario(s) with a progress display per step, stops the
//! server, draws the plots, emits the report and returns the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::disk_check::{check_disk, disk_estimate};
use super::emit::{draw_plots, emit, verdict, Emitted};
use super::session::{
    ServerFigures, Session, ALERTS_SERVE_ARGS, ALERTS_SERVE_SWITCH, INGEST_SERVE_ARGS,
    ISOLATION_SERVE_ARGS, PROTOCOLS_SERVE_ARGS,
};
use super::{duckdb_mode, refused, Invocation, SendOptions};
use crate::{
    run_alerts_with, run_aliases_with, run_analytics_with, run_compaction_with, run_freshness_with,
    run_ingest_with, run_isolation_with, run_quick_with, run_recent_with, run_streaming_with,
    AlertsConfig, AliasConfig, AnalyticsConfig, AnalyticsReport, BenchError, CompactionConfig,
    CompactionReport, FreshnessConfig, GeneratorConfig, IngestConfig, IngestReport,
    IsolationConfig, Plots, Progress, QuickConfig, QuickReport, RecentConfig, RecentReport,
    ReportRow, ReportRows, StreamingConfig,
};

/// The generated workload of a run and how it is sent.
#[derive(Debug, Clone)]
pub struct Workload {
    pub config: GeneratorConfig,
    pub send: SendOptions,
    /// False when the tenant already holds this workload (--no-load).
    pub load: bool,
    /// Long mode (--long): a long run says what it checked about the disk.
    pub long: bool,
}

/// Options shared by the cold-tier scenarios.
#[derive(Debug, Clone, Default)]
pub struct ColdOptions {
    /// The server's cold directory, where it writes Parquet (default DATA_DIR/cold).
    pub cold_dir: Option<PathBuf>,
    /// Seconds the compaction request may take.
    pub compact_timeout_secs: u64,
}

/// `bench compaction`'s query runs.
#[derive(Debug, Clone, Default)]
pub struct CompactionOptions {
    pub runs: usize,
    pub warmup: usize,
    /// The query timed on both tiers (default: a full-range aggregate over `diagnostics`).
    pub query: Option<String>,
}

/// `bench analytics`: the engines' configuration and the compaction step's runs.
#[derive(Debug, Clone)]
pub struct AnalyticsOptions {
    pub analytics: AnalyticsConfig,
    pub compaction_runs: usize,
}

/// Runs `step` with a progress display labelled `label`, finished whatever the outcome.
pub(super) fn step<T>(
    inv: &Invocation<'_>,
    label: &str,
    run: impl FnOnce(&dyn Progress) -> Result<T, BenchError>,
) -> Result<T, BenchError> {
    let bar = (inv.bars)(label);
    let result = run(&*bar);
    bar.finish();
    result
}

/// Prints a run's report and turns its checks into the exit code.
pub(super) fn conclude<T: Serialize>(
    inv: &Invocation<'_>,
    server: &ServerFigures,
    run: Emitted<'_, T>,
    passed: bool,
    failures: &[String],
) -> Result<ExitCode, BenchError> {
    emit(&inv.output, &inv.command, server, run)?;
    Ok(verdict(passed, failures))
}

/// What a run's report gathers from its scenarios: the table rows, the failed checks and the
/// plots to draw, in the order they are printed.
pub(super) struct Findings<'a> {
    rows: Vec<ReportRow>,
    failures: Vec<String>,
    plots: Vec<(&'a dyn Plots, &'a str)>,
    passed: bool,
}

impl<'a> Findings<'a> {
    pub(super) fn new() -> Findings<'a> {
        Findings {
            rows: Vec::new(),
            failures: Vec::new(),
            plots: Vec::new(),
            passed: true,
        }
    }

    /// A scenario's rows, and its plots drawn as `plot_name`-*.png; its checks come apart.
    pub(super) fn scenario<R: ReportRows + Plots>(&mut self, report: &'a R, plot_name: &'a str) {
        self.rows.extend(report.report_rows());
        self.plots.push((report, plot_name));
    }

    /// A load step: its rows, its plots and its checks.
    pub(super) fn load(&mut self, load: &'a IngestReport, plot_name: &'a str) {
        self.scenario(load, plot_name);
        self.passed &= load_passed(load, &mut self.failures);
    }

    /// A check's outcome and its failures in words.
    pub(super) fn outcome(&mut self, passed: bool, failures: Vec<String>) {
        self.passed &= passed;
        self.failures.extend(failures);
    }

    /// Checks that passed when they found no failure.
    pub(super) fn check(&mut self, failures: Vec<String>) {
        self.outcome(failures.is_empty(), failures);
    }

    /// Draws the plots, prints the report, and exits 1 unless every check passed and every
    /// plot was drawn.
    pub(super) fn emit<T: Serialize>(
        mut self,
        inv: &Invocation<'_>,
        server: &ServerFigures,
        title: &str,
        extra: &str,
        report: &T,
    ) -> Result<ExitCode, BenchError> {
        let plots = draw_plots(&inv.output, &self.plots, &mut self.failures);
        let run = Emitted::new(title, &self.rows, extra, &plots.files, report);
        conclude(inv, server, run, self.passed && plots.ok, &self.failures)
    }
}

/// The end of a command that runs one scenario: stop the server, draw the report's plots as
/// NAME-*.png, print the report, and exit 1 unless it passed and every plot was drawn.
fn finish_one<R: Plots + ReportRows + Serialize>(
    inv: &Invocation<'_>,
    mut session: Session,
    name: &str,
    report: &R,
    (passed, failures): (bool, Vec<String>),
) -> Result<ExitCode, BenchError> {
    let server = session.server_figures();
    session.stop()?;
    let mut findings = Findings::new();
    findings.scenario(report, name);
    findings.outcome(passed, failures);
    findings.emit(inv, &server, name, "", report)
}

/// `bench ingest`: durable ingest throughput, then the stored-row count check unless `verify`
/// is off.
pub fn ingest(
    inv: &Invocation<'_>,
    workload: &Workload,
    verify: bool,
) -> Result<ExitCode, BenchError> {
    let mut session = Session::open(&inv.server.with_spawn_defaults(&INGEST_SERVE_ARGS))?;
    check_disk(
        &mut session,
        disk_estimate(&workload.config, 0, false),
        false,
    )?;
    let config = IngestConfig {
        verify_counts: verify,
        ..ingest_config(&workload.send, workload.config.clone(), session.pid)?
    };
    let mut report = step(inv, "ingest", |bar| {
        run_ingest_with(&session.target, &config, bar)
    })?;
    report.run.command = Some(inv.command.clone());
    let outcome = (report.passed(), report.failures.clone());
    finish_one(inv, session, "ingest", &report, outcome)
}

/// `bench freshness`: ack-to-visible latency.
pub fn freshness(inv: &Invocation<'_>, config: &FreshnessConfig) -> Result<ExitCode, BenchError> {
    let session = Session::open(&inv.server)?;
    let mut report = step(inv, "freshness", |bar| {
        run_freshness_with(&session.target, config, bar)
    })?;
    report.run.command = Some(inv.command.clone());
    let outcome = (report.passed(), Vec::new());
    finish_one(inv, session, "freshness", &report, outcome)
}

/// `bench isolation`: a second tenant's latencies next to a huge cross join.
pub fn isolation(inv: &Invocation<'_>, config: &IsolationConfig) -> Result<ExitCode, BenchError> {
    let session = Session::open(&inv.server.with_spawn_defaults(&ISOLATION_SERVE_ARGS))?;
    let probe = session.second_tenant(&inv.server)?;
    let mut report = step(inv, "isolation", |bar| {
        run_isolation_with(&session.target, &probe, config, bar)
    })?;
    report.run.command = Some(inv.command.clone());
    let outcome = (report.passed(), report.failures());
    finish_one(inv, session, "isolation", &report, outcome)
}

/// `bench aliases`: the cost of a field with 3 aliases.
pub fn aliases(inv: &Invocation<'_>, config: &AliasConfig) -> Result<ExitCode, BenchError> {
    let session = Session::open(&inv.server)?;
    let mut report = step(inv, "aliases", |bar| {
        run_aliases_with(&session.target, config, bar)
    })?;
    report.run.command = Some(inv.command.clone());
    let outcome = (report.passed(), Vec::new());
    finish_one(inv, session, "aliases", &report, outcome)
}

/// `bench streaming`: live-query latency, rollup freshness and ingest with rollups against none.
pub fn streaming(inv: &Invocation<'_>, config: &StreamingConfig) -> Result<ExitCode, BenchError> {
    let server = inv.server.with_spawn_defaults(&ALERTS_SERVE_ARGS);
    let session = Session::open(&server)?;
    let mut config = config.clone();
    config.ingest.server_pid = session.pid;
    let mut report = step(inv, "streaming", |bar| {
        run_streaming_with(&session.target, &config, bar)
    })?;
    report.run.command = Some(inv.command.clone());
    let outcome = (report.passed(), report.failures());
    finish_one(inv, session, "streaming", &report, outcome)
}

/// `bench protocols`: durable ingest through HTTP JSON, line protocol and MQTT QoS 1. A
/// spawned server gets `--mqtt 127.0.0.1:0`; against another server, `config.mqtt_addr`
/// (none skips the MQTT phases) and the tenant's name (for MQTT logins) come from the caller.
pub fn protocols(
    inv: &Invocation<'_>,
    config: &crate::ProtocolsConfig,
) -> Result<ExitCode, BenchError> {
    let mut server = inv.server.with_spawn_defaults(&PROTOCOLS_SERVE_ARGS);
    let tenant = server
        .tenant
        .get_or_insert_with(super::server::default_tenant_name)
        .clone();
    let session = Session::open(&server)?;
    let mut config = config.clone();
    config.tenant = tenant;
    if config.mqtt_addr.is_none() {
        config.mqtt_addr = session.spawned_mqtt_addr();
    }
    let report = step(inv, "protocols", |_bar| {
        crate::run_protocols(&session.target, &config)
    })?;
    let failures = report.failures();
    finish_one(
        inv,
        session,
        "protocols",
        &report,
        (failures.is_empty(), failures),
    )
}

/// `bench alerts`: notification latency of an event rule, absence detection delay, the
/// evaluation lag of many query rules under ingest, and ingest with event rules against none.
pub fn alerts(inv: &Invocation<'_>, config: &AlertsConfig) -> Result<ExitCode, BenchError> {
    let server = inv
        .server
        .with_spawn_defaults(&ALERTS_SERVE_ARGS)
        .with_spawn_switch(ALERTS_SERVE_SWITCH);
    let session = Session::open(&server)?;
    let mut config = config.clone();
    config.ingest.server_pid = session.pid;
    let mut report = step(inv, "alerts", |bar| {
        run_alerts_with(&session.target, &config, bar)
    })?;
    report.run.command = Some(inv.command.clone());
    let outcome = (report.passed(), report.failures());
    finish_one(inv, session, "alerts", &report, outcome)
}

#[derive(Serialize)]
struct RecentOutput {
    load: Option<IngestReport>,
    recent: RecentReport,
}

/// `bench recent`: load (unless told not to), then the recent-window query.
pub fn recent(
    inv: &Invocation<'_>,
    workload: &Workload,
    config: &RecentConfig,
) -> Result<ExitCode, BenchError> {
    let mut session = Session::open(&inv.server.with_spawn_defaults(&INGEST_SERVE_ARGS))?;
    if workload.load {
        let estimate = disk_estimate(&workload.config, 0, false);
        check_disk(&mut session, estimate, workload.long)?;
    }
    let load = load_workload(inv, &session, workload, "recent: load")?;
    let mut recent = step(inv, "recent", |bar| {
        run_recent_with(&session.target, config, bar)
    })?;
    recent.run.command = Some(inv.command.clone());
    let server = session.server_figures();
    session.stop()?;

    let report = RecentOutput { load, recent };
    let mut findings = Findings::new();
    // The recent check's failure is listed before the load's.
    let mut failures = Vec::new();
    let recent_ok = recent_passed(&report.recent, &mut failures);
    findings.outcome(recent_ok, failures);
    if let Some(load) = &report.load {
        findings.load(load, "recent-load");
    }
    findings.scenario(&report.recent, "recent");
    findings.emit(inv, &server, "recent", "", &report)
}

/// `bench quick`: every scenario at a small size with exact checks (CI).
pub fn quick(inv: &Invocation<'_>, seed: u64) -> Result<ExitCode, BenchError> {
    let mut session = Session::open(&inv.server.for_cold_scenarios())?;
    let mut config = QuickConfig::default();
    config.ingest.workload.seed = seed;
    config.analytics.workload.seed = seed;
    config.ingest.server_pid = session.pid;
    config.compaction.server_pid = session.pid;
    config.compaction.cold_dir = session.data_dir.as_ref().map(|dir| dir.join("cold"));
    config.analytics.duckdb = duckdb_mode(false);
    let mut report = step(inv, "quick", |bar| {
        run_quick_with(&session.target, &config, bar)
    })?;
    set_command_quick(&mut report, &inv.command);
    let server = session.server_figures();
    session.stop()?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    let extra = report
        .analytics
        .as_ref()
        .map(analytics_section)
        .unwrap_or_default();
    let mut findings = Findings::new();
    // Quick mode's plots are named after each scenario, as in `bench all`.
    findings.scenario(&report, "");
    findings.outcome(report.passed(), report.failures.clone());
    findings.emit(inv, &server, "quick", &extra, &report)
}

fn set_command_quick(report: &mut QuickReport, command: &str) {
    for run in [
        &mut report.ingest.run,
        &mut report.aliases.run,
        &mut report.recent.run,
        &mut report.freshness.run,
        &mut report.compaction.run,
    ] {
        run.command = Some(command.to_string());
    }
    if let Some(analytics) = &mut report.analytics {
        analytics.run.command = Some(command.to_string());
    }
}

#[derive(Serialize)]
struct CompactionOutput {
    load: Option<IngestReport>,
    compaction: CompactionReport,
}

/// `bench compaction`: load, then compaction rows/s and one query on hot rows against cold
/// files.
pub fn compaction(
    inv: &Invocation<'_>,
    workload: &Workload,
    cold: &ColdOptions,
    options: &CompactionOptions,
) -> Result<ExitCode, BenchError> {
    let mut session = Session::open(&inv.server.for_cold_scenarios())?;
    if workload.load {
        check_disk(
            &mut session,
            disk_estimate(&workload.config, 0, true),
            false,
        )?;
    }
    let load = load_workload(inv, &session, workload, "compaction: load")?;
    let config = compaction_config(
        &session,
        cold,
        options.runs,
        options.warmup,
        options.query.as_ref(),
    )?;
    let mut compaction = step(inv, "compaction", |bar| {
        run_compaction_with(&session.target, &config, bar)
    })?;
    compaction.run.command = Some(inv.command.clone());
    let server = session.server_figures();
    session.stop()?;

    let report = CompactionOutput { load, compaction };
    let mut findings = Findings::new();
    if let Some(load) = &report.load {
        findings.load(load, "compaction-load");
    }
    findings.scenario(&report.compaction, "compaction");
    findings.check(report.compaction.failures());
    let extra = compaction_section(&report.compaction);
    findings.emit(inv, &server, "compaction", &extra, &report)
}

#[derive(Serialize)]
struct AnalyticsOutput {
    load: Option<IngestReport>,
    compaction: CompactionReport,
    analytics: AnalyticsReport,
}

/// `bench analytics`: load, compact, then the TSBS IoT queries on the cold files in Strata,
/// plain DataFusion and DuckDB.
pub fn analytics(
    inv: &Invocation<'_>,
    workload: &Workload,
    cold: &ColdOptions,
    options: &AnalyticsOptions,
) -> Result<ExitCode, BenchError> {
    let mut session = Session::open(&inv.server.for_cold_scenarios())?;
    let compaction_config = compaction_config(&session, cold, options.compaction_runs, 1, None)?;
    if compaction_config.cold_dir.is_none() {
        session.stop()?;
        return Err(refused(
            "analytics reads the server's Parquet files: use --spawn, or pass --data-dir (or \
             --cold-dir) for your own server",
        ));
    }
    options.analytics.validate()?;
    if workload.load {
        check_disk(
            &mut session,
            disk_estimate(&workload.config, 0, true),
            false,
        )?;
    }
    let load = load_workload(inv, &session, workload, "analytics: load")?;
    let mut compaction = step(inv, "analytics: compaction", |bar| {
        run_compaction_with(&session.target, &compaction_config, bar)
    })?;
    compaction.run.command = Some(inv.command.clone());
    let Some(files) = compaction.files.clone() else {
        return Err(refused("the compaction's files were not located"));
    };
    let mut analytics = step(inv, "analytics", |bar| {
        run_analytics_with(&session.target, &options.analytics, &files, bar)
    })?;
    analytics.run.command = Some(inv.command.clone());
    let server = session.server_figures();
    session.stop()?;
    if let Some(note) = &analytics.duckdb_note {
        eprintln!("note: DuckDB {note}");
    }
    let report = AnalyticsOutput {
        load,
        compaction,
        analytics,
    };
    emit_analytics(inv, &server, &report)
}

/// The report of `bench analytics`: load, compaction and analytics rows, plots and checks.
fn emit_analytics(
    inv: &Invocation<'_>,
    server: &ServerFigures,
    report: &AnalyticsOutput,
) -> Result<ExitCode, BenchError> {
    let (compaction, analytics) = (&report.compaction, &report.analytics);
    let mut findings = Findings::new();
    if let Some(load) = &report.load {
        findings.load(load, "analytics-load");
    }
    findings.scenario(compaction, "analytics-compaction");
    findings.scenario(analytics, "analytics");
    findings.check(
        compaction
            .failures()
            .into_iter()
            .chain(analytics.failures())
            .collect(),
    );
    let extra = format!(
        "{}\n{}",
        compaction_section(compaction),
        analytics_section(analytics)
    );
    findings.emit(inv, server, "analytics", &extra, report)
}

/// Loads the workload unless told not to; the ingest report when it ran.
fn load_workload(
    inv: &Invocation<'_>,
    session: &Session,
    workload: &Workload,
    label: &str,
) -> Result<Option<IngestReport>, BenchError> {
    if !workload.load {
        return Ok(None);
    }
    let config = ingest_config(&workload.send, workload.config.clone(), session.pid)?;
    let mut load = step(inv, label, |bar| {
        run_ingest_with(&session.target, &config, bar)
    })?;
    load.run.command = Some(inv.command.clone());
    Ok(Some(load))
}

pub(super) fn ingest_config(
    send: &SendOptions,
    workload: GeneratorConfig,
    server_pid: Option<u32>,
) -> Result<IngestConfig, BenchError> {
    let config = IngestConfig {
        workload,
        clients: send.clients,
        batch_size: send.batch,
        pregenerate: !send.stream,
        chunk_bytes: send.chunk_mib.saturating_mul(1024 * 1024),
        server_pid,
        ..IngestConfig::default()
    };
    config.validate()?;
    Ok(config)
}

pub(super) fn compaction_config(
    session: &Session,
    cold: &ColdOptions,
    runs: usize,
    warmup: usize,
    query: Option<&String>,
) -> Result<CompactionConfig, BenchError> {
    let config = CompactionConfig {
        sql: query
            .cloned()
            .unwrap_or_else(|| CompactionConfig::default().sql),
        runs,
        warmup_runs: warmup,
        cold_dir: cold
            .cold_dir
            .clone()
            .or_else(|| session.data_dir.as_ref().map(|dir| dir.join("cold"))),
        compact_timeout_s: cold.compact_timeout_secs,
        server_pid: session.pid,
    };
    config.validate()?;
    Ok(config)
}

/// A load passed when every batch was acknowledged, nothing was rejected and the stored
/// counts are exact; otherwise its failures are added.
pub(super) fn load_passed(load: &IngestReport, failures: &mut Vec<String>) -> bool {
    failures.extend(load.failures.iter().cloned());
    if load.passed() {
        return true;
    }
    failures.push(format!(
        "ingest: {} batches failed, {} events rejected, stored counts {}",
        load.failed_batches,
        load.rejected,
        load.counts.as_ref().map_or_else(
            || "not checked".to_string(),
            |c| format!(
                "{} + {} (expected {} each)",
                c.readings, c.diagnostics, c.expected_per_metric
            )
        )
    ));
    false
}

/// The recent query passed when it returned rows, the same number every time.
pub(super) fn recent_passed(recent: &RecentReport, failures: &mut Vec<String>) -> bool {
    if recent.rows > 0 && recent.rows_stable {
        return true;
    }
    failures.push(format!(
        "recent: {} rows for {} (the same every run: {})",
        recent.rows, recent.parameters.device, recent.rows_stable
    ));
    false
}

/// The compaction query and the plan the cold runs used, below the table.
pub(super) fn compaction_section(report: &CompactionReport) -> String {
    let mut text = format!("Hot/cold query: `{}`\n", report.parameters.sql);
    if let Some(plan) = &report.cold_plan {
        text.push_str(&format!("\nPlan after compaction: `{plan}`\n"));
    }
    text
}

/// The per-query table of the analytics scenario, with the engines' versions.
pub(super) fn analytics_section(report: &AnalyticsReport) -> String {
    let duckdb = match (&report.duckdb_version, &report.duckdb_note) {
        (Some(version), _) => format!(
            "DuckDB {version} ({})",
            report.python.as_deref().unwrap_or("?")
        ),
        (None, Some(note)) => format!("DuckDB {note}"),
        (None, None) => "DuckDB not run".to_string(),
    };
    let files: Vec<String> = report
        .coverage
        .iter()
        .map(|c| format!("{} {} rows in {} files", c.metric, c.file_rows, c.files))
        .collect();
    format!(
        "Analytics on cold Parquet ({}); {} runs per query and engine after {} warm-up; \
         DataFusion {} in-process and {} with {} threads each. Times are wall-clock per query: \
         Strata's include the HTTP round trip and JSON encoding.\n\n{}",
        files.join(", "),
        report.parameters.runs,
        report.parameters.warmup_runs,
        report.datafusion_version,
        duckdb,
        report.threads,
        report.markdown_table()
    )
}
