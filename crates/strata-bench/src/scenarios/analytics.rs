//! Analytics on cold data: eight queries of the TSBS "iot" use case, adapted to the workload's
//! schema, run by three engines on the same Parquet files (the ones one compaction wrote):
//!
//! - **Strata** over HTTP SQL: display names, aliases merged by Strata (`latitude` reads
//!   `latitude` and `lat`), values cast to the declared types.
//! - **DataFusion** in this process: a listing table over the files; the SQL does by hand what
//!   Strata does for its users: `coalesce(TRY_CAST(latitude AS DOUBLE), TRY_CAST(lat AS DOUBLE))`.
//! - **DuckDB** (PyPI `duckdb`) through `scripts/duckdb_analytics.py`, with the same SQL as
//!   DataFusion over `read_parquet([...], union_by_name = true)` views.
//!
//! Each query is written once as a template; `{latitude}` and friends render as the display
//! name for Strata and as the coalesce/cast expression for the plain engines, so the three run
//! the same query shape. Answers are compared as [`crate::normalize`] says (rows sorted,
//! numbers equal to about 6 significant digits).
//!
//! Adaptations (TSBS tags carry `load_capacity` and `nominal_fuel_consumption`, ours do not,
//! and our sensors have other ranges): capacities come from a per-model table (TSBS's values for
//! F-150, G-2000 and H-2); thresholds are scaled to the generator's value ranges so answers are
//! not empty, and carry a fourth decimal so no average of the generated values can sit exactly
//! on one (engines that sum in another order could disagree there).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strata_client::Client;

use crate::cold_files::{ColdFileSet, MetricFiles};
use crate::generator::{
    GeneratorConfig, DIAGNOSTICS, DIAGNOSTICS_FIELDS, READINGS, READINGS_FIELDS, RENAMED_FIELDS,
    TAG_FIELDS,
};
use crate::normalize::{canonical_rows, display_rows, first_difference, Cell};
use crate::plot::{write_latency_plot_if_any, LatencySeries, PlotFile, Plots};
use crate::progress::{NoProgress, Progress};
use crate::report::{format_ms, markdown_row, thousands, ReportRow, ReportRows, RunInfo};
use crate::scenarios::{sql_string_literal, sql_timestamp_literal, BenchTarget};
use crate::stats::LatencySummary;
use crate::BenchError;

pub const MAX_RUNS: usize = 10_000;
/// The DuckDB side, committed as a script so it can also be run and read on its own.
pub const DUCKDB_SCRIPT: &str = include_str!("../../scripts/duckdb_analytics.py");
/// Interpreter override for the DuckDB side.
pub const PYTHON_ENV: &str = "STRATA_BENCH_PYTHON";
/// The virtualenv CI installs DuckDB into (`.ci/run`), relative to `$HOME`.
pub const CI_VENV_PYTHON: &str = ".cache/strata-venv/bin/python";
/// The fleet the per-fleet queries look at (TSBS picks one at random; we fix it).
pub const DEFAULT_FLEET: &str = "South";
/// Length of the stationary-trucks window (TSBS: 10 minutes).
const STATIONARY_WINDOW_MS: i64 = 10 * 60 * 1000;

/// Whether the DuckDB engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuckdbMode {
    /// Run it when Python with duckdb is available; otherwise say so and compare two engines.
    Auto,
    /// A missing DuckDB fails the run (CI: STRATA_REQUIRE_CLIENTS=1).
    Required,
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsConfig {
    /// The workload that was loaded: the stationary-trucks window starts at its first interval.
    pub workload: GeneratorConfig,
    pub fleet: String,
    /// Measured runs of each query per engine.
    pub runs: usize,
    pub warmup_runs: usize,
    pub duckdb: DuckdbMode,
    /// Python interpreter for DuckDB; default: $STRATA_BENCH_PYTHON, the CI venv, `python3`.
    pub python: Option<String>,
    /// Threads of the in-process engines (DataFusion partitions, DuckDB threads); 0 = the CPUs.
    pub threads: usize,
}

impl AnalyticsConfig {
    pub fn for_workload(workload: &GeneratorConfig) -> AnalyticsConfig {
        AnalyticsConfig {
            workload: workload.clone(),
            fleet: DEFAULT_FLEET.to_string(),
            runs: 10,
            warmup_runs: 1,
            duckdb: DuckdbMode::Auto,
            python: None,
            threads: 0,
        }
    }

    pub fn validate(&self) -> Result<(), BenchError> {
        self.workload.validate()?;
        if self.runs == 0 || self.runs > MAX_RUNS {
            return Err(BenchError::InvalidConfig(format!(
                "runs must be 1..={MAX_RUNS}, got {}",
                self.runs
            )));
        }
        Ok(())
    }

    fn threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    }
}

/// One query in both dialects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuerySpec {
    pub name: String,
    pub description: String,
    /// For Strata: display names, aliases merged by the server.
    pub strata_sql: String,
    /// For DataFusion and DuckDB on the raw files: one column per incoming name.
    pub plain_sql: String,
}

