//! Hostile ingest (issue 24): a sparse spread of old timestamps, timestamps no client can read,
//! numbers beyond i64/f64, the reserved metric name and wide metrics each get a clear answer and
//! keep the store small, readable and exactly-once. Runs the real binary.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::common::{TestServer, NDJSON};
use serde_json::{json, Value};

const WEEK_MS: i64 = 604_800_000;
/// 2001-09-09T01:46:40Z, the first timestamp of the issue's request.
const SPREAD_START: i64 = 1_000_000_000_000;
const WEEKS: i64 = 1_000;

fn scalar(server: &TestServer, key: &str, sql: &str) -> Value {
    let answer = server.sql(key, sql);
    assert_eq!(answer.status, 200, "{sql}: {}", answer.text);
    answer.body["rows"][0][0].clone()
}

fn rows(server: &TestServer, key: &str, sql: &str) -> Vec<Value> {
    let answer = server.sql(key, sql);
    assert_eq!(answer.status, 200, "{sql}: {}", answer.text);
    answer.body["rows"].as_array().cloned().unwrap_or_default()
}

fn write(server: &TestServer, key: &str, body: &Value) -> Value {
    let answer = server.post("/api/v1/write", key, body);
    assert_eq!(answer.status, 200, "write: {}", answer.text);
    answer.body
}

fn disk_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_bytes(&entry.path()),
            // Blocks in use, as `du` counts: fjall's journal is a sparse 64 MiB file.
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// The spread's invariants: every row once in total and once per week.
fn assert_spread_readable(server: &TestServer, key: &str, stage: &str) {
    let totals = rows(
        server,
        key,
        "SELECT count(*), count(DISTINCT i), CAST(sum(CAST(i AS BIGINT)) AS BIGINT) FROM spread",
    );
    assert_eq!(
        totals[0],
        json!([WEEKS, WEEKS, WEEKS * (WEEKS - 1) / 2]),
        "{stage}"
    );
    let doubled = rows(
        server,
        key,
        "SELECT i FROM spread GROUP BY i HAVING count(*) <> 1",
    );
    assert!(doubled.is_empty(), "{stage}: {doubled:?}");
    // Time-range reads of single weeks (the first, a middle and the last) find exactly their row.
    for week in [0, 1, 500, WEEKS - 1] {
        let start = SPREAD_START + week * WEEK_MS;
        let sql = format!(
            "SELECT count(*), min(CAST(i AS BIGINT)) FROM spread WHERE timestamp >= \
             to_timestamp_millis({start}) AND timestamp < to_timestamp_millis({})",
            start + WEEK_MS
        );
        assert_eq!(
            rows(server, key, &sql)[0],
            json!([1, week]),
            "{stage}: {sql}"
        );
    }
}

/// Defect 4: 1,000 events one week apart took 7.5 s and left 292 MB (a keyspace per week).
/// Far weeks now share one archive keyspace: the disk stays small, every row is read once per
/// query and per week, through compaction, a late re-send and a restart, while another tenant
/// keeps writing.
#[test]
fn a_thousand_weeks_in_one_request_stay_small_and_are_read_exactly_once() {
    let mut server =
        TestServer::start_with(&["--compact-after-secs", "0", "--compact-interval-secs", "0"]);
    let admin = server.create_tenant("spray");
    let other = server.create_tenant("bystander");

    let spraying = Arc::new(AtomicBool::new(true));
    let bystander = {
        let running = spraying.clone();
        let key = other.clone();
        let url = server.url().to_string();
        std::thread::spawn(move || -> u64 {
            let client = reqwest::blocking::Client::new();
            let mut written = 0u64;
            while running.load(Ordering::Acquire) || written < 5 {
                let event = json!({"metrictype": "steady", "timestamp": 1_700_000_000_000i64 + written as i64, "v": written});
                let answer = client
                    .post(format!("{url}/api/v1/write"))
                    .bearer_auth(&key)
                    .json(&event)
                    .send()
                    .expect("bystander write");
                assert_eq!(answer.status().as_u16(), 200, "bystander write failed");
                written += 1;
            }
            written
        })
    };

    let events: Vec<Value> = (0..WEEKS)
        .map(|i| json!({"metrictype": "spread", "timestamp": SPREAD_START + i * WEEK_MS, "i": i}))
        .collect();
    let answer = write(&server, &admin, &Value::Array(events.clone()));
    assert_eq!(answer["accepted"], WEEKS, "{answer}");
    spraying.store(false, Ordering::Release);
    let bystander_writes = bystander.join().expect("bystander thread");
    assert_eq!(
        scalar(&server, &other, "SELECT count(*) FROM steady"),
        json!(bystander_writes)
    );

    let hot = disk_bytes(&server.data_dir().join("hot"));
    assert!(hot < 50 * 1024 * 1024, "hot tier holds {hot} bytes");
    assert_spread_readable(&server, &admin, "hot");
    let plan = rows(
        &server,
        &admin,
        &format!(
            "EXPLAIN SELECT count(*) FROM spread WHERE timestamp >= to_timestamp_millis({SPREAD_START}) \
             AND timestamp < to_timestamp_millis({})",
            SPREAD_START + WEEK_MS
        ),
    );
    let plan = format!("{plan:?}");
    assert!(plan.contains("hot_2001-09-03@archive"), "{plan}");

    let report = server.post("/api/v1/compact", &admin, &json!({}));
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(report.body["rows"], WEEKS, "{}", report.text);
    assert_spread_readable(&server, &admin, "after compaction");

    // Late re-sends of compacted rows count once; a new late row counts once.
    let resent = write(&server, &admin, &Value::Array(events[495..505].to_vec()));
    assert_eq!(resent["accepted"], 10, "{resent}");
    assert_spread_readable(&server, &admin, "after re-sends");

    server.restart();
    assert_spread_readable(&server, &admin, "after restart");
    let report = server.post("/api/v1/compact", &admin, &json!({}));
    assert_eq!(report.status, 200, "{}", report.text);
    assert_spread_readable(&server, &admin, "after a second compaction");
    let all = disk_bytes(server.data_dir());
    assert!(all < 50 * 1024 * 1024, "data directory holds {all} bytes");
}

