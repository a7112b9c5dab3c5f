//! Quick mode: every scenario at a small size plus the correctness checks, for CI. Figures
//! from it mean little; the pass/fail does.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::generator::GeneratorConfig;
use crate::plot::{PlotFile, Plots};
use crate::progress::{NoProgress, Progress};
use crate::report::{ReportRow, ReportRows};
use crate::scenarios::aliases::{run_aliases_with, AliasConfig, AliasReport};
use crate::scenarios::analytics::{run_analytics_with, AnalyticsConfig, AnalyticsReport};
use crate::scenarios::compaction::{run_compaction_with, CompactionConfig, CompactionReport};
use crate::scenarios::freshness::{run_freshness_with, FreshnessConfig, FreshnessReport};
use crate::scenarios::ingest::{run_ingest_with, IngestConfig, IngestReport};
use crate::scenarios::recent::{run_recent_with, RecentConfig, RecentReport};
use crate::scenarios::BenchTarget;
use crate::BenchError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuickConfig {
    pub ingest: IngestConfig,
    pub aliases: AliasConfig,
    pub recent: RecentConfig,
    pub freshness: FreshnessConfig,
    /// Set `compaction.cold_dir` (the server's DATA_DIR/cold) to run analytics too.
    pub compaction: CompactionConfig,
    pub analytics: AnalyticsConfig,
}

