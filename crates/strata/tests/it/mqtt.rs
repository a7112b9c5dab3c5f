//! Issue 19, the MQTT listener (`strata serve --mqtt`): Debian's `mosquitto_pub` and Python's
//! paho-mqtt publish to the real server. A topic names the metric (and the device, or the
//! tenant's template's fields); payloads take the JSON events' path; a QoS 1 PUBACK means
//! durable, so kill -9 between publishes loses nothing acknowledged; wrong credentials, read
//! keys, foreign topics and subscriptions are refused, and refused payloads are in
//! `strata.errors`. With `--tls-cert/--tls-key` the listener speaks only TLS, with the given
//! certificate.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strata_testkit::available;

use crate::cloud::{clients_dir, probe, python};
use crate::common::{have_openssl, self_signed, thermostat_tenant as tenant, TestServer, BIN};

const MQTT: &[&str] = &["--mqtt", "127.0.0.1:0"];

fn have_mosquitto_pub() -> bool {
    available(
        "mosquitto_pub (Debian mosquitto-clients)",
        probe(std::path::Path::new("mosquitto_pub"), &["--version"], None)
            .or_else(|_| which("mosquitto_pub")),
    )
}

fn have_paho() -> bool {
    available(
        "python3 with paho-mqtt",
        probe(&python(), &["-c", "import paho.mqtt.client"], None),
    )
}

fn which(program: &str) -> Result<(), String> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map_err(|e| e.to_string())?;
    if found.status.success() {
        Ok(())
    } else {
        Err(format!("{program} is not on PATH"))
    }
}