/// TSBS's per-model tags, as SQL over our `model` tag. TSBS: F-150 2000 kg / 15, G-2000 5000 /
/// 19, H-2 1500 / 12; our generator's two extra models get values in between.
const LOAD_CAPACITY: &str = "CAST(CASE model WHEN 'F-150' THEN 2000 WHEN 'G-2000' THEN 5000 \
WHEN 'H-2' THEN 1500 WHEN 'F-250' THEN 3000 ELSE 1000 END AS DOUBLE)";
const NOMINAL_FUEL_CONSUMPTION: &str =
    "CAST(CASE model WHEN 'F-150' THEN 15 WHEN 'G-2000' THEN 19 \
WHEN 'H-2' THEN 12 WHEN 'F-250' THEN 17 ELSE 10 END AS DOUBLE)";

/// The templates: (name, TSBS description, SQL with `{field}` placeholders).
const TEMPLATES: [(&str, &str, &str); 8] = [
    (
        "last-loc",
        "last location of every truck of one fleet",
        "SELECT name, driver, latitude, longitude FROM (\
SELECT name, driver, {latitude} AS latitude, {longitude} AS longitude, \
row_number() OVER (PARTITION BY name ORDER BY \"timestamp\" DESC) AS rn \
FROM readings WHERE fleet = {fleet}) AS last_reading \
WHERE rn = 1 ORDER BY name",
    ),
    (
        "low-fuel",
        "trucks of one fleet whose last fuel state is below 10%",
        "SELECT name, driver, fuel_state FROM (\
SELECT name, driver, {fuel_state} AS fuel_state, \
row_number() OVER (PARTITION BY name ORDER BY \"timestamp\" DESC) AS rn \
FROM diagnostics WHERE fleet = {fleet}) AS last_diagnostic \
WHERE rn = 1 AND fuel_state < 0.1 ORDER BY name",
    ),
    (
        "high-load",
        "trucks of one fleet whose last load is at least 90% of capacity",
        "SELECT name, driver, current_load, load_capacity FROM (\
SELECT name, driver, {current_load} AS current_load, {load_capacity} AS load_capacity, \
row_number() OVER (PARTITION BY name ORDER BY \"timestamp\" DESC) AS rn \
FROM diagnostics WHERE fleet = {fleet}) AS last_diagnostic \
WHERE rn = 1 AND current_load / load_capacity >= 0.9 ORDER BY name",
    ),
    (
        "stationary-trucks",
        "trucks of one fleet with a low average velocity over 10 minutes",
        "SELECT name, driver FROM readings \
WHERE fleet = {fleet} AND \"timestamp\" >= {window_start} AND \"timestamp\" < {window_end} \
GROUP BY name, driver HAVING avg({velocity}) < 15.0001 ORDER BY name",
    ),
    (
        "avg-load",
        "average load share per fleet and model (per-truck averages first)",
        "SELECT fleet, model, avg(avg_load / {load_capacity}) AS avg_load_share FROM (\
SELECT name, fleet, model, avg({current_load}) AS avg_load \
FROM diagnostics GROUP BY name, fleet, model) AS per_truck \
GROUP BY fleet, model ORDER BY fleet, model",
    ),
    (
        "daily-activity",
        "share of each day trucks were active (10-minute buckets with a low status), per fleet and model",
        "SELECT fleet, model, activity_day, CAST(count(*) AS DOUBLE) / 144 AS active_share FROM (\
SELECT fleet, model, name, activity_day, hour_start, ten_minute FROM (\
SELECT fleet, model, name, {status} AS status, \
CAST(date_trunc('day', \"timestamp\") AS DATE) AS activity_day, \
date_trunc('hour', \"timestamp\") AS hour_start, \
floor(extract(minute FROM \"timestamp\") / 10) AS ten_minute \
FROM diagnostics) AS samples \
GROUP BY fleet, model, name, activity_day, hour_start, ten_minute \
HAVING avg(status) < 2.4321) AS active_buckets \
GROUP BY fleet, model, activity_day ORDER BY fleet, model, activity_day",
    ),
    (
        "breakdown-frequency",
        "per model, how often a truck goes from working to broken down (10-minute buckets with >= 25% status 0)",
        "WITH buckets AS (\
SELECT name, model, hour_start, ten_minute, \
4 * sum(CASE WHEN status = 0 THEN 1 ELSE 0 END) >= count(*) AS broken_down FROM (\
SELECT name, model, {status} AS status, date_trunc('hour', \"timestamp\") AS hour_start, \
floor(extract(minute FROM \"timestamp\") / 10) AS ten_minute FROM diagnostics) AS samples \
GROUP BY name, model, hour_start, ten_minute), \
transitions AS (\
SELECT model, broken_down, \
lead(broken_down) OVER (PARTITION BY name ORDER BY hour_start, ten_minute) AS next_broken_down \
FROM buckets) \
SELECT model, count(*) AS breakdowns FROM transitions \
WHERE NOT broken_down AND next_broken_down GROUP BY model ORDER BY model",
    ),
    (
        "avg-vs-projected-fuel-consumption",
        "average against nominal fuel consumption per fleet, while moving",
        "SELECT fleet, avg({fuel_consumption}) AS avg_fuel_consumption, \
avg({nominal_fuel_consumption}) AS projected_fuel_consumption \
FROM readings WHERE {velocity} > 1 GROUP BY fleet ORDER BY fleet",
    ),
];

