//! Issue 19, InfluxDB line protocol: `/api/v2/write` from the official Python client, `/write`
//! (InfluxDB 1) from curl, and `/api/v3/write_lp`, on the real server. Lines take the JSON
//! events' path: aliases apply, unknown fields are kept, identical re-sends are stored once, a
//! malformed line is rejected with its line number while the good lines are stored, and every
//! rejected line is in the error log.

use std::io::Write;
use std::process::Command;

use flate2::write::GzEncoder;
use reqwest::Method;
use serde_json::{json, Value};
use strata_testkit::available;

use crate::cloud::{clients_dir, probe, python};
use crate::common::{thermostat_tenant as tenant, Answer, TestServer};

fn rows(server: &TestServer, key: &str, sql: &str) -> Vec<Value> {
    let answer = server.sql(key, sql);
    assert_eq!(answer.status, 200, "{sql}: {}", answer.text);
    answer.body["rows"].as_array().expect("rows").clone()
}

/// POSTs line protocol to `path` with `Authorization: <authorization>`.
fn post_lines(server: &TestServer, path: &str, authorization: &str, body: Vec<u8>) -> Answer {
    server.send(
        server
            .request(Method::POST, path, None)
            .header("authorization", authorization)
            .body(body),
    )
}

#[test]
fn the_influxdb_python_client_writes_through_api_v2_with_aliases_and_partial_writes() {
    if !available(
        "python3 with influxdb-client",
        probe(&python(), &["-c", "import influxdb_client"], None),
    ) {
        return;
    }
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    let out = Command::new(python())
        .arg(clients_dir().join("influx_v2.py"))
        .arg(server.url())
        .arg(&key)
        .output()
        .expect("run influx_v2.py");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "influx_v2.py failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let partial = report["partial_error"]
        .as_str()
        .expect("the malformed batch failed");
    assert!(
        partial.starts_with("400") && partial.contains("line 2:"),
        "{partial}"
    );

    // `tmp` is an alias of `temp`: both readings read as temp. The malformed batch's good
    // lines were stored.
    let temps = rows(
        &server,
        &key,
        "SELECT name, temp FROM thermostat ORDER BY timestamp, name",
    );
    assert_eq!(
        temps,
        vec![
            json!(["py1", 21.5]),
            json!(["py1", 22.0]),
            json!(["py2", 1.0]),
            json!(["py2", 3.0])
        ]
    );
    let boiler = rows(&server, &key, "SELECT site, pressure FROM boiler");
    assert_eq!(
        boiler,
        vec![json!(["north", "2"])],
        "an unknown field reads as text"
    );
    let errors = rows(
        &server,
        &key,
        "SELECT stage, reason, payload FROM strata.errors",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0][0], "parse");
    assert_eq!(errors[0][2], "thermostat,name=py2 temp=");
}

#[test]
fn curl_writes_the_influxdb_1_form_and_resends_are_stored_once() {
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    let url = format!(
        "{}/write?db=telegraf&u=any&p={key}&precision=s",
        server.url()
    );
    for _ in 0..2 {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-XPOST",
                &url,
            ])
            .args(["--data-binary", "thermostat,name=c1 temp=19.5 1800000000"])
            .output()
            .expect("run curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "204");
    }
    let stored = rows(
        &server,
        &key,
        "SELECT name, temp, timestamp FROM thermostat",
    );
    assert_eq!(
        stored,
        vec![json!(["c1", 19.5, "2027-01-15T08:00:00Z"])],
        "an identical re-send is one row"
    );
}

