//! Issue 17, the last gaps of late schema, against the real server: numeric timestamps read in
//! a metric's `timestamp_unit` (epoch seconds, units chosen by magnitude, an unknown unit
//! refused), and unquoted SQL names that resolve ignoring case when only one name matches.

use serde_json::{json, Value};

use crate::common::{self, TestServer, NDJSON};

/// The seed's `2015-01-12T10:12:15Z`.
const SEED_S: i64 = 1_421_057_535;
const SEED_MS: i64 = SEED_S * 1000;

fn rows(answer: &common::Answer) -> Vec<Value> {
    assert_eq!(answer.status, 200, "sql failed: {}", answer.text);
    answer.body["rows"].as_array().expect("rows").clone()
}

/// Writes `events` as NDJSON and returns the answer's body (rejections allowed).
fn write(server: &TestServer, key: &str, events: &[Value]) -> Value {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let answer = server.post_raw("/api/v1/write", key, NDJSON, body.into_bytes());
    assert_eq!(answer.status, 200, "write failed: {}", answer.text);
    answer.body
}

fn create_metric(server: &TestServer, admin: &str, name: &str) {
    let answer = server.post("/api/v1/schema/metrics", admin, &json!({ "name": name }));
    assert_eq!(answer.status, 201, "{}", answer.text);
}

fn set_unit(server: &TestServer, admin: &str, metric: &str, unit: &str) -> common::Answer {
    server.patch(
        &format!("/api/v1/schema/metrics/{metric}"),
        admin,
        &json!({ "timestamp_unit": unit }),
    )
}

/// The metric as `GET /api/v1/schema` shows it.
fn shown_metric(server: &TestServer, key: &str, name: &str) -> Value {
    let schema = server.get("/api/v1/schema", key);
    assert_eq!(schema.status, 200, "{}", schema.text);
    schema.body["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in {}", schema.text))
        .clone()
}

/// `(epoch ms, v)` of every row of `metric`, in time order.
fn instants(server: &TestServer, key: &str, metric: &str) -> Vec<(i64, i64)> {
    let sql =
        format!("SELECT CAST(timestamp AS BIGINT), CAST(v AS BIGINT) FROM {metric} ORDER BY 1");
    rows(&server.sql(key, &sql))
        .iter()
        .map(|row| (row[0].as_i64().expect("ms"), row[1].as_i64().expect("v")))
        .collect()
}

#[test]
fn epoch_seconds_are_read_in_the_metric_unit_and_read_back_as_sent() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    create_metric(&server, &admin, "sensor");
    let patched = set_unit(&server, &admin, "sensor", "s");
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(
        patched.body["metric"]["timestamp_unit"], "s",
        "{}",
        patched.text
    );
    assert_eq!(
        shown_metric(&server, &admin, "sensor")["timestamp_unit"],
        "s"
    );
    let history = server.get("/api/v1/schema/history", &admin);
    assert!(
        history
            .text
            .contains(r#"metric \"sensor\" reads numeric timestamps as epoch seconds"#),
        "{}",
        history.text
    );

    let answer = write(
        &server,
        &admin,
        &[
            json!({"metrictype": "sensor", "timestamp": SEED_S, "v": 1}),
            json!({"metrictype": "sensor", "timestamp": (SEED_S + 1).to_string(), "v": 2}),
            json!({"metrictype": "sensor", "timestamp": SEED_S as f64 + 2.25, "v": 3}),
            // Text forms do not depend on the unit.
            json!({"metrictype": "sensor", "timestamp": "2015-01-12T10:12:18Z", "v": 4}),
            // Milliseconds sent to a metric of seconds: the year 47000, refused and named.
            json!({"metrictype": "sensor", "timestamp": SEED_MS, "v": 5}),
        ],
    );
    assert_eq!(answer["accepted"], 4, "{answer}");
    let error = answer["errors"][0]["error"].as_str().unwrap_or_default();
    assert_eq!(answer["errors"][0]["index"], 4, "{answer}");
    assert!(
        error.contains("\"timestamp\"")
            && error.contains(&SEED_MS.to_string())
            && error.contains("when read as epoch seconds (the metric's timestamp_unit)"),
        "{error}"
    );
    assert_eq!(
        instants(&server, &admin, "sensor"),
        vec![
            (SEED_MS, 1),
            (SEED_MS + 1000, 2),
            (SEED_MS + 2250, 3),
            (SEED_MS + 3000, 4)
        ]
    );
    let first = server.sql(
        &admin,
        "SELECT timestamp FROM sensor WHERE timestamp = TIMESTAMP '2015-01-12T10:12:15Z'",
    );
    assert_eq!(rows(&first).len(), 1, "{}", first.text);

    // A metric left at the default reads the same number as milliseconds (the v1 contract).
    write(
        &server,
        &admin,
        &[json!({"metrictype": "plain", "timestamp": SEED_S, "v": 1})],
    );
    assert_eq!(
        shown_metric(&server, &admin, "plain")["timestamp_unit"],
        "ms"
    );
    assert_eq!(instants(&server, &admin, "plain"), vec![(SEED_S, 1)]);
}

