//! The `strata` client commands, run as the real binary: against the real server (through the
//! shared harness) for tenants, keys, schema and writes, and against a scripted stub HTTP server
//! where the server's behaviour must be controlled exactly (retries, refused batches).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use crate::common::{write_events, TestServer, BIN};
use serde_json::{json, Value};

/// Runs `strata` with `args`, a clean environment for the client variables, and optional stdin.
fn strata(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("STRATA_URL")
        .env_remove("STRATA_KEY")
        .env_remove("STRATA_OPERATOR_TOKEN")
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn strata");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().expect("wait for strata")
}

/// Runs a client command against `url` with `key`.
fn client(url: &str, key: &str, args: &[&str]) -> Output {
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--url", url, "--key", key]);
    strata(&full, &[], None)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
}

fn json_out(output: &Output) -> Value {
    assert_success(output);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(output)))
}

#[test]
fn help_of_every_subcommand_mentions_its_flags() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[],
            &[
                "serve",
                "tenant",
                "key",
                "settings",
                "schema",
                "write",
                "sql",
                "compact",
                "channel",
                "alert",
                "silence",
                "rollup",
                "completions",
                "man",
            ],
        ),
        (
            &["serve"],
            &[
                "--data-dir",
                "--http",
                "--pg",
                "STRATA_DATA_DIR",
                "STRATA_HTTP_ADDR",
                "STRATA_PG_ADDR",
                "STRATA_OPERATOR_TOKEN",
                "--max-body-bytes",
                "--max-event-bytes",
                "--max-fields-per-event",
                "--max-admin-body-bytes",
                "--max-error-payload-bytes",
                "STRATA_MAX_BODY_BYTES",
                "--unsafe-no-fsync",
                "--smtp-url",
                "--smtp-from",
                "--sms-url",
                "--sms-from",
                "--allow-private-webhooks",
                "--alert-tick-ms",
                "STRATA_SMTP_URL",
                "STRATA_ALLOW_PRIVATE_WEBHOOKS",
                "Examples:",
            ],
        ),
        (
            &["tenant", "create"],
            &[
                "--url",
                "--key",
                "--json",
                "STRATA_OPERATOR_TOKEN",
                "Example",
            ],
        ),
        (
            &["key", "create"],
            &[
                "--role", "read", "write", "admin", "--url", "--key", "Example",
            ],
        ),
        (&["key", "list"], &["--url", "--key", "--json"]),
        (&["key", "revoke"], &["<ID>", "--key"]),
        (&["settings", "show"], &["--url", "--key"]),
        (
            &["settings", "set"],
            &["--metric-keys", "--timestamp-patterns", "Examples"],
        ),
        (&["schema", "show"], &["[METRIC]", "--json"]),
        (&["schema", "history"], &["--url"]),
        (&["schema", "create-metric"], &["<NAME>", "--alias"]),
        (
            &["schema", "create"],
            &["--from-sample", "--metric", "RFC 3339"],
        ),
        (
            &["schema", "alter-metric"],
            &[
                "--rename-to",
                "--add-alias",
                "--remove-alias",
                "--timestamp-alias",
                "--timestamp-pattern",
                "--series-key",
            ],
        ),
        (&["schema", "delete-metric"], &["<METRIC>"]),
        (
            &["schema", "declare-field"],
            &["<METRIC>", "<FIELD>", "--type", "--alias", "--hidden"],
        ),
        (
            &["schema", "alter-field"],
            &[
                "--rename-to",
                "--type",
                "--add-alias",
                "--remove-alias",
                "--hidden",
            ],
        ),
        (
            &["write"],
            &[
                "--metric",
                "--format",
                "ndjson",
                "csv",
                "--batch-size",
                "Exit code",
            ],
        ),
        (
            &["sql"],
            &[
                "--format",
                "table",
                "csv",
                "json",
                "\\q",
                "--file",
                "--output",
                "--live",
                "--min-interval-ms",
                "Examples",
            ],
        ),
        (&["compact"], &["--url", "--key", "Example"]),
        (
            &["channel", "create"],
            &[
                "<NAME>",
                "--kind",
                "webhook",
                "email",
                "sms",
                "--webhook-url",
                "--secret",
                "--timeout",
                "--to",
                "--allow-private-webhooks",
                "Examples",
            ],
        ),
        (
            &["channel", "list"],
            &["--url", "--key", "--json", "Example"],
        ),
        (&["channel", "delete"], &["<NAME>", "Example"]),
        (&["channel", "test"], &["<NAME>", "Example"]),
        (
            &["alert", "create"],
            &[
                "[NAME]",
                "--json <RULE>",
                "--file",
                "--kind",
                "--sql",
                "--condition",
                "--every",
                "--no-data",
                "--metric",
                "--by",
                "--field",
                "--for",
                "--repeat-interval",
                "--channel",
                "--url",
                "--key",
                "Examples",
            ],
        ),
        (&["alert", "list"], &["--json", "--url", "Example"]),
        (&["alert", "show"], &["<NAME>", "--json", "Example"]),
        (&["alert", "delete"], &["<NAME>", "Example"]),
        (
            &["alert", "test"],
            &["<NAME>", "Nothing is notified", "Example"],
        ),
        (&["alert", "ack"], &["<NAME>", "--label", "Example"]),
        (
            &["silence", "create"],
            &[
                "--matcher",
                "--until",
                "--for",
                "--starts",
                "--comment",
                "--json",
                "Examples",
            ],
        ),
        (&["silence", "list"], &["--json", "Example"]),
        (&["silence", "delete"], &["<ID>", "Example"]),
    ];
    for (path, expected) in cases {
        let mut args: Vec<&str> = path.to_vec();
        args.push("--help");
        let output = strata(&args, &[], None);
        assert_success(&output);
        let text = stdout(&output);
        for needle in *expected {
            assert!(
                text.contains(needle),
                "`strata {}` does not mention {needle:?}:\n{text}",
                args.join(" ")
            );
        }
    }
    // The benchmark-only flag stays out of the short help.
    let short = stdout(&strata(&["serve", "-h"], &[], None));
    assert!(!short.contains("--unsafe-no-fsync"), "{short}");
}

