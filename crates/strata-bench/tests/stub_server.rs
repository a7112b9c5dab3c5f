//! The scenarios against an in-process stub that speaks just enough of the HTTP contract
//! (a real socket, real HTTP/1.1, a real dedup of identical events). It is not Strata: it
//! proves the client side (batching, tallies, schema calls, count checks, probe polling).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use strata_bench::{
    run_freshness, run_ingest, BenchTarget, FreshnessConfig, GeneratorConfig, IngestConfig,
};

#[derive(Default)]
struct StubState {
    /// Distinct event lines per metric, as a store with content-hash dedup would hold them.
    events: HashSet<(String, String)>,
    schema_calls: Vec<(String, String, Value)>,
    writes: u64,
    fail_writes: bool,
}

struct Stub {
    base_url: String,
    state: Arc<Mutex<StubState>>,
}

fn start_stub(fail_writes: bool) -> Stub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(StubState {
        fail_writes,
        ..StubState::default()
    }));
    let shared = Arc::clone(&state);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let state = Arc::clone(&shared);
            std::thread::spawn(move || serve_connection(stream, &state));
        }
    });
    Stub { base_url, state }
}

fn serve_connection(stream: TcpStream, state: &Mutex<StubState>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut content_length = 0;
        let mut authorized = false;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.trim().parse().unwrap(),
                "authorization" => authorized = value.trim() == "Bearer secret",
                _ => {}
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body).unwrap();
        let body = String::from_utf8(body).unwrap();
        let (status, answer) = if authorized {
            handle(&method, &path, &body, state)
        } else {
            (401, json!({"error": "bad key"}))
        };
        let answer = answer.to_string();
        write!(
            writer,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
        writer.flush().unwrap();
    }
}

fn handle(method: &str, path: &str, body: &str, state: &Mutex<StubState>) -> (u16, Value) {
    let mut state = state.lock().unwrap();
    match (method, path) {
        ("POST", "/api/v1/write") => {
            state.writes += 1;
            if state.fail_writes {
                return (503, json!({"error": "disk full"}));
            }
            let mut accepted = 0;
            for line in body.lines() {
                let event: Value = serde_json::from_str(line).unwrap();
                let metric = event["metrictype"].as_str().unwrap().to_string();
                state.events.insert((metric, line.to_string()));
                accepted += 1;
            }
            (
                200,
                json!({"accepted": accepted, "rejected": 0, "errors": []}),
            )
        }
        ("POST", "/api/v1/sql") => {
            let sql = serde_json::from_str::<Value>(body).unwrap()["sql"]
                .as_str()
                .unwrap()
                .to_string();
            let count_of = |metric: &str, needle: &str| {
                state
                    .events
                    .iter()
                    .filter(|(m, line)| m == metric && line.contains(needle))
                    .count()
            };
            let count = if let Some(rest) =
                sql.strip_prefix("SELECT count(*) FROM readings WHERE name = 'fresh_probe'")
            {
                // The probe's timestamp literal, back to epoch millis.
                let literal = rest.split('\'').nth(1).unwrap();
                let millis = chrono::DateTime::parse_from_rfc3339(literal)
                    .unwrap()
                    .timestamp_millis();
                count_of("readings", &format!("\"timestamp\":{millis},"))
            } else if sql == "SELECT count(*) FROM readings" {
                count_of("readings", "")
            } else if sql == "SELECT count(*) FROM diagnostics" {
                count_of("diagnostics", "")
            } else {
                return (400, json!({"error": format!("stub cannot run {sql}")}));
            };
            (
                200,
                json!({"columns": [{"name": "count(*)", "type": "Int64"}], "rows": [[count]]}),
            )
        }
        (method, path) if path.starts_with("/api/v1/schema/") => {
            let body: Value = serde_json::from_str(body).unwrap();
            state
                .schema_calls
                .push((method.to_string(), path.to_string(), body));
            (200, json!({}))
        }
        _ => (404, json!({"error": "no such route"})),
    }
}