/// The incoming names a field's values may arrive under, in Strata's precedence order (the
/// declared name first, then its aliases).
fn incoming_names(field: &str) -> Vec<&str> {
    let mut names = vec![field];
    names.extend(
        RENAMED_FIELDS
            .iter()
            .filter(|(canonical, _)| *canonical == field)
            .map(|(_, alias)| *alias),
    );
    names
}

/// What Strata does for a declared double field, by hand: every incoming name cast (a failed
/// cast is NULL, like Strata's safe cast), first non-null wins.
fn plain_double(field: &str) -> String {
    let casts: Vec<String> = incoming_names(field)
        .into_iter()
        .map(|name| format!("TRY_CAST({name} AS DOUBLE)"))
        .collect();
    if casts.len() == 1 {
        casts.into_iter().collect()
    } else {
        format!("coalesce({})", casts.join(", "))
    }
}

/// The eight queries for `config`'s workload and fleet.
pub fn tsbs_queries(config: &AnalyticsConfig) -> Result<Vec<QuerySpec>, BenchError> {
    let start = config.workload.start_ms;
    let shared = [
        ("{fleet}".to_string(), sql_string_literal(&config.fleet)),
        ("{window_start}".to_string(), sql_timestamp_literal(start)?),
        (
            "{window_end}".to_string(),
            sql_timestamp_literal(start.saturating_add(STATIONARY_WINDOW_MS))?,
        ),
        ("{load_capacity}".to_string(), LOAD_CAPACITY.to_string()),
        (
            "{nominal_fuel_consumption}".to_string(),
            NOMINAL_FUEL_CONSUMPTION.to_string(),
        ),
    ];
    let fields: Vec<&str> = READINGS_FIELDS
        .iter()
        .chain(DIAGNOSTICS_FIELDS.iter())
        .copied()
        .collect();
    let render = |template: &str, strata: bool| -> Result<String, BenchError> {
        let mut sql = template.to_string();
        for (placeholder, value) in &shared {
            sql = sql.replace(placeholder.as_str(), value);
        }
        for field in &fields {
            let value = if strata {
                field.to_string()
            } else {
                plain_double(field)
            };
            sql = sql.replace(&format!("{{{field}}}"), &value);
        }
        if sql.contains('{') {
            return Err(BenchError::InvalidConfig(format!(
                "a query template has an unknown placeholder: {sql}"
            )));
        }
        Ok(sql)
    };
    TEMPLATES
        .iter()
        .map(|(name, description, template)| {
            Ok(QuerySpec {
                name: name.to_string(),
                description: description.to_string(),
                strata_sql: render(template, true)?,
                plain_sql: render(template, false)?,
            })
        })
        .collect()
}

/// Columns a plain-engine table must have even when no file holds them (a workload without
/// renamed trucks has no `lat`): the tags and every incoming name of the metric's fields.
fn required_columns(metric: &str) -> Vec<String> {
    let fields: &[&str] = if metric == READINGS {
        &READINGS_FIELDS
    } else {
        &DIAGNOSTICS_FIELDS
    };
    TAG_FIELDS
        .iter()
        .copied()
        .chain(fields.iter().flat_map(|field| incoming_names(field)))
        .map(str::to_string)
        .collect()
}

/// One engine's figures for one query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineResult {
    pub latency: Option<LatencySummary>,
    pub rows: usize,
    pub error: Option<String>,
    /// The answer sorted, as text (floats at 6 significant digits), for the report.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub answer: Vec<Vec<String>>,
    /// The answer sorted, as compared (numbers with a relative tolerance).
    #[serde(skip)]
    pub cells: Vec<Vec<Cell>>,
}

impl EngineResult {
    fn failed(error: String) -> EngineResult {
        EngineResult {
            error: Some(error),
            ..EngineResult::default()
        }
    }

