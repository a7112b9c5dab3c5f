//! What every report carries about its run, and a tiny markdown printer.

use serde::{Deserialize, Serialize};

/// Context every scenario report carries, so a figure is never separated from how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub scenario: String,
    /// RFC 3339 UTC time the scenario started.
    pub started_at: String,
    pub base_url: String,
    /// The command line that launched the run; the CLI layer fills it in.
    pub command: Option<String>,
    pub bench_version: String,
    /// CPUs visible to the benchmark process (the server usually shares them).
    pub cpus: usize,
}

/// The current time as RFC 3339 UTC text with milliseconds.
pub fn utc_now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl RunInfo {
    pub fn new(scenario: &str, base_url: &str) -> RunInfo {
        RunInfo {
            scenario: scenario.to_string(),
            started_at: utc_now_rfc3339(),
            base_url: base_url.to_string(),
            command: None,
            bench_version: env!("CARGO_PKG_VERSION").to_string(),
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// One line of a results table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    pub scenario: String,
    pub measure: String,
    pub value: String,
    /// The DESIGN.md performance target this figure is held against, if any.
    pub target: String,
}

impl ReportRow {
    pub fn new(scenario: &str, measure: &str, value: String, target: &str) -> ReportRow {
        ReportRow {
            scenario: scenario.to_string(),
            measure: measure.to_string(),
            value,
            target: target.to_string(),
        }
    }
}

/// Reports that can summarize themselves as table rows.
pub trait ReportRows {
    fn report_rows(&self) -> Vec<ReportRow>;
}

/// A markdown table (header, separator, one line per row, each ending in `\n`).
pub fn markdown_table(rows: &[ReportRow]) -> String {
    let mut table =
        String::from("| scenario | measure | value | target |\n| --- | --- | --- | --- |\n");
    for row in rows {
        table.push_str(&markdown_row(&[
            &row.scenario,
            &row.measure,
            &row.value,
            &row.target,
        ]));
    }
    table
}

/// One markdown table line; pipes and line breaks inside cells are escaped so a cell never
/// breaks the table.
pub fn markdown_row(cells: &[&str]) -> String {
    let mut line = String::from("|");
    for cell in cells {
        let escaped = cell.replace('|', "\\|").replace(['\n', '\r'], " ");
        line.push(' ');
        line.push_str(&escaped);
        line.push_str(" |");
    }
    line.push('\n');
    line
}

/// A count with thousands separators: 20,199,891.
pub fn thousands(count: u64) -> String {
    let digits = count.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// Milliseconds with three decimals (microsecond resolution).
pub fn format_ms(millis: f64) -> String {
    format!("{millis:.3} ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_header_and_escaped_rows() {
        let rows = vec![
            ReportRow::new("ingest", "events/s", "512000".into(), ">= 500000"),
            ReportRow::new("recent", "a|b", "x\ny".into(), ""),
        ];
        assert_eq!(
            markdown_table(&rows),
            "| scenario | measure | value | target |\n\
             | --- | --- | --- | --- |\n\
             | ingest | events/s | 512000 | >= 500000 |\n\
             | recent | a\\|b | x y |  |\n"
        );
        assert_eq!(format_ms(1.23456), "1.235 ms");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(20_199_891), "20,199,891");
        assert_eq!(thousands(100_000_000), "100,000,000");
    }
}