#[test]
fn auto_reads_each_unit_by_magnitude_and_unknown_units_are_refused() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    create_metric(&server, &admin, "mixed");
    assert_eq!(set_unit(&server, &admin, "mixed", "auto").status, 200);
    let answer = write(
        &server,
        &admin,
        &[
            json!({"metrictype": "mixed", "timestamp": SEED_S, "v": 1}),
            json!({"metrictype": "mixed", "timestamp": SEED_MS + 1, "v": 2}),
            json!({"metrictype": "mixed", "timestamp": (SEED_MS + 2) * 1000 + 999, "v": 3}),
            json!({"metrictype": "mixed", "timestamp": ((SEED_MS + 3) * 1_000_000).to_string(), "v": 4}),
            // Below 1e11 is seconds even when a device meant milliseconds of early 1973.
            json!({"metrictype": "mixed", "timestamp": 99_999_999_999_i64, "v": 5}),
        ],
    );
    assert_eq!(answer["accepted"], 4, "{answer}");
    let error = answer["errors"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("when read as epoch seconds (timestamp_unit auto, by its magnitude)"),
        "{error}"
    );
    assert_eq!(
        instants(&server, &admin, "mixed"),
        vec![
            (SEED_MS, 1),
            (SEED_MS + 1, 2),
            (SEED_MS + 2, 3),
            (SEED_MS + 3, 4)
        ]
    );

    let version_before = server.get("/api/v1/schema", &admin).body["version"].clone();
    let refused = set_unit(&server, &admin, "mixed", "seconds");
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        refused.error(),
        r#"timestamp_unit: unknown timestamp unit "seconds"; expected one of ms (the default), s, us, ns, auto"#
    );
    // Nothing changed: no new version, the unit stays.
    assert_eq!(
        server.get("/api/v1/schema", &admin).body["version"],
        version_before
    );
    assert_eq!(
        shown_metric(&server, &admin, "mixed")["timestamp_unit"],
        "auto"
    );
    // Only an admin sets it.
    let reader = server.create_key(&admin, "read");
    assert_eq!(set_unit(&server, &reader, "mixed", "s").status, 403);
}

