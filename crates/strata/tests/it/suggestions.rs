//! Issue 17: schema suggestions on the real server — a type suggestion applied types the next
//! query, an alias suggestion applied makes one name read both, a name queries miss becomes an
//! alias suggestion, a dismissal lasts across a restart, profiles survive a restart, and
//! profiling can be turned off.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{write_events, TestServer};

const T0: i64 = 1_780_000_000_000;

/// Suggestions, polled until `wanted` holds (statistics and profiles are flushed each second).
fn suggestions_until(
    server: &TestServer,
    key: &str,
    wanted: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = server.get("/api/v1/schema/suggestions", key);
        assert_eq!(answer.status, 200, "{}", answer.text);
        let list = answer.body["suggestions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if wanted(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "suggestions never matched: {list:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn find<'a>(list: &'a [Value], op: &str, field_or_alias: &str) -> Option<&'a Value> {
    list.iter().find(|s| {
        s["change"]["op"] == op
            && (s["change"]["field"] == field_or_alias || s["change"]["alias"] == field_or_alias)
    })
}

/// `pressure` as text, one value in a hundred `n/a`.
fn dirty_pressure(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let text = if i % 100 == 7 { "n/a".to_string() } else { format!("{}.5", 100 + i % 5) };
            json!({"metrictype": "boiler", "timestamp": T0 + i as i64, "device": "b1", "pressure": text})
        })
        .collect()
}

#[test]
fn applying_a_type_suggestion_types_the_next_query() {
    let server = TestServer::start();
    let key = server.create_tenant("types");
    write_events(&server, &key, &dirty_pressure(300));
    let list = suggestions_until(&server, &key, |l| find(l, "set_type", "pressure").is_some());
    let suggestion = find(&list, "set_type", "pressure").expect("a type suggestion");
    assert_eq!(suggestion["change"]["type"], "double");
    assert_eq!(suggestion["kind"], "type");
    let reason = suggestion["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("% of 300 values read as double"),
        "{reason}"
    );
    let tested = suggestion["evidence"]["strings_tested"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        tested >= 256,
        "a request's first 256 strings are all tested: {tested}"
    );
    assert!(reason.contains("counter-examples: n/a"), "{reason}");
    assert_eq!(suggestion["evidence"]["counter_examples"], json!(["n/a"]));

    let before = server.sql(&key, "SELECT pressure FROM boiler LIMIT 1");
    assert_eq!(
        before.body["columns"][0]["type"], "varchar",
        "unknown fields read as text"
    );
    let id = suggestion["id"].as_str().expect("an id");
    let applied = server.post(
        &format!("/api/v1/schema/suggestions/{id}/apply"),
        &key,
        &json!({}),
    );
    assert_eq!(applied.status, 200, "{}", applied.text);
    assert!(
        applied.body["version"].as_i64().is_some(),
        "{}",
        applied.text
    );

    let after = server.sql(
        &key,
        "SELECT sum(pressure) AS s, count(pressure) AS n FROM boiler",
    );
    assert_eq!(after.status, 200, "{}", after.text);
    assert_eq!(
        after.body["rows"][0][1], 297,
        "the three n/a read as null: {}",
        after.text
    );
    let typed = server.sql(&key, "SELECT pressure FROM boiler LIMIT 1");
    assert_eq!(typed.body["columns"][0]["type"], "double");
    let list = server.get("/api/v1/schema/suggestions", &key).body;
    assert!(
        find(
            list["suggestions"].as_array().unwrap(),
            "set_type",
            "pressure"
        )
        .is_none(),
        "applied: gone"
    );
}

