//! Issue 15: alerts on the real server, delivered to real receivers (`common/receivers.rs`): a
//! webhook HTTP server in the test, Python's aiosmtpd for email, and the Twilio-compatible SMS
//! double (the only double: no SMS network is reachable here).
//!
//! Notification counts are exact: a test waits (with a timeout) for what must arrive, then
//! watches for [`QUIET`] more and checks that nothing else came. Nothing here asserts a timing.
//! The servers run with `--alert-tick-ms 100` and rules evaluate `every` second.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::common::{write_events, Answer, TestServer, NDJSON};
use crate::receivers::{hex, hmac_sha256, Receiver, Request, SmtpSink};

/// How long a notification that must come may take.
const WAIT: Duration = Duration::from_secs(30);
/// The same across an outage: delivery retries back off exponentially (capped at 30 s).
const OUTAGE_WAIT: Duration = Duration::from_secs(120);
/// How long a test watches for notifications that must not come (several evaluations).
const QUIET: Duration = Duration::from_secs(3);

/// The latest temperature of each device: one instance per `name`.
const LAST_TEMP: &str =
    "SELECT name, last_value(temp ORDER BY timestamp) AS value FROM thermostat GROUP BY name";

/// `strata serve` that may deliver to loopback receivers and checks schedules every 100 ms.
fn serve(extra: &[&str]) -> TestServer {
    let mut args = vec!["--allow-private-webhooks", "--alert-tick-ms", "100"];
    args.extend_from_slice(extra);
    TestServer::start_with(&args)
}

/// Asserts the status; returns the body.
fn expect(answer: Answer, status: u16, what: &str) -> Value {
    assert_eq!(answer.status, status, "{what}: {}", answer.text);
    answer.body
}

/// A tenant with a `thermostat` metric: `name` (a string, its series key) and `temp` (double).
fn tenant(server: &TestServer, name: &str) -> String {
    let key = server.create_tenant(name);
    let metric = json!({"name": "thermostat"});
    expect(
        server.post("/api/v1/schema/metrics", &key, &metric),
        201,
        "metric",
    );
    for (field, kind) in [("name", "string"), ("temp", "double")] {
        let path = format!("/api/v1/schema/metrics/thermostat/fields/{field}");
        expect(
            server.put(&path, &key, &json!({ "type": kind })),
            200,
            field,
        );
    }
    let keys = json!({"series_keys": ["name"]});
    let path = "/api/v1/schema/metrics/thermostat";
    expect(server.patch(path, &key, &keys), 200, "series keys");
    key
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// An RFC 3339 time `offset_ms` from now.
fn rfc3339_in(offset_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(now_ms() + offset_ms)
        .expect("time")
        .to_rfc3339()
}

/// One write batch of thermostat readings, timestamped now.
fn temps(server: &TestServer, key: &str, readings: &[(&str, f64)]) {
    let ts = now_ms();
    let events: Vec<Value> = readings
        .iter()
        .map(|(name, temp)| {
            json!({"metrictype": "thermostat", "timestamp": ts, "name": name, "temp": temp})
        })
        .collect();
    write_events(server, key, &events);
}

fn webhook_channel(server: &TestServer, key: &str, name: &str, hook: &Receiver, secret: &str) {
    let mut body = json!({"name": name, "kind": "webhook", "url": hook.url("/hook")});
    if !secret.is_empty() {
        body["secret"] = json!(secret);
    }
    expect(server.post("/api/v1/channels", key, &body), 201, "channel");
}

/// Creates a rule; returns it as the server shows it.
fn rule(server: &TestServer, key: &str, body: Value) -> Value {
    expect(server.post("/api/v1/alerts", key, &body), 201, "rule")
}

/// A query rule over [`LAST_TEMP`] firing above 30, evaluated every second, plus `extra` keys.
fn hot_rule(name: &str, channels: &[&str], extra: Value) -> Value {
    let body = json!({
        "name": name, "kind": "query", "sql": LAST_TEMP, "condition": "value > 30",
        "every": "1s", "channels": channels,
    });
    with(&body, extra)
}

/// `body` with the keys of `extra` set.
fn with(body: &Value, extra: Value) -> Value {
    let mut body = body.clone();
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            body[k] = v;
        }
    }
    body
}

fn name_label(name: &str) -> Value {
    json!({ "name": name })
}

/// Matches webhook notifications in `state`.
fn in_state(state: &'static str) -> impl Fn(&Request) -> bool {
    move |r| r.json()["state"] == state
}

fn ids(requests: &[Request]) -> BTreeSet<String> {
    requests
        .iter()
        .map(|r| r.notification_id().expect("a notification id").to_string())
        .collect()
}

/// The JSON rows of a query.
fn rows(server: &TestServer, key: &str, sql: &str) -> Vec<Vec<Value>> {
    let body = expect(server.sql(key, sql), 200, sql);
    serde_json::from_value(body["rows"].clone()).expect("rows")
}

/// A JSON text column parsed.
fn parsed(cell: &Value) -> Value {
    serde_json::from_str(cell.as_str().expect("a JSON text column")).expect("JSON text")
}

/// (labels, from_state, to_state) of every transition of `alert`, oldest first.
fn history(server: &TestServer, key: &str, alert: &str) -> Vec<(Value, String, String)> {
    let sql = format!(
        "SELECT labels, from_state, to_state FROM strata.alert_history \
         WHERE alert = '{alert}' ORDER BY time"
    );
    rows(server, key, &sql)
        .iter()
        .map(|r| (parsed(&r[0]), text(&r[1]), text(&r[2])))
        .collect()
}

fn text(cell: &Value) -> String {
    cell.as_str().unwrap_or("").to_string()
}

/// The transitions of one instance as "from>to".
fn transitions_of(server: &TestServer, key: &str, alert: &str, labels: &Value) -> Vec<String> {
    history(server, key, alert)
        .into_iter()
        .filter(|(l, _, _)| l == labels)
        .map(|(_, from, to)| format!("{from}>{to}"))
        .collect()
}

/// Polls `probe` until it gives a value.
fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The state of `alert`'s instance with `labels`, from `GET /api/v1/alerts/{alert}`.
fn state_of(server: &TestServer, key: &str, alert: &str, labels: &Value) -> Option<String> {
    let body = expect(
        server.get(&format!("/api/v1/alerts/{alert}"), key),
        200,
        "rule",
    );
    body["instances"]
        .as_array()?
        .iter()
        .find(|i| &i["labels"] == labels)
        .map(|i| text(&i["state"]))
}

fn wait_state(server: &TestServer, key: &str, alert: &str, labels: &Value, state: &str) {
    wait_until(&format!("{alert} {labels} {state}"), WAIT, || {
        (state_of(server, key, alert, labels).as_deref() == Some(state)).then_some(())
    })
}