/// `mosquitto_pub` with QoS 1; returns (success, stderr).
fn mosquitto_pub(
    server: &TestServer,
    user: &str,
    password: &str,
    extra: &[&str],
) -> (bool, String) {
    let addr = server.mqtt_addr();
    let out = Command::new("mosquitto_pub")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-u", user, "-P", password, "-q", "1"])
        .args(extra)
        .output()
        .expect("run mosquitto_pub");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One run of `mqtt_client.py MODE ...`; its JSON lines.
fn paho(server: &TestServer, user: &str, password: &str, mode: &str, args: &[&str]) -> Vec<Value> {
    let addr = server.mqtt_addr();
    let out = Command::new(python())
        .arg(clients_dir().join("mqtt_client.py"))
        .args([
            mode,
            &addr.ip().to_string(),
            &addr.port().to_string(),
            user,
            password,
        ])
        .args(args)
        .output()
        .expect("run mqtt_client.py");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mqtt_client.py {mode} failed:\n{stderr}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn rows(server: &TestServer, key: &str, sql: &str) -> Vec<Value> {
    let answer = server.sql(key, sql);
    assert_eq!(answer.status, 200, "{sql}: {}", answer.text);
    answer.body["rows"].as_array().expect("rows").clone()
}

#[test]
fn mosquitto_pub_devices_write_events_named_by_their_topic_in_both_versions() {
    if !have_mosquitto_pub() {
        return;
    }
    let server = TestServer::start_with(MQTT);
    let key = tenant(&server, "acme");
    let event = r#"{"timestamp": 1700000000000, "name": "t1", "tmp": 21.5}"#;
    for version in ["mqttv311", "mqttv5"] {
        let (ok, stderr) = mosquitto_pub(
            &server,
            "acme",
            &key,
            &["-V", version, "-t", "thermostat/truck_7", "-m", event],
        );
        assert!(ok, "{version}: {stderr}");
    }
    let array = r#"[{"timestamp": 1700000001000, "name": "t2", "temp": 30},
                    {"timestamp": 1700000002000, "name": "t3", "temp": 31, "device": "own"}]"#;
    let (ok, stderr) = mosquitto_pub(&server, "acme", &key, &["-t", "thermostat", "-m", array]);
    assert!(ok, "{stderr}");
    let stored = rows(
        &server,
        &key,
        "SELECT name, temp, device FROM thermostat ORDER BY timestamp",
    );
    assert_eq!(
        stored,
        vec![
            // The identical publish of both versions is stored once; `tmp` is temp's alias.
            json!(["t1", 21.5, "truck_7"]),
            json!(["t2", 30.0, null]),
            // The event's own field wins over the topic's.
            json!(["t3", 31.0, "own"]),
        ]
    );
}

#[test]
fn wrong_credentials_read_keys_foreign_topics_and_subscriptions_are_refused() {
    if !have_mosquitto_pub() || !have_paho() {
        return;
    }
    let server = TestServer::start_with(MQTT);
    let key = tenant(&server, "acme");
    let other = tenant(&server, "globex");
    let reader = server.create_key(&key, "read");
    let event = r#"{"timestamp": 1700000000000, "name": "t1", "temp": 1}"#;
    for (user, password, why) in [
        ("acme", "not-a-key", "bad user name or password"),
        ("acme", other.as_str(), "bad user name or password"),
        ("nobody", key.as_str(), "bad user name or password"),
        ("acme", reader.as_str(), "not authorised"),
    ] {
        let (ok, stderr) =
            mosquitto_pub(&server, user, password, &["-t", "thermostat", "-m", event]);
        assert!(!ok, "{user}/{password} was let in");
        assert!(stderr.to_lowercase().contains(why), "{user}: {stderr}");
    }
    // MQTT 5 answers a foreign topic with "not authorized" (135) and keeps the connection.
    let v5 = paho(&server, "acme", &key, "publish", &["5", "a/b/c", event]);
    assert_eq!(v5[0]["reason"], 135, "{v5:?}");
    assert_eq!(v5[0]["connected"], true, "{v5:?}");
    // 3.1.1 has no negative PUBACK: acknowledged (closing made clients re-send it forever),
    // and logged.
    let v3 = paho(&server, "acme", &key, "publish", &["3", "$SYS/x", event]);
    assert_eq!(v3[0]["acked"], true, "{v3:?}");
    assert_eq!(v3[0]["connected"], true, "{v3:?}");
    let granted = paho(&server, "acme", &key, "subscribe", &["3", "thermostat/#"]);
    assert_eq!(granted[0]["granted"], json!([128]), "3.1.1 SUBACK failure");
    let granted = paho(&server, "acme", &key, "subscribe", &["5", "thermostat/#"]);
    assert_eq!(
        granted[0]["granted"],
        json!([135]),
        "5 SUBACK not authorized"
    );
    let logged = rows(
        &server,
        &key,
        "SELECT stage, reason, payload FROM strata.errors ORDER BY time",
    );
    assert_eq!(logged.len(), 2, "{logged:?}");
    for (row, topic) in logged.iter().zip(["\"a/b/c\"", "\"$SYS/x\""]) {
        assert_eq!(row[0], "topic");
        assert!(row[1].as_str().unwrap().contains(topic), "{logged:?}");
        assert_eq!(row[2], event);
    }
    assert_eq!(
        rows(&server, &key, "SELECT count(*) FROM thermostat")[0][0],
        0
    );
    assert_eq!(
        rows(&server, &other, "SELECT count(*) FROM strata.errors")[0][0],
        0
    );
}

#[test]
fn tenant_topic_templates_turn_placeholders_into_fields() {
    if !have_mosquitto_pub() || !have_paho() {
        return;
    }
    let server = TestServer::start_with(MQTT);
    let key = tenant(&server, "acme");
    let bad = server.patch(
        "/api/v1/settings",
        &key,
        &json!({"mqtt_topics": ["plant/{site}/{device}"]}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(
        bad.error().contains("plant/{site}/{device}"),
        "{}",
        bad.text
    );
    assert!(
        bad.error().contains("{metric} exactly once"),
        "{}",
        bad.text
    );
    let set = server.patch(
        "/api/v1/settings",
        &key,
        &json!({"mqtt_topics": ["plant/{site}/{metric}/{device}"]}),
    );
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(
        set.body["mqtt_topics"],
        json!(["plant/{site}/{metric}/{device}"])
    );
    let event = r#"{"timestamp": 1700000000000, "name": "p1", "temp": 5}"#;
    let (ok, stderr) = mosquitto_pub(
        &server,
        "acme",
        &key,
        &[
            "-V",
            "mqttv5",
            "-t",
            "plant/lyon/thermostat/p-12",
            "-m",
            event,
        ],
    );
    assert!(ok, "{stderr}");
    let stored = rows(&server, &key, "SELECT site, device, temp FROM thermostat");
    assert_eq!(stored, vec![json!(["lyon", "p-12", 5.0])]);
    // The tenant's templates replace the defaults.
    let v5 = paho(
        &server,
        "acme",
        &key,
        "publish",
        &["5", "thermostat/p-12", event],
    );
    assert_eq!(v5[0]["reason"], 135, "{v5:?}");
}

#[test]
fn a_payload_with_no_valid_event_is_logged_and_answered_payload_format_invalid() {
    if !have_paho() {
        return;
    }
    let server = TestServer::start_with(MQTT);
    let key = tenant(&server, "acme");
    let broken = paho(
        &server,
        "acme",
        &key,
        "publish",
        &["5", "thermostat", "{not json"],
    );
    assert_eq!(broken[0]["reason"], 153, "{broken:?}");
    let untimed = paho(
        &server,
        "acme",
        &key,
        "publish",
        &["5", "thermostat", r#"{"temp": 1}"#],
    );
    assert_eq!(untimed[0]["reason"], 153, "{untimed:?}");
    let logged = rows(
        &server,
        &key,
        "SELECT payload FROM strata.errors ORDER BY time",
    );
    assert_eq!(
        logged,
        vec![json!(["{not json"]), json!([r#"{"temp": 1}"#])]
    );
}

/// The flood's acknowledged event indexes, read as they arrive; kills the server after `kill_after`.
fn flood_and_kill(server: &mut TestServer, key: &str, count: usize, kill_after: usize) -> Vec<i64> {
    let addr = server.mqtt_addr();
    let mut child = Command::new(python())
        .arg(clients_dir().join("mqtt_client.py"))
        .args([
            "flood",
            &addr.ip().to_string(),
            &addr.port().to_string(),
            "acme",
            key,
        ])
        .args(["thermostat", &count.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run mqtt_client.py flood");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<i64>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let line: Value = serde_json::from_str(&line).expect("a JSON line");
            if let Some(index) = line["acked"].as_i64() {
                let _ = tx.send(index);
            }
        }
    });
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.len() < kill_after {
        let left = deadline.saturating_duration_since(Instant::now());
        acked.push(rx.recv_timeout(left).expect("PUBACKs keep coming"));
    }
    server.kill9();
    let _ = child.wait();
    // Acknowledgements already on their way before the kill count too.
    acked.extend(rx.try_iter());
    acked
}

#[test]
fn qos1_publishes_acknowledged_before_kill9_survive_it() {
    if !have_paho() {
        return;
    }
    let mut server = TestServer::start_with(MQTT);
    let key = tenant(&server, "acme");
    let acked = flood_and_kill(&mut server, &key, 5_000, 500);
    server.restart();
    let stored: std::collections::BTreeSet<i64> =
        rows(&server, &key, "SELECT CAST(temp AS BIGINT) FROM thermostat")
            .iter()
            .map(|row| row[0].as_i64().expect("temp"))
            .collect();
    let missing: Vec<&i64> = acked.iter().filter(|i| !stored.contains(i)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(stored.len() < 5_000, "the kill came after the last publish");
}

/// A server whose MQTT listener (and Postgres port) serve TLS with a fresh self-signed
/// certificate for 127.0.0.1; the tempdir holds the certificate and must outlive the server.
fn tls_server() -> (TestServer, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path(), "server");
    let (cert_arg, key_arg) = (cert.to_string_lossy(), key.to_string_lossy());
    let server = TestServer::start_with(&[
        "--mqtt",
        "127.0.0.1:0",
        "--tls-cert",
        &cert_arg,
        "--tls-key",
        &key_arg,
    ]);
    (server, dir, cert)
}

#[test]
fn mosquitto_pub_over_tls_is_stored_and_verified_against_the_served_certificate() {
    if !have_mosquitto_pub() || !have_openssl() {
        return;
    }
    let (server, dir, cert) = tls_server();
    let key = tenant(&server, "acme");
    let cafile = cert.to_string_lossy().into_owned();
    let event = r#"{"timestamp": 1700000000000, "name": "t1", "temp": 21.5}"#;
    // mosquitto_pub checks the certificate against --cafile and the host name (127.0.0.1 is in
    // its subjectAltName): the handshake only completes with the certificate given to serve.
    for version in ["mqttv311", "mqttv5"] {
        let (ok, stderr) = mosquitto_pub(
            &server,
            "acme",
            &key,
            &[
                "--cafile",
                &cafile,
                "-V",
                version,
                "-t",
                "thermostat/truck_7",
                "-m",
                event,
            ],
        );
        assert!(ok, "{version} over TLS: {stderr}");
    }
    // Another trust root fails verification: the listener really presents the given certificate.
    let (other, _) = self_signed(dir.path(), "other");
    let other = other.to_string_lossy().into_owned();
    let later = r#"{"timestamp": 1700000001000, "name": "t2", "temp": 22}"#;
    let (ok, stderr) = mosquitto_pub(
        &server,
        "acme",
        &key,
        &["--cafile", &other, "-t", "thermostat", "-m", later],
    );
    assert!(!ok, "verified against the wrong root: {stderr}");
    let stored = rows(
        &server,
        &key,
        "SELECT name, temp, device FROM thermostat ORDER BY timestamp",
    );
    assert_eq!(stored, vec![json!(["t1", 21.5, "truck_7"])]);
}

#[test]
fn a_plaintext_mqtt_client_on_the_tls_port_stores_nothing() {
    if !have_mosquitto_pub() || !have_openssl() {
        return;
    }
    let (server, _dir, _cert) = tls_server();
    let key = tenant(&server, "acme");
    let event = r#"{"timestamp": 1700000000000, "name": "t1", "temp": 21.5}"#;
    for version in ["mqttv311", "mqttv5"] {
        let (ok, stderr) = mosquitto_pub(
            &server,
            "acme",
            &key,
            &["-V", version, "-t", "thermostat", "-m", event],
        );
        assert!(!ok, "a cleartext {version} CONNECT was answered: {stderr}");
    }
    // Neither the event nor an error was recorded: the CONNECT never reached the MQTT codec.
    assert_eq!(
        rows(&server, &key, "SELECT count(*) FROM thermostat")[0][0],
        0
    );
    assert_eq!(
        rows(&server, &key, "SELECT count(*) FROM strata.errors")[0][0],
        0
    );
}

#[test]
fn a_plaintext_mqtt_listener_on_a_network_address_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--http",
            "127.0.0.1:0",
            "--pg",
            "127.0.0.1:0",
            "--mqtt",
            "0.0.0.0:0",
        ])
        .env_remove("STRATA_OPERATOR_TOKEN")
        .env_remove("STRATA_TLS_CERT")
        .env_remove("STRATA_TLS_KEY")
        .env_remove("STRATA_MQTT_ALLOW_INSECURE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run strata serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("refusing to serve MQTT on 0.0.0.0:0 without TLS"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("listening on"),
        "refused before serving: {stderr}"
    );
}

/// `strata bench protocols --spawn`: every door stores every event once. Its MQTT phases keep
/// 4 connections with 64 writes in flight each on a new metric, which deadlocked the catalog
/// while writes were futures the connection polled (see `connection.rs`' `PendingWrite`).
/// Timings are printed, never asserted.
#[test]
fn the_protocols_benchmark_stores_every_event_through_every_door() {
    let out = crate::common::bench(&[
        "protocols",
        "--spawn",
        "--events",
        "20000",
        "--batch-size",
        "1000",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench protocols failed:\n{stderr}");
    let report = crate::common::json_stdout(&out);
    let doors = report["report"]["doors"]
        .as_array()
        .unwrap_or_else(|| panic!("no doors in {report}"))
        .clone();
    assert_eq!(doors.len(), 4, "{doors:?}");
    for door in doors {
        assert_eq!(door["stored"], 20_000, "{door}");
        assert_eq!(door["events"], 20_000, "{door}");
    }
}