fn logged_errors(server: &TestServer, admin: &str) -> Vec<Value> {
    let log = server.get("/api/v1/errors", admin);
    assert_eq!(log.status, 200, "{}", log.text);
    log.body["errors"].as_array().cloned().unwrap_or_default()
}

/// Defect 9: `i64::MAX` was acknowledged and never readable; `i64::MIN` read as "Cast error".
/// Only years 1677-2262 (Arrow nanoseconds) are accepted; the ends of that range are readable.
#[test]
fn timestamps_outside_arrow_nanoseconds_are_rejected_and_the_ends_read_back() {
    let server = TestServer::start();
    let admin = server.create_tenant("clock");
    let sent = json!([
        {"metrictype": "t", "timestamp": i64::MAX},
        {"metrictype": "t", "timestamp": i64::MIN},
        {"metrictype": "t", "timestamp": -8_334_632_851_200_001i64},
        {"metrictype": "t", "timestamp": 18_446_744_073_709_551_615u64},
        {"metrictype": "t", "timestamp": "9999999999999999999999"},
        {"metrictype": "t", "timestamp": -9_223_372_036_855i64},
        {"metrictype": "t", "timestamp": 9_223_372_036_855i64},
        {"metrictype": "t", "timestamp": -9_223_372_036_854i64, "edge": "min"},
        {"metrictype": "t", "timestamp": 9_223_372_036_854i64, "edge": "max"},
        {"metrictype": "t", "timestamp": "2262-04-11T23:47:16.854Z", "edge": "max text"},
        {"metrictype": "t", "timestamp": 1.9, "edge": "fraction"},
        {"metrictype": "t", "timestamp": -1.1, "edge": "negative fraction"},
    ]);
    let answer = write(&server, &admin, &sent);
    assert_eq!(answer["accepted"], 5, "{answer}");
    assert_eq!(answer["rejected"], 7, "{answer}");
    let errors = answer["errors"].as_array().expect("errors");
    for (position, error) in errors.iter().enumerate() {
        assert_eq!(error["index"], position, "{answer}");
        let text = error["error"].as_str().unwrap_or_default();
        assert!(
            text.contains("outside the supported range")
                && text.contains("1677-09-21T00:12:43.146Z")
                && text.contains("2262-04-11T23:47:16.854Z"),
            "{text}"
        );
    }
    let logged = logged_errors(&server, &admin);
    assert_eq!(logged.len(), 7, "{logged:?}");
    assert!(
        logged.iter().all(|e| e["stage"] == "timestamp"),
        "{logged:?}"
    );
    assert!(logged.iter().any(|e| e["payload"]
        .as_str()
        .unwrap_or("")
        .contains("9223372036854775807")));

    // Every accepted event is readable by every encoder, with its exact time.
    let read = rows(
        &server,
        &admin,
        "SELECT edge, timestamp FROM t ORDER BY timestamp",
    );
    assert_eq!(
        read,
        vec![
            json!(["min", "1677-09-21T00:12:43.146Z"]),
            json!(["negative fraction", "1969-12-31T23:59:59.998Z"]),
            json!(["fraction", "1970-01-01T00:00:00.001Z"]),
            json!(["max", "2262-04-11T23:47:16.854Z"]),
            json!(["max text", "2262-04-11T23:47:16.854Z"]),
        ]
    );
    assert_eq!(
        scalar(&server, &admin, "SELECT count(*) FROM strata_raw('t')"),
        5
    );
    let csv = server.post(
        "/api/v1/sql",
        &admin,
        &json!({"sql": "SELECT timestamp FROM t", "format": "csv"}),
    );
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert!(!csv.text.contains("ERROR"), "{}", csv.text);
}

