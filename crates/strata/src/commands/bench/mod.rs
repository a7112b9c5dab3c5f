//! `strata bench`: the command line over `strata_bench::harness`. Each subcommand turns its
//! arguments into the harness's options and runs it with indicatif progress bars on stderr;
//! `gen` writes the workload itself.

mod args;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use strata_bench::harness::{
    self, AllOptions, AnalyticsOptions, CompactionOptions, Invocation, StepProgress,
};
use strata_bench::{AnalyticsConfig, BenchError, FreshnessConfig, IsolationConfig, RecentConfig};

pub use args::BenchArgs;
use args::{
    stored_events, AllArgs, AnalyticsArgs, BenchCommand, CompactionArgs, GenArgs, RecentArgs,
    RunArgs, DEFAULT_COLD_EVENTS, DEFAULT_INGEST_EVENTS, DEFAULT_TRUCKS,
};

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let command = harness::command_line(std::env::args().skip(1));
    let invocation = |run: &RunArgs| -> anyhow::Result<Invocation<'static>> {
        Ok(Invocation {
            server: run.server.options()?,
            output: run.output.options(),
            command: command.clone(),
            bars: &Bar::boxed,
        })
    };
    match args.command {
        BenchCommand::Gen(args) => generate(&args),
        BenchCommand::Ingest(args) => {
            let workload = args.load.workload(DEFAULT_INGEST_EVENTS, true, false)?;
            let inv = invocation(&args.run)?;
            Ok(harness::suite::ingest(&inv, &workload, !args.no_verify)?)
        }
        BenchCommand::Freshness(args) => {
            let config = FreshnessConfig {
                samples: args.samples,
                warmup_samples: args.warmup,
                ..FreshnessConfig::default()
            };
            let inv = invocation(&args.run)?;
            Ok(harness::suite::freshness(&inv, &config)?)
        }
        BenchCommand::Isolation(args) => {
            let config = IsolationConfig {
                baseline_secs: args.baseline_secs,
                loaded_secs: args.loaded_secs,
                heavy_clients: args.heavy_clients,
                events_per_write: args.events_per_write,
                heavy_rows: args.heavy_rows,
                ..IsolationConfig::default()
            };
            let inv = invocation(&args.run)?;
            Ok(harness::suite::isolation(&inv, &config)?)
        }
        BenchCommand::Recent(args) => recent(&args, &invocation(&args.run)?),
        BenchCommand::Aliases(args) => {
            let config = args.alias.config()?;
            let inv = invocation(&args.run)?;
            Ok(harness::suite::aliases(&inv, &config)?)
        }
        BenchCommand::Compaction(args) => compaction(&args, &invocation(&args.run)?),
        BenchCommand::Analytics(args) => analytics(&args, &invocation(&args.run)?),
        BenchCommand::Quick(args) => {
            let inv = invocation(&args.run)?;
            Ok(harness::suite::quick(&inv, args.seed)?)
        }
        BenchCommand::All(args) => all(&args, &invocation(&args.run)?),
        BenchCommand::Alerts(args) => {
            let config = args.config()?;
            let inv = invocation(&args.run)?;
            Ok(harness::suite::alerts(&inv, &config)?)
        }
        BenchCommand::Streaming(args) => {
            let config = args.config()?;
            let inv = invocation(&args.run)?;
            Ok(harness::suite::streaming(&inv, &config)?)
        }
        BenchCommand::Protocols(args) => {
            let inv = invocation(&args.run)?;
            Ok(harness::suite::protocols(&inv, &args.config())?)
        }
    }
}

fn recent(args: &RecentArgs, inv: &Invocation) -> anyhow::Result<ExitCode> {
    let events = stored_events(args.long);
    let workload = args.load.workload(events, !args.no_load, args.long)?;
    let mut config = RecentConfig {
        runs: args.runs,
        warmup_runs: args.warmup,
        window_ms: args.window_ms,
        ..RecentConfig::for_workload(&workload.config)
    };
    if let Some(device) = &args.device {
        config.device = device.clone();
    }
    Ok(harness::suite::recent(inv, &workload, &config)?)
}

fn compaction(args: &CompactionArgs, inv: &Invocation) -> anyhow::Result<ExitCode> {
    let load = !args.cold.no_load;
    let workload = args.load.workload(DEFAULT_COLD_EVENTS, load, false)?;
    let options = CompactionOptions {
        runs: args.runs,
        warmup: args.warmup,
        query: args.query.clone(),
    };
    let cold = args.cold.compaction.options();
    Ok(harness::suite::compaction(inv, &workload, &cold, &options)?)
}

fn analytics(args: &AnalyticsArgs, inv: &Invocation) -> anyhow::Result<ExitCode> {
    let load = !args.cold.no_load;
    let workload = args.load.workload(DEFAULT_COLD_EVENTS, load, false)?;
    let options = AnalyticsOptions {
        analytics: AnalyticsConfig {
            runs: args.runs,
            warmup_runs: args.warmup,
            ..args.engines.config(&workload.config)
        },
        compaction_runs: args.compaction_runs,
    };
    let cold = args.cold.compaction.options();
    Ok(harness::suite::analytics(inv, &workload, &cold, &options)?)
}

fn all(args: &AllArgs, inv: &Invocation) -> anyhow::Result<ExitCode> {
    let events = stored_events(args.long);
    let workload = args.load.workload(events, true, args.long)?;
    let options = AllOptions {
        samples: args.samples,
        runs: args.runs,
        alias: args.alias.config()?,
        compaction_runs: args.compaction_runs,
        analytics: AnalyticsConfig {
            runs: args.analytics_runs,
            warmup_runs: args.analytics_warmup,
            ..args.engines.config(&workload.config)
        },
        cold: args.compaction.options(),
    };
    Ok(harness::all(inv, &workload, &options)?)
}

