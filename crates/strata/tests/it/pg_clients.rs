//! The Postgres wire protocol of the real `strata serve` binary, with real clients: psql,
//! psycopg 3 (Python) and node-postgres. Data goes in through HTTP `/api/v1/write`; every read
//! goes over the wire and is checked against `/api/v1/sql` or against values computed here.
//!
//! The Python and JavaScript checks live in `tests/clients/` and print JSON. A client that is
//! not installed skips its test with a message, unless `STRATA_REQUIRE_CLIENTS=1` (CI), where
//! it fails the test.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::cloud::{clients_dir, probe, python};
use crate::common::{have_openssl, self_signed, TestServer};
use chrono::{DateTime, NaiveDateTime};
use serde_json::{json, Value};
use strata_testkit::available;

/// 2015-01-12T10:12:15Z, the first event.
const BASE_MS: i64 = 1_421_057_535_000;
/// Events written by `seed`, one per second.
const EVENTS: i64 = 250;
const NULL: &str = "<NULL>";

// ---------------------------------------------------------------------------------------------
// Client availability

fn have_psql() -> bool {
    available("psql", probe(Path::new("psql"), &["--version"], None))
}

fn have_psycopg() -> bool {
    available(
        "python3 with psycopg 3",
        probe(&python(), &["-c", "import psycopg"], None),
    )
}