/// Weak point: 18446744073709551615 silently became 18446744073709552000. A number that i64/f64
/// would change keeps the text that was sent, in `strata_raw` and as the field's text.
#[test]
fn numbers_beyond_i64_and_f64_keep_the_sent_text() {
    let server = TestServer::start();
    let admin = server.create_tenant("numbers");
    let body = br#"{"metrictype":"n","timestamp":1,"big":18446744073709551615,"pi":3.14159265358979323846264,"nested":{"huge":123456789012345678901234567890},"list":[1,18446744073709551615],"ok":1.5,"int":42}"#;
    let answer = server.post_raw("/api/v1/write", &admin, "application/json", body.to_vec());
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["accepted"], 1, "{}", answer.text);
    let read = rows(
        &server,
        &admin,
        "SELECT big, pi, \"nested.huge\", list, ok, int FROM strata_raw('n')",
    );
    assert_eq!(
        read[0],
        json!([
            "18446744073709551615",
            "3.14159265358979323846264",
            "123456789012345678901234567890",
            "[1,18446744073709551615]",
            "1.5",
            "42"
        ]),
    );
    // Declared integer: the value that does not fit reads NULL, its text stays in strata_raw.
    let declared = server.put(
        "/api/v1/schema/metrics/n/fields/big",
        &admin,
        &json!({"type": "integer"}),
    );
    assert_eq!(declared.status, 200, "{}", declared.text);
    assert_eq!(scalar(&server, &admin, "SELECT big FROM n"), Value::Null);
    assert_eq!(
        scalar(&server, &admin, "SELECT big FROM strata_raw('n')"),
        json!("18446744073709551615")
    );
}

/// Weak point: a metric could be named `timestamp` through ingest although the name is reserved.
#[test]
fn a_metric_named_timestamp_is_refused_per_event() {
    let server = TestServer::start();
    let admin = server.create_tenant("reserved");
    let answer = write(
        &server,
        &admin,
        &json!([
            {"metrictype": "timestamp", "timestamp": 1, "v": 1},
            {"metrictype": "fine", "timestamp": 1, "v": 1},
        ]),
    );
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["errors"][0]["index"], 0, "{answer}");
    assert!(
        answer["errors"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("reserved"),
        "{answer}"
    );
    let ndjson = "{\"timestamp\":1,\"v\":1}\n";
    let by_query = server.post_raw(
        "/api/v1/write?metric=timestamp",
        &admin,
        NDJSON,
        ndjson.as_bytes().to_vec(),
    );
    assert_eq!(by_query.body["rejected"], 1, "{}", by_query.text);
    let schema = server.get("/api/v1/schema", &admin);
    assert!(
        !schema.text.contains("\"name\":\"timestamp\""),
        "{}",
        schema.text
    );
    assert_eq!(logged_errors(&server, &admin).len(), 2);
}

/// Defect 3, ingest side: a metric holds at most N distinct incoming names; an event that would
/// add more is rejected with the metric and the limit, kept in the error log, and `SELECT *`
/// keeps answering.
#[test]
fn a_metric_holds_at_most_the_field_name_limit() {
    let server = TestServer::start_with(&["--max-field-names-per-metric", "100"]);
    let admin = server.create_tenant("wide");
    let event = |from: usize, count: usize| {
        let mut event = serde_json::Map::new();
        event.insert("metrictype".into(), json!("wide"));
        event.insert("timestamp".into(), json!(from));
        for n in from..from + count {
            event.insert(format!("f{n}"), json!(n));
        }
        Value::Object(event)
    };
    // 60 new names fit; 60 more would make 120; 30 more make 90; names already known are free.
    let answer = write(
        &server,
        &admin,
        &json!([event(0, 60), event(60, 60), event(60, 30), event(0, 60)]),
    );
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["errors"][0]["index"], 1, "{answer}");
    let text = answer["errors"][0]["error"].as_str().unwrap_or_default();
    assert!(
        text.contains("\"wide\"") && text.contains("100") && text.contains("limit"),
        "{text}"
    );
    // A later request is checked against what the metric holds (90): 11 new names are too many.
    let later = write(&server, &admin, &json!([event(200, 11), event(300, 10)]));
    assert_eq!(later["accepted"], 1, "{later}");
    assert_eq!(later["errors"][0]["index"], 0, "{later}");
    let logged = logged_errors(&server, &admin);
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(logged.iter().all(|e| e["metric"] == "wide"), "{logged:?}");
    let all = server.sql(&admin, "SELECT * FROM wide");
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.body["columns"].as_array().map(Vec::len), Some(101));
}
