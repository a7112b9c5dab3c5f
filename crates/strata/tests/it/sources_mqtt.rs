//! Issue 19, the MQTT bridge, against a real `mosquitto` (persistence on) started by each test
//! and Debian's `mosquitto_pub` publishing with QoS 1: messages flow into the metric and device
//! the tenant's topic templates read from the topic;
//! the broker restarts and the bridge resumes; messages published while Strata is down wait
//! in its persistent session; a kill -9 of Strata while messages flow loses none (the PUBACK
//! leaves only after the write returned) and stores none twice; a publish over
//! `--max-body-bytes` (even past the old 64 KiB of header slack) is refused into the error log
//! and acknowledged, and the bridge keeps running (one past the read limit, 16 times that,
//! fails it with an error naming its size); deleting a bridge ends the persistent
//! session Strata named (`strata-<id>`) on the broker, never one the user named; the bridge
//! reaches an `mqtts://` broker verified with its `ca_file`, and logs in to one that requires
//! a password.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::brokers::{count, source, wait_until, Broker};
use crate::cloud::{clients_dir, probe, python};
use crate::common::{ca_signed, have_openssl, TestServer};

const COUNT_THERMOSTAT: &str = "SELECT count(*) FROM thermostat";

/// Starts `mosquitto_pub` publishing each of `count` numbered events from `start` as one QoS 1
/// message on `topic` (`-l`: one message per stdin line).
fn publish(port: u16, topic: &str, start: i64, count: i64) -> Child {
    publish_with(port, &[], topic, start, count)
}

/// [`publish`] with `extra` arguments for `mosquitto_pub` (`--cafile` for a TLS listener).
fn publish_with(port: u16, extra: &[&str], topic: &str, start: i64, count: i64) -> Child {
    let mut child = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-l",
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mosquitto_pub");
    let lines: String = (start..start + count)
        .map(|i| {
            format!(
                "{{\"timestamp\":{},\"i\":{i},\"temp\":21.5}}\n",
                1_700_000_000_000 + i
            )
        })
        .collect();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(lines.as_bytes())
        .expect("feed mosquitto_pub");
    drop(stdin);
    child
}

