//! Issue 17, metric merge: `POST /api/v1/schema/metrics/{a}/merge {"from":"b"}` makes `b` an
//! alias of `a` whose table reads both metrics' rows and files in place. Every acknowledged event
//! is counted exactly once across hot rows, late rows and cold files of both metrics, after the
//! merge, after a later compaction and after a restart; a clashing merge is refused with the
//! clash named.

use serde_json::{json, Value};

use crate::common::{int_pair, write_events, TestServer, DAY0, DAY_MS};

fn start() -> TestServer {
    TestServer::compacting_on_demand("cold")
}

fn compact(server: &TestServer, admin: &str) {
    let answer = server.post("/api/v1/compact", admin, &json!({}));
    assert_eq!(answer.status, 200, "compact failed: {}", answer.text);
}

/// `count` events of `metric` from `start_ms`, a minute apart, `name` carrying the value.
fn events(metric: &str, name: &str, start_ms: i64, count: i64, value: i64) -> Vec<Value> {
    (0..count)
        .map(|i| {
            json!({"metrictype": metric, "timestamp": start_ms + i * 60_000,
                   "device": format!("d{}", i % 3), name: value})
        })
        .collect()
}

fn declare(server: &TestServer, admin: &str, metric: &str, field: &str, body: Value) {
    let path = format!("/api/v1/schema/metrics/{metric}/fields/{field}");
    let answer = server.put(&path, admin, &body);
    assert_eq!(answer.status, 200, "{}", answer.text);
}

const TOTALS: &str = "SELECT count(*), CAST(sum(temp) AS BIGINT) FROM thermo";

#[test]
fn a_merged_metric_is_read_once_across_hot_late_and_cold_rows_of_both() {
    let mut server = start();
    let admin = server.create_tenant("merge");
    // Old firmware: metric `thermo`, field `temp`; new firmware: `thermostat`, `temperature`.
    write_events(&server, &admin, &events("thermo", "temp", DAY0, 40, 1));
    write_events(
        &server,
        &admin,
        &events("thermostat", "temperature", DAY0 + DAY_MS, 30, 10),
    );
    declare(
        &server,
        &admin,
        "thermo",
        "temp",
        json!({"type": "integer"}),
    );
    declare(
        &server,
        &admin,
        "thermostat",
        "temperature",
        json!({"type": "integer", "aliases": ["temp"]}),
    );
    compact(&server, &admin);
    // Late rows below both watermarks, and recent hot rows, in both metrics.
    write_events(&server, &admin, &events("thermo", "temp", DAY0 + 7, 5, 100));
    write_events(
        &server,
        &admin,
        &events("thermostat", "temperature", DAY0 + DAY_MS + 7, 4, 1000),
    );
    let now = strata_core::now_ms();
    write_events(
        &server,
        &admin,
        &events("thermostat", "temp", now, 3, 10_000),
    );
    let before_thermo = int_pair(&server, &admin, TOTALS);
    assert_eq!(before_thermo, (45, 40 + 500));

    let answer = server.post(
        "/api/v1/schema/metrics/thermo/merge",
        &admin,
        &json!({"from": "thermostat"}),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.body["change"]
            .as_str()
            .unwrap_or_default()
            .contains("merged metric \"thermostat\" into \"thermo\""),
        "{}",
        answer.text
    );
    let expected = (45 + 37, 540 + 300 + 4000 + 30_000);
    assert_eq!(int_pair(&server, &admin, TOTALS), expected);
    // The merged name is an alias of the table, and `temperature` an alias of `temp`.
    let via_alias = "SELECT count(*), CAST(sum(temperature) AS BIGINT) FROM thermostat";
    assert_eq!(int_pair(&server, &admin, via_alias), expected);
    let per_device = server.sql(
        &admin,
        "SELECT device, count(*) FROM thermo GROUP BY device ORDER BY device",
    );
    assert_eq!(per_device.status, 200, "{}", per_device.text);
    let counted: i64 = per_device.body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row[1].as_i64().expect("a count"))
        .sum();
    assert_eq!(counted, expected.0);

    // Later writes under the merged name land in the target; compaction of both keeps each once.
    write_events(
        &server,
        &admin,
        &events("thermostat", "temperature", now + 1, 2, 7),
    );
    let expected = (expected.0 + 2, expected.1 + 14);
    assert_eq!(int_pair(&server, &admin, TOTALS), expected);
    compact(&server, &admin);
    assert_eq!(int_pair(&server, &admin, TOTALS), expected);
    server.restart();
    assert_eq!(int_pair(&server, &admin, TOTALS), expected);

    let schema = server.get("/api/v1/schema", &admin);
    let metrics = schema.body["metrics"].as_array().expect("metrics").clone();
    assert_eq!(
        metrics.len(),
        1,
        "the merged metric is no table: {metrics:#?}"
    );
    assert_eq!(metrics[0]["merged_from"], json!(["thermostat"]));
}