    fn median(&self) -> Option<f64> {
        self.latency.as_ref().map(|l| l.p50_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryReport {
    pub name: String,
    pub description: String,
    pub strata_sql: String,
    pub plain_sql: String,
    pub strata: EngineResult,
    pub datafusion: EngineResult,
    /// `None` when DuckDB did not run.
    pub duckdb: Option<EngineResult>,
    /// Strata median / DuckDB median (below 1: Strata is faster).
    pub strata_vs_duckdb: Option<f64>,
    /// Strata median / DataFusion median.
    pub strata_vs_datafusion: Option<f64>,
    /// Every engine that ran answered, and all answers are equal after normalization.
    pub same_result: bool,
    pub difference: Option<String>,
}

/// Rows of the cold files against what Strata counts, per metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageCheck {
    pub metric: String,
    pub files: usize,
    pub file_rows: u64,
    pub strata_rows: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsReport {
    pub run: RunInfo,
    pub parameters: AnalyticsConfig,
    pub coverage: Vec<CoverageCheck>,
    /// Strata counts exactly the rows the files hold, for both metrics: the three engines
    /// read the same data.
    pub coverage_ok: bool,
    pub datafusion_version: String,
    pub duckdb_version: Option<String>,
    /// Why DuckDB did not run, when it did not.
    pub duckdb_note: Option<String>,
    pub python: Option<String>,
    pub threads: usize,
    pub queries: Vec<QueryReport>,
    /// Geometric means over the queries that have both figures.
    pub geomean_strata_vs_duckdb: Option<f64>,
    pub geomean_strata_vs_datafusion: Option<f64>,
}

impl AnalyticsReport {
    pub fn all_equal(&self) -> bool {
        !self.queries.is_empty() && self.queries.iter().all(|q| q.same_result)
    }

    /// Every correctness problem, in words. A DuckDB that did not run is not one unless it
    /// was required (then the run already failed).
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if !self.coverage_ok {
            failures.push(format!(
                "analytics: the cold files do not hold exactly what Strata counts: {:?}",
                self.coverage
            ));
        }
        for query in &self.queries {
            if !query.same_result {
                failures.push(format!(
                    "analytics {}: {}",
                    query.name,
                    query.difference.as_deref().unwrap_or("answers differ")
                ));
            }
        }
        failures
    }

    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// The per-query table: medians and p99 per engine, the ratios, rows and equality.
    pub fn markdown_table(&self) -> String {
        let mut text = String::from(
            "| query | Strata median / p99 | DataFusion median / p99 | DuckDB median / p99 | Strata/DuckDB | Strata/DataFusion | rows | same result |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        let figures = |result: &EngineResult| match (&result.latency, &result.error) {
            (_, Some(error)) => format!("error: {error}"),
            (Some(l), None) => format!("{} / {}", format_ms(l.p50_ms), format_ms(l.p99_ms)),
            (None, None) => "-".to_string(),
        };
        let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}"));
        for query in &self.queries {
            text.push_str(&markdown_row(&[
                &query.name,
                &figures(&query.strata),
                &figures(&query.datafusion),
                &query
                    .duckdb
                    .as_ref()
                    .map_or_else(|| "not run".to_string(), figures),
                &ratio(query.strata_vs_duckdb),
                &ratio(query.strata_vs_datafusion),
                &query.strata.rows.to_string(),
                &query.same_result.to_string(),
            ]));
        }
        text.push_str(&markdown_row(&[
            "geometric mean",
            "",
            "",
            "",
            &ratio(self.geomean_strata_vs_duckdb),
            &ratio(self.geomean_strata_vs_datafusion),
            "",
            &self.all_equal().to_string(),
        ]));
        text
    }
}

impl ReportRows for AnalyticsReport {
    fn report_rows(&self) -> Vec<ReportRow> {
        let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}"));
        let mut rows = vec![
            ReportRow::new(
                "analytics",
                "Strata / DuckDB, geometric mean of medians",
                ratio(self.geomean_strata_vs_duckdb),
                "<= 1 (no slower than DuckDB)",
            ),
            ReportRow::new(
                "analytics",
                "Strata / DataFusion, geometric mean of medians",
                ratio(self.geomean_strata_vs_datafusion),
                "",
            ),
            ReportRow::new(
                "analytics",
                "same results in every engine",
                self.all_equal().to_string(),
                "true",
            ),
            ReportRow::new(
                "analytics",
                "rows in cold files (readings + diagnostics)",
                self.coverage
                    .iter()
                    .map(|c| c.file_rows.to_string())
                    .collect::<Vec<_>>()
                    .join(" + "),
                "",
            ),
        ];
        if let Some(note) = &self.duckdb_note {
            rows.push(ReportRow::new("analytics", "DuckDB", note.clone(), ""));
        }
        rows
    }
}

impl Plots for AnalyticsReport {
    /// `PREFIX-QUERY.png` per query: the latency of each engine that answered it.
    fn write_plots(&self, dir: &Path, prefix: &str) -> Result<Vec<PlotFile>, BenchError> {
        let rows: u64 = self.coverage.iter().map(|c| c.file_rows).sum();
        let mut files = Vec::new();
        for query in &self.queries {
            let mut series = Vec::new();
            let engines = [
                ("Strata (HTTP)", Some(&query.strata)),
                ("DataFusion", Some(&query.datafusion)),
                ("DuckDB", query.duckdb.as_ref()),
            ];
            for (engine, result) in engines {
                if let Some(latency) = result.and_then(|r| r.latency.as_ref()) {
                    series.push(LatencySeries::from_summary(engine, latency));
                }
            }
            files.extend(write_latency_plot_if_any(
                dir,
                &format!("{prefix}-{}", query.name),
                &format!("{prefix}: {} on {} cold rows", query.name, thousands(rows)),
                &series,
            )?);
        }
        Ok(files)
    }
}

