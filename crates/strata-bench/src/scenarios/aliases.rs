//! The cost of aliases: one aggregate over a field whose values arrive under four names (its
//! own and three aliases) against the same aggregate over a field with a single name holding
//! exactly the same values, in the same rows.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use strata_client::Client;

use crate::plot::{write_latency_plot_if_any, LatencySeries, PlotFile, Plots};
use crate::progress::{NoProgress, Progress};
use crate::report::{format_ms, thousands, ReportRow, ReportRows, RunInfo};
use crate::scenarios::BenchTarget;
use crate::schema::{apply_schema, create_metric_op, declare_field_op, SchemaSetupReport};
use crate::stats::LatencySummary;
use crate::BenchError;

pub const MAX_ROWS: u64 = 100_000_000;
pub const MAX_RUNS: usize = 100_000;
pub const MAX_BATCH_EVENTS: usize = 100_000;
/// The field read through its aliases, and the aliases it is declared with.
pub const ALIASED_FIELD: &str = "aliased";
pub const FIELD_ALIASES: [&str; 3] = ["aliased_b", "aliased_c", "aliased_d"];
/// The field with one name.
pub const SINGLE_FIELD: &str = "single";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasConfig {
    /// A metric used only by this scenario.
    pub metric: String,
    pub rows: u64,
    pub batch_size: usize,
    /// Measured runs of each query (they alternate, so drift hits both alike).
    pub runs: usize,
    pub warmup_runs: usize,
    /// Timestamp of the first row; row i is at start_ms + i.
    pub start_ms: i64,
}

impl Default for AliasConfig {
    fn default() -> Self {
        AliasConfig {
            metric: "bench_aliases".to_string(),
            rows: 1_000_000,
            batch_size: 5000,
            runs: 50,
            warmup_runs: 3,
            // 2026-01-01T00:00:00Z
            start_ms: 1_767_225_600_000,
        }
    }
}

