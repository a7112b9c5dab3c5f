//! Issue 16, query routing: a query over raw data that a rollup answers exactly is read from
//! the rollup (EXPLAIN shows its scan), and gives the raw answer, row for row, also after late
//! writes. Each routed query is compared with a control that routing cannot take
//! (`common::raw_only`: the same query with a strict `timestamp` bound), which reads raw rows.

use serde_json::{json, Value};

use crate::common::{raw_only as control, thermostat_tenant as tenant, write_events, TestServer};

/// 2027-01-15T08:00:00Z: on minute and hour boundaries.
const T0: i64 = 1_800_000_000_000;
const MINUTE_MS: i64 = 60_000;
const ROLLUP: &str = "thermostat_1m";
const ROLLUP_SQL: &str = "SELECT date_bin(INTERVAL '1 minute', timestamp) AS timestamp, name, \
     avg(temp) AS temp, sum(temp) AS temp_sum, count(temp) AS temp_n, min(temp) AS temp_min, \
     max(temp) AS temp_max, count(*) AS n FROM thermostat GROUP BY 1, 2";
/// `count` readings of 3 devices over `span_min` minutes after `start_ms`; temperatures in
/// halves, so every sum is exact and a routed avg equals the raw one bit for bit.
fn readings(seed: u64, count: usize, start_ms: i64, span_min: i64) -> Vec<Value> {
    let mut state = seed;
    let mut next = |below: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % below
    };
    (0..count)
        .map(|_| {
            let device = format!("d{}", next(3));
            let at = start_ms + next((span_min * MINUTE_MS) as u64) as i64;
            let temp = next(200) as f64 / 2.0;
            json!({"metrictype": "thermostat", "timestamp": at, "name": device, "temp": temp})
        })
        .collect()
}

fn rows(server: &TestServer, key: &str, sql: &str) -> Vec<Value> {
    let answer = server.sql(key, sql);
    assert_eq!(answer.status, 200, "{sql}: {}", answer.text);
    answer.body["rows"].as_array().expect("rows").clone()
}

fn explain(server: &TestServer, key: &str, sql: &str) -> String {
    let answer = server.sql(key, &format!("EXPLAIN {sql}"));
    assert_eq!(answer.status, 200, "EXPLAIN {sql}: {}", answer.text);
    answer.text
}

/// `sql` is read from the rollup and answers what the raw data answers.
fn assert_routed(server: &TestServer, key: &str, sql: &str) {
    let plan = explain(server, key, sql);
    assert!(plan.contains(ROLLUP), "not routed: {sql}\n{plan}");
    let raw_sql = control(sql);
    let raw_plan = explain(server, key, &raw_sql);
    assert!(!raw_plan.contains(ROLLUP), "control routed: {raw_sql}");
    let routed = rows(server, key, sql);
    let raw = rows(server, key, &raw_sql);
    assert!(!raw.is_empty(), "no rows: {sql}");
    assert_eq!(routed, raw, "{sql}");
}

fn assert_not_routed(server: &TestServer, key: &str, sql: &str) {
    let plan = explain(server, key, sql);
    assert!(
        !plan.contains(ROLLUP),
        "routed, but the rollup cannot answer it: {sql}\n{plan}"
    );
    rows(server, key, sql);
}