pub fn run_analytics(
    target: &BenchTarget,
    config: &AnalyticsConfig,
    files: &ColdFileSet,
) -> Result<AnalyticsReport, BenchError> {
    run_analytics_with(target, config, files, &NoProgress)
}

/// [`run_analytics`] reporting progress (`"Strata and DataFusion"`, then `"DuckDB"`).
pub fn run_analytics_with(
    target: &BenchTarget,
    config: &AnalyticsConfig,
    files: &ColdFileSet,
    progress: &dyn Progress,
) -> Result<AnalyticsReport, BenchError> {
    config.validate()?;
    let run = RunInfo::new("analytics", &target.base_url);
    let client = target.client()?;
    let queries = tsbs_queries(config)?;
    let threads = config.threads();

    let tables = compacted_tables(files)?;
    let coverage = check_coverage(&client, &target.read_key, &tables)?;
    let coverage_ok = coverage.iter().all(|c| c.file_rows == c.strata_rows);
    let (python, duckdb_probe) = probe_duckdb_as_configured(config)?;

    let engines = EngineRuns {
        config,
        tables: &tables,
        queries: &queries,
        threads,
        progress,
    };
    let (strata_results, datafusion_results) =
        engines.measure_strata_and_datafusion(&client, &target.read_key)?;
    let duckdb = engines.run_duckdb_if_available(python.as_deref(), duckdb_probe)?;

    let reports = query_reports(
        &queries,
        &strata_results,
        &datafusion_results,
        duckdb.results.as_deref(),
    );
    Ok(AnalyticsReport {
        run,
        parameters: config.clone(),
        coverage,
        coverage_ok,
        datafusion_version: datafusion::DATAFUSION_VERSION.to_string(),
        duckdb_version: duckdb.version,
        duckdb_note: duckdb.note,
        python,
        threads,
        geomean_strata_vs_duckdb: geometric_mean(&reports, |q| q.strata_vs_duckdb),
        geomean_strata_vs_datafusion: geometric_mean(&reports, |q| q.strata_vs_datafusion),
        queries: reports,
    })
}

/// The files the compaction wrote for both workload metrics.
fn compacted_tables(files: &ColdFileSet) -> Result<Vec<&MetricFiles>, BenchError> {
    let mut tables: Vec<&MetricFiles> = Vec::new();
    for metric in [READINGS, DIAGNOSTICS] {
        let located = files.metric(metric).ok_or_else(|| {
            BenchError::Check(format!("the compaction wrote no files for {metric}"))
        })?;
        tables.push(located);
    }
    Ok(tables)
}

/// Only rows the compaction moved are in the files: Strata must count exactly those, or
/// the engines would not read the same data.
fn check_coverage(
    client: &Client,
    read_key: &str,
    tables: &[&MetricFiles],
) -> Result<Vec<CoverageCheck>, BenchError> {
    let mut coverage = Vec::new();
    for table in tables {
        let strata_rows = client
            .sql(read_key, &format!("SELECT count(*) FROM {}", table.metric))?
            .single_count()?;
        coverage.push(CoverageCheck {
            metric: table.metric.clone(),
            files: table.files.len(),
            file_rows: table.rows,
            strata_rows,
        });
    }
    Ok(coverage)
}

/// The interpreter to run DuckDB with (unless it is off) and its version or why it cannot
/// run. Probing comes first so a required but missing DuckDB fails before any measurement.
fn probe_duckdb_as_configured(
    config: &AnalyticsConfig,
) -> Result<(Option<String>, Result<String, String>), BenchError> {
    let (python, duckdb_probe) = match config.duckdb {
        DuckdbMode::Off => (None, Err("turned off (--no-duckdb)".to_string())),
        _ => {
            let python = config.python.clone().unwrap_or_else(default_python);
            let probe = probe_duckdb(&python);
            (Some(python), probe)
        }
    };
    if let (DuckdbMode::Required, Err(why)) = (config.duckdb, &duckdb_probe) {
        return Err(BenchError::Check(format!(
            "DuckDB is required (STRATA_REQUIRE_CLIENTS=1) but {why}"
        )));
    }
    Ok((python, duckdb_probe))
}

/// What every engine's measurement shares: the runs, the tables, the queries and the threads.
struct EngineRuns<'a> {
    config: &'a AnalyticsConfig,
    tables: &'a [&'a MetricFiles],
    queries: &'a [QuerySpec],
    threads: usize,
    progress: &'a dyn Progress,
}

