//! Hostile SQL through the real server (issue 24): statements built to overflow the stack,
//! starve other tenants, exhaust memory or panic. Each must get a clear error while the server
//! stays up and keeps serving others. Part of the hostile-input suite with `hostile_http.rs`,
//! `hostile_ingest.rs` and `hostile_pg.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Answer, TestServer};
use serde_json::{json, Value};

fn chain(term: &str, separator: &str, count: usize) -> String {
    vec![term; count].join(separator)
}

fn assert_healthy(server: &TestServer) {
    let health = server.send(server.request(reqwest::Method::GET, "/health", None));
    assert_eq!(
        health.status, 200,
        "the server must stay up: {}",
        health.text
    );
}

fn sql_format(server: &TestServer, key: &str, sql: &str, format: &str) -> Answer {
    server.post("/api/v1/sql", key, &json!({ "sql": sql, "format": format }))
}

#[test]
fn deep_expressions_plan_or_get_a_clear_400_and_never_crash() {
    let server = TestServer::start();
    let admin = server.create_tenant("deep");
    // 2,000 terms crashed the server before (stack overflow); now they run.
    for sql in [
        format!("SELECT 1 WHERE {}", chain("1=1", " OR ", 2000)),
        format!("SELECT 1 WHERE {}", chain("1=1", " AND ", 2000)),
        format!("SELECT {}", chain("1", "+", 2000)),
        format!("SELECT {}", chain("'a'", " || ", 2000)),
        chain("SELECT 1", " UNION ALL ", 1000),
    ] {
        let answer = server.sql(&admin, &sql);
        assert_eq!(answer.status, 200, "{}: {}", &sql[..40], answer.text);
        assert_healthy(&server);
    }
    // 10,000 terms, and 3,000 unions, are over the depth limit: a 400 that says so.
    for sql in [
        format!("SELECT 1 WHERE {}", chain("1=1", " OR ", 10_000)),
        format!("SELECT {}", chain("1", "+", 10_000)),
        chain("SELECT 1", " UNION ALL ", 3000),
        format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000)),
    ] {
        let answer = server.sql(&admin, &sql);
        assert_eq!(answer.status, 400, "{}: {}", &sql[..40], answer.text);
        assert!(
            answer.error().contains("too complex") || answer.error().contains("recursion"),
            "{}",
            answer.text
        );
        assert_healthy(&server);
    }
}

#[test]
fn a_heavy_query_ends_at_its_deadline_while_other_tenants_are_served() {
    let server = TestServer::start_with(&["--query-timeout-secs", "3"]);
    let heavy = server.create_tenant("heavy");
    let light = server.create_tenant("light");
    let running = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let answer = std::thread::scope(|scope| {
        let query = scope.spawn(|| {
            let answer = server.sql(
                &heavy,
                "SELECT a.value FROM generate_series(1,100000) a CROSS JOIN \
                 generate_series(1,100000) b ORDER BY a.value DESC, b.value DESC LIMIT 1",
            );
            running.store(false, Ordering::SeqCst);
            answer
        });
        std::thread::sleep(Duration::from_millis(500));
        // While the cross join runs, the other tenant writes and reads. Before the fix both
        // waited for the cross join (76.7 s and 78.4 s).
        let mut served_during = 0;
        for i in 0..5 {
            let write = server.post(
                "/api/v1/write",
                &light,
                &json!({"metrictype": "m", "timestamp": 1_700_000_000_000i64 + i, "v": i}),
            );
            assert_eq!(write.status, 200, "{}", write.text);
            let count = server.sql(&light, "SELECT count(*) FROM m");
            assert_eq!(count.body["rows"][0][0], json!(i + 1), "{}", count.text);
            if running.load(Ordering::SeqCst) {
                served_during += 1;
            }
        }
        assert!(
            served_during > 0,
            "the light tenant was not served during the cross join"
        );
        query.join().expect("query thread")
    });
    assert_eq!(answer.status, 422, "{}", answer.text);
    assert!(answer.error().contains("time limit"), "{}", answer.text);
    // The deadline is 3 s; before the fix the answer came after 65-79 s (for a 30 s limit).
    // A generous bound: this only proves the deadline is honoured, not a speed.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout answered after {:?}",
        started.elapsed()
    );
    assert_healthy(&server);
}

#[test]
fn memory_bombs_and_panicking_functions_get_clear_errors() {
    let server = TestServer::start();
    let admin = server.create_tenant("bombs");
    for sql in [
        // Was 200 after 25 s with the server at 8.1 GB.
        "SELECT length(repeat('x', 2000000000))",
        // Panicked with "offset overflow" and dropped the connection.
        "SELECT length(string_agg(repeat('x',1000000), ',')) FROM generate_series(1,3000)",
        "SELECT length(lpad('x', 2000000000))",
        "SELECT cardinality(range(1, 2000000000))",
        "SELECT length(concat(repeat('x', 100000), 'y')) FROM generate_series(1, 100000)",
    ] {
        let answer = server.sql(&admin, sql);
        let head = &answer.text[..answer.text.len().min(300)];
        assert_eq!(answer.status, 422, "{sql}: {head}");
        assert!(answer.error().contains("memory limit"), "{sql}: {head}");
        assert_healthy(&server);
    }
    let literal = format!("SELECT '{}' AS big", "x".repeat(100 * 1024));
    let answer = server.sql(&admin, &literal);
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(answer.error().contains("string literal"), "{}", answer.text);
    // Ordinary use of the same functions is untouched.
    let answer = server.sql(&admin, "SELECT repeat('ab', 2), lpad('7', 3, '0')");
    assert_eq!(
        answer.body["rows"],
        json!([["abab", "007"]]),
        "{}",
        answer.text
    );
}