fn have_node_pg() -> bool {
    available(
        "node with the npm package pg (npm ci in crates/strata/tests/clients)",
        probe(
            Path::new("node"),
            &["-e", "require.resolve('pg')"],
            Some(&clients_dir()),
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Data

fn ts_ms(ms: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp_millis(ms).expect("timestamp in range")
}

/// Event `i`: one per second from BASE_MS; `reading` = i; `temperature` cycles through
/// 20.00..21.75 and is sent under its alias `temp` (as text) for every third event; `note` is
/// an unknown field present on every 50th event only.
fn event(i: i64) -> Value {
    let mut event = json!({
        "metrictype": "thermostat",
        "timestamp": ts_ms(BASE_MS + i * 1000).to_rfc3339(),
        "name": sensor(i),
        "reading": i,
        "open": i % 2 == 0,
    });
    if i % 3 == 0 {
        event["temp"] = json!(temperature(i).to_string());
    } else {
        event["temperature"] = json!(temperature(i));
    }
    if i % 50 == 0 {
        event["note"] = json!(format!("note-{i}"));
    }
    event
}

fn sensor(i: i64) -> String {
    format!("it's sensor-{}", i % 5)
}

fn temperature(i: i64) -> f64 {
    20.0 + (i % 8) as f64 * 0.25
}

/// Tenant `tenant` with metric `thermostat` (temperature DOUBLE with alias temp, reading
/// INTEGER, open BOOLEAN; name and note unknown) holding EVENTS events. Returns its admin key.
fn seed(server: &TestServer, tenant: &str) -> String {
    let key = server.create_tenant(tenant);
    let created = server.post(
        "/api/v1/schema/metrics",
        &key,
        &json!({ "name": "thermostat" }),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    for (field, body) in [
        (
            "temperature",
            json!({ "type": "double", "aliases": ["temp"] }),
        ),
        ("reading", json!({ "type": "integer" })),
        ("open", json!({ "type": "boolean" })),
    ] {
        let answer = server.put(
            &format!("/api/v1/schema/metrics/thermostat/fields/{field}"),
            &key,
            &body,
        );
        assert_eq!(answer.status, 200, "{field}: {}", answer.text);
    }
    let events: Vec<Value> = (0..EVENTS).map(event).collect();
    let written = server.post("/api/v1/write", &key, &Value::Array(events));
    assert_eq!(written.status, 200, "{}", written.text);
    assert_eq!(written.body["accepted"], EVENTS, "{}", written.text);
    key
}

// ---------------------------------------------------------------------------------------------
// psql

fn conninfo(server: &TestServer, user: &str, sslmode: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} dbname=strata sslmode={sslmode} connect_timeout=20",
        server.pg_port()
    )
}

/// Runs psql; the password goes through the environment, not the command line.
fn psql(conninfo: &str, password: &str, args: &[&str]) -> Output {
    Command::new("psql")
        .arg(conninfo)
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"])
        .args(args)
        .env("PGPASSWORD", password)
        .env_remove("PGSSLMODE")
        .env_remove("PGOPTIONS")
        .stdin(Stdio::null())
        .output()
        .expect("run psql")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn psql_ok(conninfo: &str, password: &str, args: &[&str]) -> String {
    let out = psql(conninfo, password, args);
    assert!(
        out.status.success(),
        "psql {args:?} failed:\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A query through `psql --csv`: header and rows, NULL shown as `<NULL>`.
fn psql_csv(
    server: &TestServer,
    user: &str,
    key: &str,
    sql: &str,
) -> (Vec<String>, Vec<Vec<String>>) {
    let out = psql_ok(
        &conninfo(server, user, "disable"),
        key,
        &["--csv", "-P", &format!("null={NULL}"), "-c", sql],
    );
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(out.as_bytes());
    let header = reader
        .headers()
        .expect("csv header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.expect("csv row").iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// One cell as comparable text: instants as RFC 3339 with microseconds, numbers through f64,
/// booleans as true/false, NULL as `<NULL>`. `ty` is the column type `/api/v1/sql` reports.
fn canonical_http(value: &Value, ty: &str) -> String {
    match value {
        Value::Null => NULL.to_string(),
        Value::String(s) if ty == "timestamp" => DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("HTTP timestamp {s}: {e}"))
            .to_utc()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => format!("{:?}", n.as_f64().expect("number")),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn canonical_psql(cell: &str, ty: &str) -> String {
    if cell == NULL {
        return NULL.to_string();
    }
    match ty {
        "timestamp" => {
            // psql shows timestamptz in the session zone, which Strata fixes to UTC.
            let naive = cell
                .strip_suffix("+00")
                .unwrap_or_else(|| panic!("psql timestamp {cell} is not UTC"));
            NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
                .unwrap_or_else(|e| panic!("psql timestamp {cell}: {e}"))
                .and_utc()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string()
        }
        "boolean" => match cell {
            "t" => "true".to_string(),
            "f" => "false".to_string(),
            other => panic!("psql boolean {other}"),
        },
        "double" | "float" | "real" | "bigint" | "integer" | "int" | "smallint" => format!(
            "{:?}",
            cell.parse::<f64>()
                .unwrap_or_else(|e| panic!("psql number {cell}: {e}"))
        ),
        _ => cell.to_string(),
    }
}

/// Runs `sql` over HTTP and through psql and asserts the same columns and rows, in order.
/// Returns the canonical rows.
fn assert_psql_matches_http(
    server: &TestServer,
    user: &str,
    key: &str,
    sql: &str,
) -> Vec<Vec<String>> {
    let http = server.sql(key, sql);
    assert_eq!(http.status, 200, "{sql}: {}", http.text);
    let columns = http.body["columns"].as_array().expect("columns");
    let names: Vec<String> = columns
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_string())
        .collect();
    let types: Vec<String> = columns
        .iter()
        .map(|c| c["type"].as_str().expect("type").to_string())
        .collect();
    let http_rows: Vec<Vec<String>> = http.body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .zip(&types)
                .map(|(v, ty)| canonical_http(v, ty))
                .collect()
        })
        .collect();

    let (header, rows) = psql_csv(server, user, key, sql);
    assert_eq!(header, names, "{sql}: column names");
    let psql_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&types)
                .map(|(cell, ty)| canonical_psql(cell, ty))
                .collect()
        })
        .collect();
    assert_eq!(psql_rows.len(), http_rows.len(), "{sql}: row count");
    for (i, (p, h)) in psql_rows.iter().zip(&http_rows).enumerate() {
        assert_eq!(p, h, "{sql}: row {i} differs (psql vs HTTP)");
    }
    http_rows
}

// ---------------------------------------------------------------------------------------------
// Script clients

fn run_client(program: &Path, script: &str, server: &TestServer, user: &str, key: &str) -> Value {
    let out = Command::new(program)
        .arg(clients_dir().join(script))
        .current_dir(clients_dir())
        .env("STRATA_PG_HOST", "127.0.0.1")
        .env("STRATA_PG_PORT", server.pg_port().to_string())
        .env("STRATA_PG_USER", user)
        .env("STRATA_PG_PASSWORD", key)
        .env("STRATA_PG_METRIC", "thermostat")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PGSSLMODE")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {} {script}: {e}", program.display()));
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed:\nstdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stdout}"))
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn psql_results_match_http_sql_row_for_row() {
    if !have_psql() {
        return;
    }
    let server = TestServer::start();
    let key = seed(&server, "acme");

    let all = assert_psql_matches_http(
        &server,
        "acme",
        &key,
        "SELECT * FROM thermostat ORDER BY timestamp",
    );
    assert_eq!(all.len(), EVENTS as usize);
    // Row 3 sent its temperature under the alias, as text: read back as the declared DOUBLE.
    let (header, rows) = psql_csv(
        &server,
        "acme",
        &key,
        "SELECT * FROM thermostat ORDER BY timestamp",
    );
    let column = header
        .iter()
        .position(|c| c == "temperature")
        .expect("column");
    assert_eq!(rows[3][column].parse::<f64>().unwrap(), temperature(3));

    for sql in [
        "SELECT name, temp, reading, open FROM thermostat WHERE reading BETWEEN 10 AND 20 \
         ORDER BY reading DESC",
        "SELECT name, count(*) AS n, sum(reading) AS total, avg(temperature) AS mean \
         FROM thermostat GROUP BY name ORDER BY name",
        "SELECT timestamp, note FROM thermostat WHERE note IS NOT NULL ORDER BY timestamp",
        "SELECT reading FROM thermostat WHERE name = 'it''s sensor-3' AND open ORDER BY reading",
        "SELECT min(timestamp) AS first, max(timestamp) AS last FROM thermostat",
    ] {
        let rows = assert_psql_matches_http(&server, "acme", &key, sql);
        assert!(!rows.is_empty(), "{sql} returned nothing to compare");
    }
}

