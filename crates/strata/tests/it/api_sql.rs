//! Issue 4 through the real server: `/api/v1/sql` formats, the seed's alias examples on data
//! stored before any schema existed, read-your-writes, the sandbox and tenant isolation.

use crate::common;

use crate::common::TestServer;
use serde_json::{json, Value};

fn ok_rows(answer: &common::Answer) -> Vec<Value> {
    assert_eq!(answer.status, 200, "sql failed: {}", answer.text);
    answer.body["rows"].as_array().expect("rows").clone()
}

fn seed_thermostat(server: &TestServer, key: &str) {
    // Three devices send the same quantity under three names, before any schema exists.
    let answer = server.post(
        "/api/v1/write",
        key,
        &json!([
            {"metrictype": "thermostat", "timestamp": "2017-05-01T00:00:00Z", "name": "a", "temp": "20.5"},
            {"metrictype": "thermostat", "timestamp": "2017-05-01T00:01:00Z", "name": "b", "temperature": 21},
            {"metrictype": "thermostat", "timestamp": "2017-05-01T00:02:00Z", "name": "c", "tmp": "22"},
            {"metrictype": "thermostat", "timestamp": "2017-05-01T00:03:00Z", "name": "d", "temp": "hot"},
        ]),
    );
    assert_eq!(answer.body["accepted"], 4, "{}", answer.text);
}

#[test]
fn select_temp_means_temp_temperature_and_tmp() {
    let server = TestServer::start();
    let admin = server.create_tenant("dpi");
    seed_thermostat(&server, &admin);

    // Before any schema: every incoming name is a string column.
    let rows = ok_rows(&server.sql(
        &admin,
        "SELECT temp, temperature, tmp FROM thermostat ORDER BY timestamp",
    ));
    assert_eq!(rows[0], json!(["20.5", null, null]));
    assert_eq!(rows[1], json!([null, "21", null]));

    // Formalize: one double field with two aliases. No data is rewritten.
    let put = server.put(
        "/api/v1/schema/metrics/thermostat/fields/temperature",
        &admin,
        &json!({"type": "double", "aliases": ["temp", "tmp"]}),
    );
    assert_eq!(put.status, 200, "{}", put.text);

    let answer = server.sql(&admin, "SELECT temp FROM thermostat ORDER BY timestamp");
    assert_eq!(
        answer.body["columns"],
        json!([{"name": "temp", "type": "double"}]),
        "{}",
        answer.text
    );
    assert_eq!(
        ok_rows(&answer),
        vec![json!([20.5]), json!([21.0]), json!([22.0]), json!([null])]
    );

    // The alias works in WHERE, GROUP BY, ORDER BY and functions; SELECT * shows the field once.
    let rows = ok_rows(&server.sql(
        &admin,
        "SELECT name FROM thermostat WHERE tmp > 20.6 ORDER BY temp DESC",
    ));
    assert_eq!(rows, vec![json!(["c"]), json!(["b"])]);
    let rows = ok_rows(&server.sql(&admin, "SELECT round(avg(temp), 2) FROM thermostat"));
    assert_eq!(rows, vec![json!([21.17])]);
    let star = server.sql(&admin, "SELECT * FROM thermostat LIMIT 1");
    let columns: Vec<&str> = star.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        vec!["timestamp", "temperature", "name"],
        "{}",
        star.text
    );

    // A value that does not fit the type reads NULL, and its raw text stays retrievable.
    let raw = ok_rows(&server.sql(
        &admin,
        "SELECT temp FROM strata_raw('thermostat') WHERE name = 'd'",
    ));
    assert_eq!(raw, vec![json!(["hot"])]);

    // Rename keeps old queries working and never changes which value a row returns.
    let renamed = server.patch(
        "/api/v1/schema/metrics/thermostat/fields/temperature",
        &admin,
        &json!({"rename_to": "temp_c"}),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let rows = ok_rows(&server.sql(
        &admin,
        "SELECT temperature, temp_c FROM thermostat ORDER BY timestamp",
    ));
    assert_eq!(rows[0], json!([20.5, 20.5]));
    assert_eq!(rows[2], json!([22.0, 22.0]));
}

