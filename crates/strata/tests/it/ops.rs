//! Issue 20, operations: `GET /metrics` scraped and parsed by the Prometheus project's own
//! Python parser (`prometheus_client`), its loopback-only default, `GET /ready`, gzip answers
//! read by curl (and never for live SSE streams), and `--log-format json`.

use std::net::{IpAddr, UdpSocket};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use strata_testkit::{available, probe};

use crate::cloud::python;
use crate::common::{write_events, TestServer};

/// 2015-01-12T10:12:15Z: old enough for an on-demand compaction to move it to the cold tier.
const OLD_MS: i64 = 1_421_057_535_000;

fn have_prometheus_parser() -> bool {
    available(
        "python3 with prometheus_client",
        probe(&python(), &["-c", "import prometheus_client.parser"], None),
    )
}

/// Parses a scrape with `prometheus_client`'s text parser (it raises on malformed lines) into
/// `[name, labels, value]` samples.
fn parse_scrape(text: &str) -> Vec<(String, Value, f64)> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("scrape written");
    let output = child.wait_with_output().expect("parser ends");
    assert!(
        output.status.success(),
        "prometheus_client could not parse the scrape: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let samples: Vec<(String, Value, f64)> =
        serde_json::from_slice(&output.stdout).expect("parser output is JSON");
    samples
}

/// The value of the sample `name` whose labels include `labels`; None if there is none.
fn sample(samples: &[(String, Value, f64)], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
        .map(|(_, _, value)| *value)
}

fn scrape(url: &str) -> reqwest::blocking::Response {
    reqwest::blocking::get(format!("{url}/metrics")).expect("scrape")
}