#[test]
fn tenant_and_keys_through_the_cli() {
    let server = TestServer::start();
    let url = server.url();
    let token = server.operator_token();

    // The operator token is read from STRATA_OPERATOR_TOKEN.
    let created = strata(
        &["tenant", "create", "acme", "--url", url],
        &[("STRATA_OPERATOR_TOKEN", &token)],
        None,
    );
    assert_success(&created);
    let text = stdout(&created);
    assert!(text.contains("tenant:    acme"), "{text}");
    let admin = text
        .lines()
        .find_map(|l| l.strip_prefix("admin key: "))
        .expect("admin key line")
        .trim()
        .to_string();
    assert!(!admin.is_empty());

    // The same name again: the server's conflict, shown as `error: ... (HTTP 409)`, exit 1.
    let again = strata(
        &["tenant", "create", "acme", "--url", url, "--key", &token],
        &[],
        None,
    );
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(stderr(&again).starts_with("error: "), "{}", stderr(&again));
    assert!(
        stderr(&again).trim_end().ends_with("(HTTP 409)"),
        "{}",
        stderr(&again)
    );

    // STRATA_KEY is accepted for the operator token too.
    let second = strata(
        &["tenant", "create", "beta", "--json", "--url", url],
        &[("STRATA_KEY", &token)],
        None,
    );
    let second = json_out(&second);
    assert_eq!(second["tenant"], "beta");
    assert!(second["admin_key"].is_string());

    let key = json_out(&client(
        url,
        &admin,
        &["key", "create", "--role", "read", "--json"],
    ));
    assert_eq!(key["role"], "read");
    let id = key["id"].as_str().expect("id").to_string();
    let read_key = key["key"].as_str().expect("key").to_string();

    let listed = client(url, &admin, &["key", "list"]);
    assert_success(&listed);
    let listed_text = stdout(&listed);
    assert!(
        listed_text.lines().next().unwrap().starts_with("id"),
        "{listed_text}"
    );
    assert!(
        listed_text
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("read")),
        "{listed_text}"
    );
    assert!(
        !listed_text.contains(&read_key),
        "secrets must not be listed"
    );

    // The read key works until it is revoked.
    assert_success(&client(url, &read_key, &["schema", "show"]));
    let revoked = client(url, &admin, &["key", "revoke", &id]);
    assert_success(&revoked);
    assert!(stdout(&revoked).contains(&id));
    let refused = client(url, &read_key, &["schema", "show"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("(HTTP 401)"),
        "{}",
        stderr(&refused)
    );

    let listed = json_out(&client(url, &admin, &["key", "list", "--json"]));
    let ids: Vec<&str> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["id"].as_str())
        .collect();
    assert!(
        !ids.contains(&id.as_str()),
        "revoked key still listed: {listed}"
    );
}

#[test]
fn unreachable_server_is_a_clear_failure() {
    // Bind then drop to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let output = client(&url, "k", &["schema", "show"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot reach"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn schema_create_from_sample_infers_types() {
    let server = TestServer::start();
    let url = server.url();
    let admin = server.create_tenant("acme");
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("event.json");
    std::fs::write(
        &sample,
        r#"{
            "metrictype": "new machine",
            "timestamp": 1421057535000,
            "on": true,
            "count": 3,
            "temp": 21.5,
            "seen": "2015-01-12T10:12:15Z",
            "name": "kitchen",
            "tags": ["a", "b"],
            "gps": {"lat": 1.5, "fix": {"ok": false}},
            "nothing": null
        }"#,
    )
    .unwrap();
    let sample_arg = sample.to_str().unwrap();

    let created = client(
        url,
        &admin,
        &["schema", "create", "--from-sample", sample_arg],
    );
    assert_success(&created);
    let text = stdout(&created);
    assert!(text.contains("created metric new machine"), "{text}");
    assert!(text.contains("nothing"), "{text}");

    let schema = json_out(&client(
        url,
        &admin,
        &["schema", "show", "new machine", "--json"],
    ));
    let metrics = schema["metrics"].as_array().expect("metrics");
    assert_eq!(metrics.len(), 1, "{schema}");
    let mut types: Vec<(String, Value)> = metrics[0]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_string(), f["type"].clone()))
        .collect();
    types.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        types,
        vec![
            ("count".to_string(), json!("integer")),
            ("gps.fix.ok".to_string(), json!("boolean")),
            ("gps.lat".to_string(), json!("double")),
            ("name".to_string(), json!("string")),
            ("on".to_string(), json!("boolean")),
            ("seen".to_string(), json!("timestamp")),
            ("tags".to_string(), json!("string")),
            ("temp".to_string(), json!("double")),
        ]
    );

    // Running it again is fine: the metric exists (409) and declared fields are left alone.
    let again = client(
        url,
        &admin,
        &["schema", "create", "--from-sample", sample_arg],
    );
    assert_success(&again);
    assert!(
        stdout(&again).contains("already exists"),
        "{}",
        stdout(&again)
    );
    assert!(
        stdout(&again).contains("skipped: already declared"),
        "{}",
        stdout(&again)
    );

    // The human view lists the metric and its typed fields.
    let shown = client(url, &admin, &["schema", "show"]);
    assert_success(&shown);
    let shown = stdout(&shown);
    assert!(shown.contains("metric new machine"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.trim_start().starts_with("seen") && l.contains("timestamp")),
        "{shown}"
    );

    // An explicit --metric wins; a sample without a metric and no --metric is an error.
    std::fs::write(&sample, r#"{"timestamp": 1, "x": 1}"#).unwrap();
    let nameless = client(
        url,
        &admin,
        &["schema", "create", "--from-sample", sample_arg],
    );
    assert_eq!(nameless.status.code(), Some(1));
    assert!(
        stderr(&nameless).contains("--metric"),
        "{}",
        stderr(&nameless)
    );
    let named = client(
        url,
        &admin,
        &[
            "schema",
            "create",
            "--from-sample",
            sample_arg,
            "--metric",
            "m2",
        ],
    );
    assert_success(&named);
    let schema = json_out(&client(url, &admin, &["schema", "show", "m2", "--json"]));
    assert_eq!(schema["metrics"][0]["fields"][0]["name"], "x", "{schema}");
    assert_eq!(
        schema["metrics"][0]["fields"][0]["type"], "integer",
        "{schema}"
    );
}