#[test]
fn formats_json_csv_ndjson_arrow() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    seed_thermostat(&server, &admin);
    let query = "SELECT name, temp FROM thermostat ORDER BY name LIMIT 2";

    let csv = server.post(
        "/api/v1/sql",
        &admin,
        &json!({"sql": query, "format": "csv"}),
    );
    assert_eq!(csv.status, 200);
    assert_eq!(csv.text, "name,temp\na,20.5\nb,\n");

    let nd = server.post(
        "/api/v1/sql",
        &admin,
        &json!({"sql": query, "format": "ndjson"}),
    );
    let lines: Vec<Value> = nd
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"name": "a", "temp": "20.5"}),
            json!({"name": "b", "temp": null})
        ]
    );

    let arrow = server.send(
        server
            .request(reqwest::Method::POST, "/api/v1/sql", Some(&admin))
            .json(&json!({"sql": query, "format": "arrow"})),
    );
    assert_eq!(arrow.status, 200);
    let resp = server
        .request(reqwest::Method::POST, "/api/v1/sql", Some(&admin))
        .json(&json!({"sql": query, "format": "arrow"}))
        .send()
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/vnd.apache.arrow.stream"
    );
    let bytes = resp.bytes().unwrap();
    // An IPC stream starts with the continuation marker and ends with the end-of-stream marker.
    assert_eq!(&bytes[..4], &[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        &bytes[bytes.len() - 8..],
        &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]
    );

    let bad = server.post(
        "/api/v1/sql",
        &admin,
        &json!({"sql": query, "format": "xml"}),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.error().contains("xml"));
    let empty = ok_rows(&server.sql(&admin, "SELECT name FROM thermostat WHERE false"));
    assert!(empty.is_empty());
}

#[test]
fn read_your_writes() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    for i in 0..20 {
        let answer = server.post(
            "/api/v1/write",
            &admin,
            &json!({"metrictype": "m", "timestamp": i, "v": i}),
        );
        assert_eq!(answer.body["accepted"], 1);
        let rows = ok_rows(&server.sql(&admin, "SELECT count(*) FROM m"));
        assert_eq!(
            rows[0][0],
            i + 1,
            "acknowledged write {i} must be visible to the next query"
        );
    }
}

#[test]
fn sandbox_refuses_writes_ddl_and_files_with_clear_errors() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    seed_thermostat(&server, &admin);
    for sql in [
        "CREATE TABLE x (a INT)",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "INSERT INTO thermostat VALUES (1)",
        "DELETE FROM thermostat",
        "DROP TABLE thermostat",
        "COPY thermostat TO '/tmp/out.csv'",
        "SET datafusion.execution.batch_size = 1",
        "SELECT * FROM '/etc/passwd'",
    ] {
        let answer = server.sql(&admin, sql);
        assert_eq!(answer.status, 400, "{sql}: {}", answer.text);
        assert!(!answer.error().is_empty());
        assert!(
            !answer.error().contains(server.data_dir().to_str().unwrap()),
            "{sql}: leaks path"
        );
    }
    assert!(!std::path::Path::new("/tmp/out.csv").exists());
    let syntax = server.sql(&admin, "SELEC 1");
    assert_eq!(syntax.status, 400);
    let missing = server.sql(&admin, "SELECT * FROM nope");
    assert_eq!(missing.status, 400);
    assert!(missing.error().contains("nope"), "{}", missing.text);
    let write_key = server.create_key(&admin, "write");
    assert_eq!(server.sql(&write_key, "SELECT 1").status, 403);
}