#[test]
fn psql_lists_and_describes_tables() {
    if !have_psql() {
        return;
    }
    let server = TestServer::start();
    let key = seed(&server, "acme");
    let info = conninfo(&server, "acme", "disable");

    let tables = psql_ok(&info, &key, &["-A", "-t", "-c", "\\dt"]);
    let rows: Vec<&str> = tables.lines().collect();
    assert_eq!(rows.len(), 1, "{tables}");
    assert!(rows[0].starts_with("public|thermostat|table|"), "{tables}");

    let described = psql_ok(&info, &key, &["-A", "-t", "-c", "\\d thermostat"]);
    let columns: Vec<(String, String)> = described
        .lines()
        .map(|line| {
            let mut parts = line.split('|');
            (
                parts.next().unwrap_or_default().to_string(),
                parts.next().unwrap_or_default().to_string(),
            )
        })
        .collect();
    // Same columns, in the same order, as SELECT * over HTTP.
    let http = server.sql(&key, "SELECT * FROM thermostat LIMIT 0");
    let http_names: Vec<&str> = http.body["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let described_names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(described_names, http_names, "{described}");
    let type_of = |name: &str| -> &str {
        &columns
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} missing: {described}"))
            .1
    };
    assert_eq!(type_of("timestamp"), "timestamp with time zone");
    assert_eq!(type_of("temperature"), "double precision");
    assert_eq!(type_of("reading"), "bigint");
    assert_eq!(type_of("open"), "boolean");
    assert_eq!(type_of("name"), "text");
    assert_eq!(type_of("note"), "text");
    // The alias is a name for a column, not a column of its own.
    assert!(!described_names.contains(&"temp"), "{described}");
}