impl EngineRuns<'_> {
    /// Every query through Strata's HTTP SQL and through in-process DataFusion, in turn.
    fn measure_strata_and_datafusion(
        &self,
        client: &Client,
        read_key: &str,
    ) -> Result<(Vec<EngineResult>, Vec<EngineResult>), BenchError> {
        let (config, progress) = (self.config, self.progress);
        // Dropped on return, so its runtime's threads are gone before DuckDB runs.
        let engine = DataFusionEngine::new(self.tables, self.threads)?;
        let per_query = (config.warmup_runs + config.runs) as u64;
        progress.phase(
            "Strata and DataFusion",
            2 * per_query * self.queries.len() as u64,
        );
        let mut strata_results = Vec::new();
        let mut datafusion_results = Vec::new();
        for query in self.queries {
            strata_results.push(measure(config, progress, || {
                client
                    .sql(read_key, &query.strata_sql)
                    .map(|answer| answer.rows)
                    .map_err(BenchError::from)
            }));
            datafusion_results.push(measure(config, progress, || engine.query(&query.plain_sql)));
        }
        Ok((strata_results, datafusion_results))
    }

    /// Runs the DuckDB script when the probe found DuckDB; otherwise notes why it did not run.
    fn run_duckdb_if_available(
        &self,
        python: Option<&str>,
        probe: Result<String, String>,
    ) -> Result<DuckdbRun, BenchError> {
        Ok(match (python, probe) {
            (Some(python), Ok(_)) => {
                self.progress.phase("DuckDB", 0);
                let output =
                    run_duckdb(python, self.config, self.tables, self.queries, self.threads)?;
                DuckdbRun {
                    version: Some(output.version),
                    note: None,
                    results: Some(output.results),
                }
            }
            (_, Err(why)) => DuckdbRun::not_run(Some(format!(
                "not run: {why}; Strata is compared with DataFusion only"
            ))),
            (None, Ok(_)) => DuckdbRun::not_run(None),
        })
    }
}

/// What the DuckDB side gave: its version and results when it ran, why not when it did not.
struct DuckdbRun {
    version: Option<String>,
    note: Option<String>,
    results: Option<Vec<EngineResult>>,
}

impl DuckdbRun {
    fn not_run(note: Option<String>) -> DuckdbRun {
        DuckdbRun {
            version: None,
            note,
            results: None,
        }
    }
}

/// Every query's report, from each engine's results in query order.
fn query_reports(
    queries: &[QuerySpec],
    strata_results: &[EngineResult],
    datafusion_results: &[EngineResult],
    duckdb_results: Option<&[EngineResult]>,
) -> Vec<QueryReport> {
    let mut reports = Vec::new();
    for (index, query) in queries.iter().enumerate() {
        let duckdb = duckdb_results.map(|results| results[index].clone());
        reports.push(query_report(
            query,
            strata_results[index].clone(),
            datafusion_results[index].clone(),
            duckdb,
        ));
    }
    reports
}

/// One query's results from every engine, compared with Strata's.
fn query_report(
    query: &QuerySpec,
    strata: EngineResult,
    datafusion: EngineResult,
    duckdb: Option<EngineResult>,
) -> QueryReport {
    let mut engines: Vec<(&str, &EngineResult)> =
        vec![("Strata", &strata), ("DataFusion", &datafusion)];
    if let Some(duckdb) = &duckdb {
        engines.push(("DuckDB", duckdb));
    }
    let difference = first_disagreement(&engines);
    let ratio = |other: Option<&EngineResult>| match (strata.median(), other?.median()) {
        (Some(s), Some(o)) if o > 0.0 => Some(s / o),
        _ => None,
    };
    QueryReport {
        name: query.name.clone(),
        description: query.description.clone(),
        strata_sql: query.strata_sql.clone(),
        plain_sql: query.plain_sql.clone(),
        strata_vs_duckdb: ratio(duckdb.as_ref()),
        strata_vs_datafusion: ratio(Some(&datafusion)),
        same_result: difference.is_none(),
        difference,
        strata,
        datafusion,
        duckdb,
    }
}

/// The first engine that failed, else the first answer that differs from the first
/// engine's (Strata's), in words; `None` when all agree.
fn first_disagreement(engines: &[(&str, &EngineResult)]) -> Option<String> {
    let mut difference = None;
    for (name, result) in engines {
        if let Some(error) = &result.error {
            difference.get_or_insert_with(|| format!("{name} failed: {error}"));
        }
    }
    if difference.is_none() {
        let strata = engines[0].1;
        for (name, result) in &engines[1..] {
            if let Some(found) = first_difference(&strata.cells, &result.cells) {
                difference.get_or_insert_with(|| format!("Strata vs {name}: {found}"));
            }
        }
    }
    difference
}