#[test]
fn tenants_are_sealed_in_sql() {
    let server = TestServer::start();
    let a = server.create_tenant("alpha");
    let b = server.create_tenant("beta");
    seed_thermostat(&server, &a);
    server.post("/api/v1/write", &a, &json!({"metrictype": "m", "oops": 1}));

    let answer = server.sql(&b, "SELECT * FROM thermostat");
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(!answer.text.contains("alpha"));
    let tables = ok_rows(&server.sql(
        &b,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    ));
    assert!(tables.is_empty(), "{tables:?}");
    assert_eq!(
        ok_rows(&server.sql(&b, "SELECT count(*) FROM strata.errors"))[0][0],
        0
    );
    assert_eq!(
        ok_rows(&server.sql(&b, "SELECT count(*) FROM strata.unknown_fields"))[0][0],
        0
    );
    let raw = server.sql(&b, "SELECT * FROM strata_raw('thermostat')");
    assert_eq!(raw.status, 400, "{}", raw.text);
    // Tenant a sees its own.
    let tables = ok_rows(&server.sql(
        &a,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    ));
    assert!(tables.contains(&json!(["thermostat"])), "{tables:?}");
}

#[test]
fn explain_shows_partitions_and_alias_expansion() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    seed_thermostat(&server, &admin);
    server.put(
        "/api/v1/schema/metrics/thermostat/fields/temperature",
        &admin,
        &json!({"type": "double", "aliases": ["temp", "tmp"]}),
    );
    let answer = server.sql(
        &admin,
        "EXPLAIN SELECT temp FROM thermostat WHERE timestamp >= TIMESTAMP '2017-05-01T00:00:00Z'",
    );
    let plan = answer.text.clone();
    assert_eq!(answer.status, 200, "{plan}");
    assert!(plan.contains("hot_2017-05-01"), "{plan}");
    assert!(plan.contains("temperature"), "{plan}");
    assert!(plan.contains("tmp"), "{plan}");
}

#[test]
fn series_seek_never_misses_rows_written_before_series_keys() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    let events = |metric: &str, from: i64| -> Value {
        Value::Array(
            (0..30)
                .map(|i| json!({"metrictype": metric, "timestamp": from + i * 1000, "name": format!("truck_{}", i % 3), "v": i}))
                .collect(),
        )
    };
    // "early": data first, series keys later. "planned": series keys first, then data.
    assert_eq!(
        server
            .post("/api/v1/write", &admin, &events("early", 0))
            .body["accepted"],
        30
    );
    server.post(
        "/api/v1/schema/metrics",
        &admin,
        &json!({"name": "planned"}),
    );
    for metric in ["early", "planned"] {
        let patched = server.patch(
            &format!("/api/v1/schema/metrics/{metric}"),
            &admin,
            &json!({"series_keys": ["name"]}),
        );
        assert_eq!(patched.status, 200, "{}", patched.text);
    }
    assert_eq!(
        server
            .post("/api/v1/write", &admin, &events("early", 100_000))
            .body["accepted"],
        30
    );
    assert_eq!(
        server
            .post("/api/v1/write", &admin, &events("planned", 0))
            .body["accepted"],
        30
    );

    // Rows written before the keys existed are still found: exactly once, no loss.
    let rows = ok_rows(&server.sql(&admin, "SELECT count(*) FROM early WHERE name = 'truck_1'"));
    assert_eq!(rows[0][0], 20);
    let plan = server
        .sql(&admin, "EXPLAIN SELECT * FROM early WHERE name = 'truck_1'")
        .text;
    assert!(
        !plan.contains("seek("),
        "stale hashes must not seek: {plan}"
    );
    // A metric whose keys predate its data seeks.
    let rows = ok_rows(&server.sql(
        &admin,
        "SELECT count(*) FROM planned WHERE name = 'truck_1'",
    ));
    assert_eq!(rows[0][0], 10);
    let plan = server
        .sql(
            &admin,
            "EXPLAIN SELECT * FROM planned WHERE name = 'truck_1'",
        )
        .text;
    assert!(plan.contains("seek("), "{plan}");
    // Adding an alias to a key field after data exists also stops seeks.
    server.patch(
        "/api/v1/schema/metrics/planned/fields/name",
        &admin,
        &json!({"add_aliases": ["device"]}),
    );
    let plan = server
        .sql(
            &admin,
            "EXPLAIN SELECT * FROM planned WHERE name = 'truck_1'",
        )
        .text;
    assert!(!plan.contains("seek("), "{plan}");
    let rows = ok_rows(&server.sql(
        &admin,
        "SELECT count(*) FROM planned WHERE name = 'truck_1'",
    ));
    assert_eq!(rows[0][0], 10);
}

