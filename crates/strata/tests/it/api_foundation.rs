//! Issue 2: the foundation endpoints against the real `strata serve` binary: health, tenants,
//! keys, settings, schema and history, every auth failure and bad input, persistence across a
//! restart, and concurrent alias claims.

use crate::common::TestServer;
use reqwest::Method;
use serde_json::{json, Value};

fn metric<'a>(schema: &'a Value, name: &str) -> &'a Value {
    schema["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("metric {name} not in {schema}"))
}

fn field<'a>(metric: &'a Value, name: &str) -> &'a Value {
    metric["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("field {name} not in {metric}"))
}

#[test]
fn health_needs_no_auth_and_names_the_build() {
    let server = TestServer::start();
    let answer = server.send(server.request(Method::GET, "/health", None));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "ok", "{}", answer.text);
    assert_eq!(
        answer.body["version"],
        env!("CARGO_PKG_VERSION"),
        "{}",
        answer.text
    );
    assert!(
        answer.body["build"]["datafusion"]
            .as_str()
            .is_some_and(|v| v.starts_with("55.")),
        "{}",
        answer.text
    );
}

#[test]
fn operator_token_file_is_private_and_reused() {
    let mut server = TestServer::start();
    let token = server.operator_token();
    assert!(token.len() >= 32, "token too short: {token}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(server.data_dir().join("operator.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "operator.token mode {mode:o}");
    }
    assert!(
        server.log().contains("operator.token"),
        "log names the token file"
    );
    server.restart();
    assert_eq!(server.operator_token(), token, "token survives restart");
}

#[test]
fn auth_failures_are_401_and_403_with_json_errors() {
    let server = TestServer::start();
    let op = server.operator_token();
    // No token.
    let answer = server.send(
        server
            .request(Method::POST, "/api/v1/tenants", None)
            .json(&json!({"name": "x"})),
    );
    assert_eq!(answer.status, 401, "{}", answer.text);
    assert!(answer.error().contains("Authorization"), "{}", answer.text);
    // Malformed header.
    let answer = server.send(
        server
            .request(Method::GET, "/api/v1/schema", None)
            .header("authorization", "Basic abc"),
    );
    assert_eq!(answer.status, 401);
    // Bad token.
    let answer = server.post("/api/v1/tenants", "sk_nope", &json!({"name": "x"}));
    assert_eq!(answer.status, 401);
    assert!(!answer.error().is_empty());
    let answer = server.get("/api/v1/schema", "sk_nope");
    assert_eq!(answer.status, 401);

    let admin = server.create_tenant("acme");
    let read = server.create_key(&admin, "read");
    let write = server.create_key(&admin, "write");
    // A tenant key cannot create tenants.
    let answer = server.post("/api/v1/tenants", &admin, &json!({"name": "other"}));
    assert_eq!(answer.status, 403, "{}", answer.text);
    // The operator token is not a tenant key.
    let answer = server.get("/api/v1/schema", &op);
    assert_eq!(answer.status, 403, "{}", answer.text);
    // Roles.
    assert_eq!(
        server
            .post("/api/v1/keys", &read, &json!({"role": "read"}))
            .status,
        403
    );
    assert_eq!(
        server
            .post("/api/v1/keys", &write, &json!({"role": "read"}))
            .status,
        403
    );
    assert_eq!(server.get("/api/v1/keys", &read).status, 403);
    assert_eq!(server.get("/api/v1/settings", &write).status, 403);
    assert_eq!(server.get("/api/v1/schema", &write).status, 403);
    assert_eq!(server.get("/api/v1/schema", &read).status, 200);
    assert_eq!(server.get("/api/v1/schema/history", &read).status, 403);
    let answer = server.post("/api/v1/schema/metrics", &read, &json!({"name": "m"}));
    assert_eq!(answer.status, 403);
    assert!(answer.error().contains("admin"), "{}", answer.text);
}