/// Geometric mean of the ratios `pick` finds; `None` when no query has one.
fn geometric_mean(reports: &[QueryReport], pick: fn(&QueryReport) -> Option<f64>) -> Option<f64> {
    let ratios: Vec<f64> = reports.iter().filter_map(pick).collect();
    (!ratios.is_empty())
        .then(|| (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp())
}

/// Runs `query` warmup + runs times; an error ends the query's measurement and is recorded.
fn measure(
    config: &AnalyticsConfig,
    progress: &dyn Progress,
    mut query: impl FnMut() -> Result<Vec<Vec<Value>>, BenchError>,
) -> EngineResult {
    let mut latencies = Vec::with_capacity(config.runs);
    let mut rows = Vec::new();
    for attempt in 0..config.warmup_runs + config.runs {
        let started = Instant::now();
        match query() {
            Ok(answer) => rows = answer,
            Err(error) => return EngineResult::failed(error.to_string()),
        }
        let latency = started.elapsed();
        progress.advance(1);
        if attempt >= config.warmup_runs {
            latencies.push(latency);
        }
    }
    let cells = canonical_rows(&rows);
    EngineResult {
        latency: LatencySummary::from_durations(&latencies),
        rows: rows.len(),
        error: None,
        answer: display_rows(&cells),
        cells,
    }
}

/// Plain DataFusion over the cold files, in this process.
struct DataFusionEngine {
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
}

fn engine_error(error: impl std::fmt::Display) -> BenchError {
    BenchError::Engine(error.to_string())
}

impl DataFusionEngine {
    fn new(tables: &[&MetricFiles], threads: usize) -> Result<DataFusionEngine, BenchError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?;
        let ctx =
            SessionContext::new_with_config(SessionConfig::new().with_target_partitions(threads));
        for table in tables {
            let urls = table
                .files
                .iter()
                .map(|path| {
                    let text = path.to_str().ok_or_else(|| {
                        BenchError::Decode(format!("{} is not UTF-8", path.display()))
                    })?;
                    ListingTableUrl::parse(text).map_err(engine_error)
                })
                .collect::<Result<Vec<_>, BenchError>>()?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(Arc::new(table_schema(table)));
            let provider = ListingTable::try_new(config).map_err(engine_error)?;
            ctx.register_table(table.metric.as_str(), Arc::new(provider))
                .map_err(engine_error)?;
        }
        Ok(DataFusionEngine { runtime, ctx })
    }

    /// Plans and runs `sql`, collecting every batch; the answer as JSON rows.
    fn query(&self, sql: &str) -> Result<Vec<Vec<Value>>, BenchError> {
        let batches = self.runtime.block_on(async {
            let frame = self.ctx.sql(sql).await?;
            frame.collect().await
        });
        let batches = batches.map_err(engine_error)?;
        batches_to_rows(&batches)
    }
}

/// The table schema a user would declare over the files: every column any file holds, typed
/// as in the files (text where they disagree), plus the workload's names no file holds.
fn table_schema(table: &MetricFiles) -> Schema {
    let mut fields: Vec<Field> = table
        .arrow_types
        .iter()
        .map(|(name, data_type)| Field::new(name, data_type.clone(), true))
        .collect();
    for name in required_columns(&table.metric) {
        if !table.arrow_types.contains_key(&name) {
            fields.push(Field::new(name, DataType::Utf8, true));
        }
    }
    Schema::new(fields)
}

/// Arrow batches as JSON rows, exactly as Strata's JSON answers render them (the same encoder).
fn batches_to_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<Value>>, BenchError> {
    let mut rows = Vec::new();
    for batch in batches {
        rows.extend(strata_query::answer::json::rows(batch).map_err(engine_error)?);
    }
    Ok(rows)
}

/// $STRATA_BENCH_PYTHON, else the CI virtualenv's interpreter when it exists, else `python3`.
pub fn default_python() -> String {
    if let Some(python) = std::env::var(PYTHON_ENV).ok().filter(|p| !p.is_empty()) {
        return python;
    }
    if let Some(home) = std::env::var_os("HOME") {
        let venv = std::path::Path::new(&home).join(CI_VENV_PYTHON);
        if venv.exists() {
            return venv.to_string_lossy().into_owned();
        }
    }
    "python3".to_string()
}