#[test]
fn a_wide_metric_is_refused_with_a_clear_error_and_stalls_nothing() {
    let server = TestServer::start();
    let admin = server.create_tenant("wide");
    // 3 events of 990 new names each: 2,970 columns, over the 1,000-column result limit.
    for event in 0..3 {
        let mut object = serde_json::Map::new();
        object.insert("metrictype".into(), json!("m"));
        object.insert("timestamp".into(), json!(1_700_000_000_000i64 + event));
        for field in 0..990 {
            object.insert(format!("f{event}_{field}"), json!(field));
        }
        let answer = server.post("/api/v1/write", &admin, &Value::Object(object));
        assert_eq!(answer.body["accepted"], 1, "{}", answer.text);
    }
    let answer = server.sql(&admin, "SELECT * FROM m LIMIT 1");
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(answer.error().contains("columns"), "{}", answer.text);
    let answer = server.sql(&admin, "SELECT f2_989 FROM m WHERE f2_989 IS NOT NULL");
    assert_eq!(answer.body["rows"], json!([["989"]]), "{}", answer.text);
    assert_healthy(&server);
}

#[test]
fn an_error_after_the_first_megabyte_ends_the_answer_visibly() {
    let server = TestServer::start();
    let admin = server.create_tenant("stream");
    // Rows up to 290,000 are fine (several MB of output), then a division by zero. Near the
    // end, not in the middle: the projection runs on 2 partitions that emit batches as they
    // finish, so a failing batch in the middle was sometimes reached before the first MiB was
    // sent (then the answer is a plain 400, which is right, but not what this test is about).
    let sql = "SELECT v, 10 / (v - 290000) AS q FROM generate_series(1, 300000) AS t(v)";

    let json_answer = sql_format(&server, &admin, sql, "json");
    assert_eq!(json_answer.status, 200);
    assert!(
        json_answer.text.len() > 1024 * 1024,
        "{}",
        json_answer.text.len()
    );
    assert!(
        json_answer.body["error"]
            .as_str()
            .unwrap_or("")
            .contains("Divide by zero"),
        "the JSON document must end with the error: {}",
        &json_answer.text[json_answer.text.len().saturating_sub(200)..]
    );

    let ndjson = sql_format(&server, &admin, sql, "ndjson");
    let last = ndjson.text.lines().last().unwrap_or("");
    let last: Value = serde_json::from_str(last).expect("last line is JSON");
    assert!(
        last["error"]
            .as_str()
            .unwrap_or("")
            .contains("Divide by zero"),
        "{last}"
    );

    // CSV cannot carry an error: the transfer is cut off, so the client sees a failure.
    let csv = server
        .request(reqwest::Method::POST, "/api/v1/sql", Some(&admin))
        .json(&json!({"sql": sql, "format": "csv"}))
        .send()
        .expect("response head")
        .text();
    assert!(csv.is_err(), "a failed CSV answer must not look complete");

    // An error within the first megabyte keeps its status.
    let small = server.sql(
        &admin,
        "SELECT 10 / (v - 5) FROM generate_series(1, 10) AS t(v)",
    );
    assert_eq!(small.status, 400, "{}", small.text);
    assert_healthy(&server);
}

#[test]
fn deep_expressions_over_postgres_get_sqlstate_54001_and_never_crash() {
    if std::process::Command::new("psql")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("STRATA_REQUIRE_CLIENTS").is_err(),
            "psql is required (STRATA_REQUIRE_CLIENTS=1)"
        );
        eprintln!("skipping: psql is not installed; set up with `bash .ci/run`");
        return;
    }
    let server = TestServer::start();
    let admin = server.create_tenant("deeppg");
    let conninfo = format!(
        "host=127.0.0.1 port={} user=deeppg dbname=strata sslmode=disable",
        server.pg_port()
    );
    let psql = |sql: &str| {
        std::process::Command::new("psql")
            .arg(&conninfo)
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                "VERBOSITY=verbose",
            ])
            .args(["-c", sql])
            .env("PGPASSWORD", &admin)
            .output()
            .expect("run psql")
    };
    // The OR query crashed the whole server through psql before.
    let ok = psql(&format!("SELECT 1 WHERE {}", chain("1=1", " OR ", 2000)));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "1");
    let refused = psql(&format!("SELECT 1 WHERE {}", chain("1=1", " OR ", 10_000)));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("54001") && stderr.contains("too complex"),
        "{stderr}"
    );
    assert_healthy(&server);
}