#[test]
fn psycopg_parameters_server_cursor_cancel_and_bad_password() {
    if !have_psycopg() {
        return;
    }
    let server = TestServer::start();
    let key = seed(&server, "acme");
    let out = run_client(&python(), "psycopg_check.py", &server, "acme", &key);
    let p = &out["parameters"];

    assert_eq!(p["int"], json!([["it's sensor-2", 7]]), "{out}");
    let in_range = (0..EVENTS)
        .filter(|&i| (20.25..21.75).contains(&temperature(i)))
        .count();
    assert_eq!(p["float"], json!([[in_range]]), "{out}");
    let sensor3: Vec<i64> = (0..EVENTS)
        .filter(|i| sensor(*i) == "it's sensor-3")
        .collect();
    let got: Vec<i64> = p["text"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r[0].as_i64().expect("reading"))
        .collect();
    assert_eq!(got, sensor3);
    let expected_window: Vec<Value> = (0..40)
        .map(|i| {
            json!([
                ts_ms(BASE_MS + i * 1000)
                    .format("%Y-%m-%dT%H:%M:%S+00:00")
                    .to_string(),
                i
            ])
        })
        .collect();
    assert_eq!(p["timestamp"], Value::Array(expected_window), "{out}");
    assert_eq!(p["naive_timestamp"], json!([[30]]), "{out}");
    assert_eq!(p["injection"], json!([[0]]), "{out}");

    // Server-side cursor: fetchmany(100) over 250 rows comes in chunks, in order, all rows.
    let cursor = &out["cursor"];
    assert_eq!(cursor["columns"], json!(["reading"]), "{out}");
    assert_eq!(cursor["chunks"], json!([100, 100, 50, 0]), "{out}");
    assert_eq!(
        cursor["values"],
        json!((0..EVENTS).collect::<Vec<_>>()),
        "{out}"
    );
    assert_eq!(
        cursor["reused"],
        json!((240..EVENTS).collect::<Vec<_>>()),
        "{out}"
    );
    assert_eq!(
        out["held_cursor"],
        json!({"first": ["it's sensor-0"], "rest": [["it's sensor-1"], ["it's sensor-2"]]}),
        "{out}"
    );

    assert_eq!(out["nested_transaction"], 42, "{out}");
    assert_eq!(out["unknown_table"], "42P01", "{out}");
    assert_eq!(out["unknown_column"], "42703", "{out}");

    let cancel = &out["cancel"];
    assert_eq!(cancel["sqlstate"], "57014", "{out}");
    assert!(
        cancel["message"]
            .as_str()
            .unwrap_or("")
            .contains("user request"),
        "{out}"
    );
    assert_eq!(
        cancel["after"], 42,
        "the connection is usable after a cancel: {out}"
    );

    let bad = &out["bad_password"];
    assert_eq!(bad["error"], "OperationalError", "{out}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap_or("")
            .contains("password authentication failed"),
        "{out}"
    );
    assert_eq!(bad["wire"]["code"], "28P01", "{out}");
    assert_eq!(bad["wire"]["severity"], "FATAL", "{out}");
    assert_eq!(
        bad["wire"]["message"], "password authentication failed",
        "nothing more is revealed: {out}"
    );
}