#[test]
fn keys_are_read_from_token_bearer_basic_and_gzip_bodies_work_but_read_keys_may_not_write() {
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    let mut gzip = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(b"thermostat,name=g1 temp=1 1800000000000\n")
        .expect("gzip");
    let body = gzip.finish().expect("gzip");
    let answer = server.send(
        server
            .request(Method::POST, "/api/v2/write?bucket=b&precision=ms", None)
            .header("authorization", format!("Token {key}"))
            .header("content-encoding", "gzip")
            .body(body),
    );
    assert_eq!(answer.status, 204, "{}", answer.text);
    // The same line by two more doors: an identical re-send, stored once.
    let line = b"thermostat,name=g1 temp=1 1800000000000".to_vec();
    let bearer = post_lines(
        &server,
        "/api/v3/write_lp?db=x&precision=ms",
        &format!("Bearer {key}"),
        line.clone(),
    );
    assert_eq!(bearer.status, 204, "{}", bearer.text);
    let basic = server.send(
        server
            .request(Method::POST, "/write?db=x&precision=ms", None)
            .basic_auth("user", Some(&key))
            .body(line),
    );
    assert_eq!(basic.status, 204, "{}", basic.text);
    assert_eq!(
        rows(&server, &key, "SELECT count(*) FROM thermostat"),
        vec![json!([1])]
    );

    let wrong = post_lines(
        &server,
        "/api/v2/write",
        "Token sk_wrong",
        b"m v=1".to_vec(),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["code"], "unauthorized", "{}", wrong.text);
    let read = server.create_key(&key, "read");
    let refused = post_lines(
        &server,
        "/api/v2/write",
        &format!("Token {read}"),
        b"m v=1".to_vec(),
    );
    assert_eq!(refused.status, 403, "{}", refused.text);
    let precision = post_lines(
        &server,
        "/api/v2/write?precision=h",
        &format!("Token {key}"),
        b"m v=1".to_vec(),
    );
    assert_eq!(precision.status, 400);
    assert!(precision.body["message"]
        .as_str()
        .is_some_and(|m| m.contains("precision")));
}

#[test]
fn api_v3_lists_each_rejected_line_with_its_number() {
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    let body =
        "thermostat,name=a temp=1 1800000000000\n\nthermostat,name=a temp=\"x\" 1800000001000\n\
                thermostat temp= 5\ntimestamp v=1 1800000002000\n";
    let answer = post_lines(
        &server,
        "/api/v3/write_lp?db=x&precision=ms",
        &format!("Bearer {key}"),
        body.as_bytes().to_vec(),
    );
    assert_eq!(answer.status, 400, "{}", answer.text);
    let data = answer.body["data"].as_array().expect("data");
    let numbers: Vec<&Value> = data.iter().map(|d| &d["line_number"]).collect();
    assert_eq!(numbers, vec![&json!(4), &Value::Null], "{}", answer.text);
    assert_eq!(data[0]["original_line"], "thermostat temp= 5");
    assert!(
        data[1]["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("timestamp")),
        "a metric named timestamp is refused after parsing: {}",
        answer.text
    );
    // The text value under a double field is stored (read as NULL, as any value that does not
    // fit its type), so 2 lines are stored.
    assert_eq!(
        rows(&server, &key, "SELECT count(*) FROM thermostat"),
        vec![json!([2])]
    );
}

/// A metric a line protocol write creates takes its first line's tag keys as series keys, as
/// InfluxDB's series are measurement + tag set; a metric that exists keeps its own (none here).
#[test]
fn a_new_measurement_takes_its_tags_as_series_keys() {
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    let created = server.post("/api/v1/schema/metrics", &key, &json!({"name": "declared"}));
    assert_eq!(created.status, 201, "{}", created.text);
    let lines = "weather,site=lyon,room=a temp=1 1800000000\n\
                 weather,site=lyon,room=b,floor=2 temp=2 1800000001\n\
                 declared,site=x v=1 1800000000";
    let answer = post_lines(
        &server,
        "/api/v2/write?bucket=b&precision=s",
        &format!("Token {key}"),
        lines.as_bytes().to_vec(),
    );
    assert_eq!(answer.status, 204, "{}", answer.text);
    let schema = server.get("/api/v1/schema", &key);
    let metric = |name: &str| {
        schema.body["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no metric {name}: {}", schema.text))
            .clone()
    };
    assert_eq!(metric("weather")["series_keys"], json!(["site", "room"]));
    assert_eq!(metric("declared")["series_keys"], json!([]));
    assert_eq!(
        rows(
            &server,
            &key,
            "SELECT room, floor, CAST(temp AS DOUBLE) FROM weather ORDER BY timestamp"
        ),
        vec![json!(["a", null, 1.0]), json!(["b", "2", 2.0])]
    );
}
