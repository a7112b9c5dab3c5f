//! Issue 19, the NATS JetStream source, against Debian's `nats-server -js` started by each test
//! and the Python `nats-py` client as the publisher: 100,000 messages with a kill -9 of Strata
//! mid-stream end as exactly 100,000 rows (a message is acknowledged only after its events are
//! durable, and redelivered ones are stored once); a second consumer re-reading the whole
//! stream adds nothing; payloads take `/api/v1/write`'s shapes and rejections; deleting a
//! source stops its consumption and deletes the consumer Strata named (`strata-<id>`) on the
//! server, never one the user named; a source logs in with a password or a token, and reaches
//! a `tls://` server verified with its `ca_file`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::brokers::{count, have_nats_py, nats_tool, nats_tool_with, source, wait_until, Broker};
use crate::common::{ca_signed, have_openssl, TestServer};

const STREAM: &str = "DEVICES";
const TOTAL: i64 = 100_000;
const COUNT_READINGS: &str = "SELECT count(*) FROM reading";

/// A broker with stream `DEVICES` on `devices.>`, or `None` (a skip).
fn nats_with_stream() -> Option<(Broker, String)> {
    if !have_nats_py() {
        return None;
    }
    let broker = Broker::nats()?;
    let url = format!("nats://127.0.0.1:{}", broker.port);
    nats_tool(&["stream", &url, STREAM, "devices.>"]);
    Some((broker, url))
}

