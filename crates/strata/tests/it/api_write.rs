//! Issue 3: `POST /api/v1/write` against the real server: every body form and timestamp form,
//! the seed's "new machine" record, mixed good and bad events, malformed and oversized bodies,
//! custom metric keys and timestamp aliases, idempotent re-sends, concurrent writers, the error
//! log, unknown-field tracking, and kill -9 durability.

use crate::common;

use crate::common::TestServer;
use serde_json::{json, Value};

const NDJSON: &str = "application/x-ndjson";

fn write_json(server: &TestServer, key: &str, body: &Value) -> common::Answer {
    server.post("/api/v1/write", key, body)
}

fn rows(answer: &common::Answer) -> &Vec<Value> {
    assert_eq!(answer.status, 200, "sql failed: {}", answer.text);
    answer.body["rows"].as_array().expect("rows")
}

fn count(server: &TestServer, key: &str, sql: &str) -> i64 {
    let answer = server.sql(key, sql);
    rows(&answer)[0][0]
        .as_i64()
        .unwrap_or_else(|| panic!("count of {sql}: {}", answer.text))
}

#[test]
fn every_body_form_is_accepted() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    let writer = server.create_key(&admin, "write");

    let one = write_json(
        &server,
        &writer,
        &json!({"metrictype": "m", "timestamp": 1000, "v": 1}),
    );
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(
        one.body,
        json!({"accepted": 1, "rejected": 0, "errors": []})
    );

    let array = write_json(
        &server,
        &writer,
        &json!([{"metrictype": "m", "timestamp": 2000, "v": 2}, {"metrictype": "m", "timestamp": 3000, "v": 3}]),
    );
    assert_eq!(array.body["accepted"], 2, "{}", array.text);

    let ndjson = "{\"metrictype\":\"m\",\"timestamp\":4000,\"v\":4}\n\n{\"metrictype\":\"m\",\"timestamp\":5000,\"v\":5}\n";
    let nd = server.post_raw("/api/v1/write", &writer, NDJSON, ndjson.as_bytes().to_vec());
    assert_eq!(nd.body["accepted"], 2, "{}", nd.text);

    let by_query = server.post(
        "/api/v1/write?metric=other",
        &writer,
        &json!({"timestamp": 6000, "v": 6}),
    );
    assert_eq!(by_query.body["accepted"], 1, "{}", by_query.text);

    let empty = write_json(&server, &writer, &json!([]));
    assert_eq!(
        empty.body,
        json!({"accepted": 0, "rejected": 0, "errors": []})
    );

    let reader = server.create_key(&admin, "read");
    assert_eq!(count(&server, &reader, "SELECT count(*) FROM m"), 5);
    assert_eq!(count(&server, &reader, "SELECT count(*) FROM other"), 1);
    // A read key cannot write.
    assert_eq!(
        write_json(
            &server,
            &reader,
            &json!({"metrictype": "m", "timestamp": 1})
        )
        .status,
        403
    );
}