/// A server whose tenant wrote `events` and has the rollup, current.
fn with_rollup(events: Vec<Value>) -> (TestServer, String) {
    let server = TestServer::start_with(&["--compact-after-secs", "0"]);
    let key = tenant(&server, "acme");
    write_events(&server, &key, &events);
    let created = server.post(
        "/api/v1/rollups",
        &key,
        &json!({"name": ROLLUP, "sql": ROLLUP_SQL}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let synced = server.get(&format!("/api/v1/rollups/{ROLLUP}?sync=true"), &key);
    assert_eq!(synced.body["state"], "current", "{}", synced.text);
    (server, key)
}

const ROUTED: [&str; 6] = [
    // The rollup's own groups.
    "SELECT date_bin(INTERVAL '1 minute', timestamp) AS t, name, avg(temp) AS a, max(temp) AS m \
     FROM thermostat GROUP BY 1, 2 ORDER BY 1, 2",
    // Coarser buckets: every decomposable aggregate re-aggregated.
    "SELECT date_bin(INTERVAL '1 hour', timestamp) AS h, name, avg(temp), min(temp), max(temp), \
     sum(temp), count(temp), count(*) FROM thermostat GROUP BY 1, 2 ORDER BY 1, 2",
    // Fewer keys, another bucket function of whole minutes.
    "SELECT date_trunc('hour', timestamp) AS h, count(*) AS n, max(temp) AS m FROM thermostat \
     GROUP BY 1 ORDER BY 1",
    // Keys only: all buckets together.
    "SELECT name, count(*) AS n, avg(temp) AS a FROM thermostat GROUP BY name ORDER BY name",
    // A filter on a key and a time range on bucket boundaries.
    "SELECT date_bin(INTERVAL '10 minutes', timestamp) AS t, sum(temp) AS s, count(*) AS n \
     FROM thermostat WHERE name = 'd1' AND timestamp >= '2027-01-15T08:30:00Z' \
     AND timestamp < '2027-01-15T09:10:00Z' GROUP BY 1 ORDER BY 1",
    // Inside a larger query.
    "SELECT h, n FROM (SELECT date_trunc('hour', timestamp) AS h, count(*) AS n \
     FROM thermostat GROUP BY 1) AS hourly ORDER BY h",
];

const NOT_ROUTED: [&str; 5] = [
    // Finer than the rollup's buckets.
    "SELECT date_bin(INTERVAL '30 seconds', timestamp) AS t, count(*) FROM thermostat \
     GROUP BY 1 ORDER BY 1",
    // A time bound inside a bucket.
    "SELECT name, count(*) FROM thermostat WHERE timestamp >= '2027-01-15T08:30:30Z' \
     GROUP BY name ORDER BY name",
    // Not decomposable.
    "SELECT date_trunc('hour', timestamp) AS h, count(DISTINCT name) FROM thermostat \
     GROUP BY 1 ORDER BY 1",
    // A filter on a value, not a key.
    "SELECT name, count(*) FROM thermostat WHERE temp > 50 GROUP BY name ORDER BY name",
    // A median is not in the rollup.
    "SELECT name, median(temp) FROM thermostat GROUP BY name ORDER BY name",
];

#[test]
fn queries_a_rollup_answers_are_read_from_it_with_the_raw_answer_and_others_read_raw_rows() {
    let (server, key) = with_rollup(readings(3, 600, T0, 180));

    for sql in ROUTED {
        assert_routed(&server, &key, sql);
    }
    for sql in NOT_ROUTED {
        assert_not_routed(&server, &key, sql);
    }

    // Late and new events: a routed query still answers what the raw rows answer, with no
    // wait (the rollup's scan reflects every acknowledged write).
    write_events(&server, &key, &readings(11, 200, T0 - 30 * MINUTE_MS, 240));
    for sql in ROUTED {
        assert_routed(&server, &key, sql);
    }
}

#[test]
fn a_rollup_whose_source_changed_is_not_read_until_rebuilt() {
    let (server, key) = with_rollup(readings(5, 200, T0, 60));
    let sql = ROUTED[3];
    assert_routed(&server, &key, sql);

    // An alias changes what `temp` means over raw data: until the rollup is rebuilt under the
    // new definition, its served rows answer the old one and must not be read.
    let declared = server.put(
        "/api/v1/schema/metrics/thermostat/fields/temp",
        &key,
        &json!({"type": "double", "aliases": ["tmp", "temperature"]}),
    );
    assert!(declared.status < 300, "{}", declared.text);
    write_events(
        &server,
        &key,
        &[
            json!({"metrictype": "thermostat", "timestamp": T0 + 5, "name": "d0", "temperature": 99.5}),
        ],
    );
    let routed_now = explain(&server, &key, sql).contains(ROLLUP);
    let answer = rows(&server, &key, sql);
    let raw = rows(&server, &key, &control(sql));
    assert_eq!(answer, raw, "routed_now={routed_now}");
}

#[test]
fn a_source_under_a_retention_is_never_routed_since_the_rollup_outlives_its_raw_rows() {
    let (server, key) = with_rollup(readings(9, 100, T0, 60));
    assert_routed(&server, &key, ROUTED[3]);
    let patched = server.patch(
        "/api/v1/schema/metrics/thermostat",
        &key,
        &json!({"retention_days": 3650}),
    );
    assert!(patched.status < 300, "{}", patched.text);
    assert_not_routed(&server, &key, ROUTED[3]);
}