#[test]
fn tenants_validate_names_and_bodies() {
    let server = TestServer::start();
    let op = server.operator_token();
    let answer = server.post("/api/v1/tenants", &op, &json!({"name": "dpi"}));
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.body["tenant"], "dpi");
    assert!(answer.body["admin_key"].as_str().unwrap().len() >= 64);

    let dup = server.post("/api/v1/tenants", &op, &json!({"name": "dpi"}));
    assert_eq!(dup.status, 409, "{}", dup.text);
    assert!(dup.error().contains("dpi"), "{}", dup.text);

    for (body, needle) in [
        (json!({"name": ""}), "empty"),
        (json!({"name": "x".repeat(256)}), "255"),
        (json!({"name": "a\u{7}b"}), "control"),
        (json!({"name": "ok", "color": "red"}), "color"),
        (json!({}), "name"),
        (json!({"name": 5}), "invalid"),
    ] {
        let answer = server.post("/api/v1/tenants", &op, &body);
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
        assert!(
            answer.error().contains(needle),
            "{body}: error {:?} should mention {needle:?}",
            answer.error()
        );
    }
    let answer = server.post_raw(
        "/api/v1/tenants",
        &op,
        "application/json",
        b"{\"name\":".to_vec(),
    );
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(answer.error().contains("line 1"), "{}", answer.text);
    let answer = server.post_raw("/api/v1/tenants", &op, "application/json", Vec::new());
    assert_eq!(answer.status, 400);
    // Schema endpoints refuse bodies over 1 MiB.
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let answer = server.post_raw(
        "/api/v1/tenants",
        &op,
        "application/json",
        huge.into_bytes(),
    );
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert!(answer.error().contains("limit"), "{}", answer.text);

    // Unknown endpoint and method: JSON errors too.
    let answer = server.get("/api/v1/nope", &op);
    assert_eq!(answer.status, 404);
    assert!(answer.error().contains("/api/v1/nope"));
    let answer = server.send(server.request(Method::PUT, "/api/v1/tenants", Some(&op)));
    assert_eq!(answer.status, 405, "{}", answer.text);
    assert!(!answer.error().is_empty());
}

#[test]
fn keys_create_list_revoke_and_stay_in_their_tenant() {
    let server = TestServer::start();
    let admin_a = server.create_tenant("a");
    let admin_b = server.create_tenant("b");

    let created = server.post("/api/v1/keys", &admin_a, &json!({"role": "read"}));
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["role"], "read");
    let key_id = created.body["id"].as_str().unwrap().to_string();
    let secret = created.body["key"].as_str().unwrap().to_string();
    assert_eq!(server.get("/api/v1/schema", &secret).status, 200);

    let bad = server.post("/api/v1/keys", &admin_a, &json!({"role": "root"}));
    assert_eq!(bad.status, 400);
    assert!(bad.error().contains("root"), "{}", bad.text);

    let listed = server.get("/api/v1/keys", &admin_a);
    assert_eq!(listed.status, 200);
    assert!(listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["id"] == key_id.as_str()));
    assert!(
        !listed.text.contains(&secret),
        "list must not reveal secrets"
    );
    assert!(
        !listed.text.contains(&admin_a),
        "list must not reveal secrets"
    );
    // Tenant b does not see a's keys and cannot revoke them.
    let listed_b = server.get("/api/v1/keys", &admin_b);
    assert!(!listed_b.text.contains(&key_id));
    let answer = server.delete(&format!("/api/v1/keys/{key_id}"), &admin_b);
    assert_eq!(answer.status, 404, "{}", answer.text);
    assert_eq!(
        server.get("/api/v1/schema", &secret).status,
        200,
        "still valid"
    );

    let revoked = server.delete(&format!("/api/v1/keys/{key_id}"), &admin_a);
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(
        server.get("/api/v1/schema", &secret).status,
        401,
        "revoked at once"
    );
    let again = server.delete(&format!("/api/v1/keys/{key_id}"), &admin_a);
    assert_eq!(again.status, 404);

    // Secrets are not stored in the catalog file.
    let catalog = std::fs::read(server.data_dir().join("catalog.sqlite")).unwrap();
    let haystack = String::from_utf8_lossy(&catalog);
    assert!(!haystack.contains(&admin_a), "admin key stored in clear");
}