#[test]
fn the_originals_end_to_end_case_and_late_typed_unknown_fields() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    server.post(
        "/api/v1/schema/metrics",
        &admin,
        &json!({"name": "metric1"}),
    );
    server.put(
        "/api/v1/schema/metrics/metric1/fields/field1",
        &admin,
        &json!({"type": "boolean"}),
    );
    let answer = server.post(
        "/api/v1/write",
        &admin,
        &json!({"metrictype": "metric1", "timestamp": 315532800000i64, "field1": true}),
    );
    assert_eq!(answer.body["accepted"], 1, "{}", answer.text);
    let star = server.sql(&admin, "SELECT * FROM metric1 ORDER BY timestamp");
    assert_eq!(
        star.body["columns"],
        json!([{"name": "timestamp", "type": "timestamp"}, {"name": "field1", "type": "boolean"}]),
        "{}",
        star.text
    );
    assert_eq!(ok_rows(&star), vec![json!(["1980-01-01T00:00:00Z", true])]);

    // An extra field2 shows up as an unknown string column, then reads typed once declared.
    server.post("/api/v1/write", &admin, &json!({"metrictype": "metric1", "timestamp": 315532800001i64, "field1": false, "field2": 42}));
    let star = server.sql(&admin, "SELECT * FROM metric1 ORDER BY timestamp");
    assert_eq!(
        star.body["columns"][2],
        json!({"name": "field2", "type": "varchar"}),
        "{}",
        star.text
    );
    assert_eq!(ok_rows(&star)[1][2], "42");
    server.put(
        "/api/v1/schema/metrics/metric1/fields/field2",
        &admin,
        &json!({"type": "string"}),
    );
    let typed = server.sql(
        &admin,
        "SELECT field2 FROM metric1 WHERE field2 IS NOT NULL",
    );
    assert_eq!(ok_rows(&typed), vec![json!(["42"])]);
    server.patch(
        "/api/v1/schema/metrics/metric1/fields/field2",
        &admin,
        &json!({"type": "integer"}),
    );
    let typed = server.sql(
        &admin,
        "SELECT field2 + 1 FROM metric1 WHERE field2 IS NOT NULL",
    );
    assert_eq!(ok_rows(&typed), vec![json!([43])]);
}

