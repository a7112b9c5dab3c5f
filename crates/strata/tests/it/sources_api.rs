//! Issue 19, the sources API without a broker: configurations are checked field by field
//! (400 naming the field), a source whose broker cannot be reached is created and shows
//! `failed` with its last error while it retries, passwords are never shown, another tenant's
//! source is 404 everywhere, only admins manage sources, and the CLI adds, lists and removes.

use std::process::Command;

use serde_json::{json, Value};

use crate::brokers::wait_until;
use crate::common::{TestServer, BIN};

/// A port nothing listens on: connections are refused at once.
const DEAD_BROKER: &str = "127.0.0.1:9";

#[test]
fn configurations_are_checked_and_the_bad_field_is_named() {
    let server = TestServer::start();
    let key = server.create_tenant("checks");
    let nats = |extra: Value| {
        let mut body = json!({"kind": "nats", "url": "nats://127.0.0.1:4222", "stream": "S",
                              "subject": "devices.>"});
        for (k, v) in extra.as_object().expect("object") {
            if v.is_null() {
                body.as_object_mut().expect("object").remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let cases = [
        (
            json!({"kind": "kafka", "url": "x"}),
            "unknown source kind \"kafka\"",
        ),
        (json!({"url": "nats://h"}), "kind"),
        (nats(json!({"url": "http://127.0.0.1:4222"})), "nats://"),
        (nats(json!({"stream": null})), "stream"),
        (nats(json!({"subject": null})), "subject"),
        (nats(json!({"subject": "a..b"})), "subject"),
        (nats(json!({"colour": "red"})), "colour"),
        (json!({"kind": "mqtt", "url": "mqtt://h:1883"}), "topics"),
        (
            json!({"kind": "mqtt", "url": "mqtt://h", "topics": []}),
            "topics",
        ),
        (
            json!({"kind": "mqtt", "url": "nats://h", "topics": ["a"]}),
            "mqtt://",
        ),
    ];
    for (body, named) in cases {
        let answer = server.post("/api/v1/sources", &key, &body);
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
        assert!(answer.error().contains(named), "{body}: {}", answer.text);
    }
    let listed = server.get("/api/v1/sources", &key);
    assert_eq!(
        listed.body["sources"],
        json!([]),
        "nothing was stored: {}",
        listed.text
    );
}

#[test]
fn an_unreachable_broker_shows_failed_with_its_error_and_tenants_are_sealed() {
    let server = TestServer::start();
    let key = server.create_tenant("owner");
    let other = server.create_tenant("other");
    let body = json!({"kind": "mqtt", "url": format!("mqtt://{DEAD_BROKER}"), "topics": ["a/#"],
                      "username": "u", "password": "hunter2"});
    let created = server.post("/api/v1/sources", &key, &body);
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/sources/{id}");
    wait_until(
        std::time::Duration::from_secs(30),
        "the failure to show",
        || {
            let shown = server.get(&path, &key).body;
            shown["status"] == "failed"
                && shown["last_error"].as_str().is_some_and(|e| !e.is_empty())
        },
    );
    let listed = server.get("/api/v1/sources", &key);
    assert!(!listed.text.contains("hunter2"), "{}", listed.text);
    assert_eq!(listed.body["sources"][0]["config"]["has_password"], true);

    // Another tenant: 404 for the id, an empty list and an empty strata.sources.
    assert_eq!(server.get(&path, &other).status, 404);
    assert_eq!(server.delete(&path, &other).status, 404);
    assert_eq!(
        server.get("/api/v1/sources", &other).body["sources"],
        json!([])
    );
    let theirs = server.sql(&other, "SELECT count(*) FROM strata.sources");
    assert_eq!(theirs.body["rows"], json!([[0]]), "{}", theirs.text);
    let ours = server.sql(&key, "SELECT id, kind, status FROM strata.sources");
    assert_eq!(
        ours.body["rows"],
        json!([[id, "mqtt", "failed"]]),
        "{}",
        ours.text
    );

    // Only admins manage sources.
    let reader = server.create_key(&key, "read");
    assert_eq!(server.get("/api/v1/sources", &reader).status, 403);
    assert_eq!(server.post("/api/v1/sources", &reader, &body).status, 403);
    assert_eq!(server.delete(&path, &key).status, 200);
    assert_eq!(server.get(&path, &key).status, 404);
}

/// Runs `strata source ARGS` against `server` as `key`; its standard output.
fn cli(server: &TestServer, key: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["source", "--url", server.url(), "--key", key])
        .args(args)
        .env_remove("STRATA_URL")
        .env_remove("STRATA_KEY")
        .output()
        .expect("run strata source");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
    stdout
}

#[test]
fn sources_are_kept_across_restarts_and_the_cli_manages_them() {
    let mut server = TestServer::start();
    let key = server.create_tenant("cli");
    let added = cli(
        &server,
        &key,
        &[
            "add",
            "--kind",
            "nats",
            "--broker-url",
            &format!("nats://{DEAD_BROKER}"),
            "--stream",
            "S",
            "--subject",
            "devices.>",
            "--token",
            "t0ken",
            "--json",
        ],
    );
    let added: Value = serde_json::from_str(&added).expect("JSON");
    let id = added["id"].as_str().expect("id").to_string();
    assert_eq!(added["config"]["has_token"], true, "{added}");
    assert!(!added.to_string().contains("t0ken"), "{added}");
    let config = format!(r#"{{"kind":"mqtt","url":"mqtt://{DEAD_BROKER}","topics":["a"]}}"#);
    cli(&server, &key, &["add", "--config", &config]);
    server.restart();
    let listed = cli(&server, &key, &["list"]);
    assert!(listed.contains(&id) && listed.contains("mqtt"), "{listed}");
    cli(&server, &key, &["remove", &id]);
    let listed: Value =
        serde_json::from_str(&cli(&server, &key, &["list", "--json"])).expect("JSON");
    let kinds: Vec<&Value> = listed["sources"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| &s["kind"])
        .collect();
    assert_eq!(kinds, vec!["mqtt"]);
}