#[test]
fn unquoted_names_resolve_ignoring_case_over_http_sql() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    let reader = server.create_key(&admin, "read");
    write(
        &server,
        &admin,
        &[
            json!({"metrictype": "MY_TABLE", "timestamp": SEED_MS, "Temp": 0.5}),
            json!({"metrictype": "MY_TABLE", "timestamp": SEED_MS + 1, "Temp": 1.5}),
            json!({"metrictype": "MY_TABLE", "timestamp": SEED_MS + 2, "Temp": 2.5}),
        ],
    );
    let declared = server.put(
        "/api/v1/schema/metrics/MY_TABLE/fields/Temp",
        &admin,
        &json!({"type": "double"}),
    );
    assert_eq!(declared.status, 200, "{}", declared.text);

    // The seed's query, without quotes; the column keeps the name the query used.
    let answer = server.sql(&reader, "SELECT temp FROM MY_TABLE ORDER BY temp");
    assert_eq!(answer.body["columns"][0]["name"], "temp", "{}", answer.text);
    assert_eq!(
        rows(&answer),
        vec![json!([0.5]), json!([1.5]), json!([2.5])]
    );
    let answer = server.sql(
        &reader,
        "select TEMP from my_table WHERE temp > 1 ORDER BY 1",
    );
    assert_eq!(rows(&answer), vec![json!([1.5]), json!([2.5])]);

    // Quoted names stay exact.
    let quoted = server.sql(&reader, r#"SELECT "temp" FROM MY_TABLE"#);
    assert_eq!(quoted.status, 400, "{}", quoted.text);
    let quoted = server.sql(&reader, r#"SELECT * FROM "my_table""#);
    assert_eq!(quoted.status, 400, "{}", quoted.text);

    // A field differing from `Temp` only in case makes `temp` ambiguous: refused, naming both.
    write(
        &server,
        &admin,
        &[json!({"metrictype": "MY_TABLE", "timestamp": SEED_MS + 3, "TEMP": "x"})],
    );
    let ambiguous = server.sql(&reader, "SELECT temp FROM MY_TABLE");
    assert_eq!(ambiguous.status, 400, "{}", ambiguous.text);
    assert_eq!(
        ambiguous.error(),
        r#"column name temp is ambiguous: ignoring case it matches "TEMP", "Temp"; write the one you mean in double quotes"#
    );
    // Written exactly, each is itself.
    let exact = server.sql(
        &reader,
        "SELECT Temp AS a, TEMP AS b FROM my_table WHERE TEMP = 'x'",
    );
    assert_eq!(rows(&exact), vec![json!([null, "x"])], "{}", exact.text);
}

/// A `binary` field reads the base64 text devices sent as bytes (standard or URL-safe, padded or
/// not), in both tiers; text that is not base64 reads NULL and is kept as sent.
#[test]
fn binary_fields_read_base64_as_bytes_in_both_tiers() {
    let server =
        TestServer::start_with(&["--compact-after-secs", "0", "--compact-interval-secs", "0"]);
    let admin = server.create_tenant("blobs");
    let events = [
        json!({"metrictype": "frames", "timestamp": SEED_MS, "payload": "AQID"}),
        json!({"metrictype": "frames", "timestamp": SEED_MS + 1, "payload": "_-8"}),
        json!({"metrictype": "frames", "timestamp": SEED_MS + 2, "payload": "not base64!"}),
    ];
    write(&server, &admin, &events);
    let declared = server.put(
        "/api/v1/schema/metrics/frames/fields/payload",
        &admin,
        &json!({"type": "binary"}),
    );
    assert_eq!(declared.status, 200, "{}", declared.text);
    let sql = "SELECT encode(payload, 'hex'), payload IS NULL FROM frames ORDER BY timestamp";
    let expected = vec![
        json!(["010203", false]),
        json!(["ffef", false]),
        json!([null, true]),
    ];
    assert_eq!(rows(&server.sql(&admin, sql)), expected);
    let compacted = server.post("/api/v1/compact", &admin, &json!({}));
    assert_eq!(compacted.status, 200, "{}", compacted.text);
    assert_eq!(
        rows(&server.sql(&admin, sql)),
        expected,
        "cold files decode the same"
    );
    let raw = server.sql(
        &admin,
        "SELECT payload FROM strata_raw('frames') ORDER BY timestamp",
    );
    assert_eq!(
        rows(&raw)[2],
        json!(["not base64!"]),
        "the text sent is kept"
    );
}

/// A hidden field is a soft delete: its values survive a hide that is undone within the purge
/// delay, and once the field has been hidden that long compaction stops writing it and rewrites
/// older files without it (the seed's "garbage collect them as part of our standard age off").
#[test]
fn a_hidden_field_is_purged_from_cold_files_after_the_purge_delay_only() {
    let events = |from: i64| -> Vec<Value> {
        (from..from + 3)
            .map(|i| {
                json!({"metrictype": "door", "timestamp": SEED_MS + i * 86_400_000,
                       "device": "d1", "secret": format!("pin-{i}")})
            })
            .collect()
    };
    let hide = |server: &TestServer, key: &str, hidden: bool| {
        let answer = server.put(
            "/api/v1/schema/metrics/door/fields/secret",
            key,
            &json!({ "hidden": hidden }),
        );
        assert_eq!(answer.status, 200, "{}", answer.text);
    };
    let compact = |server: &TestServer, key: &str| -> Value {
        let answer = server.post("/api/v1/compact", key, &json!({}));
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body
    };
    let counts = "SELECT count(*), count(secret) FROM door";
    for (delay, kept) in [("604800", 6), ("0", 0)] {
        let server = TestServer::start_with(&[
            "--compact-after-secs",
            "0",
            "--compact-interval-secs",
            "0",
            "--plan-tier",
            "cold",
            "--purge-hidden-after-secs",
            delay,
        ]);
        let key = server.create_tenant("doors");
        write(&server, &key, &events(0));
        compact(&server, &key);
        hide(&server, &key, true);
        write(&server, &key, &events(3));
        let report = compact(&server, &key);
        let purge = &report["hidden_purge"];
        let rewritten = if kept == 0 { 3 } else { 0 };
        assert_eq!(
            purge["files_rewritten"], rewritten,
            "delay {delay}: {report}"
        );
        hide(&server, &key, false);
        assert_eq!(
            rows(&server.sql(&key, counts)),
            vec![json!([6, kept])],
            "delay {delay}: a hide undone within the delay loses nothing; after it, the values \
             are gone from every file, old and new"
        );
    }
}

/// `DELETE .../fields/{field}` drops a field, or an unknown field's name: hidden at once, with
/// no undo window, so the next compaction purges it from every file even under the default
/// 7-day delay; declaring it visible again shows only what is sent afterwards.
#[test]
fn dropping_a_field_purges_its_data_at_the_next_compaction() {
    let server = TestServer::compacting_on_demand("cold");
    let key = server.create_tenant("dropper");
    let events: Vec<Value> = (0..4)
        .map(|i| {
            json!({"metrictype": "door", "timestamp": SEED_MS + i * 86_400_000,
                   "device": "d1", "secret": format!("pin-{i}"), "junk": i})
        })
        .collect();
    write(&server, &key, &events);
    let compacted = server.post("/api/v1/compact", &key, &json!({}));
    assert_eq!(compacted.status, 200, "{}", compacted.text);
    let declared = server.put(
        "/api/v1/schema/metrics/door/fields/secret",
        &key,
        &json!({"type": "string"}),
    );
    assert_eq!(declared.status, 200, "{}", declared.text);
    let reader = server.create_key(&key, "read");
    let refused = server.delete("/api/v1/schema/metrics/door/fields/secret", &reader);
    assert_eq!(refused.status, 403, "{}", refused.text);
    for field in ["secret", "junk"] {
        let dropped = server.delete(&format!("/api/v1/schema/metrics/door/fields/{field}"), &key);
        assert_eq!(dropped.status, 200, "{field}: {}", dropped.text);
    }
    let missing = server.delete("/api/v1/schema/metrics/nowhere/fields/secret", &key);
    assert_eq!(missing.status, 404, "{}", missing.text);
    let history = server.get("/api/v1/schema/history", &key);
    assert!(
        history.text.contains("dropped field"),
        "the drop is versioned: {}",
        history.text
    );
    let report = server.post("/api/v1/compact", &key, &json!({}));
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(
        report.body["hidden_purge"]["files_rewritten"], 4,
        "{}",
        report.text
    );
    assert_eq!(
        report.body["hidden_purge"]["columns_dropped"], 8,
        "{}",
        report.text
    );
    let visible = server.put(
        "/api/v1/schema/metrics/door/fields/secret",
        &key,
        &json!({"type": "string", "hidden": false}),
    );
    assert_eq!(visible.status, 200, "{}", visible.text);
    let counts = "SELECT count(*), count(secret) FROM door";
    assert_eq!(rows(&server.sql(&key, counts)), vec![json!([4, 0])]);
}