fn small_ingest(pregenerate: bool) -> IngestConfig {
    IngestConfig {
        workload: GeneratorConfig {
            trucks: 20,
            intervals: 30,
            ..GeneratorConfig::default()
        },
        clients: 3,
        batch_size: 97,
        pregenerate,
        server_pid: Some(std::process::id()),
        ..IngestConfig::default()
    }
}

#[test]
fn ingest_sends_every_line_and_the_count_check_sees_the_distinct_events() {
    for pregenerate in [true, false] {
        let stub = start_stub(false);
        let target = BenchTarget::with_admin_key(&stub.base_url, "secret");
        let config = small_ingest(pregenerate);
        let report = run_ingest(&target, &config).unwrap();

        let generated = &report.generated;
        assert!(
            generated.duplicates > 0,
            "the workload must contain duplicates"
        );
        assert_eq!(report.lines_sent, generated.lines);
        assert_eq!(report.accepted, generated.lines);
        assert_eq!(report.bytes_sent, generated.bytes);
        assert_eq!(report.batches, generated.lines.div_ceil(97));
        assert_eq!(report.failed_batches, 0);
        let counts = report.counts.as_ref().unwrap();
        assert!(counts.ok, "{counts:?}");
        assert_eq!(counts.total, config.workload.distinct_events());
        assert!(report.passed());
        let plotted: u64 = report
            .rate_per_second
            .iter()
            .map(|sample| sample.events)
            .sum();
        assert_eq!(plotted, report.accepted);
        assert!(report.server_peak_rss_kib.unwrap() > 0);
        assert_eq!(
            report.batch_latency.as_ref().unwrap().samples as u64,
            report.batches
        );

        let state = stub.state.lock().unwrap();
        assert_eq!(state.writes, report.batches);
        // Schema first: 2 metrics x (create + 5 tags + series keys) + 10 numeric fields.
        assert_eq!(state.schema_calls.len(), 24);
        assert!(state.schema_calls.contains(&(
            "PUT".to_string(),
            "/api/v1/schema/metrics/readings/fields/latitude".to_string(),
            json!({"type": "double", "aliases": ["lat"]}),
        )));
        assert!(state.schema_calls.contains(&(
            "PATCH".to_string(),
            "/api/v1/schema/metrics/diagnostics".to_string(),
            json!({"series_keys": ["name"]}),
        )));
        // The report serializes with its parameters and without the key.
        let serialized = serde_json::to_string(&report).unwrap();
        assert!(serialized.contains("\"batch_size\":97"));
        assert!(!serialized.contains("secret"));
    }
}

#[test]
fn failed_writes_are_counted_and_fail_the_count_check() {
    let stub = start_stub(true);
    let target = BenchTarget::with_admin_key(&stub.base_url, "secret");
    let report = run_ingest(&target, &small_ingest(true)).unwrap();
    assert_eq!(report.accepted, 0);
    assert_eq!(report.failed_batches, report.batches);
    assert!(report.failures[0].contains("503"), "{:?}", report.failures);
    assert!(!report.counts.as_ref().unwrap().ok);
    assert!(!report.passed());
}

#[test]
fn a_wrong_key_is_an_error_not_a_result() {
    let stub = start_stub(false);
    let target = BenchTarget::with_admin_key(&stub.base_url, "wrong");
    let error = run_ingest(&target, &small_ingest(true)).unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
}

#[test]
fn freshness_polls_until_each_probe_is_visible() {
    let stub = start_stub(false);
    let target = BenchTarget::with_admin_key(&stub.base_url, "secret");
    let config = FreshnessConfig {
        samples: 10,
        warmup_samples: 2,
        ..FreshnessConfig::default()
    };
    let report = run_freshness(&target, &config).unwrap();
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.ack_to_visible.as_ref().unwrap().samples, 10);
    // The stub makes a write visible at once.
    assert_eq!(report.mean_polls, 1.0);
    let state = stub.state.lock().unwrap();
    assert_eq!(state.events.len(), 12);
    assert!(state
        .events
        .iter()
        .all(|(metric, line)| metric == "readings" && line.contains("\"name\":\"fresh_probe\"")));
}