#[test]
fn schema_changes_through_the_cli() {
    let server = TestServer::start();
    let url = server.url();
    let admin = server.create_tenant("acme");
    assert_success(&client(
        url,
        &admin,
        &["schema", "create-metric", "machine 1", "--alias", "m1"],
    ));
    assert_success(&client(
        url,
        &admin,
        &[
            "schema",
            "declare-field",
            "m1",
            "temp",
            "--type",
            "float",
            "--alias",
            "t",
        ],
    ));
    assert_success(&client(
        url,
        &admin,
        &[
            "schema",
            "alter-metric",
            "machine 1",
            "--rename-to",
            "thermostat",
            "--add-alias",
            "th",
        ],
    ));
    assert_success(&client(
        url,
        &admin,
        &[
            "schema",
            "alter-field",
            "thermostat",
            "temp",
            "--rename-to",
            "temperature",
            "--hidden",
            "true",
        ],
    ));
    let schema = json_out(&client(url, &admin, &["schema", "show", "th", "--json"]));
    let metric = &schema["metrics"][0];
    assert_eq!(metric["name"], "thermostat", "{schema}");
    let field = &metric["fields"][0];
    assert_eq!(field["name"], "temperature", "{schema}");
    assert_eq!(field["type"], "double", "{schema}");
    assert_eq!(field["hidden"], true, "{schema}");

    // A derived field and a merge (issue 17).
    write_events(
        &server,
        &admin,
        &[json!({"metrictype": "thermo", "timestamp": 1_000, "humidity": 50.0})],
    );
    assert_success(&client(
        url,
        &admin,
        &["schema", "merge-metric", "thermostat", "--from", "thermo"],
    ));
    assert_success(&client(
        url,
        &admin,
        &[
            "schema",
            "declare-field",
            "thermostat",
            "wetness",
            "--expression",
            "CAST(humidity AS DOUBLE) * 2",
        ],
    ));
    let derived = server.sql(&admin, "SELECT wetness FROM thermo");
    assert_eq!(derived.body["rows"], json!([[100.0]]), "{}", derived.text);
    assert_success(&client(
        url,
        &admin,
        &[
            "schema",
            "declare-field",
            "thermostat",
            "humidity",
            "--type",
            "double",
            "--conversion",
            "humidity=humidity / 100",
        ],
    ));
    let converted = server.sql(&admin, "SELECT humidity FROM thermo");
    assert_eq!(converted.body["rows"], json!([[0.5]]), "{}", converted.text);
    assert_success(&client(
        url,
        &admin,
        &["schema", "drop-field", "thermostat", "humidity"],
    ));
    let dropped = server.sql(&admin, "SELECT humidity FROM thermo");
    assert_eq!(
        dropped.status, 400,
        "a dropped field is hidden: {}",
        dropped.text
    );
    let malformed = client(
        url,
        &admin,
        &[
            "schema",
            "declare-field",
            "thermostat",
            "humidity",
            "--conversion",
            "x",
        ],
    );
    assert_eq!(malformed.status.code(), Some(2), "clap refuses it");
    assert!(
        stderr(&malformed).contains("is not NAME=SQL"),
        "{}",
        stderr(&malformed)
    );

    // Nothing to change is refused locally, before any request.
    let empty = client(
        url,
        &admin,
        &["schema", "alter-field", "thermostat", "temperature"],
    );
    assert_eq!(empty.status.code(), Some(1));
    assert!(
        stderr(&empty).contains("nothing to change"),
        "{}",
        stderr(&empty)
    );

    let history = client(url, &admin, &["schema", "history"]);
    assert_success(&history);
    // create, declare, alter metric, alter field: four versions, plus the header and rule.
    assert!(
        stdout(&history).lines().count() >= 6,
        "{}",
        stdout(&history)
    );

    assert_success(&client(
        url,
        &admin,
        &["schema", "delete-metric", "thermostat"],
    ));
    let missing = client(url, &admin, &["schema", "show", "thermostat"]);
    assert_eq!(missing.status.code(), Some(1));

    assert_success(&client(
        url,
        &admin,
        &["settings", "set", "--metric-keys", "metrictype,source"],
    ));
    let settings = json_out(&client(url, &admin, &["settings", "show", "--json"]));
    assert_eq!(settings["metric_keys"], json!(["metrictype", "source"]));
}

