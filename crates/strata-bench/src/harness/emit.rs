//! The end of a run: its plots drawn into --plots DIR, the markdown report (heading, command,
//! machine, table with the server's peak RSS and data size, linked plots) printed or appended
//! to --report, or the whole report as JSON, and the exit verdict.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use super::session::ServerFigures;
use super::Context;
use crate::{markdown_table, BenchError, PlotFile, Plots, ReportRow};

/// Where results go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// Print the full serde report as JSON on stdout instead of markdown.
    pub json: bool,
    /// Append the markdown report to this file.
    pub report: Option<PathBuf>,
    /// Draw PNG plots into this directory as DIR/<scenario>-*.png.
    pub plots: Option<PathBuf>,
}

/// The command as typed (`args` without the program), with the program shown as `strata` and
/// arguments quoted for a shell.
pub fn command_line(args: impl Iterator<Item = String>) -> String {
    let mut words = vec!["strata".to_string()];
    words.extend(args.map(|arg| shell_quote(&arg)));
    words.join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// CPUs and memory of this machine, for the report header.
fn machine_line() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| {
            let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or_else(
            || "unknown memory".to_string(),
            |kib| format!("{:.1} GiB RAM", kib as f64 / 1024.0 / 1024.0),
        );
    format!("{cpus} CPUs, {memory}")
}

/// The rows of a run plus the server's figures: a scenario's own RSS row was read when that
/// scenario ended; the figure that matters is the peak over the whole run, read last.
fn rows_with_server(server: &ServerFigures, title: &str, rows: &[ReportRow]) -> Vec<ReportRow> {
    let mut rows: Vec<ReportRow> = rows
        .iter()
        .filter(|row| row.measure != "server peak RSS")
        .cloned()
        .collect();
    rows.push(ReportRow::new(
        title,
        "server peak RSS (whole run)",
        server.peak_rss_kib.map_or_else(
            || "unknown".to_string(),
            |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
        ),
        "",
    ));
    if let Some(bytes) = server.data_dir_bytes {
        rows.push(ReportRow::new(
            title,
            "data directory size",
            format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0),
            "",
        ));
    }
    rows
}

/// The markdown report of one run: heading, command, machine, table (with the server's peak
/// RSS and data size appended).
fn markdown(
    command: &str,
    server: &ServerFigures,
    title: &str,
    rows: &[ReportRow],
    extra: &str,
) -> String {
    let rows = rows_with_server(server, title, rows);
    let finished = crate::report::utc_now_rfc3339();
    let mut text = format!("### bench {title} (finished {finished})\n\n");
    text.push_str(&format!("Command: `{command}`\n\n"));
    let origin = match (server.spawned, server.serve_args.is_empty()) {
        (true, true) => "spawned by the benchmark".to_string(),
        (true, false) => format!(
            "spawned by the benchmark with `{}`",
            server.serve_args.join(" ")
        ),
        (false, _) => "external".to_string(),
    };
    text.push_str(&format!(
        "Machine: {}; server {origin} (pid {}).\n\n",
        machine_line(),
        server
            .pid
            .map_or_else(|| "unknown".to_string(), |pid| pid.to_string())
    ));
    text.push_str(&markdown_table(&rows));
    if !extra.is_empty() {
        text.push('\n');
        text.push_str(extra);
    }
    text
}

/// What one run prints: its title (`bench TITLE`), table rows, more markdown after the table
/// (`extra`: tables, notes), the plots drawn, and the serde report.
pub struct Emitted<'a, T> {
    pub title: &'a str,
    pub rows: &'a [ReportRow],
    pub extra: &'a str,
    pub plots: &'a [PlotFile],
    pub report: &'a T,
}

impl<'a, T> Emitted<'a, T> {
    pub fn new(
        title: &'a str,
        rows: &'a [ReportRow],
        extra: &'a str,
        plots: &'a [PlotFile],
        report: &'a T,
    ) -> Emitted<'a, T> {
        Emitted {
            title,
            rows,
            extra,
            plots,
            report,
        }
    }
}