fn published(child: Child) {
    let out = child.wait_with_output().expect("mosquitto_pub");
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Adds the bridge on `thermostat/+`; returns its id once it is subscribed.
fn add_bridge(server: &TestServer, key: &str, port: u16) -> String {
    let body = json!({"kind": "mqtt", "url": format!("mqtt://127.0.0.1:{port}"),
                      "topics": ["thermostat/+"], "username": "strata", "password": "s3cret"});
    let answer = server.post("/api/v1/sources", key, &body);
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert!(
        !answer.text.contains("s3cret"),
        "the password is echoed: {}",
        answer.text
    );
    let id = answer.body["id"].as_str().expect("id").to_string();
    wait_running(server, key, &id);
    id
}

fn wait_running(server: &TestServer, key: &str, id: &str) {
    wait_until(Duration::from_secs(60), "the bridge to subscribe", || {
        source(server, key, id)["status"] == "running"
    });
}

/// Waits for `rows` rows, or until the count stopped moving for 10 s (then a loss shows as a
/// short count rather than a time-out), and checks each `i` is there once.
fn wait_rows(server: &TestServer, key: &str, rows: i64) {
    let mut seen = (0, Instant::now());
    wait_until(Duration::from_secs(120), &format!("{rows} rows"), || {
        let now = count(server, key, COUNT_THERMOSTAT);
        if now != seen.0 {
            seen = (now, Instant::now());
        }
        now >= rows || seen.1.elapsed() > Duration::from_secs(10)
    });
    let answer = server.sql(key, "SELECT count(*), count(DISTINCT i) FROM thermostat");
    assert_eq!(
        answer.body["rows"],
        json!([[rows, rows]]),
        "{}",
        answer.text
    );
}

#[test]
fn the_bridge_resumes_after_a_broker_restart_and_a_strata_restart_losing_nothing() {
    let Some(mut broker) = Broker::mosquitto() else {
        return;
    };
    let mut server = TestServer::start();
    let key = server.create_tenant("plant");
    let id = add_bridge(&server, &key, broker.port);
    published(publish(broker.port, "thermostat/dev1", 0, 200));
    wait_rows(&server, &key, 200);
    // The tenant's topic templates name metric and device (`{metric}/{device}` by default).
    let devices = server.sql(&key, "SELECT DISTINCT device FROM thermostat");
    assert_eq!(devices.body["rows"], json!([["dev1"]]), "{}", devices.text);

    // The broker goes away: the bridge reports it, then reconnects to the restarted broker.
    broker.stop();
    wait_until(Duration::from_secs(30), "the bridge to notice", || {
        let shown = source(&server, &key, &id);
        shown["status"] != "running" && shown["last_error"].is_string()
    });
    broker.start();
    wait_running(&server, &key, &id);
    published(publish(broker.port, "thermostat/dev2", 200, 200));
    wait_rows(&server, &key, 400);

    // Strata goes away: the broker keeps the persistent session's messages until it is back.
    server.stop();
    published(publish(broker.port, "thermostat/dev3", 400, 200));
    server.restart();
    wait_rows(&server, &key, 600);
    let shown = source(&server, &key, &id);
    assert_eq!(shown["status"], "running", "{shown}");
    assert_eq!(
        shown["accepted"], 200,
        "counts start again at a restart: {shown}"
    );
}

#[test]
fn a_kill_9_while_messages_flow_loses_no_acknowledged_publish() {
    let Some(broker) = Broker::mosquitto() else {
        return;
    };
    let mut server = TestServer::start();
    let key = server.create_tenant("plant");
    add_bridge(&server, &key, broker.port);
    let publisher = publish(broker.port, "thermostat/dev1", 0, 5_000);
    wait_until(Duration::from_secs(120), "the first 1,000 rows", || {
        count(&server, &key, COUNT_THERMOSTAT) >= 1_000
    });
    server.kill9();
    // mosquitto_pub ends once the broker acknowledged every message: all 5,000 are the
    // broker's to deliver, and the bridge's session holds what Strata did not acknowledge.
    published(publisher);
    server.restart();
    wait_rows(&server, &key, 5_000);
}

/// The smallest body limit the poison test runs with: a publish past it plus the 64 KiB of
/// header slack made rumqttc end the connection, and the broker redelivered it forever.
const SMALL_BODY_LIMIT: &str = "1024";

/// Publishes `payload` (from a file: it is larger than a command line should carry) once with
/// QoS 1 on `topic`.
fn publish_file(port: u16, topic: &str, payload: &[u8]) {
    let file = tempfile::NamedTempFile::new().expect("payload file");
    std::fs::write(file.path(), payload).expect("write payload");
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-f"])
        .arg(file.path())
        .output()
        .expect("run mosquitto_pub");
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_oversized_publish_is_logged_acknowledged_and_does_not_wedge_the_bridge() {
    let Some(broker) = Broker::mosquitto() else {
        return;
    };
    let mut server = TestServer::start_with(&["--max-body-bytes", SMALL_BODY_LIMIT]);
    let key = server.create_tenant("plant");
    let id = add_bridge(&server, &key, broker.port);
    // 200,000 bytes: past 1,024 + 64 KiB, the old read limit that ended the connection.
    let poison = format!(
        r#"{{"timestamp":1700000000000,"i":-1,"pad":"{}"}}"#,
        "x".repeat(200_000)
    );
    publish_file(broker.port, "thermostat/dev1", poison.as_bytes());
    published(publish(broker.port, "thermostat/dev1", 0, 1));
    wait_rows(&server, &key, 1);

    let shown = source(&server, &key, &id);
    assert_eq!(shown["status"], "running", "{shown}");
    assert_eq!(
        shown["last_error"],
        json!(null),
        "the connection never failed: {shown}"
    );
    assert_eq!(
        (&shown["messages"], &shown["accepted"], &shown["rejected"]),
        (&json!(2), &json!(1), &json!(1)),
        "{shown}"
    );
    let logged = server.sql(&key, "SELECT stage, reason, payload FROM strata.errors");
    let rows = logged.body["rows"].as_array().expect("rows").clone();
    assert_eq!(rows.len(), 1, "{}", logged.text);
    assert_eq!(rows[0][0], "body", "{rows:?}");
    let reason = rows[0][1].as_str().expect("reason");
    assert!(
        reason.contains(&format!("a message of {} bytes", poison.len()))
            && reason.contains("--max-body-bytes"),
        "{reason}"
    );
    let payload = rows[0][2].as_str().expect("payload");
    assert!(
        poison.starts_with(payload) && payload.len() <= 64 * 1024 && payload.len() > 1024,
        "the payload is the message's capped beginning ({} bytes)",
        payload.len()
    );

    // It was acknowledged: the session resumed after a restart holds no redelivery of it (the
    // broker resends unacknowledged publishes first, before the next message).
    server.restart();
    wait_running(&server, &key, &id);
    published(publish(broker.port, "thermostat/dev1", 1, 1));
    wait_rows(&server, &key, 2);
    let shown = source(&server, &key, &id);
    assert_eq!(
        shown["rejected"], 0,
        "redelivered after the restart: {shown}"
    );
    let errors = count(&server, &key, "SELECT count(*) FROM strata.errors");
    assert_eq!(errors, 1, "the oversized publish was logged again");
}

#[test]
fn a_publish_over_the_read_limit_fails_the_bridge_with_its_size() {
    let Some(broker) = Broker::mosquitto() else {
        return;
    };
    let server = TestServer::start_with(&["--max-body-bytes", SMALL_BODY_LIMIT]);
    let key = server.create_tenant("plant");
    let id = add_bridge(&server, &key, broker.port);
    // The read limit with a 1,024-byte body limit: 16 times (1,024 + 64 KiB) = 1,064,960.
    let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1_100_000));
    publish_file(broker.port, "thermostat/dev1", huge.as_bytes());
    wait_until(Duration::from_secs(30), "the bridge to fail", || {
        let shown = source(&server, &key, &id);
        shown["status"] == "failed"
            && shown["last_error"].as_str().is_some_and(|error| {
                error.contains("over the bridge's read limit of 1064960 bytes")
                    && error.contains("removed from the broker")
            })
    });
}