/// Adds a NATS source on `devices.>` with metric `reading`; returns its id.
fn add_source(server: &TestServer, key: &str, url: &str, extra: Value) -> String {
    let mut body = json!({"kind": "nats", "url": url, "stream": STREAM,
                          "subject": "devices.>", "metric": "reading"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let answer = server.post("/api/v1/sources", key, &body);
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.body["kind"], "nats");
    answer.body["id"].as_str().expect("id").to_string()
}

/// Waits until the broker holds nothing for consumer `name`: every message delivered and
/// acknowledged (redeliveries of a killed server's batches included).
fn wait_drained(url: &str, name: &str) {
    wait_until(Duration::from_secs(120), "the consumer to drain", || {
        let state = nats_tool(&["consumer", url, STREAM, name]);
        state["num_pending"] == 0 && state["num_ack_pending"] == 0
    });
}

/// Waits until the source reports `running` with nothing left to consume.
fn wait_caught_up(server: &TestServer, key: &str, id: &str, messages: i64) {
    wait_until(Duration::from_secs(120), "the source to catch up", || {
        let shown = source(server, key, id);
        shown["status"] == "running"
            && shown["lag"] == 0
            && shown["messages"].as_i64() >= Some(messages)
    });
}

#[test]
fn a_kill_9_mid_stream_loses_no_message_and_stores_none_twice() {
    let Some((_broker, url)) = nats_with_stream() else {
        return;
    };
    // The stream holds all 100,000 first, so the consumer is always busy writing a batch.
    nats_tool(&["publish", &url, "devices.a", "0", &TOTAL.to_string()]);
    let mut server = TestServer::start();
    let key = server.create_tenant("plant");
    let id = add_source(&server, &key, &url, json!({}));
    // Pull the plug mid-stream, three times: each time a batch is being written and none of
    // it is acknowledged yet (acknowledging first loses that batch).
    for rows in [10_000, 40_000, 70_000] {
        kill_9_at(&mut server, &key, rows);
    }
    wait_drained(&url, &format!("strata-{id}"));
    assert_exactly_once(&server, &key);
    wait_caught_up(&server, &key, &id, 0);
    let listed = server.get("/api/v1/sources", &key);
    assert_eq!(
        listed.body["sources"][0]["id"],
        id.as_str(),
        "{}",
        listed.text
    );
    assert_eq!(listed.body["sources"][0]["status"], "running");
    let sql = server.sql(&key, "SELECT id, kind, status, lag FROM strata.sources");
    assert_eq!(
        sql.body["rows"],
        json!([[id, "nats", "running", 0]]),
        "{}",
        sql.text
    );

    // A second consumer re-reads the whole stream: every event is already stored.
    let again = add_source(&server, &key, &url, json!({"durable": "again"}));
    wait_drained(&url, "again");
    wait_caught_up(&server, &key, &again, TOTAL);
    assert_exactly_once(&server, &key);
    assert_eq!(source(&server, &key, &again)["accepted"], TOTAL);
}

/// Waits until the source has stored `rows` rows, kills the server and restarts it.
fn kill_9_at(server: &mut TestServer, key: &str, rows: i64) {
    let mut before_kill = 0;
    wait_until(Duration::from_secs(120), &format!("{rows} rows"), || {
        before_kill = count(server, key, COUNT_READINGS);
        before_kill >= rows
    });
    server.kill9();
    assert!(
        before_kill < TOTAL,
        "everything was consumed before the kill"
    );
    server.restart();
}

/// Exactly the numbers 0..TOTAL, each once.
fn assert_exactly_once(server: &TestServer, key: &str) {
    let answer = server.sql(
        key,
        "SELECT count(*), count(DISTINCT i), min(CAST(i AS BIGINT)), max(CAST(i AS BIGINT)) \
         FROM reading",
    );
    assert_eq!(
        answer.body["rows"],
        json!([[TOTAL, TOTAL, 0, TOTAL - 1]]),
        "{}",
        answer.text
    );
}

#[test]
fn payloads_take_the_write_apis_shapes_and_rejections_are_logged() {
    let Some((_broker, url)) = nats_with_stream() else {
        return;
    };
    let server = TestServer::start();
    let key = server.create_tenant("shapes");
    let id = add_source(&server, &key, &url, json!({}));
    for shape in ["object", "array", "ndjson"] {
        let start = match shape {
            "object" => "0",
            "array" => "100",
            _ => "200",
        };
        nats_tool(&["publish", &url, "devices.s", start, "10", "--shape", shape]);
    }
    // Objects give one event each, arrays and NDJSON two.
    wait_until(Duration::from_secs(60), "50 rows", || {
        count(&server, &key, COUNT_READINGS) == 50
    });
    let malformed = r#"{"timestamp": 1, "i": oops}"#;
    let out = std::process::Command::new(crate::cloud::python())
        .args(["-c", &publish_raw_script(&url, malformed)])
        .output()
        .expect("publish a malformed message");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_caught_up(&server, &key, &id, 31);
    let shown = source(&server, &key, &id);
    assert_eq!(
        (shown["accepted"].clone(), shown["rejected"].clone()),
        (json!(50), json!(1))
    );
    let errors = count(&server, &key, "SELECT count(*) FROM strata.errors");
    assert_eq!(errors, 1, "the malformed message is in the error log");
}

/// A Python snippet publishing `payload` as is to `devices.raw`.
fn publish_raw_script(url: &str, payload: &str) -> String {
    format!(
        "import asyncio, nats\n\
         async def main():\n    nc = await nats.connect({url:?})\n    \
         await nc.jetstream().publish('devices.raw', {payload:?}.encode())\n    \
         await nc.close()\n\
         asyncio.run(main())\n"
    )
}

#[test]
fn deleting_a_source_stops_its_consumption() {
    let Some((_broker, url)) = nats_with_stream() else {
        return;
    };
    let server = TestServer::start();
    let key = server.create_tenant("stopper");
    let id = add_source(&server, &key, &url, json!({"durable": "stopper"}));
    nats_tool(&["publish", &url, "devices.x", "0", "50"]);
    wait_caught_up(&server, &key, &id, 50);
    let deleted = server.delete(&format!("/api/v1/sources/{id}"), &key);
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(
        server.get(&format!("/api/v1/sources/{id}"), &key).status,
        404
    );
    nats_tool(&["publish", &url, "devices.x", "50", "50"]);
    // The durable consumer still exists on the broker: nobody pulls its 50 new messages.
    std::thread::sleep(Duration::from_secs(3));
    let consumer = nats_tool(&["consumer", &url, STREAM, "stopper"]);
    assert_eq!(consumer["num_pending"], 50, "{consumer}");
    assert_eq!(count(&server, &key, COUNT_READINGS), 50);
}

#[test]
fn deleting_a_source_deletes_the_consumer_strata_named_and_keeps_a_named_one() {
    let Some((_broker, url)) = nats_with_stream() else {
        return;
    };
    let server = TestServer::start();
    let key = server.create_tenant("cleaner");
    let default = add_source(&server, &key, &url, json!({}));
    let named = add_source(&server, &key, &url, json!({"durable": "mine"}));
    nats_tool(&["publish", &url, "devices.x", "0", "10"]);
    wait_caught_up(&server, &key, &default, 10);
    wait_caught_up(&server, &key, &named, 10);
    let consumers = || nats_tool(&["consumers", &url, STREAM])["consumers"].clone();
    let strata_named = format!("strata-{default}");
    assert_eq!(consumers(), json!(["mine", strata_named]));
    for id in [&default, &named] {
        let deleted = server.delete(&format!("/api/v1/sources/{id}"), &key);
        assert_eq!(deleted.status, 200, "{}", deleted.text);
    }
    // The deletion answers once the clean-up is done: no waiting here.
    assert_eq!(
        consumers(),
        json!(["mine"]),
        "only Strata's own consumer is deleted"
    );
}

/// Waits until source `id` failed with an error containing `why` (it keeps retrying).
fn wait_failed(server: &TestServer, key: &str, id: &str, why: &str) {
    wait_until(
        Duration::from_secs(30),
        &format!("a failure naming {why:?}"),
        || {
            let shown = source(server, key, id);
            shown["status"] == "failed"
                && shown["last_error"]
                    .as_str()
                    .is_some_and(|error| error.to_lowercase().contains(why))
        },
    );
}

#[test]
fn a_source_logs_in_with_a_password_over_tls_verified_with_its_ca_file() {
    if !have_nats_py() || !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, tls_key) = ca_signed(dir.path(), "nats");
    let (ca, cert, tls_key) = (
        ca.to_string_lossy().into_owned(),
        cert.to_string_lossy().into_owned(),
        tls_key.to_string_lossy().into_owned(),
    );
    let Some(broker) = Broker::nats_with(&[
        "--user",
        "strata",
        "--pass",
        "s3cret",
        "--tls",
        "--tlscert",
        &cert,
        "--tlskey",
        &tls_key,
    ]) else {
        return;
    };
    let url = format!("tls://127.0.0.1:{}", broker.port);
    let env = [
        ("NATS_USER", "strata"),
        ("NATS_PASSWORD", "s3cret"),
        ("NATS_CA", ca.as_str()),
    ];
    nats_tool_with(&env, &["stream", &url, STREAM, "devices.>"]);
    nats_tool_with(&env, &["publish", &url, "devices.a", "0", "10"]);
    let server = TestServer::start();
    let key = server.create_tenant("secure");

    let wrong = json!({"username": "strata", "password": "wrong", "ca_file": ca});
    let wrong = add_source(&server, &key, &url, wrong);
    wait_failed(&server, &key, &wrong, "authorization");
    // The system's roots do not know this CA: without ca_file the server is not trusted.
    let untrusted = json!({"username": "strata", "password": "s3cret"});
    let untrusted = add_source(&server, &key, &url, untrusted);
    wait_failed(&server, &key, &untrusted, "certificate");
    // In the clear, the server (TLS required) refuses.
    let plain = format!("nats://127.0.0.1:{}", broker.port);
    let plain = add_source(
        &server,
        &key,
        &plain,
        json!({"username": "strata", "password": "s3cret"}),
    );
    wait_until(
        Duration::from_secs(30),
        "the cleartext source to fail",
        || source(&server, &key, &plain)["status"] == "failed",
    );

    let good = json!({"username": "strata", "password": "s3cret", "ca_file": ca});
    let good = add_source(&server, &key, &url, good);
    wait_caught_up(&server, &key, &good, 10);
    assert_eq!(count(&server, &key, COUNT_READINGS), 10);
    let listed = server.get("/api/v1/sources", &key);
    assert!(!listed.text.contains("s3cret"), "{}", listed.text);
    let shown = source(&server, &key, &good);
    assert_eq!(shown["config"]["has_password"], true, "{shown}");
    assert_eq!(shown["config"]["ca_file"], ca.as_str(), "{shown}");
}

#[test]
fn a_source_logs_in_with_a_token() {
    if !have_nats_py() {
        return;
    }
    let Some(broker) = Broker::nats_with(&["--auth", "t0ken"]) else {
        return;
    };
    let url = format!("nats://127.0.0.1:{}", broker.port);
    let env = [("NATS_TOKEN", "t0ken")];
    nats_tool_with(&env, &["stream", &url, STREAM, "devices.>"]);
    nats_tool_with(&env, &["publish", &url, "devices.a", "0", "10"]);
    let server = TestServer::start();
    let key = server.create_tenant("tokens");
    let wrong = add_source(&server, &key, &url, json!({"token": "wrong"}));
    wait_failed(&server, &key, &wrong, "authorization");
    let good = add_source(&server, &key, &url, json!({"token": "t0ken"}));
    wait_caught_up(&server, &key, &good, 10);
    assert_eq!(count(&server, &key, COUNT_READINGS), 10);
    let shown = source(&server, &key, &good);
    assert_eq!(shown["config"]["has_token"], true, "{shown}");
    assert!(!shown.to_string().contains("t0ken"), "{shown}");
}