/// DuckDB's version, or why it cannot be used.
pub fn probe_duckdb(python: &str) -> Result<String, String> {
    let output = Command::new(python)
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{python} cannot be started: {error}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("").trim().to_string();
        return Err(format!("{python} cannot import duckdb ({last})"));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

struct DuckdbOutput {
    version: String,
    results: Vec<EngineResult>,
}

#[derive(Deserialize)]
struct ScriptOutput {
    duckdb_version: String,
    queries: Vec<ScriptQuery>,
}

#[derive(Deserialize)]
struct ScriptQuery {
    name: String,
    times_ms: Vec<f64>,
    rows: Vec<Vec<Value>>,
    error: Option<String>,
}

/// Longest stderr tail kept from a failed script.
const MAX_SCRIPT_ERROR_CHARS: usize = 2000;
/// How much of an unparsable stdout an error echoes: enough to recognize what wrote it.
const MAX_ECHOED_STDOUT_CHARS: usize = 300;

fn run_duckdb(
    python: &str,
    config: &AnalyticsConfig,
    tables: &[&MetricFiles],
    queries: &[QuerySpec],
    threads: usize,
) -> Result<DuckdbOutput, BenchError> {
    let spec = duckdb_spec(config, tables, queries, threads);
    let parsed = run_duckdb_script(python, &spec)?;
    let results = queries
        .iter()
        .map(|query| script_result(&parsed, query))
        .collect();
    Ok(DuckdbOutput {
        version: parsed.duckdb_version,
        results,
    })
}

/// What the script reads on stdin: the tables' files and columns, the queries and how to
/// run them.
fn duckdb_spec(
    config: &AnalyticsConfig,
    tables: &[&MetricFiles],
    queries: &[QuerySpec],
    threads: usize,
) -> Value {
    let mut table_specs = serde_json::Map::new();
    for table in tables {
        table_specs.insert(
            table.metric.clone(),
            json!({ "files": table.files, "columns": required_columns(&table.metric) }),
        );
    }
    json!({
        "tables": table_specs,
        "queries": queries.iter().map(|q| json!({"name": q.name, "sql": q.plain_sql})).collect::<Vec<_>>(),
        "runs": config.runs,
        "warmup": config.warmup_runs,
        "threads": threads,
    })
}

fn run_duckdb_script(python: &str, spec: &Value) -> Result<ScriptOutput, BenchError> {
    let mut child = Command::new(python)
        .args(["-c", DUCKDB_SCRIPT, "-"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // The script reads the whole spec before it writes anything, so this cannot block on
        // a full stdout pipe.
        stdin.write_all(spec.to_string().as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let start = stderr.len().saturating_sub(MAX_SCRIPT_ERROR_CHARS);
        let tail = stderr.get(start..).unwrap_or(&stderr);
        return Err(BenchError::Engine(format!(
            "the DuckDB script failed ({}): {tail}",
            output.status
        )));
    }
    serde_json::from_slice(&output.stdout).map_err(|error| {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let head: String = stdout.chars().take(MAX_ECHOED_STDOUT_CHARS).collect();
        BenchError::Decode(format!(
            "the DuckDB script printed no valid JSON ({error}); its stdout began with {head:?}"
        ))
    })
}

/// The script's answer to `query`, or why there is none.
fn script_result(parsed: &ScriptOutput, query: &QuerySpec) -> EngineResult {
    let found = parsed.queries.iter().find(|q| q.name == query.name);
    match found {
        None => EngineResult::failed("the script did not answer this query".to_string()),
        Some(ScriptQuery {
            error: Some(error), ..
        }) => EngineResult::failed(error.clone()),
        Some(answer) => {
            let cells = canonical_rows(&answer.rows);
            EngineResult {
                latency: LatencySummary::from_millis(answer.times_ms.clone()),
                rows: answer.rows.len(),
                error: None,
                answer: display_rows(&cells),
                cells,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_display_names_for_strata_and_coalesce_for_plain_engines() {
        let config = AnalyticsConfig::for_workload(&GeneratorConfig::default());
        let queries = tsbs_queries(&config).unwrap();
        assert_eq!(queries.len(), 8);
        let names: Vec<&str> = queries.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "last-loc",
                "low-fuel",
                "high-load",
                "stationary-trucks",
                "avg-load",
                "daily-activity",
                "breakdown-frequency",
                "avg-vs-projected-fuel-consumption"
            ]
        );
        let last_loc = &queries[0];
        assert!(last_loc
            .strata_sql
            .contains("SELECT name, driver, latitude AS latitude, longitude AS longitude"));
        assert!(last_loc.plain_sql.contains(
            "coalesce(TRY_CAST(latitude AS DOUBLE), TRY_CAST(lat AS DOUBLE)) AS latitude"
        ));
        assert!(last_loc.strata_sql.contains("fleet = 'South'"));
        let stationary = &queries[3];
        assert!(stationary
            .strata_sql
            .contains("\"timestamp\" >= '2026-01-01T00:00:00.000Z' AND \"timestamp\" < '2026-01-01T00:10:00.000Z'"));
        assert!(stationary
            .plain_sql
            .contains("avg(TRY_CAST(velocity AS DOUBLE))"));
        let low_fuel = &queries[1];
        assert!(low_fuel
            .plain_sql
            .contains("coalesce(TRY_CAST(fuel_state AS DOUBLE), TRY_CAST(fuel AS DOUBLE))"));
        for query in &queries {
            assert!(
                !query.strata_sql.contains("TRY_CAST"),
                "{}",
                query.strata_sql
            );
            assert!(!query.plain_sql.contains('{'));
            assert!(query.strata_sql.contains("ORDER BY"), "{}", query.name);
        }
    }

    #[test]
    fn plain_tables_get_every_incoming_name() {
        let readings = required_columns(READINGS);
        for name in [
            "name",
            "fleet",
            "latitude",
            "lat",
            "longitude",
            "lon",
            "velocity",
        ] {
            assert!(readings.iter().any(|c| c == name), "{name}");
        }
        let diagnostics = required_columns(DIAGNOSTICS);
        for name in ["fuel_state", "fuel", "current_load", "status", "model"] {
            assert!(diagnostics.iter().any(|c| c == name), "{name}");
        }
    }
}