#[test]
fn the_bridge_logs_in_to_a_broker_that_requires_a_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passwords = dir.path().join("passwords");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["strata", "s3cret"])
        .output();
    if !strata_testkit::available(
        "mosquitto_passwd",
        made.as_ref()
            .map_err(|e| e.to_string())
            .and_then(|out| match out.status.success() {
                true => Ok(()),
                false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
            }),
    ) {
        return;
    }
    // Mosquitto started as root reads its files as user `mosquitto`.
    for (path, mode) in [(dir.path(), 0o755), (passwords.as_path(), 0o644)] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .expect("chmod");
    }
    let options = format!(
        "allow_anonymous false\npassword_file {}",
        passwords.display()
    );
    let Some(broker) = Broker::mosquitto_with(&options) else {
        return;
    };
    let server = TestServer::start();
    let key = server.create_tenant("plant");
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let wrong = json!({"kind": "mqtt", "url": url, "topics": ["thermostat/+"],
                       "username": "strata", "password": "wrong", "client_id": "wrong"});
    let answer = server.post("/api/v1/sources", &key, &wrong);
    assert_eq!(answer.status, 201, "{}", answer.text);
    let wrong = answer.body["id"].as_str().expect("id").to_string();
    // add_bridge logs in as strata/s3cret.
    add_bridge(&server, &key, broker.port);
    published(publish_with(
        broker.port,
        &["-u", "strata", "-P", "s3cret"],
        "thermostat/dev1",
        0,
        5,
    ));
    wait_rows(&server, &key, 5);
    wait_until(
        Duration::from_secs(30),
        "the wrong password to fail",
        || {
            let shown = source(&server, &key, &wrong);
            shown["status"] == "failed"
                && shown["last_error"]
                    .as_str()
                    .is_some_and(|error| error.contains("refused"))
        },
    );
}