/// Prints the report (markdown, or JSON with --json) and appends the markdown to --report.
pub fn emit<T: Serialize>(
    output: &OutputOptions,
    command: &str,
    server: &ServerFigures,
    run: Emitted<'_, T>,
) -> Result<(), BenchError> {
    let mut extra = run.extra.to_string();
    extra.push_str(&plots_section(run.plots, output.report.as_deref()));
    let text = markdown(command, server, run.title, run.rows, &extra);
    if output.json {
        #[derive(Serialize)]
        struct Envelope<'a, T> {
            command: &'a str,
            server: &'a ServerFigures,
            #[serde(skip_serializing_if = "<[PlotFile]>::is_empty")]
            plots: &'a [PlotFile],
            report: &'a T,
        }
        let envelope = Envelope {
            command,
            server,
            plots: run.plots,
            report: run.report,
        };
        let json = serde_json::to_string_pretty(&envelope)
            .map_err(|error| BenchError::Decode(format!("the report as JSON: {error}")))?;
        println!("{json}");
    } else {
        print!("{text}");
    }
    if let Some(path) = &output.report {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{text}").context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Markdown images of the plots, each linked relative to the report file's directory when it
/// lies inside it (so the report and its plots can move together), else by absolute path;
/// without a report file, as given (relative to where the command ran).
fn plots_section(plots: &[PlotFile], report: Option<&Path>) -> String {
    if plots.is_empty() {
        return String::new();
    }
    let base = report.map(|file| {
        let dir = file.parent().filter(|dir| !dir.as_os_str().is_empty());
        dir.unwrap_or(Path::new(".")).to_path_buf()
    });
    let mut text = String::from("\nPlots:\n\n");
    for plot in plots {
        let link = match &base {
            Some(base) => plot_link(base, &plot.path),
            None => plot.path.to_string_lossy().into_owned(),
        };
        text.push_str(&format!(
            "![{}]({})\n\n",
            plot.title.replace(['[', ']'], ""),
            link.replace(' ', "%20")
        ));
    }
    text
}

/// `plot` relative to `base` when it lies below it, else absolute.
fn plot_link(base: &Path, plot: &Path) -> String {
    let absolute = |path: &Path| path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let (base, plot) = (absolute(base), absolute(plot));
    match plot.strip_prefix(&base) {
        // Markdown links use '/' whatever the platform.
        Ok(relative) => relative
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => plot.to_string_lossy().into_owned(),
    }
}

/// The plots a run drew into --plots DIR, and whether every one could be drawn.
pub struct Drawn {
    pub files: Vec<PlotFile>,
    pub ok: bool,
}

/// Draws each report's plots under its prefix into --plots DIR (nothing without it). A plot
/// that cannot be drawn does not lose the figures: it is added to `failures` and the run
/// fails after printing its report.
pub fn draw_plots(
    output: &OutputOptions,
    reports: &[(&dyn Plots, &str)],
    failures: &mut Vec<String>,
) -> Drawn {
    let mut drawn = Drawn {
        files: Vec::new(),
        ok: true,
    };
    let Some(dir) = &output.plots else {
        return drawn;
    };
    for (report, prefix) in reports {
        match report.write_plots(dir, prefix) {
            Ok(files) => drawn.files.extend(files),
            Err(error) => {
                drawn.ok = false;
                failures.push(format!("plots of {prefix:?}: {error}"));
            }
        }
    }
    drawn
}

/// Exit code of a finished run: the figures were printed either way, but a failed check (or a
/// plot that could not be drawn) makes the command fail so CI notices.
pub fn verdict(passed: bool, failures: &[String]) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: the run did not pass (see the report)");
        for failure in failures {
            eprintln!("  {failure}");
        }
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("--events"), "--events");
        assert_eq!(
            shell_quote("--serve-arg=--unsafe-no-fsync"),
            "--serve-arg=--unsafe-no-fsync"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn plot_links_follow_the_report_file() {
        let dir = tempfile::tempdir().unwrap();
        let plots_dir = dir.path().join("plots");
        std::fs::create_dir(&plots_dir).unwrap();
        let inside = plots_dir.join("ingest-rate.png");
        std::fs::write(&inside, b"png").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let outside = elsewhere.path().join("recent-latency.png");
        std::fs::write(&outside, b"png").unwrap();
        let plots = [
            PlotFile {
                title: "ingest [rate]".to_string(),
                path: inside.clone(),
            },
            PlotFile {
                title: "recent".to_string(),
                path: outside.clone(),
            },
        ];
        let report = dir.path().join("bench.md");
        let section = plots_section(&plots, Some(&report));
        assert!(
            section.contains("![ingest rate](plots/ingest-rate.png)"),
            "{section}"
        );
        let absolute = outside.canonicalize().unwrap();
        assert!(
            section.contains(&format!("![recent]({})", absolute.display())),
            "{section}"
        );
        // Printed to stdout: the paths as given.
        let printed = plots_section(&plots[..1], None);
        assert!(
            printed.contains(&format!("]({})", inside.display())),
            "{printed}"
        );
        assert_eq!(plots_section(&[], Some(&report)), "");
    }
}