#[test]
fn applying_an_alias_suggestion_makes_one_name_read_both() {
    let server = TestServer::start();
    let key = server.create_tenant("aliases");
    // Devices are series (by `name`), so each one's hand-over from one name to the other shows.
    let answer = server.post(
        "/api/v1/schema/metrics",
        &key,
        &json!({"name": "thermostat"}),
    );
    assert_eq!(answer.status, 201, "{}", answer.text);
    let answer = server.put(
        "/api/v1/schema/metrics/thermostat/fields/name",
        &key,
        &json!({"type": "string"}),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    let answer = server.patch(
        "/api/v1/schema/metrics/thermostat",
        &key,
        &json!({"series_keys": ["name"]}),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    // Firmware 2 renamed `temp` to `temperature`: every device switches at its own time.
    let mut events = Vec::new();
    for device in 0..4i64 {
        for i in 0..60i64 {
            let name = if i < 20 + device * 5 {
                "temp"
            } else {
                "temperature"
            };
            events.push(
                json!({"metrictype": "thermostat", "timestamp": T0 + i * 1000 + device,
                "name": format!("t{device}"), name: 20.5 + (i % 7) as f64}),
            );
        }
    }
    write_events(&server, &key, &events);
    let list = suggestions_until(&server, &key, |l| l.iter().any(|s| s["kind"] == "alias"));
    let alias = list
        .iter()
        .find(|s| s["kind"] == "alias")
        .expect("an alias suggestion");
    assert_eq!(
        alias["change"],
        json!({"op": "add_alias", "field": "temperature", "alias": "temp"})
    );
    let reason = alias["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("4 of 4 series switched"), "{reason}");
    assert_eq!(alias["evidence"]["events_with_both"], 0);
    let id = alias["id"].as_str().expect("an id");
    let applied = server.post(
        &format!("/api/v1/schema/suggestions/{id}/apply"),
        &key,
        &json!({}),
    );
    assert_eq!(applied.status, 200, "{}", applied.text);

    for name in ["temp", "temperature"] {
        let answer = server.sql(&key, &format!("SELECT count({name}) FROM thermostat"));
        assert_eq!(
            answer.body["rows"][0][0], 240,
            "{name} reads both names: {}",
            answer.text
        );
    }
}

#[test]
fn a_name_queries_miss_is_suggested_and_a_dismissal_lasts() {
    let mut server = TestServer::start();
    let key = server.create_tenant("queried");
    let events: Vec<Value> = (0..50)
        .map(|i| json!({"metrictype": "thermostat", "timestamp": T0 + i, "temperature": 21.5}))
        .collect();
    write_events(&server, &key, &events);
    for _ in 0..3 {
        let answer = server.sql(&key, "SELECT temperature_c FROM thermostat");
        assert_eq!(answer.status, 400, "{}", answer.text);
    }
    let list = suggestions_until(&server, &key, |l| {
        find(l, "add_alias", "temperature_c").is_some()
    });
    let suggestion = find(&list, "add_alias", "temperature_c").expect("a query-usage alias");
    assert_eq!(suggestion["change"]["field"], "temperature");
    let reason = suggestion["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("`temperature_c` was queried 3 times"),
        "{reason}"
    );

    let reader = server.create_key(&key, "read");
    let id = suggestion["id"].as_str().expect("an id").to_string();
    let refused = server.post(
        &format!("/api/v1/schema/suggestions/{id}/dismiss"),
        &reader,
        &json!({}),
    );
    assert_eq!(
        refused.status, 403,
        "only an admin dismisses: {}",
        refused.text
    );
    let dismissed = server.post(
        &format!("/api/v1/schema/suggestions/{id}/dismiss"),
        &key,
        &json!({}),
    );
    assert_eq!(dismissed.status, 200, "{}", dismissed.text);
    let again = server.post(
        &format!("/api/v1/schema/suggestions/{id}/apply"),
        &key,
        &json!({}),
    );
    assert_eq!(again.status, 404, "{}", again.text);
    assert!(
        again.body["error"]
            .as_str()
            .unwrap_or("")
            .contains("no current suggestion"),
        "{}",
        again.text
    );

    server.restart();
    let answer = server.sql(&key, "SELECT temperature_c FROM thermostat");
    assert_eq!(answer.status, 400);
    let list = server.get("/api/v1/schema/suggestions", &key).body;
    let ids: Vec<&str> = list["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(
        !ids.contains(&id.as_str()),
        "a dismissal lasts across a restart: {ids:?}"
    );
}

/// Query usage is saved by the statistics flusher and restored at startup: counts from before
/// a restart add to the counts after it.
#[test]
fn query_usage_survives_a_restart() {
    let mut server = TestServer::start();
    let key = server.create_tenant("usage");
    let events: Vec<Value> = (0..50)
        .map(|i| json!({"metrictype": "thermostat", "timestamp": T0 + i, "temperature": 21.5}))
        .collect();
    write_events(&server, &key, &events);
    let miss = |server: &TestServer| {
        let answer = server.sql(&key, "SELECT temperature_c FROM thermostat");
        assert_eq!(answer.status, 400, "{}", answer.text);
    };
    for _ in 0..4 {
        miss(&server);
    }
    server.restart();
    miss(&server);
    let list = suggestions_until(&server, &key, |l| {
        find(l, "add_alias", "temperature_c").is_some()
    });
    let suggestion = find(&list, "add_alias", "temperature_c").expect("a query-usage alias");
    let reason = suggestion["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("`temperature_c` was queried 5 times"),
        "4 before the restart and 1 after: {reason}"
    );
}

#[test]
fn profiles_survive_a_restart_and_can_be_turned_off() {
    let mut server = TestServer::start();
    let key = server.create_tenant("restart");
    write_events(&server, &key, &dirty_pressure(200));
    suggestions_until(&server, &key, |l| find(l, "set_type", "pressure").is_some());
    server.restart();
    let list = server.get("/api/v1/schema/suggestions", &key).body;
    let kept = find(
        list["suggestions"].as_array().unwrap(),
        "set_type",
        "pressure",
    )
    .cloned();
    assert!(
        kept.is_some(),
        "the stored profile still backs the suggestion: {list}"
    );

    let off = TestServer::start_with(&["--profiling", "off"]);
    let key = off.create_tenant("off");
    write_events(&off, &key, &dirty_pressure(200));
    let deadline = Instant::now() + Duration::from_secs(30);
    while off.get("/api/v1/schema", &key).body["metrics"][0]["unknown_fields"][0]["count"]
        == Value::Null
    {
        assert!(Instant::now() < deadline, "statistics never flushed");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let list = off.get("/api/v1/schema/suggestions", &key).body;
    assert_eq!(
        list["suggestions"],
        json!([]),
        "no profiles, no value suggestions: {list}"
    );
}

#[test]
fn suggestion_requests_are_checked() {
    let server = TestServer::start();
    let key = server.create_tenant("checked");
    let answer = server.get("/api/v1/schema/suggestions?stale_days=0", &key);
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap_or("")
            .contains("stale_days"),
        "{}",
        answer.text
    );
    let answer = server.get("/api/v1/schema/suggestions?stale_days=abc", &key);
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap_or("")
            .contains("stale_days"),
        "{}",
        answer.text
    );
    let answer = server.post("/api/v1/schema/suggestions/nope/apply", &key, &json!({}));
    assert_eq!(answer.status, 404, "{}", answer.text);
}

/// Runs the `strata` client against `server` with `key`.
fn cli(server: &TestServer, key: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::common::BIN)
        .args(args)
        .env("STRATA_URL", server.url())
        .env("STRATA_KEY", key)
        .env("NO_COLOR", "1")
        .env_remove("STRATA_OPERATOR_TOKEN")
        .output()
        .expect("run strata")
}

#[test]
fn the_cli_lists_applies_and_dismisses_suggestions() {
    let server = TestServer::start();
    let key = server.create_tenant("cli");
    write_events(&server, &key, &dirty_pressure(100));
    for _ in 0..2 {
        assert_eq!(
            server.sql(&key, "SELECT pressure_kpa FROM boiler").status,
            400
        );
    }
    let list = suggestions_until(&server, &key, |l| {
        find(l, "set_type", "pressure").is_some() && find(l, "add_alias", "pressure_kpa").is_some()
    });
    let type_id = find(&list, "set_type", "pressure").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let alias_id = find(&list, "add_alias", "pressure_kpa").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let shown = cli(&server, &key, &["schema", "suggest"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        text.contains(&type_id) && text.contains(&alias_id),
        "{text}"
    );
    assert!(
        text.contains("read as double"),
        "the reason is shown: {text}"
    );

    let applied = cli(&server, &key, &["schema", "suggest", "--apply", &type_id]);
    let text = String::from_utf8_lossy(&applied.stdout);
    assert!(
        applied.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert!(text.contains("schema version"), "{text}");
    let dismissed = cli(
        &server,
        &key,
        &["schema", "suggest", "--dismiss", &alias_id],
    );
    assert!(
        dismissed.status.success(),
        "{}",
        String::from_utf8_lossy(&dismissed.stderr)
    );

    let after = cli(&server, &key, &["schema", "suggest", "--json"]);
    let body: Value = serde_json::from_slice(&after.stdout).expect("JSON with --json");
    assert_eq!(
        body["suggestions"],
        json!([]),
        "one applied, one dismissed: {body}"
    );
    let typed = server.sql(&key, "SELECT pressure FROM boiler LIMIT 1");
    assert_eq!(typed.body["columns"][0]["type"], "double");

    let missing = cli(
        &server,
        &key,
        &["schema", "suggest", "--apply", "type-0-nope"],
    );
    assert!(!missing.status.success(), "an unknown id fails");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no current suggestion"));
}