#[test]
fn aliases_hide_delete_and_precedence_through_the_api() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    server.post(
        "/api/v1/schema/metrics",
        &admin,
        &json!({"name": "thermostat", "aliases": ["machine1"]}),
    );
    server.put(
        "/api/v1/schema/metrics/thermostat/fields/temperature",
        &admin,
        &json!({"type": "double", "aliases": ["temp", "tmp"]}),
    );
    let answer = server.post(
        "/api/v1/write",
        &admin,
        &json!([
            {"metrictype": "machine1", "timestamp": 1, "temp": 1, "secret": "s"},
            {"metrictype": "thermostat", "timestamp": 2, "temperature": 2, "temp": 99},
            {"metrictype": "thermostat", "timestamp": 3, "tmp": "3.5"},
        ]),
    );
    assert_eq!(answer.body["accepted"], 3, "{}", answer.text);
    // Every name reads every row; the display name wins over an alias in the same row.
    for name in ["temp", "temperature", "tmp"] {
        let rows = ok_rows(&server.sql(
            &admin,
            &format!("SELECT {name} FROM thermostat ORDER BY timestamp"),
        ));
        assert_eq!(
            rows,
            vec![json!([1.0]), json!([2.0]), json!([3.5])],
            "{name}"
        );
    }
    // Metric aliases name the same table; GROUP BY on an alias.
    let a = ok_rows(&server.sql(&admin, "SELECT count(*), sum(tmp) FROM machine1"));
    let b = ok_rows(&server.sql(&admin, "SELECT count(*), sum(temperature) FROM thermostat"));
    assert_eq!(a, b);
    let grouped = ok_rows(&server.sql(
        &admin,
        "SELECT temp > 1.5 AS big, count(*) FROM thermostat GROUP BY temp > 1.5 ORDER BY 1",
    ));
    assert_eq!(grouped, vec![json!([false, 1]), json!([true, 2])]);

    // Hiding removes the field from the table.
    server.put(
        "/api/v1/schema/metrics/thermostat/fields/secret",
        &admin,
        &json!({"hidden": true}),
    );
    let star = server.sql(&admin, "SELECT * FROM thermostat");
    assert!(!star.text.contains("secret"), "{}", star.text);
    assert_eq!(
        server.sql(&admin, "SELECT secret FROM thermostat").status,
        400
    );

    // Deleting removes the table; re-creating gives an empty one.
    assert_eq!(
        server
            .delete("/api/v1/schema/metrics/thermostat", &admin)
            .status,
        200
    );
    assert_eq!(server.sql(&admin, "SELECT * FROM thermostat").status, 400);
    assert_eq!(server.sql(&admin, "SELECT * FROM machine1").status, 400);
    server.post(
        "/api/v1/schema/metrics",
        &admin,
        &json!({"name": "thermostat"}),
    );
    let rows = ok_rows(&server.sql(&admin, "SELECT count(*) FROM thermostat"));
    assert_eq!(rows, vec![json!([0])]);
}

#[test]
fn every_time_operator_filters_and_prunes_partitions() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    // One event per week for 6 weeks starting Monday 2024-01-01.
    let week_ms = 7 * 24 * 3600 * 1000i64;
    let start = 1_704_067_200_000i64;
    let events: Vec<Value> = (0..6)
        .map(|i| json!({"metrictype": "m", "timestamp": start + i * week_ms, "i": i}))
        .collect();
    assert_eq!(
        server
            .post("/api/v1/write", &admin, &Value::Array(events))
            .body["accepted"],
        6
    );
    let t2 = "TIMESTAMP '2024-01-15T00:00:00Z'"; // week index 2
    let t4 = "TIMESTAMP '2024-01-29T00:00:00Z'"; // week index 4
    for (predicate, expected) in [
        (format!("timestamp < {t2}"), 2),
        (format!("timestamp <= {t2}"), 3),
        (format!("timestamp = {t2}"), 1),
        (format!("timestamp >= {t2}"), 4),
        (format!("timestamp > {t2}"), 3),
        (format!("timestamp BETWEEN {t2} AND {t4}"), 3),
        (
            "timestamp >= to_timestamp_millis(1705276800000)".to_string(),
            4,
        ),
        ("timestamp >= '2024-01-15T00:00:00Z'".to_string(), 4),
    ] {
        let rows =
            ok_rows(&server.sql(&admin, &format!("SELECT count(*) FROM m WHERE {predicate}")));
        assert_eq!(rows[0][0], expected, "{predicate}");
    }
    let plan = server
        .sql(
            &admin,
            &format!("EXPLAIN SELECT * FROM m WHERE timestamp BETWEEN {t2} AND {t4}"),
        )
        .text;
    assert!(
        plan.contains("hot_2024-01-15") && plan.contains("hot_2024-01-29"),
        "{plan}"
    );
    for outside in ["hot_2024-01-01", "hot_2024-01-08", "hot_2024-02-05"] {
        assert!(
            !plan.contains(outside),
            "{outside} must not be read: {plan}"
        );
    }
}