/// Parses "accepted A, rejected R in ..." from a write summary.
fn write_counts(output: &Output) -> (u64, u64) {
    let text = stdout(output);
    let line = text
        .lines()
        .find(|l| l.starts_with("accepted "))
        .unwrap_or_else(|| panic!("no summary line:\n{text}\n{}", stderr(output)));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(2)
        .filter_map(|s| s.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

fn rejected_lines(output: &Output) -> Vec<u64> {
    stdout(output)
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("line "))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect()
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn write_reports_counts_and_rejected_lines_for_every_format() {
    let server = TestServer::start();
    let url = server.url();
    let admin = server.create_tenant("acme");
    let writer = server.create_key(&admin, "write");
    let dir = tempfile::tempdir().unwrap();

    // NDJSON with blank lines, a missing timestamp (line 4) and malformed JSON (line 7); batches
    // of 2 so the errors' batch-relative indexes must be mapped back.
    let ndjson = write_file(
        dir.path(),
        "events.ndjson",
        "{\"metrictype\":\"m\",\"timestamp\":1000,\"v\":1}\n\
         {\"metrictype\":\"m\",\"timestamp\":2000,\"v\":2}\n\
         \n\
         {\"metrictype\":\"m\",\"v\":3}\n\
         {\"metrictype\":\"m\",\"timestamp\":4000,\"v\":4}\n\
         {\"metrictype\":\"m\",\"timestamp\":5000,\"v\":5}\n\
         {\"metrictype\":\"m\",\"timestamp\":\n\
         {\"metrictype\":\"m\",\"timestamp\":6000,\"v\":6}\n",
    );
    let output = client(url, &writer, &["write", &ndjson, "--batch-size", "2"]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    assert_eq!(write_counts(&output), (5, 2));
    assert_eq!(rejected_lines(&output), vec![4, 7], "{}", stdout(&output));
    assert!(
        stdout(&output).contains("line 4 (event 3)"),
        "{}",
        stdout(&output)
    );

    // A JSON array spread over lines; --metric names the metric for every event.
    let array = write_file(
        dir.path(),
        "events.json",
        "[\n  {\"timestamp\": 1000, \"v\": 1},\n  {\"v\": 2},\n  {\n    \"timestamp\": 3000,\n    \"v\": 3\n  }\n]\n",
    );
    let output = client(url, &writer, &["write", &array, "--metric", "arr"]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    assert_eq!(write_counts(&output), (2, 1));
    assert_eq!(rejected_lines(&output), vec![3]);

    // CSV: values go as strings, empty cells are left out, the header is line 1.
    let csv = write_file(
        dir.path(),
        "events.csv",
        "metrictype,timestamp,temp\nc,1000,21.5\nc,,22\nc,3000,\n",
    );
    let output = client(url, &writer, &["write", &csv, "--json"]);
    let summary: Value = serde_json::from_slice(&output.stdout).expect("json summary");
    assert_eq!(output.status.code(), Some(3), "{summary}");
    assert_eq!(summary["accepted"], 2, "{summary}");
    assert_eq!(summary["rejected"], 1, "{summary}");
    assert_eq!(summary["errors"][0]["line"], 3, "{summary}");

    // All accepted from stdin with the format given explicitly: exit 0. Re-sending the same
    // events is accepted again (stored once).
    let output = strata(
        &["write", "-", "--format", "ndjson", "--url", url, "--key", &writer],
        &[],
        Some("{\"metrictype\":\"s\",\"timestamp\":1,\"v\":1}\n{\"metrictype\":\"s\",\"timestamp\":2,\"v\":2}\n"),
    );
    assert_success(&output);
    assert_eq!(write_counts(&output), (2, 0));

    // Format detection by the first byte when the extension says nothing.
    let guessed = write_file(
        dir.path(),
        "events.txt",
        "\n\n[{\"metrictype\":\"g\",\"timestamp\":1}, {\"metrictype\":\"g\"}]",
    );
    let output = client(url, &writer, &["write", &guessed]);
    assert_eq!(write_counts(&output), (1, 1));
    assert_eq!(rejected_lines(&output), vec![3]);

    // A key that may not write fails the whole run with the server's message.
    let reader = server.create_key(&admin, "read");
    let output = client(url, &reader, &["write", &csv]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("(HTTP 403)"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn rollups_through_the_cli() {
    let server = TestServer::start();
    let url = server.url();
    let admin = server.create_tenant("acme");
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "e.ndjson",
        "{\"metrictype\":\"m\",\"timestamp\":1000,\"v\":1}\n{\"metrictype\":\"m\",\"timestamp\":61000,\"v\":2}\n{\"metrictype\":\"m\",\"timestamp\":62000,\"v\":4}\n",
    );
    assert_success(&client(url, &admin, &["write", &file]));
    let sql = "SELECT date_bin(INTERVAL '1 minute', timestamp) AS timestamp, count(*) AS n FROM m GROUP BY 1";
    let created = client(url, &admin, &["rollup", "create", "m_1m", sql, "--wait"]);
    assert_success(&created);
    assert!(
        stdout(&created).contains("created rollup m_1m"),
        "{}",
        stdout(&created)
    );
    assert!(stdout(&created).contains("current"), "{}", stdout(&created));
    let shown = json_out(&client(
        url,
        &admin,
        &["rollup", "show", "m_1m", "--sync", "--json"],
    ));
    assert_eq!(shown["state"], "current");
    let rows = json_out(&client(
        url,
        &admin,
        &["sql", "--json", "SELECT n FROM m_1m ORDER BY timestamp"],
    ));
    assert_eq!(rows["rows"], json!([[1], [2]]));
    let listed = client(url, &admin, &["rollup", "list"]);
    assert_success(&listed);
    assert!(stdout(&listed).contains("m_1m"), "{}", stdout(&listed));
    let bad = client(url, &admin, &["rollup", "create", "bad", "SELECT v FROM m"]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("GROUP BY"), "{}", stderr(&bad));
    assert_success(&client(url, &admin, &["rollup", "delete", "m_1m"]));
    let gone = client(url, &admin, &["rollup", "show", "m_1m"]);
    assert!(!gone.status.success());
}

#[test]
fn completions_and_man_pages_come_from_the_flag_definitions() {
    let bash = strata(&["completions", "bash"], &[], None);
    assert_success(&bash);
    let script = stdout(&bash);
    assert!(script.contains("complete -F _strata"), "{script}");
    assert!(
        script.contains("--min-interval-ms"),
        "every flag is completed"
    );
    assert!(!strata(&["completions", "tcsh"], &[], None).status.success());

    let man = strata(&["man"], &[], None);
    assert_success(&man);
    assert!(stdout(&man).starts_with(".ie \\n(.g"), "roff");
    assert!(stdout(&man).contains(".TH strata 1"), "{}", stdout(&man));
    let dir = tempfile::tempdir().unwrap();
    let pages = strata(
        &["man", "--out-dir", dir.path().to_str().unwrap()],
        &[],
        None,
    );
    assert_success(&pages);
    for page in ["strata.1", "strata-sql.1", "strata-serve.1"] {
        assert!(dir.path().join(page).is_file(), "{page} written");
    }
}

#[test]
fn sql_prints_tables_csv_and_json() {
    let server = TestServer::start();
    let url = server.url();
    let admin = server.create_tenant("acme");
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "e.ndjson",
        "{\"metrictype\":\"m\",\"timestamp\":1000,\"name\":\"a\"}\n{\"metrictype\":\"m\",\"timestamp\":2000,\"name\":\"bb\"}\n",
    );
    assert_success(&client(url, &admin, &["write", &file]));

    let table = client(url, &admin, &["sql", "SELECT name FROM m ORDER BY name"]);
    assert_success(&table);
    assert_eq!(stdout(&table), "name\n----\na\nbb\n(2 rows)\n");

    let csv = client(
        url,
        &admin,
        &["sql", "--format", "csv", "SELECT name FROM m ORDER BY name"],
    );
    assert_success(&csv);
    assert!(stdout(&csv).contains("a\nbb"), "{}", stdout(&csv));

    let json = json_out(&client(
        url,
        &admin,
        &["sql", "--json", "SELECT name FROM m ORDER BY name"],
    ));
    assert_eq!(json["rows"], json!([["a"], ["bb"]]));

    // The shell: a statement over two lines, an error that does not end the session, \q.
    let shell = strata(
        &["sql", "--url", url, "--key", &admin],
        &[],
        Some("SELECT name\nFROM m ORDER BY name;\nSELECT nope FROM m;\nSELECT count(*) AS n FROM m;\n\\q\nSELECT 1;\n"),
    );
    let out = stdout(&shell);
    assert!(out.contains("(2 rows)"), "{out}");
    assert!(out.contains("(1 row)"), "{out}");
    assert_eq!(
        out.matches("rows)").count() + out.matches("row)").count(),
        2,
        "{out}"
    );
    assert!(stderr(&shell).contains("error: "), "{}", stderr(&shell));
    assert_eq!(shell.status.code(), Some(1), "a script with errors fails");

    // A `;` inside a literal or a comment does not end the statement; two on one line both run.
    let quoted = strata(
        &["sql", "--url", url, "--key", &admin],
        &[],
        Some("SELECT 'a;b' AS x -- not; the end\n; SELECT '東京' AS city, 1 AS n;\n"),
    );
    assert_success(&quoted);
    assert_eq!(
        stdout(&quoted),
        "x\n---\na;b\n(1 row)\ncity  n\n----  -\n東京  1\n(1 row)\n"
    );

    // -f runs a file's statements, -o writes their results to a file.
    let script = write_file(
        dir.path(),
        "q.sql",
        "SELECT name FROM m\nORDER BY name; SELECT 'x;y' AS s",
    );
    let results = dir.path().join("out.txt");
    let from_file = client(
        url,
        &admin,
        &[
            "sql",
            "-f",
            &script,
            "-o",
            results.to_str().unwrap(),
            "--format",
            "csv",
        ],
    );
    assert_success(&from_file);
    assert_eq!(stdout(&from_file), "", "results went to the file");
    let written = std::fs::read_to_string(&results).unwrap();
    assert!(
        written.contains("a\nbb") && written.contains("x;y"),
        "{written}"
    );
    let missing = client(url, &admin, &["sql", "-f", "/nonexistent/q.sql"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("/nonexistent/q.sql"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn sql_live_prints_the_answer_then_each_new_row_as_json_lines() {
    let server = TestServer::start();
    let url = server.url();
    let admin = server.create_tenant("acme");
    let write = |line: &str| {
        let answer = server.post_raw(
            "/api/v1/write",
            &admin,
            "application/x-ndjson",
            line.as_bytes().to_vec(),
        );
        assert_eq!(answer.status, 200, "{}", answer.text);
    };
    write("{\"metrictype\":\"m\",\"timestamp\":1000,\"name\":\"a\"}\n");
    let mut child = Command::new(BIN)
        .args([
            "sql", "--live", "--format", "json", "--url", url, "--key", &admin,
        ])
        .arg("SELECT name FROM m WHERE name <> 'skip'")
        .env_remove("STRATA_URL")
        .env_remove("STRATA_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || -> Value {
        let line = lines.next().expect("a line").expect("text");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let first = next();
    assert_eq!(first["event"], "snapshot");
    assert_eq!(first["data"]["mode"], "tail");
    assert_eq!(first["data"]["rows"], json!([["a"]]));
    write("{\"metrictype\":\"m\",\"timestamp\":2000,\"name\":\"skip\"}\n{\"metrictype\":\"m\",\"timestamp\":3000,\"name\":\"b\"}\n");
    let update = next();
    assert_eq!(update["event"], "rows");
    assert_eq!(update["data"]["rows"], json!([["b"]]));
    let _ = child.kill();
    let _ = child.wait();

    // Refused before any stream: the planner's message and exit code 1.
    let bad = client(url, &admin, &["sql", "--live", "SELECT nope FROM m"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("nope"), "{}", stderr(&bad));
    let csv = client(
        url,
        &admin,
        &["sql", "--live", "--format", "csv", "SELECT 1"],
    );
    assert_eq!(csv.status.code(), Some(1));
    assert!(stderr(&csv).contains("csv"), "{}", stderr(&csv));
}

/// One request the stub server received.
#[derive(Debug, Clone)]
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: std::time::Instant,
}

/// A scripted HTTP server: answers requests with `answers` in order (status, body), one
/// connection per request, and records what it received.
fn stub_server(answers: Vec<(u16, String)>) -> (String, Arc<Mutex<Vec<Received>>>) {
    stub_server_with_headers(answers.into_iter().map(|(s, b)| (s, "", b)).collect())
}

/// [`stub_server`] whose answers carry extra header lines (each ending in `\r\n`).
fn stub_server_with_headers(
    answers: Vec<(u16, &'static str, String)>,
) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    std::thread::spawn(move || {
        for (status, headers, body) in answers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let request = read_request(&stream);
            log.lock().unwrap().push(request);
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, received)
}

fn read_request(stream: &TcpStream) -> Received {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    Received {
        request_line: request_line.trim_end().to_string(),
        headers,
        body,
        at: std::time::Instant::now(),
    }
}

#[test]
fn write_waits_as_long_as_retry_after_asks() {
    let (url, received) = stub_server_with_headers(vec![
        (
            429,
            "retry-after: 2\r\n",
            r#"{"error":"slow down"}"#.to_string(),
        ),
        (
            200,
            "",
            r#"{"accepted":1,"rejected":0,"errors":[]}"#.to_string(),
        ),
    ]);
    let output = strata(
        &["write", "-", "--metric", "m", "--url", &url, "--key", "k1"],
        &[],
        Some("{\"timestamp\":1}\n"),
    );
    assert_success(&output);
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 2, "one refusal, one retry");
    let waited = received[1].at - received[0].at;
    // Without Retry-After the first backoff is 0.25-0.375 s.
    assert!(
        waited >= std::time::Duration::from_secs(2),
        "retried after {waited:?}"
    );
    // The announced wait is Retry-After plus up to half again (printed to 0.1 s: 2.0 to 3.0).
    let said = stderr(&output);
    let wait: f64 = said
        .split("retry 1/5 in ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("no announced wait: {said}"));
    assert!((2.0..=3.0).contains(&wait), "{said}");
}

#[test]
fn write_retries_a_5xx_with_the_identical_batch() {
    let (url, received) = stub_server(vec![
        (503, r#"{"error":"busy"}"#.to_string()),
        (
            200,
            r#"{"accepted":2,"rejected":0,"errors":[]}"#.to_string(),
        ),
    ]);
    let output = strata(
        &[
            "write",
            "-",
            "--metric",
            "new machine",
            "--url",
            &url,
            "--key",
            "k1",
        ],
        &[],
        Some("{\"timestamp\":1}\n[1]\n"),
    );
    assert_success(&output);
    assert_eq!(write_counts(&output), (2, 0));
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 2, "one failure, one retry");
    assert_eq!(received[0].body, received[1].body);
    assert_eq!(received[0].body, b"{\"timestamp\":1}\n[1]\n");
    assert_eq!(
        received[0].request_line,
        "POST /api/v1/write?metric=new+machine HTTP/1.1"
    );
    let header = |name: &str| {
        received[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    assert_eq!(header("authorization").as_deref(), Some("Bearer k1"));
}

#[test]
fn write_does_not_retry_a_4xx_and_fails() {
    let (url, received) = stub_server(vec![
        (413, r#"{"error":"body too large"}"#.to_string()),
        (
            200,
            r#"{"accepted":1,"rejected":0,"errors":[]}"#.to_string(),
        ),
    ]);
    let output = strata(
        &["write", "-", "--url", &url, "--key", "k"],
        &[],
        Some("{\"metrictype\":\"m\",\"timestamp\":1}\n"),
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("body too large (HTTP 413)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(received.lock().unwrap().len(), 1);
}

#[test]
fn schema_paths_encode_names_with_spaces_and_slashes() {
    let (url, received) = stub_server(vec![(200, r#"{"version":3,"change":"ok"}"#.to_string())]);
    let output = client(
        &url,
        "k",
        &[
            "schema",
            "declare-field",
            "new machine",
            "a/b",
            "--type",
            "int",
        ],
    );
    assert_success(&output);
    assert!(
        stdout(&output).contains("schema version 3: ok"),
        "{}",
        stdout(&output)
    );
    let received = received.lock().unwrap();
    assert_eq!(
        received[0].request_line,
        "PUT /api/v1/schema/metrics/new%20machine/fields/a%2Fb HTTP/1.1"
    );
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(
        body,
        json!({"type": "integer", "aliases": [], "hidden": false})
    );
}

/// Asserts that a client command failed (exit 1) with `needle` in its error.
#[track_caller]
fn assert_fails_with(output: &Output, needle: &str) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    assert!(stderr(output).contains(needle), "{}", stderr(output));
}

/// A URL nobody listens on (bound, then released): deliveries to it fail.
fn dead_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/hook")
}

#[test]
fn alerts_channels_and_silences_through_the_cli() {
    // Webhooks on 127.0.0.1 are refused without --allow-private-webhooks.
    let server = TestServer::start_with(&["--allow-private-webhooks"]);
    let url = server.url();
    let admin = server.create_tenant("acme");
    let dead = cli_channels(url, &admin);
    cli_channel_test_and_list(url, &admin, &dead);
    crate::common::write_events(
        &server,
        &admin,
        &[
            json!({"metrictype": "thermostat", "timestamp": 1_700_000_000_000_i64, "name": "truck_1", "temp": 35.0}),
            json!({"metrictype": "thermostat", "timestamp": 1_700_000_000_000_i64, "name": "truck_2", "temp": 20.0}),
        ],
    );
    // Fields sent by devices are text until declared; the rules compare temp as a number.
    let declared = server.put(
        "/api/v1/schema/metrics/thermostat/fields/temp",
        &admin,
        &json!({"type": "double"}),
    );
    assert!(declared.status < 300, "declare temp: {}", declared.text);
    cli_alert_rules(url, &admin);
    cli_alert_refusals(url, &admin);
    cli_alert_list_and_show(url, &admin);
    cli_alert_evaluation(url, &admin);
    let (first, second) = cli_silence_create(url, &admin);
    cli_silence_list_and_delete(url, &admin, &first, &second);
    cli_cleanup(url, &admin);
}

/// `strata channel create`: a webhook with a secret that nobody answers (the rules' channel, whose
/// URL is returned) and the refusals.
fn cli_channels(url: &str, admin: &str) -> String {
    let dead = dead_url();
    let created = client(
        url,
        admin,
        &[
            "channel",
            "create",
            "ops",
            "--kind",
            "webhook",
            "--webhook-url",
            &dead,
            "--secret",
            "s3cret",
            "--timeout",
            "2s",
        ],
    );
    assert_success(&created);
    assert!(
        stdout(&created).contains("created webhook channel ops"),
        "{}",
        stdout(&created)
    );
    let again = client(
        url,
        admin,
        &[
            "channel",
            "create",
            "ops",
            "--kind",
            "webhook",
            "--webhook-url",
            &dead,
        ],
    );
    assert_fails_with(&again, "(HTTP 409)");
    // Refused locally, before any request: a webhook needs its URL.
    let no_target = client(url, admin, &["channel", "create", "x", "--kind", "webhook"]);
    assert_fails_with(&no_target, "--webhook-url");
    // The server runs without --smtp-url, so email channels are refused.
    let mail = client(
        url,
        admin,
        &[
            "channel",
            "create",
            "mail",
            "--kind",
            "email",
            "--to",
            "a@example.com",
        ],
    );
    assert_fails_with(&mail, "(HTTP 400)");
    dead
}

/// `strata channel test` through a stub receiver and through `ops` (nobody listens), then
/// `strata channel list`.
fn cli_channel_test_and_list(url: &str, admin: &str, dead: &str) {
    // The probe's stub receiver answers one request with 200.
    let (stub, received) = stub_server(vec![(200, "{}".to_string())]);
    let probe = json_out(&client(
        url,
        admin,
        &[
            "channel",
            "create",
            "probe",
            "--kind",
            "webhook",
            "--webhook-url",
            &format!("{stub}/probe"),
            "--secret",
            "k",
            "--json",
        ],
    ));
    assert_eq!(probe["name"], "probe", "{probe}");
    assert_eq!(probe["kind"], "webhook", "{probe}");
    assert_eq!(probe["has_secret"], true, "{probe}");
    let tested = client(url, admin, &["channel", "test", "probe"]);
    assert_success(&tested);
    assert!(stdout(&tested).contains("delivered"), "{}", stdout(&tested));
    check_test_delivery(&received);
    // Nobody listens behind `ops`: the test send fails with 502, exit 1.
    assert_fails_with(
        &client(url, admin, &["channel", "test", "ops"]),
        "(HTTP 502)",
    );

    let listed = client(url, admin, &["channel", "list", "--json"]);
    assert!(
        !stdout(&listed).contains("s3cret"),
        "secrets are never listed"
    );
    let listed = json_out(&listed);
    let channels = listed["channels"].as_array().expect("channels");
    let ops = channels.iter().find(|c| c["name"] == "ops").expect("ops");
    assert_eq!(ops["url"], dead, "{listed}");
    assert_eq!(ops["has_secret"], true, "{listed}");
    assert_eq!(channels.len(), 2, "{listed}");
    let table = stdout(&client(url, admin, &["channel", "list"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("ops") && l.contains(dead)),
        "{table}"
    );
    assert!(!table.contains("s3cret"), "{table}");
}

/// The stub got one signed test notification (state and alert `test`).
fn check_test_delivery(received: &Arc<Mutex<Vec<Received>>>) {
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    assert!(
        request.request_line.starts_with("POST /probe "),
        "{}",
        request.request_line
    );
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert!(header("x-strata-notification-id").is_some(), "{request:?}");
    let signature = header("x-strata-signature").unwrap_or_default();
    let hex = signature.strip_prefix("sha256=").unwrap_or_default();
    assert!(
        hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{signature:?}"
    );
    let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
    assert_eq!(body["state"], "test", "{body}");
    assert_eq!(body["alert"], "test", "{body}");
}

/// `strata alert create` from flags, --json and --file.
fn cli_alert_rules(url: &str, admin: &str) {
    let hot = client(
        url,
        admin,
        &[
            "alert",
            "create",
            "hot",
            "--kind",
            "query",
            "--sql",
            "SELECT name, avg(temp) AS value FROM thermostat GROUP BY name",
            "--condition",
            "value > 30",
            "--every",
            "1s",
            "--channel",
            "ops",
        ],
    );
    assert_success(&hot);
    assert!(
        stdout(&hot).contains("created query alert hot"),
        "{}",
        stdout(&hot)
    );
    let fault_rule = r#"{"name":"fault","kind":"event","metric":"thermostat","condition":"temp > 90","channels":["ops"]}"#;
    let fault = client(url, admin, &["alert", "create", "--json", fault_rule]);
    assert_success(&fault);
    assert!(
        stdout(&fault).contains("created event alert fault"),
        "{}",
        stdout(&fault)
    );
    assert_fails_with(
        &client(url, admin, &["alert", "create", "--json", fault_rule]),
        "(HTTP 409)",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "silent.json",
        r#"{"name":"silent","kind":"absence","metric":"thermostat","by":["name"],"field":"temp","for":"30s","channels":[]}"#,
    );
    let silent = client(url, admin, &["alert", "create", "--file", &file]);
    assert_success(&silent);
    assert!(
        stdout(&silent).contains("created absence alert silent"),
        "{}",
        stdout(&silent)
    );
}

/// Rules the server refuses (400 with the planner's message, unknown channel) and one the CLI
/// refuses before any request.
fn cli_alert_refusals(url: &str, admin: &str) {
    // The planner's message for SQL that does not parse; a local refusal for a missing flag.
    let bad_sql = [
        "alert",
        "create",
        "bad",
        "--kind",
        "query",
        "--sql",
        "SELEC name FROM thermostat",
    ];
    assert_fails_with(&client(url, admin, &bad_sql), "(HTTP 400)");
    let incomplete = [
        "alert",
        "create",
        "x",
        "--kind",
        "event",
        "--metric",
        "thermostat",
    ];
    assert_fails_with(&client(url, admin, &incomplete), "needs --condition");
    let unknown_channel = [
        "alert",
        "create",
        "y",
        "--kind",
        "query",
        "--sql",
        "SELECT 1 AS value",
        "--channel",
        "nope",
    ];
    assert_fails_with(&client(url, admin, &unknown_channel), "(HTTP 400)");
}

/// `strata alert list` and `strata alert show`, as JSON and as text.
fn cli_alert_list_and_show(url: &str, admin: &str) {
    let listed = json_out(&client(url, admin, &["alert", "list", "--json"]));
    let mut kinds: Vec<(String, String)> = listed["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().into(),
                a["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    kinds.sort();
    let expected = [("fault", "event"), ("hot", "query"), ("silent", "absence")];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, k)| (n.to_string(), k.to_string()))
        .collect();
    assert_eq!(kinds, expected, "{listed}");
    let table = stdout(&client(url, admin, &["alert", "list"]));
    for name in ["fault", "hot", "silent"] {
        assert!(table.lines().any(|l| l.starts_with(name)), "{table}");
    }

    let shown = json_out(&client(url, admin, &["alert", "show", "hot", "--json"]));
    assert_eq!(shown["name"], "hot", "{shown}");
    assert_eq!(shown["kind"], "query", "{shown}");
    assert_eq!(shown["condition"], "value > 30", "{shown}");
    assert_eq!(shown["channels"], json!(["ops"]), "{shown}");
    assert!(shown["health"].is_string(), "{shown}");
    assert!(shown["instances"].is_array(), "{shown}");
    let text = stdout(&client(url, admin, &["alert", "show", "hot"]));
    assert!(text.starts_with("alert hot (query)"), "{text}");
    assert!(text.contains("value > 30"), "{text}");
}

/// `strata alert test` evaluates without notifying; `ack` answers a count.
fn cli_alert_evaluation(url: &str, admin: &str) {
    let tested = json_out(&client(url, admin, &["alert", "test", "hot", "--json"]));
    assert_eq!(tested["alert"], "hot", "{tested}");
    let instances = tested["instances"].as_array().expect("instances");
    let active = |device: &str| {
        instances
            .iter()
            .find(|i| i["labels"]["name"] == device)
            .unwrap_or_else(|| panic!("no instance of {device}: {tested}"))["active"]
            .clone()
    };
    assert_eq!(active("truck_1"), true, "{tested}");
    assert_eq!(active("truck_2"), false, "{tested}");
    let text = stdout(&client(url, admin, &["alert", "test", "hot"]));
    assert!(
        text.lines()
            .any(|l| l.contains("name=truck_1") && l.contains("yes")),
        "{text}"
    );
    // Whether truck_1 fires yet depends on the 1 s schedule; the answer is a count either way.
    let acked = json_out(&client(
        url,
        admin,
        &["alert", "ack", "hot", "--label", "name=truck_1", "--json"],
    ));
    assert!(acked["acknowledged"].is_u64(), "{acked}");
    let acked = client(url, admin, &["alert", "ack", "hot"]);
    assert_success(&acked);
    assert!(
        stdout(&acked).contains("instance(s) of hot"),
        "{}",
        stdout(&acked)
    );
}

/// `strata silence create`, as JSON and as text; returns the two silences' ids.
fn cli_silence_create(url: &str, admin: &str) -> (String, String) {
    let created = json_out(&client(
        url,
        admin,
        &[
            "silence",
            "create",
            "--matcher",
            "alert=hot",
            "--matcher",
            "name=truck_1",
            "--for",
            "2h",
            "--comment",
            "maintenance",
            "--json",
        ],
    ));
    let first = created["id"].as_str().expect("id").to_string();
    assert_eq!(
        created["matchers"],
        json!({"alert": "hot", "name": "truck_1"}),
        "{created}"
    );
    assert_eq!(created["comment"], "maintenance", "{created}");
    assert_eq!(created["active"], true, "{created}");
    let human = client(
        url,
        admin,
        &[
            "silence",
            "create",
            "--matcher",
            "alert=fault",
            "--until",
            "2099-01-01T00:00:00Z",
        ],
    );
    assert_success(&human);
    let second = stdout(&human)
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .expect("id line")
        .trim()
        .to_string();
    // `until` must be after the start.
    let past = [
        "silence",
        "create",
        "--matcher",
        "alert=hot",
        "--until",
        "2000-01-01T00:00:00Z",
    ];
    assert_fails_with(&client(url, admin, &past), "(HTTP 400)");
    (first, second)
}

/// `strata silence list|delete` with the silences `first` and `second`.
fn cli_silence_list_and_delete(url: &str, admin: &str, first: &str, second: &str) {
    let ids = |listed: &Value| -> Vec<String> {
        listed["silences"]
            .as_array()
            .expect("silences")
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let listed = json_out(&client(url, admin, &["silence", "list", "--json"]));
    assert!(
        ids(&listed).iter().any(|i| i == first) && ids(&listed).iter().any(|i| i == second),
        "{listed}"
    );
    let table = stdout(&client(url, admin, &["silence", "list"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(first) && l.contains("alert=hot, name=truck_1")),
        "{table}"
    );
    let deleted = client(url, admin, &["silence", "delete", first]);
    assert_success(&deleted);
    assert!(stdout(&deleted).contains(first), "{}", stdout(&deleted));
    assert_fails_with(
        &client(url, admin, &["silence", "delete", first]),
        "(HTTP 404)",
    );
    let listed = json_out(&client(url, admin, &["silence", "list", "--json"]));
    assert_eq!(ids(&listed), vec![second], "{listed}");
}

/// `strata alert delete` and `strata channel delete`, in the order the server allows.
fn cli_cleanup(url: &str, admin: &str) {
    // `ops` is still named by rules.
    assert_fails_with(
        &client(url, admin, &["channel", "delete", "ops"]),
        "(HTTP 409)",
    );
    for name in ["hot", "fault", "silent"] {
        let deleted = client(url, admin, &["alert", "delete", name]);
        assert_success(&deleted);
        assert!(
            stdout(&deleted).contains(&format!("deleted alert {name}")),
            "{}",
            stdout(&deleted)
        );
    }
    assert_fails_with(&client(url, admin, &["alert", "show", "hot"]), "(HTTP 404)");
    let listed = json_out(&client(url, admin, &["alert", "list", "--json"]));
    assert_eq!(listed["alerts"], json!([]), "{listed}");
    for name in ["ops", "probe"] {
        assert_success(&client(url, admin, &["channel", "delete", name]));
    }
    assert_fails_with(
        &client(url, admin, &["channel", "delete", "ops"]),
        "(HTTP 404)",
    );
    let listed = json_out(&client(url, admin, &["channel", "list", "--json"]));
    assert_eq!(listed["channels"], json!([]), "{listed}");
}

#[test]
fn alert_commands_send_the_documented_requests() {
    let (url, received) = stub_server(vec![
        (201, r#"{"name":"ops","kind":"webhook"}"#.to_string()),
        (201, r#"{"name":"b","kind":"query"}"#.to_string()),
        (200, r#"{"acknowledged":1}"#.to_string()),
        (200, r#"{"deleted":"abc"}"#.to_string()),
        (200, r#"{"delivered":false}"#.to_string()),
    ]);
    assert_success(&client(
        &url,
        "k",
        &[
            "channel",
            "create",
            "ops",
            "--kind",
            "webhook",
            "--webhook-url",
            "http://h/x",
            "--secret",
            "s",
            "--timeout",
            "2s",
        ],
    ));
    // A NAME given with --json replaces the body's name.
    let rule = r#"{"name":"a","kind":"query","sql":"SELECT 1 AS value"}"#;
    let created = client(&url, "k", &["alert", "create", "b", "--json", rule]);
    assert_success(&created);
    assert!(
        stdout(&created).contains("created query alert b"),
        "{}",
        stdout(&created)
    );
    let acked = client(
        &url,
        "k",
        &["alert", "ack", "hot", "--label", "name=truck 7"],
    );
    assert_success(&acked);
    assert!(
        stdout(&acked).contains("acknowledged 1 instance(s) of hot"),
        "{}",
        stdout(&acked)
    );
    assert_success(&client(&url, "k", &["silence", "delete", "abc"]));
    // A test send that was not delivered is a failure.
    let tested = client(&url, "k", &["channel", "test", "ops"]);
    assert_eq!(tested.status.code(), Some(1), "{}", stdout(&tested));

    let received = received.lock().unwrap();
    let lines: Vec<&str> = received.iter().map(|r| r.request_line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "POST /api/v1/channels HTTP/1.1",
            "POST /api/v1/alerts HTTP/1.1",
            "POST /api/v1/alerts/hot/ack HTTP/1.1",
            "DELETE /api/v1/silences/abc HTTP/1.1",
            "POST /api/v1/channels/ops/test HTTP/1.1",
        ]
    );
    let body = |i: usize| -> Value { serde_json::from_slice(&received[i].body).unwrap() };
    assert_eq!(
        body(0),
        json!({"name": "ops", "kind": "webhook", "url": "http://h/x", "secret": "s", "timeout": "2s"})
    );
    assert_eq!(
        body(1),
        json!({"name": "b", "kind": "query", "sql": "SELECT 1 AS value"})
    );
    assert_eq!(body(2), json!({"labels": {"name": "truck 7"}}));
}