/// What the broker holds for session `client_id`: connects as it (3.1.1, no clean session) with
/// paho-mqtt and returns `{"session_present": bool, "messages": n}` (publishes delivered in 2 s).
fn broker_session(port: u16, client_id: &str) -> serde_json::Value {
    let out = Command::new(python())
        .arg(clients_dir().join("mqtt_client.py"))
        .args(["session", "127.0.0.1", &port.to_string(), "probe", "probe"])
        .arg(client_id)
        .output()
        .expect("run mqtt_client.py");
    assert!(
        out.status.success(),
        "mqtt_client.py session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

#[test]
fn deleting_a_bridge_ends_the_session_strata_named_and_keeps_a_named_one() {
    let paho = probe(&python(), &["-c", "import paho.mqtt.client"], None);
    if !strata_testkit::available("python3 with paho-mqtt", paho) {
        return;
    }
    let Some(broker) = Broker::mosquitto() else {
        return;
    };
    let server = TestServer::start();
    let key = server.create_tenant("plant");
    let default = add_bridge(&server, &key, broker.port);
    let body = json!({"kind": "mqtt", "url": format!("mqtt://127.0.0.1:{}", broker.port),
                      "topics": ["thermostat/+"], "client_id": "mine"});
    let answer = server.post("/api/v1/sources", &key, &body);
    assert_eq!(answer.status, 201, "{}", answer.text);
    let named = answer.body["id"].as_str().expect("id").to_string();
    wait_running(&server, &key, &named);
    published(publish(broker.port, "thermostat/dev1", 0, 5));
    wait_rows(&server, &key, 5);
    for id in [&default, &named] {
        let deleted = server.delete(&format!("/api/v1/sources/{id}"), &key);
        assert_eq!(deleted.status, 200, "{}", deleted.text);
    }
    // A persistent session left behind would queue these for a bridge that never comes back.
    published(publish(broker.port, "thermostat/dev1", 5, 5));
    let ended = broker_session(broker.port, &format!("strata-{default}"));
    assert_eq!(
        ended,
        json!({"session_present": false, "messages": 0}),
        "Strata's session ended"
    );
    let kept = broker_session(broker.port, "mine");
    assert_eq!(
        kept,
        json!({"session_present": true, "messages": 5}),
        "the named session stays, queueing"
    );
}

#[test]
fn the_bridge_reaches_an_mqtts_broker_verified_with_its_ca_file() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, tls_key) = ca_signed(dir.path(), "mosquitto");
    // Mosquitto started as root reads its certificate as user `mosquitto`.
    for (path, mode) in [
        (dir.path(), 0o755),
        (cert.as_path(), 0o644),
        (tls_key.as_path(), 0o644),
    ] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .expect("chmod");
    }
    let options = format!("certfile {}\nkeyfile {}", cert.display(), tls_key.display());
    let Some(broker) = Broker::mosquitto_with(&options) else {
        return;
    };
    let ca = ca.to_string_lossy().into_owned();
    let server = TestServer::start();
    let key = server.create_tenant("plant");
    let add = |url: String, extra: serde_json::Value| {
        let mut body = json!({"kind": "mqtt", "url": url, "topics": ["thermostat/+"]});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let answer = server.post("/api/v1/sources", &key, &body);
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer.body["id"].as_str().expect("id").to_string()
    };
    let tls_url = format!("mqtts://127.0.0.1:{}", broker.port);
    // The system's roots do not know this CA: without ca_file the broker is not trusted.
    let untrusted = add(tls_url.clone(), json!({"client_id": "untrusted"}));
    // In the clear, the TLS listener never answers the CONNECT.
    let plain = add(
        format!("mqtt://127.0.0.1:{}", broker.port),
        json!({"client_id": "plain"}),
    );
    let id = add(tls_url, json!({"ca_file": ca}));
    wait_running(&server, &key, &id);
    published(publish_with(
        broker.port,
        &["--cafile", &ca],
        "thermostat/dev1",
        0,
        5,
    ));
    wait_rows(&server, &key, 5);
    for (failing, why) in [(&untrusted, "certificate"), (&plain, "")] {
        wait_until(
            Duration::from_secs(30),
            &format!("{failing} to fail"),
            || {
                let shown = source(&server, &key, failing);
                let error = shown["last_error"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase();
                shown["status"] == "failed" && error.contains(why)
            },
        );
    }
}