/// Checks a webhook notification: headers, signature, and the body's fields.
fn check_webhook(req: &Request, alert: &str, state: &str, labels: &Value, secret: &str) -> Value {
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hook");
    let content_type = req.header("content-type").unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body = req.json();
    let id = req.notification_id().expect("X-Strata-Notification-Id");
    assert!(!id.is_empty());
    assert_eq!(body["id"], id, "{body}");
    assert_eq!(body["alert"], alert, "{body}");
    assert_eq!(body["state"], state, "{body}");
    assert_eq!(&body["labels"], labels, "{body}");
    let time = body["time"].as_str().expect("time");
    chrono::DateTime::parse_from_rfc3339(time).expect("time is RFC 3339");
    let link = body["link"].as_str().expect("link");
    assert!(link.starts_with("http"), "{link}");
    assert!(link.ends_with(&format!("/api/v1/alerts/{alert}")), "{link}");
    let alerts = body["alerts"].as_array().expect("alerts");
    assert_eq!(&alerts[0]["labels"], labels, "{body}");
    assert_eq!(alerts[0]["state"], state, "{body}");
    assert_eq!(alerts[0]["value"], body["value"], "{body}");
    assert_eq!(alerts[0]["time"], body["time"], "{body}");
    let signature = req.header("x-strata-signature");
    if secret.is_empty() {
        assert_eq!(signature, None, "no secret, no signature");
    } else {
        let expected = format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), &req.body)));
        assert_eq!(
            signature,
            Some(expected.as_str()),
            "the HMAC of the exact body"
        );
    }
    body
}

#[test]
fn query_rule_goes_pending_firing_resolved_with_one_signed_notification_each() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "s3cret");
    temps(&server, &key, &[("d1", 20.0)]);
    let created = rule(
        &server,
        &key,
        hot_rule("hot", &["ops"], json!({"for": "1s"})),
    );
    assert_eq!(created["name"], "hot");
    assert_eq!(created["kind"], "query");
    assert_eq!(created["sql"], LAST_TEMP);
    let d1 = name_label("d1");

    temps(&server, &key, &[("d1", 40.0)]);
    let firing = hook.wait_for(1, WAIT);
    let body = check_webhook(&firing[0], "hot", "firing", &d1, "s3cret");
    assert_eq!(body["value"], 40.0, "{body}");
    assert_eq!(body["alerts"].as_array().map(Vec::len), Some(1), "{body}");

    temps(&server, &key, &[("d1", 20.0)]);
    let both = hook.wait_for(2, WAIT);
    check_webhook(&both[1], "hot", "resolved", &d1, "s3cret");
    assert_ne!(both[0].notification_id(), both[1].notification_id());

    std::thread::sleep(QUIET);
    assert_eq!(
        hook.requests().len(),
        2,
        "exactly one firing and one resolved:\n{}",
        hook.describe()
    );
    assert_eq!(
        transitions_of(&server, &key, "hot", &d1),
        ["normal>pending", "pending>firing", "firing>normal"]
    );
    assert_eq!(
        state_of(&server, &key, "hot", &d1).as_deref(),
        Some("normal")
    );
}

#[test]
fn multi_instance_query_rule_fires_once_per_device_above_the_threshold() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    temps(&server, &key, &[("d1", 40.0), ("d2", 35.5), ("d3", 20.0)]);
    rule(&server, &key, hot_rule("hot", &["ops"], json!({})));

    hook.wait_for(2, WAIT);
    std::thread::sleep(QUIET);
    let got = hook.requests();
    assert_eq!(got.len(), 2, "two devices above 30:\n{}", hook.describe());
    let mut seen: Vec<(String, f64)> = got
        .iter()
        .map(|r| {
            let body = check_webhook(r, "hot", "firing", &r.json()["labels"], "");
            assert_eq!(body["alerts"].as_array().map(Vec::len), Some(1), "{body}");
            (
                text(&body["labels"]["name"]),
                body["value"].as_f64().expect("value"),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(seen, [("d1".to_string(), 40.0), ("d2".to_string(), 35.5)]);
    assert_eq!(ids(&got).len(), 2);
    for (device, state) in [("d1", "firing"), ("d2", "firing"), ("d3", "normal")] {
        let found = state_of(&server, &key, "hot", &name_label(device));
        assert_eq!(found.as_deref(), Some(state), "{device}");
    }
}

#[test]
fn event_rule_fires_on_the_matching_write_and_resolves_on_the_next_normal_one() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    let event_rule = |name: &str, pending: &str| {
        json!({"name": name, "kind": "event", "metric": "thermostat", "condition": "temp > 90",
               "value": "temp", "for": pending, "channels": ["ops"]})
    };
    rule(&server, &key, event_rule("fault", "1s"));
    // The same condition held for an hour: it only ever gets to pending.
    rule(&server, &key, event_rule("slow", "1h"));
    let d1 = name_label("d1");

    temps(&server, &key, &[("d1", 95.0), ("d2", 50.0)]);
    let firing = hook.wait_for(1, WAIT);
    let body = check_webhook(&firing[0], "fault", "firing", &d1, "");
    assert_eq!(
        body["value"], 95.0,
        "the `value` column of the matching row: {body}"
    );
    assert_eq!(
        state_of(&server, &key, "slow", &d1).as_deref(),
        Some("pending")
    );

    temps(&server, &key, &[("d1", 20.0)]);
    let both = hook.wait_for(2, WAIT);
    check_webhook(&both[1], "fault", "resolved", &d1, "");
    std::thread::sleep(QUIET);
    assert_eq!(hook.requests().len(), 2, "{}", hook.describe());

    assert_eq!(
        transitions_of(&server, &key, "fault", &d1),
        ["normal>pending", "pending>firing", "firing>normal"]
    );
    // Pending back to normal sends nothing.
    assert_eq!(
        transitions_of(&server, &key, "slow", &d1),
        ["normal>pending", "pending>normal"]
    );
    assert!(transitions_of(&server, &key, "fault", &name_label("d2")).is_empty());
}

/// Issue 17: an event rule may test a derived field; it is computed from each written event.
#[test]
fn an_event_rule_over_a_derived_field_fires_on_its_computed_value() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let derived = server.put(
        "/api/v1/schema/metrics/thermostat/fields/temp_f",
        &key,
        &json!({"expression": "temp * 9 / 5 + 32"}),
    );
    expect(derived, 200, "derived field");
    rule(
        &server,
        &key,
        json!({"name": "boiling", "kind": "event", "metric": "thermostat",
               "condition": "temp_f >= 212", "value": "temp_f", "channels": []}),
    );
    temps(&server, &key, &[("d1", 100.0), ("d2", 99.0)]);
    wait_state(&server, &key, "boiling", &name_label("d1"), "firing");
    let value = rows(
        &server,
        &key,
        "SELECT value FROM strata.alerts WHERE alert = 'boiling'",
    );
    assert_eq!(value, vec![vec![json!(212.0)]]);
    assert_eq!(state_of(&server, &key, "boiling", &name_label("d2")), None);
}