#[test]
fn settings_default_patch_and_validate() {
    let server = TestServer::start();
    let admin = server.create_tenant("t");
    let got = server.get("/api/v1/settings", &admin);
    assert_eq!(got.status, 200);
    assert_eq!(got.body["metric_keys"], json!(["metrictype"]));
    assert_eq!(got.body["timestamp_patterns"], json!([]));

    let patched = server.patch(
        "/api/v1/settings",
        &admin,
        &json!({"metric_keys": ["metrictype", "source"], "timestamp_patterns": ["%d/%m/%Y %H:%M"]}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    let got = server.get("/api/v1/settings", &admin);
    assert_eq!(got.body["metric_keys"], json!(["metrictype", "source"]));
    assert_eq!(got.body["timestamp_patterns"], json!(["%d/%m/%Y %H:%M"]));

    let bad = server.patch(
        "/api/v1/settings",
        &admin,
        &json!({"timestamp_patterns": ["%Q"]}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.error().contains("%Q"), "{}", bad.text);
    let bad = server.patch("/api/v1/settings", &admin, &json!({"metric_keys": []}));
    assert_eq!(bad.status, 400, "{}", bad.text);
    let bad = server.patch("/api/v1/settings", &admin, &json!({"metric_key": ["x"]}));
    assert_eq!(bad.status, 400);
    assert!(bad.error().contains("metric_key"), "{}", bad.text);
}

#[test]
fn schema_lifecycle_and_history() {
    let server = TestServer::start();
    let admin = server.create_tenant("dpi");
    let read = server.create_key(&admin, "read");

    let created = server.post(
        "/api/v1/schema/metrics",
        &admin,
        &json!({"name": "thermostat", "aliases": ["machine1", "machine1b"]}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["metric"]["name"], "thermostat");

    // Names are unique across metric names and aliases.
    let dup = server.post(
        "/api/v1/schema/metrics",
        &admin,
        &json!({"name": "machine1"}),
    );
    assert_eq!(dup.status, 409, "{}", dup.text);
    assert!(dup.error().contains("machine1"), "{}", dup.text);

    // Fields: declare with type synonyms and aliases.
    let put = server.put(
        "/api/v1/schema/metrics/thermostat/fields/temperature",
        &admin,
        &json!({"type": "float", "aliases": ["temp", "tmp"]}),
    );
    assert_eq!(put.status, 200, "{}", put.text);
    let put = server.put(
        "/api/v1/schema/metrics/machine1/fields/pressure",
        &admin,
        &json!({"type": "bigint"}),
    );
    assert_eq!(put.status, 200, "{}", put.text);
    // Metric is reachable by alias; an alias already used by another field conflicts.
    let conflict = server.patch(
        "/api/v1/schema/metrics/thermostat/fields/pressure",
        &admin,
        &json!({"add_aliases": ["temp"]}),
    );
    assert_eq!(conflict.status, 409, "{}", conflict.text);
    assert!(conflict.error().contains("temp"), "{}", conflict.text);
    assert!(
        conflict.error().contains("temperature"),
        "names the owner: {}",
        conflict.text
    );

    // Bad inputs.
    for (path, body, needle) in [
        (
            "/api/v1/schema/metrics/thermostat/fields/x",
            json!({"type": "decimal"}),
            "decimal",
        ),
        (
            "/api/v1/schema/metrics/thermostat/fields/timestamp",
            json!({"type": "double"}),
            "timestamp",
        ),
        (
            "/api/v1/schema/metrics/thermostat/fields/x",
            json!({"type": "double", "alias": ["y"]}),
            "alias",
        ),
        (
            "/api/v1/schema/metrics/thermostat/fields/x",
            json!({"aliases": ["timestamp"]}),
            "timestamp",
        ),
    ] {
        let answer = server.put(path, &admin, &body);
        assert_eq!(answer.status, 400, "{path} {body}: {}", answer.text);
        assert!(answer.error().contains(needle), "{body}: {}", answer.text);
    }
    let missing = server.put("/api/v1/schema/metrics/nope/fields/x", &admin, &json!({}));
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert!(missing.error().contains("nope"));
    let long = format!(
        "/api/v1/schema/metrics/thermostat/fields/{}",
        "f".repeat(300)
    );
    assert_eq!(server.put(&long, &admin, &json!({})).status, 400);

    // Rename a field: the old name stays as an alias, precedence unchanged.
    let renamed = server.patch(
        "/api/v1/schema/metrics/thermostat/fields/temp",
        &admin,
        &json!({"rename_to": "temp_c"}),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let f = field(&renamed.body["metric"], "temp_c");
    assert_eq!(f["type"], "double");
    assert_eq!(f["aliases"], json!(["temperature", "temp", "tmp"]));

    // Hide and unhide, remove an alias.
    let hidden = server.patch(
        "/api/v1/schema/metrics/thermostat/fields/pressure",
        &admin,
        &json!({"hidden": true, "type": "double"}),
    );
    assert_eq!(hidden.status, 200, "{}", hidden.text);
    assert_eq!(field(&hidden.body["metric"], "pressure")["hidden"], true);
    let removed = server.patch(
        "/api/v1/schema/metrics/thermostat/fields/temp_c",
        &admin,
        &json!({"remove_aliases": ["tmp"]}),
    );
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert_eq!(
        field(&removed.body["metric"], "temp_c")["aliases"],
        json!(["temperature", "temp"])
    );

    // Rename the metric: the old name keeps working.
    let renamed = server.patch(
        "/api/v1/schema/metrics/thermostat",
        &admin,
        &json!({"rename_to": "thermo", "add_aliases": ["m1c"], "timestamp_aliases": ["ts"], "series_keys": ["name"]}),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let schema = server.get("/api/v1/schema", &read).body;
    let m = metric(&schema, "thermo");
    let aliases: Vec<&str> = m["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for alias in ["machine1", "machine1b", "thermostat", "m1c"] {
        assert!(aliases.contains(&alias), "{alias} in {aliases:?}");
    }
    assert_eq!(m["timestamp_aliases"], json!(["ts"]));
    assert_eq!(m["series_keys"], json!(["name"]));
    let by_old = server.put(
        "/api/v1/schema/metrics/thermostat/fields/gallons",
        &admin,
        &json!({"type": "int"}),
    );
    assert_eq!(
        by_old.status, 200,
        "old metric name still resolves: {}",
        by_old.text
    );
    // A timestamp alias cannot also be a field name.
    let clash = server.put(
        "/api/v1/schema/metrics/thermo/fields/ts",
        &admin,
        &json!({}),
    );
    assert_eq!(clash.status, 409, "{}", clash.text);

    // Delete, then reuse the name for a new, empty metric.
    let deleted = server.delete("/api/v1/schema/metrics/thermo", &admin);
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    let schema = server.get("/api/v1/schema", &read).body;
    assert!(schema["metrics"].as_array().unwrap().is_empty(), "{schema}");
    let again = server.post(
        "/api/v1/schema/metrics",
        &admin,
        &json!({"name": "thermostat"}),
    );
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.body["metric"]["fields"], json!([]));
    assert_eq!(
        server
            .delete("/api/v1/schema/metrics/machine1", &admin)
            .status,
        404
    );

    // History: every change, in order, readable.
    let history = server.get("/api/v1/schema/history", &admin);
    assert_eq!(history.status, 200);
    let versions = history.body["versions"].as_array().unwrap();
    let numbers: Vec<i64> = versions
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (1..=numbers.len() as i64).collect();
    assert_eq!(numbers, expected, "dense and ordered");
    let changes: Vec<&str> = versions
        .iter()
        .map(|v| v["change"].as_str().unwrap())
        .collect();
    let position = |needle: &str| {
        changes
            .iter()
            .position(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("no change mentions {needle}: {changes:#?}"))
    };
    assert!(position("temp_c") < position("thermo\""), "{changes:#?}");
    assert!(versions.iter().all(|v| v["time"].as_str().is_some()));
    assert!(versions.len() >= 10, "{changes:#?}");
}

#[test]
fn tenants_cannot_reach_each_others_schema() {
    let server = TestServer::start();
    let a = server.create_tenant("a");
    let b = server.create_tenant("b");
    assert_eq!(
        server
            .post(
                "/api/v1/schema/metrics",
                &a,
                &json!({"name": "secret_metric"})
            )
            .status,
        201
    );
    let schema_b = server.get("/api/v1/schema", &b);
    assert!(!schema_b.text.contains("secret_metric"));
    let answer = server.patch(
        "/api/v1/schema/metrics/secret_metric",
        &b,
        &json!({"rename_to": "x"}),
    );
    assert_eq!(answer.status, 404);
    let answer = server.delete("/api/v1/schema/metrics/secret_metric", &b);
    assert_eq!(answer.status, 404);
    // b may use the same name for its own metric.
    assert_eq!(
        server
            .post(
                "/api/v1/schema/metrics",
                &b,
                &json!({"name": "secret_metric"})
            )
            .status,
        201
    );
    assert!(!server
        .get("/api/v1/schema/history", &b)
        .text
        .contains("tenant a"));
    assert_eq!(
        server.get("/api/v1/schema/history", &a).body["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn everything_persists_across_restart() {
    let mut server = TestServer::start();
    let admin = server.create_tenant("dpi");
    let read = server.create_key(&admin, "read");
    server.post(
        "/api/v1/schema/metrics",
        &admin,
        &json!({"name": "thermostat", "aliases": ["machine1"]}),
    );
    server.put(
        "/api/v1/schema/metrics/thermostat/fields/temperature",
        &admin,
        &json!({"type": "double", "aliases": ["temp"]}),
    );
    server.patch(
        "/api/v1/settings",
        &admin,
        &json!({"metric_keys": ["source"]}),
    );
    let schema_before = server.get("/api/v1/schema", &read).body;
    let history_before = server.get("/api/v1/schema/history", &admin).body;
    let keys_before = server.get("/api/v1/keys", &admin).body["keys"]
        .as_array()
        .unwrap()
        .len();

    server.restart();
    assert_eq!(server.get("/api/v1/schema", &read).body, schema_before);
    assert_eq!(
        server.get("/api/v1/schema/history", &admin).body,
        history_before
    );
    assert_eq!(
        server.get("/api/v1/keys", &admin).body["keys"]
            .as_array()
            .unwrap()
            .len(),
        keys_before
    );
    assert_eq!(
        server.get("/api/v1/settings", &admin).body["metric_keys"],
        json!(["source"])
    );
    let dup = server.post(
        "/api/v1/tenants",
        &server.operator_token(),
        &json!({"name": "dpi"}),
    );
    assert_eq!(dup.status, 409, "tenant persisted");
}

#[test]
fn concurrent_alias_claims_cannot_both_succeed() {
    let server = TestServer::start();
    let admin = server.create_tenant("race");
    server.post("/api/v1/schema/metrics", &admin, &json!({"name": "m"}));
    const FIELDS: usize = 8;
    for i in 0..FIELDS {
        let answer = server.put(
            &format!("/api/v1/schema/metrics/m/fields/f{i}"),
            &admin,
            &json!({}),
        );
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    for round in 0..5 {
        let alias = format!("contested{round}");
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..FIELDS)
                .map(|i| {
                    let server = &server;
                    let admin = &admin;
                    let alias = &alias;
                    scope.spawn(move || {
                        server
                            .patch(
                                &format!("/api/v1/schema/metrics/m/fields/f{i}"),
                                admin,
                                &json!({"add_aliases": [alias]}),
                            )
                            .status
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            FIELDS - 1,
            "{statuses:?}"
        );
    }
    // Same race for metric names.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..FIELDS)
            .map(|_| {
                let server = &server;
                let admin = &admin;
                scope.spawn(move || {
                    server
                        .post("/api/v1/schema/metrics", admin, &json!({"name": "same"}))
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
}