#[test]
fn a_merge_that_would_clash_is_refused_with_the_clash_named() {
    let server = TestServer::start();
    let admin = server.create_tenant("clash");
    write_events(&server, &admin, &events("a", "temp", DAY0, 3, 1));
    write_events(&server, &admin, &events("b", "temp", DAY0, 3, 2));
    declare(&server, &admin, "a", "temp", json!({"type": "double"}));
    declare(&server, &admin, "b", "temp", json!({"type": "integer"}));
    let answer = server.post(
        "/api/v1/schema/metrics/a/merge",
        &admin,
        &json!({"from": "b"}),
    );
    assert_eq!(answer.status, 409, "{}", answer.text);
    let error = answer.body["error"].as_str().unwrap_or_default();
    assert_eq!(
        error,
        "the merge would clash: field \"temp\" is integer in \"b\" but \"temp\" is double in \"a\""
    );
    // Refused means unchanged: both are still tables with their own rows.
    assert_eq!(
        int_pair(&server, &admin, "SELECT count(*), 0 FROM b"),
        (3, 0)
    );

    let same = server.post(
        "/api/v1/schema/metrics/a/merge",
        &admin,
        &json!({"from": "a"}),
    );
    assert_eq!(same.status, 400, "{}", same.text);
    let missing = server.post(
        "/api/v1/schema/metrics/a/merge",
        &admin,
        &json!({"from": "nope"}),
    );
    assert_eq!(missing.status, 404, "{}", missing.text);
    let reader = server.create_key(&admin, "read");
    let denied = server.post(
        "/api/v1/schema/metrics/a/merge",
        &reader,
        &json!({"from": "b"}),
    );
    assert_eq!(denied.status, 403, "{}", denied.text);
}

/// Two metrics with the same field names and alike names (firmware `boiler` and `boiler_v2`):
/// the advisor suggests merging the less-sent into the more-sent; applying the suggestion
/// merges them, and the table counts both metrics' events once.
#[test]
fn alike_metrics_with_the_same_fields_are_suggested_for_a_merge_that_applies() {
    let server = start();
    let admin = server.create_tenant("advised");
    let both = |metric: &str, start_ms: i64, count: i64| -> Vec<Value> {
        (0..count)
            .map(|i| {
                json!({"metrictype": metric, "timestamp": start_ms + i * 60_000,
                       "device": format!("b{}", i % 2), "pressure": 100 + i, "flow": i})
            })
            .collect()
    };
    write_events(&server, &admin, &both("boiler", DAY0, 30));
    write_events(&server, &admin, &both("boiler_v2", DAY0 + DAY_MS, 10));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let suggestion = loop {
        let list = server.get("/api/v1/schema/suggestions", &admin);
        assert_eq!(list.status, 200, "{}", list.text);
        let found = list.body["suggestions"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["kind"] == "metric_merge").cloned());
        if let Some(found) = found {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no metric_merge suggestion: {}",
            list.text
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(
        suggestion["metric"], "boiler",
        "into the most-sent: {suggestion}"
    );
    assert_eq!(suggestion["change"]["from"], "boiler_v2", "{suggestion}");
    let id = suggestion["id"].as_str().expect("id");
    let applied = server.post(
        &format!("/api/v1/schema/suggestions/{id}/apply"),
        &admin,
        &json!({}),
    );
    assert_eq!(applied.status, 200, "{}", applied.text);
    let answer = server.sql(
        &admin,
        "SELECT count(*), sum(CAST(flow AS BIGINT)) FROM boiler",
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["rows"], json!([[40, 435 + 45]]));
    let old_name = server.sql(&admin, "SELECT count(*) FROM boiler_v2");
    assert_eq!(
        old_name.body["rows"],
        json!([[40]]),
        "the old name is an alias"
    );
}