/// With room for one batch in the event stream, parallel writes overflow it again and again:
/// the alert consumer lags, re-reads what the stream dropped from the hot tier, and every
/// device's event still fires (without the re-read most of them never would).
#[test]
fn a_lagging_alert_consumer_re_reads_what_the_stream_dropped() {
    const WRITERS: usize = 8;
    const WRITES_EACH: usize = 40;
    let server = serve(&["--event-stream-batches", "1"]);
    let key = tenant(&server, "acme");
    rule(
        &server,
        &key,
        json!({"name": "hot", "kind": "event", "metric": "thermostat", "condition": "temp > 90",
               "value": "temp", "channels": []}),
    );
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (server, key) = (&server, &key);
            scope.spawn(move || {
                for i in 0..WRITES_EACH {
                    temps(server, key, &[(&format!("d{writer}_{i}"), 95.0)]);
                }
            });
        }
    });
    let devices = WRITERS * WRITES_EACH;
    let firing = wait_until("every device firing", WAIT, || {
        let rows = rows(
            &server,
            &key,
            "SELECT count(*) FROM strata.alerts WHERE alert = 'hot' AND state = 'firing'",
        );
        let count = rows[0][0].as_i64().unwrap_or(0);
        (count == devices as i64).then_some(count)
    });
    assert_eq!(firing, devices as i64);
    assert!(
        server
            .log()
            .contains("alert rules re-read the rows the event stream dropped"),
        "the consumer never lagged, so this test proved nothing; log:\n{}",
        server.log()
    );
}

/// Writes a reading for each listed device every 250 ms, from its own thread, until dropped.
struct Heartbeat {
    devices: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// `field` is the key the devices send their temperature under.
    fn start(server: &TestServer, key: &str, devices: &[&str], field: &str) -> Heartbeat {
        let list: Arc<Mutex<Vec<String>>> =
            Arc::new(Mutex::new(devices.iter().map(|d| d.to_string()).collect()));
        let stop = Arc::new(AtomicBool::new(false));
        let (url, key, field) = (
            format!("{}/api/v1/write", server.url()),
            key.to_string(),
            field.to_string(),
        );
        let (devices, stopping) = (Arc::clone(&list), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            while !stopping.load(Ordering::SeqCst) {
                let ts = now_ms();
                let body: String = devices
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        let mut event =
                            json!({"metrictype": "thermostat", "timestamp": ts, "name": d});
                        event[field.as_str()] = json!(21.5);
                        format!("{event}\n")
                    })
                    .collect();
                let sent = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", NDJSON)
                    .body(body)
                    .send();
                if !sent.is_ok_and(|r| r.status().is_success()) {
                    eprintln!("heartbeat write failed");
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Heartbeat {
            devices: list,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, devices: &[&str]) {
        *self.devices.lock().unwrap() = devices.iter().map(|d| d.to_string()).collect();
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn absence_rule_fires_for_exactly_the_device_that_went_silent_and_resolves_when_it_returns() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    rule(
        &server,
        &key,
        json!({"name": "silent", "kind": "absence", "metric": "thermostat", "by": ["name"],
               "for": "3s", "channels": ["ops"]}),
    );
    let names: Vec<String> = (0..10).map(|i| format!("d{i}")).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let beat = Heartbeat::start(&server, &key, &all, "temp");
    // Every device is seen; then d7 stops sending.
    for device in &all {
        wait_state(&server, &key, "silent", &name_label(device), "normal");
    }
    let without_d7: Vec<&str> = all.iter().copied().filter(|d| *d != "d7").collect();
    beat.set(&without_d7);

    let d7 = name_label("d7");
    let firing = hook.wait_for(1, WAIT);
    check_webhook(&firing[0], "silent", "firing", &d7, "");
    std::thread::sleep(QUIET);
    assert_eq!(
        hook.requests().len(),
        1,
        "only d7 fired:\n{}",
        hook.describe()
    );
    for device in &without_d7 {
        let state = state_of(&server, &key, "silent", &name_label(device));
        assert_eq!(state.as_deref(), Some("normal"), "{device}");
    }

    beat.set(&all);
    let both = hook.wait_for(2, WAIT);
    check_webhook(&both[1], "silent", "resolved", &d7, "");
    std::thread::sleep(QUIET);
    assert_eq!(hook.requests().len(), 2, "{}", hook.describe());
    drop(beat);
    let transitions = transitions_of(&server, &key, "silent", &d7);
    assert!(
        transitions == ["normal>pending", "pending>firing", "firing>normal"]
            || transitions == ["normal>firing", "firing>normal"],
        "{transitions:?}"
    );
}

#[test]
fn missing_field_rule_fires_while_devices_send_an_undeclared_name_and_resolves_with_the_alias() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    rule(
        &server,
        &key,
        json!({"name": "no_temp", "kind": "absence", "metric": "thermostat", "by": ["name"],
               "field": "temp", "for": "2s", "channels": ["ops"]}),
    );
    // d1 sent `temp`, then (new firmware) both send `temperature`, not yet a name of `temp`;
    // d2 never sent `temp` at all.
    temps(&server, &key, &[("d1", 21.5)]);
    let beat = Heartbeat::start(&server, &key, &["d1", "d2"], "temperature");
    let firing = hook.wait_for_matching(2, WAIT, in_state("firing"));
    let labels: BTreeSet<String> = firing
        .iter()
        .map(|r| r.json()["labels"].to_string())
        .collect();
    let expected: BTreeSet<String> = ["d1", "d2"]
        .iter()
        .map(|d| name_label(d).to_string())
        .collect();
    assert_eq!(labels, expected);
    // They keep sending under the other name: it keeps firing.
    std::thread::sleep(QUIET);
    assert_eq!(hook.requests().len(), 2, "{}", hook.describe());
    for device in ["d1", "d2"] {
        let state = state_of(&server, &key, "no_temp", &name_label(device));
        assert_eq!(state.as_deref(), Some("firing"), "{device}");
    }

    // Declaring the alias makes the data they send from now on a value of `temp`.
    let alias = json!({"type": "double", "aliases": ["temperature"]});
    let path = "/api/v1/schema/metrics/thermostat/fields/temp";
    expect(server.put(path, &key, &alias), 200, "alias");
    let resolved = hook.wait_for_matching(2, WAIT, in_state("resolved"));
    for r in &resolved {
        check_webhook(r, "no_temp", "resolved", &r.json()["labels"], "");
    }
    std::thread::sleep(QUIET);
    drop(beat);
    assert_eq!(hook.requests().len(), 4, "{}", hook.describe());
}

#[test]
fn a_silence_suppresses_its_instance_only_and_the_instance_is_notified_when_it_ends() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    let silence = json!({"matchers": {"alert": "hot", "name": "d1"}, "until": rfc3339_in(3_600_000),
                         "comment": "maintenance"});
    let created = expect(
        server.post("/api/v1/silences", &key, &silence),
        201,
        "silence",
    );
    let id = text(&created["id"]);
    let listed = expect(server.get("/api/v1/silences", &key), 200, "silences");
    assert_eq!(listed["silences"][0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed["silences"][0]["active"], true, "{listed}");

    temps(&server, &key, &[("d1", 40.0), ("d2", 40.0)]);
    rule(&server, &key, hot_rule("hot", &["ops"], json!({})));
    let d2 = hook.wait_for(1, WAIT);
    check_webhook(&d2[0], "hot", "firing", &name_label("d2"), "");
    let sql = "SELECT labels, status FROM strata.notifications WHERE alert = 'hot'";
    wait_until("a silenced notification for d1", WAIT, || {
        rows(&server, &key, sql)
            .iter()
            .any(|r| parsed(&r[0]) == json!([{"name": "d1"}]) && r[1] == "silenced")
            .then_some(())
    });
    std::thread::sleep(QUIET);
    assert_eq!(
        hook.requests().len(),
        1,
        "d1 is silenced:\n{}",
        hook.describe()
    );

    let deleted = expect(
        server.delete(&format!("/api/v1/silences/{id}"), &key),
        200,
        "delete",
    );
    assert_eq!(deleted["deleted"], id.as_str());
    let d1 = hook.wait_for_matching(1, WAIT, |r| r.json()["labels"] == name_label("d1"));
    check_webhook(&d1[0], "hot", "firing", &name_label("d1"), "");
    std::thread::sleep(QUIET);
    assert_eq!(hook.requests().len(), 2, "{}", hook.describe());
    let statuses: Vec<String> = rows(&server, &key, &format!("{sql} ORDER BY time"))
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                parsed(&r[0])[0]["name"].as_str().unwrap_or("?"),
                text(&r[1])
            )
        })
        .collect();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    for expected in ["d1:silenced", "d2:delivered", "d1:delivered"] {
        assert!(statuses.contains(&expected.to_string()), "{statuses:?}");
    }
}

