//! Issue 17, derived fields: `PUT .../fields/{f} {"expression": ...}` defines a field by a SQL
//! expression over other fields, computed on read — in SELECT, WHERE, GROUP BY, EXPLAIN, over
//! both tiers, in a rollup — and refused at declaration, with the place named, when it does not
//! plan, names a field that does not exist, or reads derived fields in a cycle.

use serde_json::{json, Value};

use crate::common::{write_events, TestServer, DAY0};

const MINUTE_MS: i64 = 60_000;

fn start() -> TestServer {
    TestServer::start_with(&["--compact-after-secs", "0", "--compact-interval-secs", "0"])
}

/// Ovens report Fahrenheit under `temp_f`; the values are multiples of 9 plus 32, so every
/// Celsius value is an exact integer: 0, 5, 10, ...
fn oven_events(count: i64) -> Vec<Value> {
    (0..count)
        .map(|i| {
            json!({"metrictype": "oven", "timestamp": DAY0 + i * MINUTE_MS,
                   "device": format!("o{}", i % 2), "temp_f": 32 + 9 * i})
        })
        .collect()
}

fn declare(server: &TestServer, key: &str, field: &str, body: Value) -> Value {
    let answer = server.put(
        &format!("/api/v1/schema/metrics/oven/fields/{field}"),
        key,
        &body,
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body
}

fn refused(server: &TestServer, key: &str, field: &str, expression: &str) -> String {
    let answer = server.put(
        &format!("/api/v1/schema/metrics/oven/fields/{field}"),
        key,
        &json!({"expression": expression}),
    );
    assert_eq!(answer.status, 400, "{expression}: {}", answer.text);
    answer.body["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn rows(server: &TestServer, key: &str, sql: &str) -> Vec<Value> {
    let answer = server.sql(key, sql);
    assert_eq!(answer.status, 200, "{sql}: {}", answer.text);
    answer.body["rows"].as_array().expect("rows").clone()
}

fn setup(server: &TestServer) -> String {
    let key = server.create_tenant("derived");
    write_events(server, &key, &oven_events(10));
    declare(server, &key, "temp_f", json!({"type": "double"}));
    let declared = declare(
        server,
        &key,
        "temp_c",
        json!({"expression": "(temp_f - 32) * 5 / 9"}),
    );
    let fields = declared["metric"]["fields"].as_array().expect("fields");
    let temp_c = fields
        .iter()
        .find(|f| f["name"] == "temp_c")
        .expect("temp_c");
    assert_eq!(temp_c["expression"], "(temp_f - 32) * 5 / 9");
    key
}

#[test]
fn a_derived_field_reads_like_a_column_in_select_where_group_by_and_explain() {
    let server = start();
    let key = setup(&server);
    let celsius = rows(&server, &key, "SELECT temp_c FROM oven ORDER BY timestamp");
    let expected: Vec<Value> = (0..10).map(|i| json!(5.0 * i as f64)).collect();
    assert_eq!(
        celsius.iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        expected
    );
    let hot = rows(
        &server,
        &key,
        "SELECT count(*) FROM oven WHERE temp_c >= 25",
    );
    assert_eq!(hot[0][0], 5);
    let grouped = rows(
        &server,
        &key,
        "SELECT device, sum(temp_c) FROM oven GROUP BY device ORDER BY device",
    );
    assert_eq!(grouped, vec![json!(["o0", 100.0]), json!(["o1", 125.0])]);
    // Unquoted names in another case resolve, as in /sql.
    let typed = declare(
        &server,
        &key,
        "temp_k",
        json!({"expression": "TEMP_C + 273", "type": "integer"}),
    );
    assert_eq!(typed["version"].as_i64().map(|v| v > 0), Some(true));
    let kelvin = rows(&server, &key, "SELECT max(temp_k) FROM oven");
    assert_eq!(kelvin[0][0], 318);

    let plan = rows(
        &server,
        &key,
        "EXPLAIN SELECT temp_c FROM oven WHERE temp_c > 10",
    );
    let text: String = plan.iter().map(|r| r[1].as_str().unwrap_or("")).collect();
    assert!(
        text.contains("ProjectionExec: expr=[(temp_f@0 - CAST(32 AS Float64))")
            && text.contains("as temp_c]"),
        "EXPLAIN shows the expression: {text}"
    );

    // Compacted rows compute the same: the derived field reads the cold tier too.
    let compacted = server.post("/api/v1/compact", &key, &json!({}));
    assert_eq!(compacted.status, 200, "{}", compacted.text);
    let after = rows(
        &server,
        &key,
        "SELECT sum(temp_c), count(*) FROM oven WHERE temp_c < 30",
    );
    assert_eq!(after, vec![json!([75.0, 6])]);
}

#[test]
fn a_rollup_over_a_derived_field_equals_its_sql_over_raw_data() {
    let server = start();
    let key = setup(&server);
    let sql = "SELECT date_bin(INTERVAL '5 minutes', timestamp) AS timestamp, device, \
               avg(temp_c) AS temp_c, count(*) AS n FROM oven GROUP BY 1, 2";
    let created = server.post(
        "/api/v1/rollups",
        &key,
        &json!({"name": "oven_5m", "sql": sql}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    write_events(&server, &key, &oven_events(20)[10..]);
    let synced = server.get("/api/v1/rollups/oven_5m?sync=true", &key);
    assert_eq!(synced.status, 200, "{}", synced.text);
    let order = " ORDER BY timestamp, device";
    let rollup = rows(&server, &key, &format!("SELECT * FROM oven_5m{order}"));
    let raw_sql = crate::common::raw_only_checked(&server, &key, sql, "oven_5m");
    let raw = rows(&server, &key, &format!("{raw_sql}{order}"));
    assert_eq!(rollup, raw);
    assert_eq!(rollup.len(), 8, "20 minutes, 5-minute buckets, 2 devices");
}

#[test]
fn a_derived_field_that_does_not_plan_or_reads_in_a_cycle_is_refused_with_the_place() {
    let server = start();
    let key = setup(&server);
    let unparsable = refused(&server, &key, "bad", "(temp_f - ) * 2");
    assert!(
        unparsable.contains("does not parse") && unparsable.contains("Line: 1, Column: 11"),
        "{unparsable}"
    );
    let unknown = refused(&server, &key, "bad", "temp_f + humidity");
    assert_eq!(
        unknown,
        "derived field \"bad\": no field named \"humidity\" (at line 1, column 10)"
    );
    let mistyped = refused(&server, &key, "bad", "temp_f + device");
    assert!(
        mistyped.contains("does not plan") && mistyped.contains("Float64 + Utf8"),
        "{mistyped}"
    );
    let itself = refused(&server, &key, "bad", "bad + 1");
    assert!(itself.contains("reads itself"), "{itself}");
    declare(&server, &key, "a", json!({"expression": "temp_c + 1"}));
    declare(&server, &key, "b", json!({"expression": "a + 1"}));
    let cycle = refused(&server, &key, "a", "b + 1");
    assert!(
        cycle.contains("cycle: \"a\" -> \"b\" -> \"a\""),
        "the cycle is named: {cycle}"
    );
    // Nothing refused was applied: the table still reads, `a` as first declared.
    let still = rows(&server, &key, "SELECT max(a), max(b) FROM oven");
    assert_eq!(still, vec![json!([46.0, 47.0])]);
    let schema = server.get("/api/v1/schema", &key);
    let fields = schema.body["metrics"][0]["fields"]
        .as_array()
        .expect("fields")
        .clone();
    assert!(fields.iter().all(|f| f["name"] != "bad"), "{fields:#?}");
}