impl AliasConfig {
    pub fn validate(&self) -> Result<(), BenchError> {
        let invalid = |message: String| Err(BenchError::InvalidConfig(message));
        if self.rows == 0 || self.rows > MAX_ROWS {
            return invalid(format!("rows must be 1..={MAX_ROWS}, got {}", self.rows));
        }
        if self.runs == 0 || self.runs > MAX_RUNS {
            return invalid(format!("runs must be 1..={MAX_RUNS}, got {}", self.runs));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_EVENTS {
            return invalid(format!(
                "batch_size must be 1..={MAX_BATCH_EVENTS}, got {}",
                self.batch_size
            ));
        }
        if self.start_ms < 0 || self.start_ms.checked_add(self.rows as i64).is_none() {
            return invalid(format!(
                "start_ms {} leaves no room for the rows",
                self.start_ms
            ));
        }
        Ok(())
    }

    /// The aggregate run over `field`.
    pub fn sql(&self, field: &str) -> String {
        format!(
            "SELECT count({field}), sum({field}), min({field}), max({field}) FROM {}",
            self.metric
        )
    }
}

/// Row `index` as NDJSON: the same value under `single` and under one of the four names of
/// the aliased field, rotating so every name holds a quarter of the data.
pub fn alias_row(config: &AliasConfig, index: u64) -> String {
    let names = [
        ALIASED_FIELD,
        FIELD_ALIASES[0],
        FIELD_ALIASES[1],
        FIELD_ALIASES[2],
    ];
    let name = names[(index % 4) as usize];
    // Whole numbers far below 2^53 keep every sum exact whatever order the engine adds in, so
    // the two answers can be compared for equality.
    let value = (index * 7919) % 10_007;
    format!(
        "{{\"metrictype\":\"{}\",\"timestamp\":{},\"{name}\":{value}.0,\"{SINGLE_FIELD}\":{value}.0}}",
        config.metric,
        config.start_ms + index as i64
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasReport {
    pub run: RunInfo,
    pub parameters: AliasConfig,
    pub schema: SchemaSetupReport,
    pub aliased_sql: String,
    pub single_sql: String,
    pub aliased: Option<LatencySummary>,
    pub single: Option<LatencySummary>,
    /// aliased median / single median (target: at most 1.2).
    pub median_ratio: Option<f64>,
    pub aliased_answer: Vec<Vec<serde_json::Value>>,
    pub single_answer: Vec<Vec<serde_json::Value>>,
    pub answers_equal: bool,
    pub rejected: u64,
}

impl AliasReport {
    pub fn passed(&self) -> bool {
        self.answers_equal && self.rejected == 0
    }
}

impl ReportRows for AliasReport {
    fn report_rows(&self) -> Vec<ReportRow> {
        let mut rows = Vec::new();
        if let (Some(aliased), Some(single)) = (&self.aliased, &self.single) {
            rows.push(ReportRow::new(
                "aliases",
                "median 3 aliases / single name",
                format!(
                    "{} / {}",
                    format_ms(aliased.p50_ms),
                    format_ms(single.p50_ms)
                ),
                "",
            ));
            rows.push(ReportRow::new(
                "aliases",
                "p99 3 aliases / single name",
                format!(
                    "{} / {}",
                    format_ms(aliased.p99_ms),
                    format_ms(single.p99_ms)
                ),
                "",
            ));
        }
        if let Some(ratio) = self.median_ratio {
            rows.push(ReportRow::new(
                "aliases",
                "median ratio",
                format!("{ratio:.3}"),
                "<= 1.2",
            ));
        }
        rows.push(ReportRow::new(
            "aliases",
            "answers equal",
            self.answers_equal.to_string(),
            "true",
        ));
        rows
    }
}

impl Plots for AliasReport {
    /// `PREFIX-latency.png`: the aggregate over the aliased field against the single name.
    fn write_plots(&self, dir: &Path, prefix: &str) -> Result<Vec<PlotFile>, BenchError> {
        let mut series = Vec::new();
        if let Some(aliased) = &self.aliased {
            series.push(LatencySeries::from_summary("field with 3 aliases", aliased));
        }
        if let Some(single) = &self.single {
            series.push(LatencySeries::from_summary("field with one name", single));
        }
        Ok(write_latency_plot_if_any(
            dir,
            &format!("{prefix}-latency"),
            &format!(
                "{prefix}: count, sum, min, max of one field over {} rows",
                thousands(self.parameters.rows)
            ),
            &series,
        )?
        .into_iter()
        .collect())
    }
}

pub fn run_aliases(target: &BenchTarget, config: &AliasConfig) -> Result<AliasReport, BenchError> {
    run_aliases_with(target, config, &NoProgress)
}

/// [`run_aliases`] reporting progress (phase `"loading"` in rows, then `"querying"` in
/// queries).
pub fn run_aliases_with(
    target: &BenchTarget,
    config: &AliasConfig,
    progress: &dyn Progress,
) -> Result<AliasReport, BenchError> {
    config.validate()?;
    let run = RunInfo::new("aliases", &target.base_url);
    let client = target.client()?;
    let schema = apply_schema(
        &client,
        &target.admin_key,
        &[
            create_metric_op(&config.metric),
            declare_field_op(&config.metric, ALIASED_FIELD, "double", &FIELD_ALIASES),
            declare_field_op(&config.metric, SINGLE_FIELD, "double", &[]),
        ],
    )?;
    let rejected = load_alias_rows(&client, &target.write_key, config, progress)?;

    let aliased_sql = config.sql(ALIASED_FIELD);
    let single_sql = config.sql(SINGLE_FIELD);
    let [aliased, single] = measure_alternating(
        &client,
        &target.read_key,
        config,
        [&aliased_sql, &single_sql],
        progress,
    )?;
    let median_ratio = match (&aliased.latency, &single.latency) {
        (Some(aliased), Some(single)) if single.p50_ms > 0.0 => {
            Some(aliased.p50_ms / single.p50_ms)
        }
        _ => None,
    };
    Ok(AliasReport {
        run,
        parameters: config.clone(),
        schema,
        aliased_sql,
        single_sql,
        aliased: aliased.latency,
        single: single.latency,
        median_ratio,
        answers_equal: !aliased.answer.is_empty() && aliased.answer == single.answer,
        aliased_answer: aliased.answer,
        single_answer: single.answer,
        rejected,
    })
}

/// Writes the scenario's rows in batches; the number of rows the server rejected.
fn load_alias_rows(
    client: &Client,
    write_key: &str,
    config: &AliasConfig,
    progress: &dyn Progress,
) -> Result<u64, BenchError> {
    let mut rejected = 0;
    let mut index = 0;
    progress.phase("loading", config.rows);
    while index < config.rows {
        let end = (index + config.batch_size as u64).min(config.rows);
        let mut body = String::with_capacity((end - index) as usize * 96);
        for row in index..end {
            body.push_str(&alias_row(config, row));
            body.push('\n');
        }
        let ack = client.write_ndjson(write_key, body)?;
        rejected += ack.rejected;
        progress.advance(end - index);
        index = end;
    }
    Ok(rejected)
}

/// The latency of one query's measured runs and its last answer.
struct QueryFigures {
    latency: Option<LatencySummary>,
    answer: Vec<Vec<serde_json::Value>>,
}

/// Runs both queries in turn, warmup + runs times, so drift hits both alike.
fn measure_alternating(
    client: &Client,
    read_key: &str,
    config: &AliasConfig,
    queries: [&str; 2],
    progress: &dyn Progress,
) -> Result<[QueryFigures; 2], BenchError> {
    let mut latencies = [
        Vec::with_capacity(config.runs),
        Vec::with_capacity(config.runs),
    ];
    let mut answers = [Vec::new(), Vec::new()];
    progress.phase("querying", 2 * (config.warmup_runs + config.runs) as u64);
    for attempt in 0..config.warmup_runs + config.runs {
        let measured = attempt >= config.warmup_runs;
        for (index, sql) in queries.iter().enumerate() {
            let started = Instant::now();
            let result = client.sql(read_key, sql)?;
            progress.advance(1);
            if measured {
                latencies[index].push(started.elapsed());
            }
            answers[index] = result.rows;
        }
    }
    let [aliased_answer, single_answer] = answers;
    Ok([
        QueryFigures {
            latency: LatencySummary::from_durations(&latencies[0]),
            answer: aliased_answer,
        },
        QueryFigures {
            latency: LatencySummary::from_durations(&latencies[1]),
            answer: single_answer,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_rotate_names_and_repeat_the_value() {
        let config = AliasConfig::default();
        let rows: Vec<serde_json::Value> = (0..8)
            .map(|index| serde_json::from_str(&alias_row(&config, index)).unwrap())
            .collect();
        let names = [ALIASED_FIELD, "aliased_b", "aliased_c", "aliased_d"];
        for (index, row) in rows.iter().enumerate() {
            let name = names[index % 4];
            assert_eq!(row[name], row[SINGLE_FIELD]);
            assert_eq!(row["timestamp"], config.start_ms + index as i64);
            // Exactly one of the aliased names per row.
            assert_eq!(names.iter().filter(|n| row.get(**n).is_some()).count(), 1);
        }
        assert_eq!(
            config.sql("single"),
            "SELECT count(single), sum(single), min(single), max(single) FROM bench_aliases"
        );
    }

    #[test]
    fn config_limits() {
        assert!(AliasConfig::default().validate().is_ok());
        let zero = AliasConfig {
            rows: 0,
            ..AliasConfig::default()
        };
        assert!(zero.validate().is_err());
        let huge_batch = AliasConfig {
            batch_size: MAX_BATCH_EVENTS + 1,
            ..AliasConfig::default()
        };
        assert!(huge_batch.validate().is_err());
    }
}