impl Default for QuickConfig {
    fn default() -> Self {
        // 30 minutes of data: three 10-minute buckets per truck, so the analytics queries that
        // look for changes between buckets (breakdown-frequency) have something to find.
        let workload = GeneratorConfig {
            trucks: 50,
            intervals: 180,
            ..GeneratorConfig::default()
        };
        QuickConfig {
            recent: RecentConfig {
                runs: 20,
                warmup_runs: 2,
                ..RecentConfig::for_workload(&workload)
            },
            compaction: CompactionConfig {
                runs: 3,
                warmup_runs: 1,
                ..CompactionConfig::default()
            },
            analytics: AnalyticsConfig {
                runs: 2,
                warmup_runs: 1,
                ..AnalyticsConfig::for_workload(&workload)
            },
            ingest: IngestConfig {
                workload,
                clients: 2,
                batch_size: 1000,
                ..IngestConfig::default()
            },
            aliases: AliasConfig {
                rows: 4000,
                batch_size: 1000,
                runs: 5,
                warmup_runs: 1,
                ..AliasConfig::default()
            },
            freshness: FreshnessConfig {
                samples: 20,
                warmup_samples: 2,
                ..FreshnessConfig::default()
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuickReport {
    pub ingest: IngestReport,
    pub aliases: AliasReport,
    pub recent: RecentReport,
    pub freshness: FreshnessReport,
    pub compaction: CompactionReport,
    /// `None` when the cold directory was unknown (see `notes`).
    pub analytics: Option<AnalyticsReport>,
    /// Every correctness check that failed, in words; empty when all passed.
    pub failures: Vec<String>,
    /// What was skipped and why (DuckDB missing, no cold directory).
    pub notes: Vec<String>,
}

impl QuickReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl ReportRows for QuickReport {
    fn report_rows(&self) -> Vec<ReportRow> {
        let mut rows = self.ingest.report_rows();
        rows.extend(self.aliases.report_rows());
        rows.extend(self.recent.report_rows());
        rows.extend(self.compaction.report_rows());
        if let Some(analytics) = &self.analytics {
            rows.extend(analytics.report_rows());
        }
        rows.extend(self.freshness.report_rows());
        rows
    }
}

impl Plots for QuickReport {
    /// Every scenario's plots, each under its own name (`PREFIX-ingest-rate.png`, ...); with
    /// an empty prefix just the scenario's name.
    fn write_plots(&self, dir: &Path, prefix: &str) -> Result<Vec<PlotFile>, BenchError> {
        let name = |scenario: &str| {
            if prefix.is_empty() {
                scenario.to_string()
            } else {
                format!("{prefix}-{scenario}")
            }
        };
        let mut files = self.ingest.write_plots(dir, &name("ingest"))?;
        files.extend(self.aliases.write_plots(dir, &name("aliases"))?);
        files.extend(self.recent.write_plots(dir, &name("recent"))?);
        files.extend(self.compaction.write_plots(dir, &name("compaction"))?);
        if let Some(analytics) = &self.analytics {
            files.extend(analytics.write_plots(dir, &name("analytics"))?);
        }
        files.extend(self.freshness.write_plots(dir, &name("freshness"))?);
        Ok(files)
    }
}

/// Runs ingest (with schema and count check), aliases, recent, compaction, analytics and
/// freshness, in that order: the count check must precede freshness, whose probes land in
/// `readings`; recent measures the hot tier, so it runs before compaction; and freshness probes
/// carry the wall-clock time, which is too recent to compact, so they come last, after the
/// analytics comparison that needs every row in cold files.
pub fn run_quick(target: &BenchTarget, config: &QuickConfig) -> Result<QuickReport, BenchError> {
    run_quick_with(target, config, &NoProgress)
}

/// [`run_quick`] reporting the progress of each scenario in turn.
pub fn run_quick_with(
    target: &BenchTarget,
    config: &QuickConfig,
    progress: &dyn Progress,
) -> Result<QuickReport, BenchError> {
    let ingest = run_ingest_with(
        target,
        &IngestConfig {
            verify_counts: true,
            ..config.ingest.clone()
        },
        progress,
    )?;
    let aliases = run_aliases_with(target, &config.aliases, progress)?;
    let recent = run_recent_with(target, &config.recent, progress)?;
    let compaction = run_compaction_with(target, &config.compaction, progress)?;
    let mut notes = Vec::new();
    let analytics = run_analytics_if_located(target, config, &compaction, progress, &mut notes)?;
    let freshness = run_freshness_with(target, &config.freshness, progress)?;

    let mut failures = ingest_failures(&ingest);
    failures.extend(aliases_failures(&aliases));
    failures.extend(recent_failures(&recent));
    failures.extend(freshness_failures(&freshness));
    failures.extend(compaction.failures());
    if let Some(analytics) = &analytics {
        failures.extend(analytics.failures());
    }
    Ok(QuickReport {
        ingest,
        aliases,
        recent,
        freshness,
        compaction,
        analytics,
        failures,
        notes,
    })
}

/// Analytics over the files the compaction wrote, when they could be located; a note says
/// why it was skipped or ran without DuckDB.
fn run_analytics_if_located(
    target: &BenchTarget,
    config: &QuickConfig,
    compaction: &CompactionReport,
    progress: &dyn Progress,
    notes: &mut Vec<String>,
) -> Result<Option<AnalyticsReport>, BenchError> {
    match &compaction.files {
        Some(files) => {
            let report = run_analytics_with(target, &config.analytics, files, progress)?;
            if let Some(note) = &report.duckdb_note {
                notes.push(format!("analytics: DuckDB {note}"));
            }
            Ok(Some(report))
        }
        None => {
            notes.push(
                "analytics: skipped, the server's cold directory is unknown (pass --data-dir)"
                    .to_string(),
            );
            Ok(None)
        }
    }
}

fn ingest_failures(ingest: &IngestReport) -> Vec<String> {
    let mut failures = Vec::new();
    if ingest.failed_batches > 0 {
        failures.push(format!(
            "ingest: {} batches failed: {:?}",
            ingest.failed_batches, ingest.failures
        ));
    }
    if ingest.rejected > 0 {
        failures.push(format!(
            "ingest: {} events rejected: {:?}",
            ingest.rejected, ingest.failures
        ));
    }
    match &ingest.counts {
        Some(counts) if !counts.ok => failures.push(format!(
            "ingest: stored readings {} and diagnostics {}, expected {} each",
            counts.readings, counts.diagnostics, counts.expected_per_metric
        )),
        _ => {}
    }
    failures
}

fn aliases_failures(aliases: &AliasReport) -> Vec<String> {
    let mut failures = Vec::new();
    if !aliases.answers_equal {
        failures.push(format!(
            "aliases: answers differ: {:?} vs {:?}",
            aliases.aliased_answer, aliases.single_answer
        ));
    }
    if aliases.rejected > 0 {
        failures.push(format!("aliases: {} rows rejected", aliases.rejected));
    }
    failures
}

fn recent_failures(recent: &RecentReport) -> Vec<String> {
    let mut failures = Vec::new();
    if recent.rows == 0 || !recent.rows_stable {
        failures.push(format!(
            "recent: {} rows for {} (stable: {})",
            recent.rows, recent.parameters.device, recent.rows_stable
        ));
    }
    failures
}

fn freshness_failures(freshness: &FreshnessReport) -> Vec<String> {
    let mut failures = Vec::new();
    if freshness.timeouts > 0 || freshness.overcounted > 0 {
        failures.push(format!(
            "freshness: {} probes never visible, {} counted more than once",
            freshness.timeouts, freshness.overcounted
        ));
    }
    failures
}