#[test]
fn metrics_count_writes_rejects_queries_commits_and_compactions() {
    if !have_prometheus_parser() {
        return;
    }
    let server = TestServer::compacting_on_demand("cost");
    let key = server.create_tenant("acme");
    let events: Vec<Value> = (0..5)
        .map(
            |i| json!({"metrictype": "thermo", "device": "d1", "timestamp": OLD_MS + i, "temp": i}),
        )
        .chain([json!({"device": "no metric"})])
        .collect();
    let answer = server.post("/api/v1/write", &key, &json!(events)).body;
    assert_eq!(answer["accepted"], 5, "{answer}");
    assert_eq!(answer["rejected"], 1, "{answer}");
    let unreadable = server.post_raw("/api/v1/write", &key, "application/json", b"[{".to_vec());
    assert_eq!(unreadable.status, 400);
    assert_eq!(server.sql(&key, "SELECT count(*) FROM thermo").status, 200);
    assert_eq!(server.sql(&key, "SELEC 1").status, 400);
    let compacted = server.post("/api/v1/compact", &key, &json!({}));
    assert_eq!(compacted.status, 200, "{}", compacted.body);

    let response = scrape(server.url());
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let samples = parse_scrape(&response.text().expect("text"));
    let http = [("door", "http")];
    assert_eq!(
        sample(&samples, "strata_ingest_events_total", &http),
        Some(5.0)
    );
    assert!(sample(&samples, "strata_ingest_bytes_total", &http).unwrap() > 100.0);
    let body_rejects = [("door", "http"), ("reason", "body")];
    assert_eq!(
        sample(
            &samples,
            "strata_ingest_rejected_events_total",
            &body_rejects
        ),
        Some(1.0)
    );
    let rejected: f64 = samples
        .iter()
        .filter(|(n, l, _)| n == "strata_ingest_rejected_events_total" && l["reason"] != "body")
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(rejected, 1.0, "the event without a metric");
    assert_eq!(sample(&samples, "strata_queries_total", &http), Some(2.0));
    assert_eq!(
        sample(&samples, "strata_query_errors_total", &http),
        Some(1.0)
    );
    assert_eq!(
        sample(&samples, "strata_query_seconds_count", &http),
        Some(2.0)
    );
    assert!(sample(&samples, "strata_group_commit_seconds_count", &[]).unwrap() >= 2.0);
    assert!(sample(&samples, "strata_group_commit_rows_sum", &[]).unwrap() >= 5.0);
    let inf = [("le", "+Inf")];
    assert!(sample(&samples, "strata_group_commit_seconds_bucket", &inf).unwrap() >= 2.0);
    assert_eq!(
        sample(
            &samples,
            "strata_compaction_runs_total",
            &[("outcome", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&samples, "strata_compaction_rows_total", &[]),
        Some(5.0)
    );
    let thermo = [("tenant", "acme"), ("metric", "thermo")];
    assert!(sample(&samples, "strata_cold_watermark_age_seconds", &thermo).unwrap() > 0.0);
    assert_eq!(sample(&samples, "strata_cold_rows", &[]), Some(5.0));
    assert_eq!(sample(&samples, "strata_tenants", &[]), Some(1.0));
    assert!(sample(&samples, "strata_hot_last_sequence", &[]).unwrap() >= 5.0);
    assert!(sample(&samples, "strata_http_open_connections", &[]).unwrap() >= 1.0);
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(sample(&samples, "strata_build_info", &version), Some(1.0));
}

/// An address of this host that is not loopback: the source address of a route out (a UDP
/// connect sends nothing).
fn non_loopback_ip() -> IpAddr {
    let socket = UdpSocket::bind("0.0.0.0:0").expect("udp socket");
    socket
        .connect("192.0.2.1:9")
        .expect("this host has a route off loopback");
    let ip = socket.local_addr().expect("local address").ip();
    assert!(!ip.is_loopback(), "{ip}");
    ip
}

fn on_ip(server: &TestServer, ip: IpAddr) -> String {
    let port = server.url().rsplit(':').next().expect("port");
    format!("http://{ip}:{port}")
}

#[test]
fn metrics_answer_only_loopback_clients_unless_allowed() {
    let ip = non_loopback_ip();
    let server = TestServer::start_with(&["--http", "0.0.0.0:0"]);
    let remote = scrape(&on_ip(&server, ip));
    assert_eq!(remote.status().as_u16(), 403);
    let error: Value = remote.json().expect("json");
    let error = error["error"].as_str().expect("error text");
    assert!(error.contains("--allow-remote-metrics"), "{error}");
    let local = scrape(&format!(
        "http://127.0.0.1:{}",
        on_ip(&server, ip).rsplit(':').next().unwrap()
    ));
    assert_eq!(local.status().as_u16(), 200);
    // The rest of the API is not restricted by the peer's address.
    let health = reqwest::blocking::get(format!("{}/health", on_ip(&server, ip))).expect("health");
    assert_eq!(health.status().as_u16(), 200);

    let open = TestServer::start_with(&["--http", "0.0.0.0:0", "--allow-remote-metrics"]);
    let remote = scrape(&on_ip(&open, ip));
    assert_eq!(remote.status().as_u16(), 200);
    assert!(remote.text().expect("text").contains("strata_build_info"));
}

#[test]
fn ready_reports_each_store() {
    let server = TestServer::start();
    let answer = reqwest::blocking::get(format!("{}/ready", server.url())).expect("ready");
    assert_eq!(answer.status().as_u16(), 200);
    let body: Value = answer.json().expect("json");
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["checks"]["catalog"], "ok", "{body}");
    assert_eq!(body["checks"]["hot"], "ok", "{body}");
}

/// `curl -D - --compressed`: the headers as sent, the body as decoded.
fn curl_compressed(args: &[&str]) -> (String, String) {
    let output = Command::new("curl")
        .args(["-s", "-D", "-", "--compressed", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn answers_are_gzipped_for_clients_that_ask_but_live_streams_are_not() {
    let server = TestServer::start();
    let key = server.create_tenant("acme");
    let events: Vec<Value> = (0..200)
        .map(
            |i| json!({"metrictype": "thermo", "device": "d1", "timestamp": OLD_MS + i, "temp": i}),
        )
        .collect();
    write_events(&server, &key, &events);
    let auth = format!("authorization: Bearer {key}");
    let sql = json!({"sql": "SELECT device, temp FROM thermo ORDER BY temp"}).to_string();
    let url = format!("{}/api/v1/sql", server.url());
    let (head, body) = curl_compressed(&[
        "-H",
        &auth,
        "-H",
        "content-type: application/json",
        "-d",
        &sql,
        &url,
    ]);
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let rows: Vec<&str> = body.lines().collect();
    assert!(
        body.contains(r#"["d1","199"]"#),
        "decoded answer: {}",
        &body[..body.len().min(300)]
    );
    assert!(!rows.is_empty());

    // A live query's SSE stream is flushed event by event; an encoder would hold them back.
    let live = json!({"sql": "SELECT device, temp FROM thermo"}).to_string();
    let url = format!("{}/api/v1/sql/live", server.url());
    let (head, body) = curl_compressed(&[
        "-N",
        "-H",
        &auth,
        "-H",
        "content-type: application/json",
        "-d",
        &live,
        &url,
    ]);
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(body.starts_with("event: snapshot"), "{body}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut server = TestServer::start_with(&["--log-format", "json"]);
    server.stop();
    let log = server.log();
    let mut messages = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        assert!(entry["level"].is_string(), "{line}");
        assert!(entry["timestamp"].is_string(), "{line}");
        messages.push(
            entry["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("HTTP API listening on http://")),
        "{messages:?}"
    );
}