#[test]
fn node_postgres_parameters_and_reused_prepared_statement() {
    if !have_node_pg() {
        return;
    }
    let server = TestServer::start();
    let key = seed(&server, "acme");
    let out = run_client(
        Path::new("node"),
        "node_pg_check.mjs",
        &server,
        "acme",
        &key,
    );

    // int8 comes back as a string in node-postgres (it does not always fit a JS number).
    let expected: Vec<(String, String, f64)> = (5..EVENTS)
        .filter(|i| sensor(*i) == "it's sensor-3")
        .map(|i| (sensor(i), i.to_string(), temperature(i)))
        .collect();
    let got: Vec<(String, String, f64)> = out["parameterized"]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["reading"].as_str().unwrap_or_default().to_string(),
                r["temperature"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    assert_eq!(got, expected, "{out}");
    // text, int8, float8 OIDs.
    assert_eq!(out["parameterized"]["types"], json!([25, 20, 701]), "{out}");

    let prepared = out["prepared"].as_array().expect("prepared");
    assert_eq!(prepared.len(), 4, "{out}");
    for run in prepared {
        let reading = run["reading"].as_i64().expect("reading");
        let expected = if reading < EVENTS {
            json!([{
                "timestamp": ts_ms(BASE_MS + reading * 1000).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                "name": sensor(reading),
                "reading": reading.to_string(),
            }])
        } else {
            json!([])
        };
        assert_eq!(run["rows"], expected, "reading {reading}: {out}");
    }
    assert_eq!(out["since"], json!([{"n": "5"}]), "{out}");
    assert_eq!(out["unknown_table"], "42P01", "{out}");
    assert_eq!(out["bad_password"]["code"], "28P01", "{out}");
}

#[test]
fn grafana_style_time_series_query() {
    if !have_psql() {
        return;
    }
    let server = TestServer::start();
    let key = seed(&server, "acme");
    // What Grafana's Postgres data source sends for a time series panel after expanding
    // $__timeGroupAlias and $__timeFilter over 10:12:00 .. 10:15:59.999.
    let sql = "SELECT date_bin(INTERVAL '1 minute', \"timestamp\") AS time, \
               avg(reading) AS value, count(*) AS samples \
               FROM thermostat \
               WHERE \"timestamp\" BETWEEN '2015-01-12T10:12:00Z'::timestamptz \
                 AND '2015-01-12T10:15:59.999Z'::timestamptz \
               GROUP BY 1 ORDER BY 1";
    let rows = assert_psql_matches_http(&server, "acme", &key, sql);

    // Expected buckets, computed from the events written.
    let from = DateTime::parse_from_rfc3339("2015-01-12T10:12:00Z")
        .unwrap()
        .timestamp_millis();
    let to = DateTime::parse_from_rfc3339("2015-01-12T10:15:59.999Z")
        .unwrap()
        .timestamp_millis();
    let mut buckets: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for i in 0..EVENTS {
        let t = BASE_MS + i * 1000;
        if (from..=to).contains(&t) {
            buckets.entry(t - t.rem_euclid(60_000)).or_default().push(i);
        }
    }
    let expected: Vec<Vec<String>> = buckets
        .iter()
        .map(|(minute, readings)| {
            let mean = readings.iter().sum::<i64>() as f64 / readings.len() as f64;
            vec![
                ts_ms(*minute).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                format!("{mean:?}"),
                format!("{:?}", readings.len() as f64),
            ]
        })
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(rows.len(), 4, "four one-minute buckets");
}

/// Grafana's PostgreSQL data source macros (its `macros.go`, as its docs list them) expanded
/// for the range 10:12:00 .. 10:15:59.999 and a 1-minute interval: the SQL Grafana sends.
const GRAFANA_FIXTURES: &[(&str, &str)] = &[
    (
        "SELECT $__timeGroupAlias(\"timestamp\",'1m'), avg(reading) AS value \
         FROM thermostat WHERE $__timeFilter(\"timestamp\") GROUP BY 1 ORDER BY 1",
        "SELECT floor(extract(epoch from \"timestamp\")/60)*60 AS \"time\", avg(reading) AS value \
         FROM thermostat \
         WHERE \"timestamp\" BETWEEN '2015-01-12T10:12:00Z' AND '2015-01-12T10:15:59.999Z' \
         GROUP BY 1 ORDER BY 1",
    ),
    (
        "SELECT $__timeGroup(\"timestamp\",'1m') AS time, avg(reading) AS value \
         FROM thermostat WHERE $__timeFilter(\"timestamp\") \
         GROUP BY $__timeGroup(\"timestamp\",'1m') ORDER BY 1",
        "SELECT floor(extract(epoch from \"timestamp\")/60)*60 AS time, avg(reading) AS value \
         FROM thermostat \
         WHERE \"timestamp\" BETWEEN '2015-01-12T10:12:00Z' AND '2015-01-12T10:15:59.999Z' \
         GROUP BY floor(extract(epoch from \"timestamp\")/60)*60 ORDER BY 1",
    ),
    (
        "SELECT $__timeGroupAlias(\"timestamp\",'1m'), avg(reading) AS value FROM thermostat \
         WHERE $__unixEpochFilter(extract(epoch from \"timestamp\")) GROUP BY 1 ORDER BY 1",
        "SELECT floor(extract(epoch from \"timestamp\")/60)*60 AS \"time\", avg(reading) AS value \
         FROM thermostat \
         WHERE extract(epoch from \"timestamp\") >= 1421057520 \
           AND extract(epoch from \"timestamp\") <= 1421057759 \
         GROUP BY 1 ORDER BY 1",
    ),
];

#[test]
fn grafana_macro_expansions_answer_over_the_wire() {
    if !have_psql() {
        return;
    }
    let server = TestServer::start();
    let key = seed(&server, "acme");
    // Every fixture asks for the mean reading per minute of 10:12:00 .. 10:15:59.
    let (from_s, to_s) = (1_421_057_520_i64, 1_421_057_759_i64);
    let mut buckets: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for i in 0..EVENTS {
        let t_s = (BASE_MS + i * 1000) / 1000;
        if (from_s..=to_s).contains(&t_s) {
            buckets.entry(t_s - t_s.rem_euclid(60)).or_default().push(i);
        }
    }
    let expected: Vec<Vec<String>> = buckets
        .iter()
        .map(|(minute, readings)| {
            let mean = readings.iter().sum::<i64>() as f64 / readings.len() as f64;
            vec![format!("{:?}", *minute as f64), format!("{mean:?}")]
        })
        .collect();
    assert_eq!(expected.len(), 4);
    for (with_macros, sent) in GRAFANA_FIXTURES {
        let rows = assert_psql_matches_http(&server, "acme", &key, sent);
        assert_eq!(rows, expected, "{with_macros}");
    }
}

/// The table and column lists of Grafana's query builder (its `showTables()` and
/// `getSchema(table)` with `buildSchemaConstraint()`, for the table `thermostat`), kept
/// verbatim in `fixtures/`.
const GRAFANA_TABLES: &str = include_str!("fixtures/grafana_tables.sql");
const GRAFANA_COLUMNS: &str = include_str!("fixtures/grafana_columns.sql");

#[test]
fn grafana_query_builder_lists_tables_and_columns() {
    if !have_psql() {
        return;
    }
    let server = TestServer::start();
    let key = seed(&server, "acme");
    let acme = conninfo(&server, "acme", "disable");
    let tables = psql_ok(&acme, &key, &["-A", "-t", "-c", GRAFANA_TABLES]);
    assert_eq!(tables.trim(), "thermostat", "the builder's table list");
    let columns = psql_ok(&acme, &key, &["-A", "-t", "-F", "|", "-c", GRAFANA_COLUMNS]);
    let columns: Vec<&str> = columns.lines().collect();
    for expected in [
        "timestamp|",
        "reading|Int64",
        "temperature|Float64",
        "open|Boolean",
    ] {
        assert!(
            columns.iter().any(|c| c.starts_with(expected)),
            "{expected} not in the builder's column list: {columns:?}"
        );
    }
}

#[test]
fn tenants_are_sealed_over_the_wire() {
    if !have_psql() {
        return;
    }
    let server = TestServer::start();
    let acme_key = seed(&server, "acme");
    let globex_key = server.create_tenant("globex");
    let written = server.post(
        "/api/v1/write",
        &globex_key,
        &json!({"metrictype": "secret_plant", "timestamp": BASE_MS, "pressure": 99.5}),
    );
    assert_eq!(written.status, 200, "{}", written.text);
    let globex = conninfo(&server, "globex", "disable");

    // Not queryable, by any spelling.
    for sql in [
        "SELECT * FROM thermostat",
        "SELECT count(*) FROM public.thermostat",
        "SELECT temp FROM thermostat",
    ] {
        let out = psql(&globex, &globex_key, &["-c", sql]);
        assert!(!out.status.success(), "{sql} ran for globex");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("42P01"), "{sql}: {stderr}");
        assert!(
            !stderr.contains("temperature"),
            "{sql} leaked a column: {stderr}"
        );
    }

    // Not listed, not describable.
    let tables = psql_ok(&globex, &globex_key, &["-A", "-t", "-c", "\\dt"]);
    assert!(tables.contains("secret_plant"), "{tables}");
    assert!(!tables.contains("thermostat"), "{tables}");
    let out = psql(&globex, &globex_key, &["-c", "\\d thermostat"]);
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(shown.contains("Did not find any relation"), "{shown}");

    // Nothing in pg_catalog or information_schema either.
    for (sql, own) in [
        ("SELECT relname FROM pg_catalog.pg_class", "secret_plant"),
        ("SELECT tablename FROM pg_catalog.pg_tables", "secret_plant"),
        (
            "SELECT table_name FROM information_schema.tables",
            "secret_plant",
        ),
        ("SELECT attname FROM pg_catalog.pg_attribute", "pressure"),
        (
            "SELECT column_name FROM information_schema.columns",
            "pressure",
        ),
    ] {
        let listed = psql_ok(&globex, &globex_key, &["-A", "-t", "-c", sql]);
        let names: Vec<&str> = listed.lines().collect();
        assert!(names.contains(&own), "{sql} lacks globex's own {own}");
        for foreign in ["thermostat", "temperature", "reading", "note"] {
            assert!(!names.contains(&foreign), "{sql} shows acme's {foreign}");
        }
    }

    // acme's key does not log in as globex, and the reverse.
    for (user, key) in [("globex", acme_key.as_str()), ("acme", globex_key.as_str())] {
        let out = psql(
            &conninfo(&server, user, "disable"),
            key,
            &["-c", "SELECT 1"],
        );
        assert!(
            !out.status.success(),
            "{user} logged in with the other tenant's key"
        );
        assert!(
            text(&out.stderr).contains("password authentication failed"),
            "{}",
            text(&out.stderr)
        );
    }
    // While acme itself sees its table.
    let count = psql_ok(
        &conninfo(&server, "acme", "disable"),
        &acme_key,
        &["-A", "-t", "-c", "SELECT count(*) FROM thermostat"],
    );
    assert_eq!(count.trim(), EVENTS.to_string());
}