#[test]
fn repeat_interval_repeats_a_firing_alert_until_it_is_acknowledged() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    temps(&server, &key, &[("d1", 40.0)]);
    rule(
        &server,
        &key,
        hot_rule("hot", &["ops"], json!({"repeat_interval": "2s"})),
    );

    let repeated = hook.wait_for(3, WAIT);
    let d1 = name_label("d1");
    for r in &repeated {
        check_webhook(r, "hot", "firing", &d1, "");
    }
    assert_eq!(
        ids(&repeated).len(),
        repeated.len(),
        "each repeat has its own id"
    );
    // One firing transition, however many repeats.
    assert_eq!(transitions_of(&server, &key, "hot", &d1), ["normal>firing"]);

    let ack = json!({"labels": {"name": "d1"}});
    let acked = expect(
        server.post("/api/v1/alerts/hot/ack", &key, &ack),
        200,
        "ack",
    );
    assert_eq!(acked["acknowledged"], 1, "{acked}");
    let after_ack = hook.requests().len();
    // Two repeat intervals and more: at most one repeat that was already on its way.
    std::thread::sleep(Duration::from_secs(5));
    let now = hook.requests().len();
    assert!(
        now <= after_ack + 1,
        "repeats after the ack:\n{}",
        hook.describe()
    );
    let body = expect(server.get("/api/v1/alerts/hot", &key), 200, "rule");
    assert_eq!(body["instances"][0]["acknowledged"], true, "{body}");
    assert_eq!(body["instances"][0]["state"], "firing", "{body}");
}

#[test]
fn group_wait_merges_instances_firing_together_into_one_notification() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    temps(&server, &key, &[("d1", 40.0), ("d2", 41.0), ("d3", 42.0)]);
    rule(
        &server,
        &key,
        hot_rule("hot", &["ops"], json!({"group_wait": "2s"})),
    );

    let got = hook.wait_for(1, WAIT);
    std::thread::sleep(QUIET);
    assert_eq!(
        hook.requests().len(),
        1,
        "one grouped notification:\n{}",
        hook.describe()
    );
    let body = got[0].json();
    let alerts = body["alerts"].as_array().expect("alerts");
    let names: BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["labels"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, BTreeSet::from(["d1", "d2", "d3"]), "{body}");
    for a in alerts {
        assert_eq!(a["state"], "firing", "{body}");
    }
    // The top level repeats the first entry.
    check_webhook(&got[0], "hot", "firing", &alerts[0]["labels"], "");
    let sql = "SELECT labels, status FROM strata.notifications WHERE alert = 'hot'";
    let rows = rows(&server, &key, sql);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        parsed(&rows[0][0]).as_array().map(Vec::len),
        Some(3),
        "{rows:?}"
    );
}

#[test]
fn email_to_a_real_smtp_server_and_sms_to_the_gateway_one_message_per_transition() {
    let Some(smtp) = SmtpSink::start() else {
        return;
    };
    let sms = Receiver::twilio();
    let sms_url = format!(
        "http://AC123:token@127.0.0.1:{}/2010-04-01/Accounts/AC123/Messages.json",
        sms.port()
    );
    let smtp_url = smtp.url();
    let server = serve(&[
        "--smtp-url",
        &smtp_url,
        "--sms-url",
        &sms_url,
        "--sms-from",
        "+15550000",
    ]);
    let key = tenant(&server, "acme");
    let mail = json!({"name": "mail", "kind": "email", "to": ["oncall@example.com"]});
    expect(
        server.post("/api/v1/channels", &key, &mail),
        201,
        "email channel",
    );
    let pager = json!({"name": "pager", "kind": "sms", "to": ["+15550100"]});
    expect(
        server.post("/api/v1/channels", &key, &pager),
        201,
        "sms channel",
    );
    temps(&server, &key, &[("d1", 40.0)]);
    rule(
        &server,
        &key,
        hot_rule("hot", &["mail", "pager"], json!({})),
    );

    let mails = smtp.wait_for(1, WAIT);
    check_mail(&mails[0], "[Strata] hot firing: name=d1");
    let texts = sms.wait_for(1, WAIT);
    check_sms(&texts[0], "hot firing");

    temps(&server, &key, &[("d1", 20.0)]);
    let mails = smtp.wait_for(2, WAIT);
    check_mail(&mails[1], "[Strata] hot resolved: name=d1");
    let texts = sms.wait_for(2, WAIT);
    check_sms(&texts[1], "hot resolved");
    std::thread::sleep(QUIET);
    assert_eq!(smtp.messages().len(), 2, "{:#?}", smtp.messages());
    assert_eq!(sms.requests().len(), 2, "{}", sms.describe());
    assert_ne!(mails[0].notification_id(), mails[1].notification_id());
    assert_ne!(texts[0].notification_id(), texts[1].notification_id());

    // A channel's test send goes out at once.
    let tested = expect(
        server.post("/api/v1/channels/mail/test", &key, &json!({})),
        200,
        "test",
    );
    assert_eq!(tested["delivered"], true, "{tested}");
    let mails = smtp.wait_for(3, WAIT);
    assert!(mails[2].subject.contains("test"), "{:?}", mails[2].subject);
}