fn generate(args: &GenArgs) -> anyhow::Result<ExitCode> {
    let config = args
        .workload
        .config(DEFAULT_TRUCKS, DEFAULT_INGEST_EVENTS)?;
    let stats = match &args.output {
        Some(path) if path.as_os_str() != "-" => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            strata_bench::write_ndjson(&config, file)
        }
        _ => strata_bench::write_ndjson(&config, std::io::stdout().lock()),
    };
    let stats = match stats {
        Ok(stats) => stats,
        // `strata bench gen | head` closes the pipe early; that is the reader's choice.
        Err(BenchError::Io(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(ExitCode::SUCCESS)
        }
        Err(error) => return Err(error).context("writing the workload"),
    };
    if args.json {
        eprintln!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        eprintln!(
            "{} lines ({} distinct events: {} readings + {} diagnostics, {} duplicates), {} bytes; \
             {} trucks x {} intervals, seed {}",
            stats.lines,
            stats.distinct_events,
            stats.readings,
            stats.diagnostics,
            stats.duplicates,
            stats.bytes,
            config.trucks,
            config.intervals,
            config.seed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// An indicatif progress bar on stderr (hidden when stderr is not a terminal).
struct Bar {
    bar: ProgressBar,
    label: String,
}

impl Bar {
    fn boxed(label: &str) -> Box<dyn StepProgress> {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        Box::new(Bar {
            bar,
            label: label.to_string(),
        })
    }
}

impl StepProgress for Bar {
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl strata_bench::Progress for Bar {
    fn phase(&self, name: &str, total: u64) {
        let template = if total > 0 {
            "{spinner} [{elapsed_precise}] {msg} {wide_bar} {human_pos}/{human_len} ({per_sec}, {eta})"
        } else {
            "{spinner} [{elapsed_precise}] {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style);
        }
        self.bar.reset();
        self.bar.set_length(total);
        self.bar.set_message(format!("{}: {name}", self.label));
    }

    fn advance(&self, amount: u64) {
        self.bar.inc(amount);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use strata_bench::{DuckdbMode, GeneratorConfig};

    use super::args::WorkloadArgs;
    use super::*;

    #[test]
    fn events_round_up_to_whole_intervals() {
        let args = WorkloadArgs {
            seed: 3,
            trucks: Some(10),
            events: Some(45),
            interval_ms: 10_000,
            clean: true,
            renamed_share: Some(0.5),
            extra_share: None,
            string_share: None,
            out_of_order_share: None,
            late_share: None,
            duplicate_share: None,
        };
        let config = args.config(DEFAULT_TRUCKS, 1).unwrap();
        // 45 events / 20 per interval -> 3 intervals -> 60 events.
        assert_eq!(config.intervals, 3);
        assert_eq!(config.distinct_events(), 60);
        assert_eq!(config.shares.renamed_trucks, 0.5);
        assert_eq!(config.shares.duplicates, 0.0);
        let bad = WorkloadArgs {
            late_share: Some(1.5),
            ..args
        };
        assert!(bad.config(DEFAULT_TRUCKS, 1).is_err());
    }

    /// `strata bench ...` as the CLI parses it.
    fn parse(words: &[&str]) -> BenchCommand {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            command: BenchCommand,
        }
        let words = std::iter::once("bench").chain(words.iter().copied());
        Cli::try_parse_from(words).unwrap().command
    }

    #[test]
    fn alerts_defaults_are_the_documented_scale_and_bad_values_are_refused() {
        let BenchCommand::Alerts(alerts) = parse(&["alerts", "--query-rules", "10"]) else {
            panic!("not alerts");
        };
        let config = alerts.config().unwrap();
        assert_eq!(config.query_rules, 10);
        assert_eq!(config.query_devices, 1_000);
        assert_eq!(config.event_samples, 300);
        assert_eq!(config.absence_for_ms, 2_000);
        assert_eq!(config.ingest_rules, 100);
        assert_eq!(config.ingest.workload.distinct_events(), 2_000_000);
        assert_eq!(config.ingest.clients, 4);
        let BenchCommand::Alerts(too_many) = parse(&["alerts", "--query-rules", "1001"]) else {
            panic!("not alerts");
        };
        assert!(too_many.config().is_err());
        let BenchCommand::Alerts(too_short) = parse(&["alerts", "--absence-for-ms", "500"]) else {
            panic!("not alerts");
        };
        assert!(too_short.config().is_err());
    }

    #[test]
    fn long_mode_loads_100m_events_unless_events_is_given() {
        let BenchCommand::Recent(recent) = parse(&["recent", "--long"]) else {
            panic!("not recent");
        };
        let workload = recent
            .load
            .workload
            .config(DEFAULT_TRUCKS, stored_events(recent.long))
            .unwrap();
        assert_eq!(workload.distinct_events(), 100_000_000);
        assert_eq!(workload.distinct_events_per_metric(), 50_000_000);

        let BenchCommand::All(all) = parse(&["all", "--long", "--events", "2000000"]) else {
            panic!("not all");
        };
        let workload = all
            .load
            .workload
            .config(DEFAULT_TRUCKS, stored_events(all.long))
            .unwrap();
        assert_eq!(workload.distinct_events(), 2_000_000);

        let BenchCommand::All(all) = parse(&["all", "--plots", "out", "--no-duckdb"]) else {
            panic!("not all");
        };
        assert!(!all.long);
        assert_eq!(stored_events(all.long), 20_000_000);
        assert_eq!(all.run.output.plots.as_deref(), Some(Path::new("out")));
        assert!(all.engines.no_duckdb);
        assert_eq!(
            all.engines.config(&GeneratorConfig::default()).duckdb,
            DuckdbMode::Off
        );
    }
}