#[test]
fn tls_with_a_self_signed_certificate() {
    if !have_psql() || !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path(), "server");
    let (other_cert, _) = self_signed(dir.path(), "other");
    let (cert_arg, key_arg) = (cert.to_string_lossy(), key.to_string_lossy());
    let server = TestServer::start_with(&["--tls-cert", &cert_arg, "--tls-key", &key_arg]);
    let admin = seed(&server, "acme");

    // verify-full: the server presents our certificate for 127.0.0.1 and the session is TLS.
    let verified = format!(
        "{} sslrootcert={}",
        conninfo(&server, "acme", "verify-full"),
        cert.display()
    );
    let out = psql_ok(
        &verified,
        &admin,
        &[
            "-c",
            "\\conninfo",
            "-A",
            "-t",
            "-c",
            "SELECT count(*) FROM thermostat",
        ],
    );
    assert!(out.contains("SSL connection (protocol: TLS"), "{out}");
    assert!(out.lines().any(|l| l.trim() == EVENTS.to_string()), "{out}");

    // A different trust root fails verification: the certificate really is the one given.
    let wrong_root = format!(
        "{} sslrootcert={}",
        conninfo(&server, "acme", "verify-full"),
        other_cert.display()
    );
    let out = psql(&wrong_root, &admin, &["-c", "SELECT 1"]);
    assert!(!out.status.success(), "verified against the wrong root");
    assert!(
        text(&out.stderr).contains("certificate verify failed"),
        "{}",
        text(&out.stderr)
    );

    // A server without TLS refuses sslmode=require, so the success above is TLS's doing.
    let plain = TestServer::start();
    let plain_admin = plain.create_tenant("acme");
    let out = psql(
        &conninfo(&plain, "acme", "require"),
        &plain_admin,
        &["-c", "SELECT 1"],
    );
    assert!(!out.status.success(), "sslmode=require worked without TLS");
    assert!(
        text(&out.stderr).contains("server does not support SSL"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn cleartext_on_a_network_address_is_refused_at_startup() {
    for pg in ["0.0.0.0:0", "[::]:0"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(common::BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--http", "127.0.0.1:0", "--pg", pg])
            .env_remove("STRATA_OPERATOR_TOKEN")
            .env_remove("STRATA_TLS_CERT")
            .env_remove("STRATA_TLS_KEY")
            .env_remove("STRATA_PG_ALLOW_INSECURE")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strata serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("strata serve --pg {pg} without TLS kept running");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        assert!(!status.success(), "--pg {pg}: exit {status:?}\n{stderr}");
        assert!(
            stderr.contains(&format!(
                "refusing to serve the Postgres wire protocol on {pg} without TLS"
            )),
            "{stderr}"
        );
        assert!(stderr.contains("--pg-allow-insecure"), "{stderr}");
        assert!(
            !stderr.contains("listening on"),
            "it must refuse before serving anything: {stderr}"
        );
    }
}

fn have_sqlalchemy() -> bool {
    available(
        "python3 with SQLAlchemy and pandas",
        probe(&python(), &["-c", "import sqlalchemy, pandas"], None),
    )
}

/// Issue 20: SQLAlchemy parses `version()` (it refused DataFusion's own text), its inspector
/// lists the tenant's tables, and `pandas.read_sql` gets typed columns, timestamps as
/// timestamps.
#[test]
fn sqlalchemy_connects_lists_tables_and_pandas_reads_typed_columns() {
    if !have_sqlalchemy() {
        return;
    }
    let server = TestServer::start();
    let key = seed(&server, "acme");
    let out = run_client(&python(), "sqlalchemy_check.py", &server, "acme", &key);
    assert_eq!(out["server_version_info"], json!([16, 6]), "{out}");
    let version = out["version"].as_str().expect("version");
    assert!(version.starts_with("PostgreSQL 16.6 (Strata "), "{version}");
    assert_eq!(out["server_version_num"], "160006", "{out}");
    assert_eq!(out["tables"], json!(["thermostat"]), "{out}");
    assert_eq!(
        out["dtypes"],
        json!({"timestamp": "datetime64[us, UTC]", "temperature": "float64", "reading": "int64"}),
        "{out}"
    );
    assert_eq!(out["rows"], 3, "{out}");
}

/// `current_setting` answers what `SHOW` answers, and an unknown name is an error naming it.
#[test]
fn current_setting_answers_like_show_and_refuses_unknown_names() {
    if !have_psql() {
        return;
    }
    let server = TestServer::start();
    let key = seed(&server, "acme");
    let conninfo = conninfo(&server, "acme", "disable");
    let shown = psql_ok(
        &conninfo,
        &key,
        &[
            "-At",
            "-c",
            "SELECT current_setting('search_path'), current_setting('TimeZone')",
        ],
    );
    assert_eq!(shown.trim(), "public|UTC");
    let unknown = psql(
        &conninfo,
        &key,
        &["-c", "SELECT current_setting('no_such')"],
    );
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("unrecognized configuration parameter \"no_such\""),
        "{}",
        text(&unknown.stderr)
    );
}