/// A relay that insists on STARTTLS, with a certificate from a private CA that only
/// `--smtp-ca-file` makes trusted:
/// the mail arrives encrypted; without the CA file the same relay gets nothing.
#[test]
fn email_through_a_starttls_relay_trusted_by_its_ca_file() {
    if !crate::common::have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = crate::common::ca_signed(dir.path(), "relay");
    let Some(smtp) = SmtpSink::start_tls(&cert, &key) else {
        return;
    };
    let smtp_url = format!("smtp://127.0.0.1:{}?tls=required", smtp.port());
    let ca_arg = ca.to_str().expect("utf-8 path");
    let server = serve(&["--smtp-url", &smtp_url, "--smtp-ca-file", ca_arg]);
    let key = tenant(&server, "acme");
    let mail = json!({"name": "mail", "kind": "email", "to": ["oncall@example.com"]});
    expect(
        server.post("/api/v1/channels", &key, &mail),
        201,
        "email channel",
    );
    expect(
        server.post("/api/v1/channels/mail/test", &key, &json!({})),
        200,
        "test send",
    );
    let got = smtp.wait_for(1, WAIT);
    assert!(got[0].tls, "the message came over STARTTLS");
    assert_eq!(got[0].rcpt_tos, ["oncall@example.com"]);

    // The system's roots alone do not trust the relay: the test send fails and says why.
    let untrusting = serve(&["--smtp-url", &smtp_url]);
    let key = tenant(&untrusting, "acme");
    expect(
        untrusting.post("/api/v1/channels", &key, &mail),
        201,
        "email channel",
    );
    let answer = untrusting.post("/api/v1/channels/mail/test", &key, &json!({}));
    assert_ne!(answer.status, 200, "{}", answer.text);
    assert!(answer.text.contains("smtp"), "{}", answer.text);
    std::thread::sleep(QUIET);
    assert_eq!(smtp.messages().len(), 1, "nothing more reached the relay");

    // A CA file that is not PEM fails `strata serve` at startup, naming the flag.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").expect("write");
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--pg",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .args(["--smtp-url", &smtp_url, "--smtp-ca-file"])
        .arg(&bad)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run strata serve");
    let deadline = Instant::now() + WAIT;
    while serve.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = serve.kill();
            panic!("strata serve started with a CA file that holds no certificate");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = serve.wait_with_output().expect("output");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--smtp-ca-file"), "{stderr}");
}

fn check_mail(mail: &crate::receivers::Mail, subject: &str) {
    assert_eq!(mail.subject, subject, "{mail:#?}");
    assert_eq!(mail.rcpt_tos, ["oncall@example.com"], "{mail:#?}");
    assert_eq!(
        mail.mail_from, "strata@localhost",
        "the default --smtp-from"
    );
    assert!(
        mail.notification_id().is_some_and(|id| !id.is_empty()),
        "{mail:#?}"
    );
    assert!(
        mail.body.contains("name=d1") || mail.body.contains("d1"),
        "{mail:#?}"
    );
}

fn check_sms(req: &Request, start: &str) {
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/2010-04-01/Accounts/AC123/Messages.json");
    // HTTP Basic with the URL's userinfo: base64("AC123:token").
    assert_eq!(req.header("authorization"), Some("Basic QUMxMjM6dG9rZW4="));
    assert_eq!(req.form_value("To").as_deref(), Some("+15550100"));
    assert_eq!(req.form_value("From").as_deref(), Some("+15550000"));
    let body = req.form_value("Body").expect("Body");
    assert!(body.starts_with(start), "{body}");
    assert!(body.contains("name=d1"), "{body}");
    assert!(body.chars().count() <= 160, "{body}");
    assert!(req.notification_id().is_some_and(|id| !id.is_empty()));
}

#[test]
fn kill9_between_the_state_change_and_its_delivery_delivers_exactly_one_notification() {
    let mut server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    hook.set_down(true);
    webhook_channel(&server, &key, "ops", &hook, "");
    temps(&server, &key, &[("d1", 40.0)]);
    rule(&server, &key, hot_rule("hot", &["ops"], json!({})));
    // Once the state is committed, so is its notification (one catalog transaction).
    wait_state(&server, &key, "hot", &name_label("d1"), "firing");
    server.kill9();
    let before = hook.requests();
    assert!(before.iter().all(|r| !r.delivered()));

    server.restart();
    hook.set_down(false);
    hook.wait_for(1, OUTAGE_WAIT);
    std::thread::sleep(QUIET);
    let all = hook.requests();
    assert_eq!(
        ids(&all).len(),
        1,
        "one notification id:\n{}",
        hook.describe()
    );
    let delivered: Vec<Request> = all.iter().filter(|r| r.delivered()).cloned().collect();
    check_webhook(&delivered[0], "hot", "firing", &name_label("d1"), "");
    let sql = "SELECT state, status FROM strata.notifications WHERE alert = 'hot'";
    assert_eq!(
        rows(&server, &key, sql),
        [[json!("firing"), json!("delivered")]]
    );
    assert_eq!(
        transitions_of(&server, &key, "hot", &name_label("d1")),
        ["normal>firing"]
    );
}

#[test]
fn a_receiver_that_was_down_gets_every_notification_once_it_is_back() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let mut hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    hook.stop();
    let devices = ["d1", "d2", "d3"];
    temps(&server, &key, &[("d1", 40.0), ("d2", 40.0), ("d3", 40.0)]);
    rule(&server, &key, hot_rule("hot", &["ops"], json!({})));
    let tried = "SELECT count(*) FROM strata.notifications \
                 WHERE alert = 'hot' AND status = 'pending' AND attempts >= 1";
    let tried = || rows(&server, &key, tried)[0][0].as_i64();
    wait_until("3 firing notifications tried", WAIT, || {
        (tried() == Some(3)).then_some(())
    });
    temps(&server, &key, &[("d1", 20.0), ("d2", 20.0), ("d3", 20.0)]);
    // The resolutions wait in the outbox behind the firings they follow (order per rule).
    let written = "SELECT count(*) FROM strata.notifications \
                   WHERE alert = 'hot' AND status = 'pending'";
    wait_until("6 notifications written", WAIT, || {
        (rows(&server, &key, written)[0][0].as_i64() == Some(6)).then_some(())
    });

    // Back on the same address (the kill -9 test covers a receiver answering 503).
    hook.start();
    hook.wait_for(6, OUTAGE_WAIT);
    std::thread::sleep(QUIET);
    let delivered = hook.delivered();
    assert_eq!(ids(&delivered).len(), 6, "{}", hook.describe());
    assert_eq!(
        ids(&hook.requests()).len(),
        6,
        "no other id:\n{}",
        hook.describe()
    );
    for device in devices {
        let labels = name_label(device);
        let of_device: Vec<String> = delivered
            .iter()
            .filter(|r| r.json()["labels"] == labels)
            .map(|r| text(&r.json()["state"]))
            .collect();
        assert!(
            of_device.contains(&"firing".to_string()),
            "{device}: {of_device:?}"
        );
        assert!(
            of_device.contains(&"resolved".to_string()),
            "{device}: {of_device:?}"
        );
        // The receiver learns the transitions in the order they happened.
        assert_eq!(of_device[0], "firing", "{device}: {of_device:?}");
    }
    let sql = "SELECT status, attempts, state FROM strata.notifications WHERE alert = 'hot'";
    for row in rows(&server, &key, sql) {
        assert_eq!(row[0], "delivered", "{row:?}");
        // Firings were tried while the receiver was down; resolutions waited behind them.
        let least = if row[2] == "firing" { 2 } else { 1 };
        assert!(row[1].as_i64().unwrap_or(0) >= least, "{row:?}");
    }
}