#[test]
fn every_timestamp_form_is_understood() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    let patched = server.patch(
        "/api/v1/settings",
        &admin,
        &json!({"timestamp_patterns": ["%d/%m/%Y %H:%M"]}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    server.post("/api/v1/schema/metrics", &admin, &json!({"name": "custom"}));
    let patched = server.patch(
        "/api/v1/schema/metrics/custom",
        &admin,
        &json!({"timestamp_aliases": ["ts"], "timestamp_patterns": ["%Y%m%d-%H%M%S"]}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);

    let expected = 1_421_057_535_000i64; // 2015-01-12T10:12:15Z
    let forms = [
        json!(expected),
        json!(expected.to_string()),
        json!("2015-01-12T10:12:15Z"),
        json!("2015-01-12T11:12:15+01:00"),
        json!("Mon, 12 Jan 2015 10:12:15 GMT"),
        json!("January 12, 2015 10:12:15"),
        json!("2015-01-12 10:12:15"),
    ];
    let events: Vec<Value> = forms
        .iter()
        .enumerate()
        .map(|(i, ts)| json!({"metrictype": "forms", "timestamp": ts, "form": i}))
        .collect();
    let answer = write_json(&server, &admin, &Value::Array(events));
    assert_eq!(answer.body["accepted"], forms.len(), "{}", answer.text);

    // Tenant pattern, metric pattern and a timestamp alias.
    let answer = write_json(
        &server,
        &admin,
        &json!([
            {"metrictype": "forms", "timestamp": "12/01/2015 10:12", "form": "tenant-pattern"},
            {"metrictype": "custom", "ts": "20150112-101215", "form": "metric-pattern"},
        ]),
    );
    assert_eq!(answer.body["accepted"], 2, "{}", answer.text);

    let sql = server.sql(
        &admin,
        "SELECT count(*) FROM forms WHERE timestamp = TIMESTAMP '2015-01-12T10:12:15Z'",
    );
    assert_eq!(rows(&sql)[0][0], forms.len() as i64, "{}", sql.text);
    let sql = server.sql(
        &admin,
        "SELECT CAST(timestamp AS VARCHAR) FROM forms WHERE form = 'tenant-pattern'",
    );
    assert!(
        rows(&sql)[0][0]
            .as_str()
            .unwrap()
            .starts_with("2015-01-12T10:12"),
        "{}",
        sql.text
    );
    let sql = server.sql(
        &admin,
        "SELECT count(*) FROM custom WHERE timestamp = TIMESTAMP '2015-01-12T10:12:15Z'",
    );
    assert_eq!(rows(&sql)[0][0], 1, "{}", sql.text);
    // The timestamp alias is consumed, not stored as a field.
    let schema = server.get("/api/v1/schema", &admin).body;
    assert!(!schema.to_string().contains("\"name\":\"ts\""), "{schema}");
}

#[test]
fn the_new_machine_record_from_the_seed() {
    let server = TestServer::start();
    let admin = server.create_tenant("dpi");
    server.patch(
        "/api/v1/settings",
        &admin,
        &json!({"metric_keys": ["metrictype", "source"]}),
    );
    let answer = write_json(
        &server,
        &admin,
        &json!({
            "source": "new machine",
            "timestamp": "January 12, 2015 10:12:15",
            "temperature": "15",
            "pressure": "4",
            "gallons": "5"
        }),
    );
    assert_eq!(
        answer.body,
        json!({"accepted": 1, "rejected": 0, "errors": []}),
        "{}",
        answer.text
    );

    let sql = server.sql(
        &admin,
        "SELECT timestamp, CAST(gallons AS INT) AS g, temperature FROM \"new machine\"",
    );
    let r = rows(&sql);
    assert_eq!(r.len(), 1, "{}", sql.text);
    assert_eq!(r[0][1], 5);
    assert_eq!(r[0][2], "15");

    // The unknown fields are tracked (statistics are flushed about once a second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let schema = server.get("/api/v1/schema", &admin).body;
        let metric = &schema["metrics"][0];
        assert_eq!(metric["name"], "new machine");
        let unknown = metric["unknown_fields"].as_array().unwrap();
        let gallons = unknown.iter().find(|u| u["name"] == "gallons");
        if let Some(g) = gallons.filter(|g| g["count"] == 1) {
            assert_eq!(g["types"], json!(["string"]));
            assert_eq!(g["samples"], json!(["5"]));
            assert!(g["first_seen"].is_string());
            let names: Vec<&str> = unknown
                .iter()
                .map(|u| u["name"].as_str().unwrap())
                .collect();
            assert!(
                !names.contains(&"source"),
                "metric key is consumed: {names:?}"
            );
            assert!(!names.contains(&"timestamp"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stats never flushed: {schema}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn mixed_good_and_bad_events_report_matching_indices() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    let body = json!([
        {"metrictype": "m", "timestamp": 1, "ok": 0},
        {"metrictype": "m", "ok": 1},
        {"metrictype": "m", "timestamp": "not a time", "ok": 2},
        {"timestamp": 4, "ok": 3},
        "not an object",
        {"metrictype": "m", "timestamp": 5, "nested": {"a": {"b": 1}}, "list": [1, 2]},
        {"metrictype": "m", "timestamp": 6, "x\u{1}y": 1},
        {"metrictype": "m", "timestamp": 7, "ok": 7},
    ]);
    let answer = write_json(&server, &admin, &body);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["accepted"], 3, "{}", answer.text);
    assert_eq!(answer.body["rejected"], 5, "{}", answer.text);
    let errors = answer.body["errors"].as_array().unwrap();
    let indices: Vec<i64> = errors
        .iter()
        .map(|e| e["index"].as_i64().unwrap())
        .collect();
    assert_eq!(indices, vec![1, 2, 3, 4, 6]);
    let text = |i: usize| errors[i]["error"].as_str().unwrap().to_lowercase();
    assert!(text(0).contains("timestamp"), "{}", text(0));
    assert!(text(1).contains("not a time"), "{}", text(1));
    assert!(text(2).contains("metrictype"), "{}", text(2));
    assert!(text(3).contains("object"), "{}", text(3));
    assert!(text(4).contains("control"), "{}", text(4));

    // Flattened and array fields are stored.
    let sql = server.sql(
        &admin,
        "SELECT \"nested.a.b\", list FROM m WHERE \"nested.a.b\" IS NOT NULL",
    );
    assert_eq!(rows(&sql)[0], json!(["1", "[1,2]"]), "{}", sql.text);

    // Every rejected event is in the error log with its reason, stage and payload.
    let log = server.get("/api/v1/errors", &admin);
    assert_eq!(log.status, 200, "{}", log.text);
    let logged = log.body["errors"].as_array().unwrap();
    assert_eq!(logged.len(), 5, "{}", log.text);
    assert!(logged
        .iter()
        .any(|e| e["payload"].as_str().unwrap().contains("not a time")));
    assert!(logged
        .iter()
        .all(|e| e["stage"].is_string() && e["reason"].is_string()));
    let in_sql = server.sql(&admin, "SELECT count(*) FROM strata.errors");
    assert_eq!(rows(&in_sql)[0][0], 5, "{}", in_sql.text);
    let later = server.get("/api/v1/errors?since=2999-01-01T00:00:00Z", &admin);
    assert_eq!(later.body["errors"], json!([]));
    assert_eq!(
        server.get("/api/v1/errors?since=yesterday", &admin).status,
        400
    );
}

#[test]
fn malformed_and_oversized_bodies() {
    let server = TestServer::start_with(&[
        "--max-body-bytes",
        "4096",
        "--max-event-bytes",
        "512",
        "--max-fields-per-event",
        "10",
    ]);
    let admin = server.create_tenant("t");

    let bad = server.post_raw(
        "/api/v1/write",
        &admin,
        "application/json",
        b"[{\"metrictype\":\"m\",\n \"timestamp\": 1,,}]".to_vec(),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.error().contains("line 2"), "{}", bad.text);

    // NDJSON: a malformed line rejects that event only.
    let nd =
        "{\"metrictype\":\"m\",\"timestamp\":1}\n{oops\n{\"metrictype\":\"m\",\"timestamp\":2}\n";
    let answer = server.post_raw("/api/v1/write", &admin, NDJSON, nd.as_bytes().to_vec());
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["accepted"], 2);
    assert_eq!(answer.body["errors"][0]["index"], 1);
    assert!(
        answer.body["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{}",
        answer.text
    );

    let huge = vec![b' '; 5000];
    let too_big = server.post_raw("/api/v1/write", &admin, "application/json", huge);
    assert_eq!(too_big.status, 413, "{}", too_big.text);
    assert!(too_big.error().contains("4096"), "{}", too_big.text);

    let big_event = json!([
        {"metrictype": "m", "timestamp": 3, "blob": "x".repeat(600)},
        {"metrictype": "m", "timestamp": 4},
    ]);
    let answer = write_json(&server, &admin, &big_event);
    assert_eq!(answer.body["accepted"], 1, "{}", answer.text);
    assert!(
        answer.body["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("512"),
        "{}",
        answer.text
    );

    let mut wide = serde_json::Map::new();
    wide.insert("metrictype".into(), json!("m"));
    wide.insert("timestamp".into(), json!(5));
    for i in 0..11 {
        wide.insert(format!("f{i}"), json!(i));
    }
    let answer = write_json(&server, &admin, &Value::Object(wide));
    assert_eq!(answer.body["rejected"], 1, "{}", answer.text);
    assert!(
        answer.body["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("10"),
        "{}",
        answer.text
    );

    let long_name = json!({"metrictype": "m", "timestamp": 6, "n".repeat(256): 1});
    let answer = write_json(&server, &admin, &long_name);
    assert_eq!(answer.body["rejected"], 1, "{}", answer.text);
    assert!(
        answer.body["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("255"),
        "{}",
        answer.text
    );

    // Whole-body failures are in the error log too.
    let log = server.get("/api/v1/errors", &admin);
    let stages: Vec<&str> = log.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    assert!(stages.contains(&"parse"), "{stages:?}");
    assert!(stages.contains(&"body"), "{stages:?}");
}

#[test]
fn custom_metric_key_and_timestamp_alias() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    server.patch(
        "/api/v1/settings",
        &admin,
        &json!({"metric_keys": ["device_type", "kind"]}),
    );
    server.post(
        "/api/v1/schema/metrics",
        &admin,
        &json!({"name": "thermostat", "aliases": ["machine1"]}),
    );
    server.patch(
        "/api/v1/schema/metrics/thermostat",
        &admin,
        &json!({"timestamp_aliases": ["time"]}),
    );
    let answer = write_json(
        &server,
        &admin,
        &json!([
            {"device_type": "machine1", "kind": "ignored-as-field", "time": "2015-01-12T10:12:15Z", "t": 1},
            {"kind": "thermostat", "time": "2015-01-12T10:12:16Z", "t": 2},
            {"metrictype": "thermostat", "timestamp": 1, "t": 3},
        ]),
    );
    assert_eq!(answer.body["accepted"], 2, "{}", answer.text);
    assert_eq!(answer.body["errors"][0]["index"], 2);
    assert!(
        answer.body["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("device_type"),
        "{}",
        answer.text
    );
    let sql = server.sql(&admin, "SELECT t, kind FROM machine1 ORDER BY t");
    assert_eq!(
        rows(&sql),
        &vec![json!(["1", "ignored-as-field"]), json!(["2", null])],
        "{}",
        sql.text
    );
}

#[test]
fn identical_resends_are_stored_once() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    let event = json!({"metrictype": "m", "timestamp": 1000, "a": 1, "b": "x"});
    let reordered = json!({"b": "x", "timestamp": 1000, "a": 1, "metrictype": "m"});
    for body in [&event, &event, &reordered] {
        assert_eq!(write_json(&server, &admin, body).body["accepted"], 1);
    }
    // A different event at the same timestamp is a second row.
    write_json(
        &server,
        &admin,
        &json!({"metrictype": "m", "timestamp": 1000, "a": 2, "b": "x"}),
    );
    assert_eq!(count(&server, &admin, "SELECT count(*) FROM m"), 2);
}

#[test]
fn many_concurrent_writers_lose_nothing() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    const WRITERS: usize = 8;
    const BATCHES: usize = 10;
    const PER_BATCH: usize = 200;
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let server = &server;
            let admin = &admin;
            scope.spawn(move || {
                for b in 0..BATCHES {
                    let mut body = String::new();
                    for i in 0..PER_BATCH {
                        let ts = ((w * BATCHES + b) * PER_BATCH + i) as i64;
                        body.push_str(&format!(
                            "{{\"metrictype\":\"load\",\"timestamp\":{ts},\"writer\":{w},\"v\":{i}}}\n"
                        ));
                    }
                    let answer = server.post_raw("/api/v1/write", admin, NDJSON, body.into_bytes());
                    assert_eq!(answer.body["accepted"], PER_BATCH, "{}", answer.text);
                }
            });
        }
    });
    let total = (WRITERS * BATCHES * PER_BATCH) as i64;
    assert_eq!(count(&server, &admin, "SELECT count(*) FROM load"), total);
    assert_eq!(
        count(
            &server,
            &admin,
            "SELECT count(DISTINCT timestamp) FROM load"
        ),
        total
    );
}

#[test]
fn acknowledged_events_survive_kill_9_during_ingest() {
    let mut server = TestServer::start();
    let admin = server.create_tenant("t");
    let acked_batches = std::sync::Mutex::new(Vec::<usize>::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    const PER_BATCH: usize = 100;
    std::thread::scope(|scope| {
        for w in 0..4usize {
            let server = &server;
            let admin = &admin;
            let acked_batches = &acked_batches;
            let stop = &stop;
            scope.spawn(move || {
                for b in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let batch = w * 1_000_000 + b;
                    let body: String = (0..PER_BATCH)
                        .map(|i| {
                            format!(
                                "{{\"metrictype\":\"k\",\"timestamp\":{},\"batch\":{batch}}}\n",
                                batch * PER_BATCH + i
                            )
                        })
                        .collect();
                    let sent = server
                        .request(reqwest::Method::POST, "/api/v1/write", Some(admin))
                        .header("content-type", NDJSON)
                        .body(body)
                        .send();
                    match sent {
                        Ok(resp) if resp.status().as_u16() == 200 => {
                            let answer: Value = resp.json().unwrap_or(Value::Null);
                            if answer["accepted"] == PER_BATCH {
                                acked_batches.lock().unwrap().push(batch);
                            }
                        }
                        _ => break, // the server is gone
                    }
                }
            });
        }
        // Let the writers get going, then pull the plug while requests are in flight.
        while acked_batches.lock().unwrap().len() < 40 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        common::signal(server.pid(), "KILL");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let acked = acked_batches.into_inner().unwrap();
    assert!(acked.len() >= 40);
    server.kill9();
    server.restart();
    let answer = server.sql(
        &admin,
        "SELECT CAST(batch AS BIGINT), count(*) FROM k GROUP BY 1",
    );
    let stored: std::collections::HashMap<i64, i64> = rows(&answer)
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap()))
        .collect();
    for batch in &acked {
        assert_eq!(
            stored.get(&(*batch as i64)),
            Some(&(PER_BATCH as i64)),
            "acked batch {batch} lost"
        );
    }
    // Unacknowledged batches are all-or-nothing too.
    assert!(
        stored.values().all(|n| *n == PER_BATCH as i64),
        "{stored:?}"
    );
}
