//! Benchmark scenarios that drive a running server over the HTTP contract. Each returns a
//! serializable report holding its figures and the exact parameters used.

pub mod alerts;
pub mod aliases;
pub mod analytics;
pub mod compaction;
pub mod freshness;
pub mod ingest;
pub mod isolation;
pub mod protocols;
pub mod quick;
pub mod recent;
pub mod settle;
pub mod streaming;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_client::Client;

use crate::generator::{GeneratorConfig, DIAGNOSTICS, READINGS};
use crate::BenchError;

/// Default bound on a single HTTP request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The server under test and the keys to use. Keys never appear in reports.
#[derive(Debug, Clone)]
pub struct BenchTarget {
    pub base_url: String,
    /// Tenant admin key: schema setup.
    pub admin_key: String,
    /// Key used for `/api/v1/write`.
    pub write_key: String,
    /// Key used for `/api/v1/sql`.
    pub read_key: String,
    pub request_timeout: Duration,
}

impl BenchTarget {
    /// A target that uses the admin key for everything (admin may write and read).
    pub fn with_admin_key(base_url: &str, admin_key: &str) -> BenchTarget {
        BenchTarget {
            base_url: base_url.to_string(),
            admin_key: admin_key.to_string(),
            write_key: admin_key.to_string(),
            read_key: admin_key.to_string(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    pub fn client(&self) -> Result<Client, BenchError> {
        Ok(Client::with_timeout(&self.base_url, self.request_timeout)?)
    }
}

/// Row counts the server holds against what the generator says it must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountCheck {
    pub expected_per_metric: u64,
    pub readings: u64,
    pub diagnostics: u64,
    pub expected_total: u64,
    pub total: u64,
    pub ok: bool,
}

/// `SELECT count(*)` of both workload metrics compared with the generator's distinct counts.
/// Run it before the freshness scenario, whose probe rows land in `readings`.
pub fn check_counts(
    client: &Client,
    read_key: &str,
    workload: &GeneratorConfig,
) -> Result<CountCheck, BenchError> {
    let readings = client
        .sql(read_key, &format!("SELECT count(*) FROM {READINGS}"))?
        .single_count()?;
    let diagnostics = client
        .sql(read_key, &format!("SELECT count(*) FROM {DIAGNOSTICS}"))?
        .single_count()?;
    let expected_per_metric = workload.distinct_events_per_metric();
    Ok(CountCheck {
        expected_per_metric,
        readings,
        diagnostics,
        expected_total: workload.distinct_events(),
        total: readings + diagnostics,
        ok: readings == expected_per_metric && diagnostics == expected_per_metric,
    })
}

/// Peak resident set size (VmHWM, KiB) of a process since it started, from /proc (Linux only).
pub fn peak_rss_kib(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)?;
    parse_vm_hwm(&status)
        .ok_or_else(|| BenchError::Decode(format!("{path} has no readable VmHWM line")))
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let mut parts = line["VmHWM:".len()..].split_whitespace();
    let value = parts.next()?.parse().ok()?;
    (parts.next() == Some("kB")).then_some(value)
}

/// A SQL literal for an epoch-millis instant: RFC 3339 UTC text, which the engine coerces to
/// the `timestamp` column's type when compared with it.
pub fn sql_timestamp_literal(epoch_ms: i64) -> Result<String, BenchError> {
    let instant = chrono::DateTime::from_timestamp_millis(epoch_ms).ok_or_else(|| {
        BenchError::InvalidConfig(format!("{epoch_ms} ms is not a representable instant"))
    })?;
    Ok(format!(
        "'{}'",
        instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    ))
}

/// A SQL string literal with quotes doubled.
pub fn sql_string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_hwm_from_proc_status_text() {
        let status = "Name:\tstrata\nVmPeak:\t  200000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(12_345));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\tlots kB\n"), None);
    }

    #[test]
    fn reads_own_peak_rss() {
        // This test process certainly has a resident set.
        let own = peak_rss_kib(std::process::id()).unwrap();
        assert!(own > 0);
    }

    #[test]
    fn literals() {
        assert_eq!(
            sql_timestamp_literal(1_767_225_600_123).unwrap(),
            "'2026-01-01T00:00:00.123Z'"
        );
        assert_eq!(sql_string_literal("truck_42"), "'truck_42'");
        assert_eq!(sql_string_literal("o'brien"), "'o''brien'");
    }
}