#[test]
fn a_graceful_restart_does_not_notify_a_firing_alert_again() {
    let mut server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    temps(&server, &key, &[("d1", 40.0)]);
    rule(&server, &key, hot_rule("hot", &["ops"], json!({})));
    hook.wait_for(1, WAIT);
    let transitions = history(&server, &key, "hot").len();

    server.restart();
    let restarted = now_ms();
    // The rule evaluates again after the restart...
    wait_until("an evaluation after the restart", WAIT, || {
        let body = expect(server.get("/api/v1/alerts/hot", &key), 200, "rule");
        let at = body["last_evaluated_at"].as_str()?.to_string();
        let at = chrono::DateTime::parse_from_rfc3339(&at).ok()?;
        (at.timestamp_millis() > restarted).then_some(())
    });
    std::thread::sleep(QUIET);
    // ...and finds it still firing: no new transition, no new notification.
    assert_eq!(hook.requests().len(), 1, "{}", hook.describe());
    assert_eq!(history(&server, &key, "hot").len(), transitions);
    let state = state_of(&server, &key, "hot", &name_label("d1"));
    assert_eq!(state.as_deref(), Some("firing"));
}

#[test]
fn the_test_endpoint_shows_what_would_fire_without_notifying_or_changing_state() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    temps(&server, &key, &[("d1", 95.0), ("d2", 20.0), ("d3", 95.0)]);
    // d3 matched once, but its latest event does not.
    temps(&server, &key, &[("d3", 20.0)]);
    // Created after the writes, the event rule has seen no batch; the query rule waits an hour.
    let event = json!({"name": "fault", "kind": "event", "metric": "thermostat",
                       "condition": "temp > 90", "value": "temp", "channels": ["ops"]});
    rule(&server, &key, event);
    rule(
        &server,
        &key,
        hot_rule("hot", &["ops"], json!({"for": "1h"})),
    );

    for alert in ["hot", "fault"] {
        let path = format!("/api/v1/alerts/{alert}/test");
        let body = expect(server.post(&path, &key, &json!({})), 200, "test");
        assert_eq!(body["alert"], alert, "{body}");
        let mut seen: Vec<(String, bool)> = body["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .map(|i| (text(&i["labels"]["name"]), i["active"] == true))
            .collect();
        seen.sort();
        let expected =
            [("d1", true), ("d2", false), ("d3", false)].map(|(d, a)| (d.to_string(), a));
        assert_eq!(
            seen, expected,
            "every instance, active as of its latest event: {body}"
        );
        let d1 = body["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["labels"]["name"] == "d1");
        assert_eq!(d1.map(|i| &i["value"]), Some(&json!(95.0)), "{body}");
    }
    std::thread::sleep(QUIET);
    assert!(hook.requests().is_empty(), "{}", hook.describe());
    let sql = "SELECT count(*) FROM strata.notifications";
    assert_eq!(rows(&server, &key, sql)[0][0], 0);
    assert!(history(&server, &key, "fault").is_empty());
    let firing = "SELECT count(*) FROM strata.alerts WHERE state = 'firing'";
    assert_eq!(rows(&server, &key, firing)[0][0], 0);
    let unknown = server.post("/api/v1/alerts/nope/test", &key, &json!({}));
    assert_eq!(unknown.status, 404, "{}", unknown.text);
}

#[test]
fn system_tables_show_instances_transitions_and_deliveries() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    temps(&server, &key, &[("d1", 40.0), ("d2", 20.0)]);
    rule(&server, &key, hot_rule("hot", &["ops"], json!({})));
    let firing = hook.wait_for(1, WAIT);

    let sql = "SELECT alert, kind, labels, state, value, state_since, active_since, acknowledged \
               FROM strata.alerts ORDER BY labels";
    let alerts = rows(&server, &key, sql);
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let (d1, d2) = (&alerts[0], &alerts[1]);
    assert_eq!(d1[..2], [json!("hot"), json!("query")], "{d1:?}");
    assert_eq!(parsed(&d1[2]), name_label("d1"));
    assert_eq!(d1[3..5], [json!("firing"), json!(40.0)], "{d1:?}");
    assert!(d1[5].is_string() && d1[6].is_string(), "{d1:?}");
    assert_eq!(d1[7], false);
    assert_eq!(parsed(&d2[2]), name_label("d2"));
    assert_eq!(d2[3..5], [json!("normal"), json!(20.0)], "{d2:?}");
    assert_eq!(d2[6], Value::Null, "never active: {d2:?}");

    let sql = "SELECT time, alert, labels, from_state, to_state, value FROM strata.alert_history";
    let history = rows(&server, &key, sql);
    let d1_history: Vec<&Vec<Value>> = history
        .iter()
        .filter(|r| parsed(&r[2]) == name_label("d1"))
        .collect();
    assert_eq!(d1_history.len(), 1, "{history:?}");
    let h = d1_history[0];
    assert!(h[0].is_string(), "{h:?}");
    assert_eq!(h[1], "hot");
    assert_eq!(
        h[3..],
        [json!("normal"), json!("firing"), json!(40.0)],
        "{h:?}"
    );

    let id = firing[0].notification_id().expect("id").to_string();
    let sql = "SELECT id, alert, channel, state, labels, status, attempts, last_error, \
               delivered_at FROM strata.notifications";
    let notes = wait_until("the delivery recorded", WAIT, || {
        let notes = rows(&server, &key, sql);
        (notes.len() == 1 && notes[0][5] == "delivered").then_some(notes)
    });
    let n = &notes[0];
    assert_eq!(
        n[..4],
        [json!(id), json!("hot"), json!("ops"), json!("firing")],
        "{n:?}"
    );
    assert_eq!(parsed(&n[4]), json!([{"name": "d1"}]));
    assert_eq!(
        n[6..8],
        [json!(1), Value::Null],
        "one attempt, no error: {n:?}"
    );
    assert!(n[8].is_string(), "{n:?}");
}

#[test]
fn channels_list_without_secrets_test_sends_and_stay_while_a_rule_uses_them() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let mut hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "s3cret");
    let listed = expect(server.get("/api/v1/channels", &key), 200, "list");
    let ops = &listed["channels"][0];
    assert_eq!(
        (&ops["name"], &ops["kind"], &ops["has_secret"]),
        (&json!("ops"), &json!("webhook"), &json!(true))
    );
    assert!(!listed.to_string().contains("s3cret"), "{listed}");

    let tested = expect(
        server.post("/api/v1/channels/ops/test", &key, &json!({})),
        200,
        "test",
    );
    assert_eq!(tested["delivered"], true, "{tested}");
    let got = hook.wait_for(1, WAIT);
    let body = got[0].json();
    assert_eq!(
        (&body["alert"], &body["state"]),
        (&json!("test"), &json!("test")),
        "{body}"
    );
    assert_eq!(body["id"].as_str(), got[0].notification_id(), "{body}");
    let signature = format!("sha256={}", hex(&hmac_sha256(b"s3cret", &got[0].body)));
    assert_eq!(
        got[0].header("x-strata-signature"),
        Some(signature.as_str())
    );
    hook.stop();
    let failed = server.post("/api/v1/channels/ops/test", &key, &json!({}));
    assert_eq!(failed.status, 502, "{}", failed.text);
    assert!(!failed.error().is_empty(), "{}", failed.text);
    hook.start();

    rule(&server, &key, hot_rule("hot", &["ops"], json!({})));
    let in_use = server.delete("/api/v1/channels/ops", &key);
    assert_eq!(in_use.status, 409, "{}", in_use.text);
    expect(
        server.delete("/api/v1/alerts/hot", &key),
        200,
        "delete rule",
    );
    let deleted = expect(
        server.delete("/api/v1/channels/ops", &key),
        200,
        "delete channel",
    );
    assert_eq!(deleted["deleted"], "ops");
    assert_eq!(server.delete("/api/v1/channels/ops", &key).status, 404);
    let listed = expect(server.get("/api/v1/channels", &key), 200, "list");
    assert_eq!(listed["channels"], json!([]));
}

