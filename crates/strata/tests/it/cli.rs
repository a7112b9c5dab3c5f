//! The `strata` client commands, run as the real binary: against the real server (through the
//! shared harness) for tenants, keys, schema and writes, and against a scripted stub HTTP server
//! where the server's behaviour must be controlled exactly (retries, refused batches).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use crate::common::{TestServer, BIN};
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
                "serve", "tenant", "key", "settings", "schema", "write", "sql", "compact",
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
            &["--format", "table", "csv", "json", "\\q", "Examples"],
        ),
        (&["compact"], &["--url", "--key", "Example"]),
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
        Some(2),
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
        Some(2),
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
    assert_eq!(output.status.code(), Some(2), "{summary}");
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
}

/// One request the stub server received.
#[derive(Debug, Clone)]
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A scripted HTTP server: answers requests with `answers` in order (status, body), one
/// connection per request, and records what it received.
fn stub_server(answers: Vec<(u16, String)>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let request = read_request(&stream);
            log.lock().unwrap().push(request);
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
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
    }
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