#[test]
fn tenant_attacks_are_refused_and_alert_tables_are_sealed() {
    // Without --allow-private-webhooks.
    let server = TestServer::start_with(&["--alert-tick-ms", "100"]);
    let a = tenant(&server, "acme");
    let b = tenant(&server, "globex");
    write_events(
        &server,
        &b,
        &[json!({"metrictype": "vault", "timestamp": now_ms(), "code": 7})],
    );

    // B's table is, to A's rules, a table that does not exist.
    let spy = |from: &str| {
        let sql = format!("SELECT count(*) AS value FROM {from}");
        let body = json!({"name": "spy", "kind": "query", "sql": sql, "channels": []});
        server.post("/api/v1/alerts", &a, &body)
    };
    let (other, none) = (spy("vault"), spy("nowhere"));
    assert_eq!(
        (other.status, none.status),
        (400, 400),
        "{} {}",
        other.text,
        none.text
    );
    assert_eq!(
        other.error().replace("vault", "X"),
        none.error().replace("nowhere", "X")
    );
    let event = json!({"name": "spy", "kind": "event", "metric": "vault", "condition": "code > 1", "channels": []});
    assert_eq!(server.post("/api/v1/alerts", &a, &event).status, 400);

    // A's alert fires; B sees none of it, by SQL or HTTP.
    temps(&server, &a, &[("d1", 40.0)]);
    rule(&server, &a, hot_rule("hot", &[], json!({})));
    wait_state(&server, &a, "hot", &name_label("d1"), "firing");
    assert_eq!(rows(&server, &a, "SELECT * FROM strata.alerts").len(), 1);
    for table in [
        "strata.alerts",
        "strata.alert_history",
        "strata.notifications",
    ] {
        assert!(
            rows(&server, &b, &format!("SELECT * FROM {table}")).is_empty(),
            "{table}"
        );
    }
    assert_eq!(
        expect(server.get("/api/v1/alerts", &b), 200, "list")["alerts"],
        json!([])
    );
    assert_eq!(server.get("/api/v1/alerts/hot", &b).status, 404);
    assert_eq!(
        server
            .post("/api/v1/alerts/hot/test", &b, &json!({}))
            .status,
        404
    );
    assert_eq!(server.delete("/api/v1/alerts/hot", &b).status, 404);

    // Private webhook targets: refused, naming the flag that would allow them.
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest",
        "http://100.64.0.1/hook",
        "http://0.0.0.0:9/hook",
        "http://[::1]:9/hook",
        "http://[fc00::1]/hook",
        "http://[fe80::1]/hook",
    ] {
        let body = json!({"name": "evil", "kind": "webhook", "url": url});
        let refused = server.post("/api/v1/channels", &a, &body);
        assert_eq!(refused.status, 400, "{url}: {}", refused.text);
        assert!(
            refused.error().contains("--allow-private-webhooks"),
            "{url}: {}",
            refused.text
        );
    }
    let public = json!({"name": "public", "kind": "webhook", "url": "http://8.8.8.8:9/hook"});
    expect(
        server.post("/api/v1/channels", &a, &public),
        201,
        "a public target",
    );
    let listed = expect(server.get("/api/v1/channels", &a), 200, "list");
    let names: Vec<&str> = listed["channels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["public"]);
    assert_eq!(
        expect(server.get("/api/v1/channels", &b), 200, "list")["channels"],
        json!([])
    );
}

/// Rules that must be refused: (body, status, a word the error must contain).
fn bad_rules() -> Vec<(Value, u16, &'static str)> {
    let query = hot_rule("bad", &["ops"], json!({}));
    let event = json!({"name": "bad", "kind": "event", "metric": "thermostat",
                       "condition": "temp > 90", "channels": ["ops"]});
    let absence = json!({"name": "bad", "kind": "absence", "metric": "thermostat",
                         "by": ["name"], "channels": ["ops"]});
    let sql = |text: &str| json!({ "sql": text });
    [
        (&query, sql("SELEC name FROM thermostat"), 400, "SELEC"),
        (
            &query,
            sql("SELECT nosuchcol AS value FROM thermostat"),
            400,
            "nosuchcol",
        ),
        (&query, json!({"condition": "valu > 30"}), 400, "valu"),
        (&query, json!({"every": "0s"}), 400, "every"),
        (&query, json!({"every": "2 parsecs"}), 400, "every"),
        (&query, json!({"for": "8d"}), 400, "for"),
        (&query, json!({"channels": ["ops", "nope"]}), 400, "nope"),
        (&query, json!({"name": "bad name"}), 400, "name"),
        (&query, json!({"name": "hot"}), 409, "hot"),
        (
            &event,
            json!({"metric": "nosuchmetric"}),
            400,
            "nosuchmetric",
        ),
        (&event, json!({"condition": "tmp > 90"}), 400, "tmp"),
        (&event, json!({"kind": "nonsense"}), 400, "kind"),
        (&absence, json!({}), 400, "for"),
        (
            &absence,
            json!({"for": "5s", "field": "nosuchfield"}),
            400,
            "nosuchfield",
        ),
        (
            &absence,
            json!({"for": "5s", "by": ["nosuchkey"]}),
            400,
            "nosuchkey",
        ),
    ]
    .into_iter()
    .map(|(base, extra, status, needle)| (with(base, extra), status, needle))
    .collect()
}

/// The names `GET /api/v1/alerts` lists.
fn rule_names(server: &TestServer, key: &str) -> Vec<String> {
    let listed = expect(server.get("/api/v1/alerts", key), 200, "list");
    listed["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|r| text(&r["name"]))
        .collect()
}

#[test]
fn bad_rules_are_refused_with_the_reason_and_leave_nothing_behind() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    rule(&server, &key, hot_rule("hot", &["ops"], json!({})));
    for (body, status, needle) in bad_rules() {
        let answer = server.post("/api/v1/alerts", &key, &body);
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        let error = answer.error();
        assert!(
            error.contains(needle),
            "{body}: expected {needle:?} in {error}"
        );
        assert_eq!(rule_names(&server, &key), ["hot"], "after {body}");
        let half = server.get("/api/v1/alerts/bad", &key);
        assert_eq!(half.status, 404, "after {body}");
    }
    let others = "SELECT count(*) FROM strata.alerts WHERE alert <> 'hot'";
    assert_eq!(rows(&server, &key, others)[0][0], 0);
    assert!(hook.requests().is_empty());
}

#[test]
fn bad_channels_and_silences_are_refused_and_leave_nothing_behind() {
    // No --smtp-url and no --sms-url.
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let cases = [
        (
            json!({"name": "mail", "kind": "email", "to": ["a@example.com"]}),
            400,
            "smtp",
        ),
        (
            json!({"name": "pager", "kind": "sms", "to": ["+15550100"]}),
            400,
            "sms",
        ),
        (
            json!({"name": "ftp", "kind": "webhook", "url": "ftp://127.0.0.1/x"}),
            400,
            "url",
        ),
        (
            json!({"name": "slow", "kind": "webhook", "url": "http://127.0.0.1:9/", "timeout": "61s"}),
            400,
            "timeout",
        ),
        (
            json!({"name": "bad name", "kind": "webhook", "url": "http://127.0.0.1:9/"}),
            400,
            "name",
        ),
        (json!({"name": "x", "kind": "pigeon"}), 400, "kind"),
    ];
    for (body, status, needle) in cases {
        let answer = server.post("/api/v1/channels", &key, &body);
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        assert!(
            answer.error().contains(needle),
            "{body}: expected {needle:?} in {}",
            answer.text
        );
    }
    assert_eq!(
        expect(server.get("/api/v1/channels", &key), 200, "list")["channels"],
        json!([])
    );
    let ops = json!({"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/hook"});
    expect(server.post("/api/v1/channels", &key, &ops), 201, "ops");
    assert_eq!(server.post("/api/v1/channels", &key, &ops).status, 409);
    assert_eq!(server.delete("/api/v1/channels/nope", &key).status, 404);

    let silences = [
        json!({"matchers": {}, "until": rfc3339_in(60_000)}),
        json!({"matchers": {"alert": "hot"}, "until": rfc3339_in(-60_000)}),
        json!({"matchers": {"alert": "hot"}, "until": "next tuesday"}),
        json!({"matchers": {"alert": "hot"}, "starts": rfc3339_in(120_000), "until": rfc3339_in(60_000)}),
    ];
    for body in silences {
        let answer = server.post("/api/v1/silences", &key, &body);
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
        assert!(!answer.error().is_empty(), "{}", answer.text);
    }
    assert_eq!(
        expect(server.get("/api/v1/silences", &key), 200, "list")["silences"],
        json!([])
    );
    assert_eq!(server.delete("/api/v1/silences/nope", &key).status, 404);
}

/// Readings of the last six seconds only (room for a slow first evaluation on a loaded machine):
/// the query's answer empties when devices go quiet.
const RECENT_TEMP: &str = "SELECT name, max(temp) AS value FROM thermostat \
                           WHERE timestamp > now() - INTERVAL '6 seconds' GROUP BY name";

#[test]
fn no_data_policies_mark_resolve_or_fire_when_the_answer_is_empty() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    // The reading comes first: a rule evaluated before any data would mark `nodata`, clear it
    // when the reading arrives, and mark it again once the reading ages out (two entries; the
    // race that failed CI under load).
    temps(&server, &key, &[("d1", 40.0)]);
    let base = json!({"kind": "query", "sql": RECENT_TEMP, "condition": "value > 30",
                      "every": "1s", "channels": ["ops"]});
    rule(&server, &key, with(&base, json!({"name": "marks"})));
    rule(
        &server,
        &key,
        with(&base, json!({"name": "fires", "no_data": "firing"})),
    );
    rule(
        &server,
        &key,
        with(&base, json!({"name": "keeps", "no_data": "keep_last"})),
    );
    for alert in ["marks", "fires", "keeps"] {
        wait_state(&server, &key, alert, &name_label("d1"), "firing");
    }
    // The reading ages out of the window: the answer is empty.
    let empty = json!({});
    wait_state(&server, &key, "marks", &empty, "nodata");
    wait_state(&server, &key, "marks", &name_label("d1"), "normal");
    wait_state(&server, &key, "fires", &empty, "firing");
    std::thread::sleep(QUIET);
    assert_eq!(
        state_of(&server, &key, "keeps", &name_label("d1")).as_deref(),
        Some("firing"),
        "keep_last changes nothing"
    );
    let of = |alert: &str, state: &str| {
        hook.requests()
            .iter()
            .filter(|r| r.json()["alert"] == alert && r.json()["state"] == state)
            .map(|r| r.json()["labels"].clone())
            .collect::<Vec<_>>()
    };
    // nodata is a visible state, not a notification; `firing` notifies the rule-level instance.
    assert_eq!(of("marks", "firing"), vec![name_label("d1")]);
    assert_eq!(of("marks", "resolved"), vec![name_label("d1")]);
    assert!(
        of("fires", "firing").contains(&empty),
        "{}",
        hook.describe()
    );
    assert!(of("keeps", "resolved").is_empty(), "{}", hook.describe());
    let nodata = "SELECT count(*) FROM strata.alert_history \
                  WHERE alert = 'marks' AND to_state = 'nodata' AND labels = '{}'";
    assert_eq!(rows(&server, &key, nodata)[0][0], 1);
}

#[test]
fn a_failing_rule_shows_error_and_an_answer_with_rows_clears_it() {
    let server = serve(&[]);
    let key = tenant(&server, "acme");
    let hook = Receiver::webhook();
    webhook_channel(&server, &key, "ops", &hook, "");
    rule(&server, &key, hot_rule("hot", &["ops"], json!({})));
    temps(&server, &key, &[("d1", 20.0)]);
    wait_state(&server, &key, "hot", &name_label("d1"), "normal");
    // The metric goes away: the rule's SQL no longer plans.
    let path = "/api/v1/schema/metrics/thermostat";
    expect(server.delete(path, &key), 200, "delete metric");
    let empty = json!({});
    wait_state(&server, &key, "hot", &empty, "error");
    let body = expect(server.get("/api/v1/alerts/hot", &key), 200, "rule");
    assert_eq!(body["health"], "error", "{body}");
    assert!(text(&body["last_error"]).contains("thermostat"), "{body}");
    // A new metric of that name answers again: the error ends, nothing was notified.
    expect(
        server.post(
            "/api/v1/schema/metrics",
            &key,
            &json!({"name": "thermostat"}),
        ),
        201,
        "metric",
    );
    temps(&server, &key, &[("d1", 20.0)]);
    wait_until("the error to clear", WAIT, || {
        let body = expect(server.get("/api/v1/alerts/hot", &key), 200, "rule");
        (body["health"] == "ok" && state_of(&server, &key, "hot", &empty).is_none()).then_some(())
    });
    let to_error = "SELECT count(*) FROM strata.alert_history WHERE alert = 'hot' \
                    AND to_state = 'error'";
    assert_eq!(rows(&server, &key, to_error)[0][0], 1);
    assert!(hook.requests().is_empty(), "{}", hook.describe());
}
