//! The web app (issue 18) on the real `strata serve`: its serving and sessions over plain HTTP
//! (cookies, CSRF, expiry by sign-out and revocation, tenant isolation), and the app itself in
//! real Chromium (Debian's package) driven by Playwright, `tests/clients/web_ui.py`.
//!
//! Chromium and Playwright are test clients like psql: missing, the browser test skips with a
//! message, unless `STRATA_REQUIRE_CLIENTS=1` (CI), where it fails. Screenshots go to a
//! temporary directory, or to `STRATA_UI_SCREENSHOTS` when set (`docs/img/ui` regenerates the
//! ones in docs/ui.md); `STRATA_UI_MEASURE=1` adds the size and speed measurements.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;
use serde_json::{json, Value};
use strata_testkit::available;

use crate::cloud::{clients_dir, probe, python};
use crate::common::{Answer, TestServer};

// ---------------------------------------------------------------------------------------------
// HTTP: serving and sessions

/// The session cookie's `name=value` from a sign-in answer's `Set-Cookie`, and the header.
fn sign_in(server: &TestServer, key: &str) -> (String, String, Value) {
    let response = server
        .request(Method::POST, "/api/v1/session", None)
        .json(&json!({ "key": key }))
        .send()
        .expect("sign in");
    assert_eq!(response.status().as_u16(), 201);
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_string();
    let pair = set_cookie.split(';').next().unwrap().to_string();
    let body: Value = response.json().unwrap();
    (pair, set_cookie, body)
}

/// A GET authenticated by `cookie` alone.
fn cookie_get(server: &TestServer, path: &str, cookie: &str) -> Answer {
    server.send(with_cookie(server, Method::GET, path, cookie, None))
}

fn with_cookie(
    server: &TestServer,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
) -> reqwest::blocking::RequestBuilder {
    let mut request = server.request(method, path, None).header("cookie", cookie);
    if let Some(csrf) = csrf {
        request = request.header("x-strata-csrf", csrf);
    }
    request
}

fn sql_with_cookie(server: &TestServer, cookie: &str, csrf: Option<&str>, sql: &str) -> Answer {
    server.send(
        with_cookie(server, Method::POST, "/api/v1/sql", cookie, csrf).json(&json!({ "sql": sql })),
    )
}

#[test]
fn the_app_is_served_at_root_with_versioned_immutable_assets() {
    let server = TestServer::start();
    let page = server.request(Method::GET, "/", None).send().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = page.text().unwrap();
    let start = html.find("/app/").expect("a versioned asset path");
    let main = &html[start..start + html[start..].find('"').unwrap()];
    assert!(main.ends_with(".css") || main.ends_with(".js"), "{main}");
    let asset = server.request(Method::GET, main, None).send().unwrap();
    assert_eq!(asset.status().as_u16(), 200, "{main}");
    assert!(
        asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable"),
        "{:?}",
        asset.headers()
    );
    // gzip for browsers that ask; the vendored bundle is the bulk of the first load.
    let version = main.split('/').nth(2).unwrap();
    let vendor = server
        .request(
            Method::GET,
            &format!("/app/{version}/vendor/vendor.js"),
            None,
        )
        .header("accept-encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(vendor.headers()["content-encoding"], "gzip");
    assert_eq!(
        vendor.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    // An old page's version still loads today's file, but uncached.
    let stale = server
        .request(Method::GET, "/app/000000000000/js/main.js", None)
        .send()
        .unwrap();
    assert_eq!(stale.status().as_u16(), 200);
    assert_eq!(stale.headers()["cache-control"], "no-cache");
    let missing = server.request(Method::GET, &format!("/app/{version}/nope.js"), None);
    assert_eq!(server.send(missing).status, 404);
}

#[test]
fn a_session_cookie_stands_for_its_key_with_csrf_on_changes() {
    let server = TestServer::start();
    let admin = server.create_tenant("web_a");
    let written = server.post(
        "/api/v1/write",
        &admin,
        &json!({ "metrictype": "dial", "timestamp": 1_000, "v": "1" }),
    );
    assert_eq!(written.status, 200, "{}", written.text);

    // The cookie is HttpOnly, SameSite=Strict and expires; the answer names no key.
    let (cookie, set_cookie, body) = sign_in(&server, &admin);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    assert_eq!(body["tenant"], "web_a");
    assert_eq!(body["role"], "admin");
    assert!(!body.to_string().contains(&admin), "{body}");
    let csrf = body["csrf"].as_str().unwrap().to_string();

    // Reads need only the cookie; changes need the CSRF token too.
    let shown = cookie_get(&server, "/api/v1/session", &cookie);
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["csrf"], csrf.as_str());
    let schema = cookie_get(&server, "/api/v1/schema", &cookie);
    assert_eq!(schema.status, 200, "{}", schema.text);
    let refused = sql_with_cookie(&server, &cookie, None, "SELECT v FROM dial");
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(refused.error().contains("CSRF"), "{}", refused.text);
    let wrong = sql_with_cookie(&server, &cookie, Some("0000"), "SELECT v FROM dial");
    assert_eq!(wrong.status, 403, "{}", wrong.text);
    let ok = sql_with_cookie(&server, &cookie, Some(&csrf), "SELECT v FROM dial");
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["rows"], json!([["1"]]));
    let created = server.send(
        with_cookie(&server, Method::POST, "/api/v1/keys", &cookie, None)
            .json(&json!({ "role": "read" })),
    );
    assert_eq!(
        created.status, 403,
        "no key is created without the CSRF token"
    );

    // Sign-out ends the session on the server: the old cookie is refused.
    let out = server.send(with_cookie(
        &server,
        Method::DELETE,
        "/api/v1/session",
        &cookie,
        Some(&csrf),
    ));
    assert_eq!(out.status, 200, "{}", out.text);
    let after = cookie_get(&server, "/api/v1/schema", &cookie);
    assert_eq!(after.status, 401, "{}", after.text);
}

#[test]
fn sign_in_refuses_bad_keys_the_operator_and_form_posts_and_marks_https_cookies_secure() {
    let server = TestServer::start();
    let admin = server.create_tenant("web_refusals");
    let bad = server.send(
        server
            .request(Method::POST, "/api/v1/session", None)
            .json(&json!({ "key": "sk_nope" })),
    );
    assert_eq!(bad.status, 401, "{}", bad.text);
    let operator = server.send(
        server
            .request(Method::POST, "/api/v1/session", None)
            .json(&json!({ "key": server.operator_token() })),
    );
    assert_eq!(operator.status, 401, "{}", operator.text);
    let form = server.send(
        server
            .request(Method::POST, "/api/v1/session", None)
            .header("content-type", "text/plain")
            .body(json!({ "key": admin }).to_string()),
    );
    assert_eq!(form.status, 415, "{}", form.text);
    // Behind a TLS proxy the cookie is Secure; on the plain port it is not (sign_in checks).
    let proxied = server
        .request(Method::POST, "/api/v1/session", None)
        .header("x-forwarded-proto", "https")
        .json(&json!({ "key": admin }))
        .send()
        .unwrap();
    let cookie = proxied.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    let (_, plain, _) = sign_in(&server, &admin);
    assert!(!plain.contains("Secure"), "{plain}");
}

#[test]
fn signing_in_again_ends_the_session_the_browser_held() {
    let server = TestServer::start();
    let admin = server.create_tenant("web_fixation");
    let (first, _, _) = sign_in(&server, &admin);
    // The browser signs in again, presenting its old cookie (or one planted on it).
    let again = server
        .request(Method::POST, "/api/v1/session", None)
        .header("cookie", &first)
        .json(&json!({ "key": admin }))
        .send()
        .unwrap();
    assert_eq!(again.status().as_u16(), 201);
    let second = again.headers()["set-cookie"].to_str().unwrap();
    let second = second.split(';').next().unwrap().to_string();
    assert_ne!(first, second);
    let old = cookie_get(&server, "/api/v1/schema", &first);
    assert_eq!(old.status, 401, "{}", old.text);
    let new = cookie_get(&server, "/api/v1/schema", &second);
    assert_eq!(new.status, 200, "{}", new.text);
}

#[test]
fn revoking_the_key_ends_its_sessions_and_roles_apply() {
    let server = TestServer::start();
    let admin = server.create_tenant("web_roles");
    let read = server.create_key(&admin, "read");
    let (cookie, _, body) = sign_in(&server, &read);
    assert_eq!(body["role"], "read");
    let csrf = body["csrf"].as_str().unwrap().to_string();
    let keys = cookie_get(&server, "/api/v1/keys", &cookie);
    assert_eq!(keys.status, 403, "{}", keys.text);
    let write = server.send(
        with_cookie(&server, Method::POST, "/api/v1/write", &cookie, Some(&csrf))
            .json(&json!({ "metrictype": "m", "timestamp": 1, "v": 1 })),
    );
    assert_eq!(write.status, 403, "{}", write.text);

    let id = body["key_id"].as_str().unwrap();
    assert_eq!(
        server.delete(&format!("/api/v1/keys/{id}"), &admin).status,
        200
    );
    let after = cookie_get(&server, "/api/v1/schema", &cookie);
    assert_eq!(after.status, 401, "{}", after.text);
}

#[test]
fn a_cookie_of_tenant_a_never_reads_tenant_b() {
    let server = TestServer::start();
    let a = server.create_tenant("web_iso_a");
    let b = server.create_tenant("web_iso_b");
    let event = json!({ "metrictype": "vault", "timestamp": 1_000, "secret": "b-only-7731" });
    assert_eq!(server.post("/api/v1/write", &b, &event).status, 200);
    let (cookie_a, _, body_a) = sign_in(&server, &a);
    let csrf_a = body_a["csrf"].as_str().unwrap().to_string();
    let (_, _, body_b) = sign_in(&server, &b);

    let read = sql_with_cookie(
        &server,
        &cookie_a,
        Some(&csrf_a),
        "SELECT secret FROM vault",
    );
    assert!((400..500).contains(&read.status), "{}", read.text);
    assert!(!read.text.contains("b-only-7731"), "{}", read.text);
    let schema = cookie_get(&server, "/api/v1/schema", &cookie_a);
    assert!(!schema.text.contains("vault"), "{}", schema.text);
    let errors = sql_with_cookie(
        &server,
        &cookie_a,
        Some(&csrf_a),
        "SELECT * FROM strata.errors",
    );
    assert!(!errors.text.contains("b-only"), "{}", errors.text);
    // B's CSRF token does not unlock A's session.
    let csrf_b = body_b["csrf"].as_str().unwrap();
    let crossed = sql_with_cookie(&server, &cookie_a, Some(csrf_b), "SELECT 1");
    assert_eq!(crossed.status, 403, "{}", crossed.text);
    // A bearer key wins over a cookie: B's key with A's cookie reads B, as the key says.
    let bearer = server.send(
        with_cookie(&server, Method::POST, "/api/v1/sql", &cookie_a, None)
            .bearer_auth(&b)
            .json(&json!({ "sql": "SELECT secret FROM vault" })),
    );
    assert_eq!(bearer.status, 200, "{}", bearer.text);
}

#[test]
fn status_reports_the_ingest_rate() {
    let server = TestServer::start();
    let key = server.create_tenant("web_status");
    let events: Vec<Value> = (0..25)
        .map(|i| json!({ "metrictype": "m", "timestamp": 1_000 + i, "v": i }))
        .collect();
    assert_eq!(
        server
            .post("/api/v1/write", &key, &Value::Array(events))
            .status,
        200
    );
    let status = server.get("/api/v1/status", &key);
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(
        status.body["ingest"]["events_last_minute"], 25,
        "{}",
        status.text
    );
    let other = server.create_tenant("web_status_other");
    let quiet = server.get("/api/v1/status", &other);
    assert_eq!(
        quiet.body["ingest"]["events_last_minute"], 0,
        "{}",
        quiet.text
    );
}

// ---------------------------------------------------------------------------------------------
// The browser

fn chromium() -> PathBuf {
    PathBuf::from(std::env::var("STRATA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()))
}

fn have_browser() -> bool {
    available(
        "Chromium (Debian's chromium package)",
        probe(
            &chromium(),
            &["--headless", "--no-sandbox", "--version"],
            None,
        ),
    ) && available(
        "python3 with playwright",
        probe(&python(), &["-c", "import playwright.sync_api"], None),
    )
}

/// 2026-01-05T00:00:00Z, the first seed event; one a minute after it.
const BASE_MS: i64 = 1_767_571_200_000;
const EVENTS: i64 = 240;
const DEVICES: i64 = 3;

fn temperature(i: i64) -> f64 {
    18.0 + (i % 9) as f64 * 0.5
}

/// Tenant A as in the seed: thermostat readings under `temp`, `temperature` and `tmp`, declared
/// later as one DOUBLE field; `humidity` and `pressure` unknown (numbers as text); one rejected
/// event; an alert rule that never fires and one that has fired. Returns the config the browser script reads.
fn seed(server: &TestServer, screenshots: &Path) -> Value {
    let admin_a = server.create_tenant("acme");
    let events: Vec<Value> = (0..EVENTS)
        .map(|i| {
            let name = ["temp", "temperature", "tmp"][(i % 3) as usize];
            json!({
                "metrictype": "thermostat",
                "timestamp": BASE_MS + i * 60_000,
                "name": format!("device-{}", i % DEVICES),
                name: temperature(i),
                "humidity": (40 + i % 20).to_string(),
                "pressure": format!("{:.2}", 1000.0 + (i % 13) as f64 * 1.25),
            })
        })
        .collect();
    let written = server.post("/api/v1/write", &admin_a, &Value::Array(events));
    assert_eq!(written.body["accepted"], EVENTS, "{}", written.text);
    let declared = server.put(
        "/api/v1/schema/metrics/thermostat/fields/temperature",
        &admin_a,
        &json!({ "type": "double", "aliases": ["temp", "tmp"] }),
    );
    assert_eq!(declared.status, 200, "{}", declared.text);
    let rejected = server.post(
        "/api/v1/write",
        &admin_a,
        &json!({ "metrictype": "boiler", "timestamp": "yesterday-ish", "marker": "rejected-7f3a" }),
    );
    assert_eq!(rejected.body["rejected"], 1, "{}", rejected.text);
    seed_alerts(server, &admin_a);
    let admin_b = server.create_tenant("globex");
    let secret =
        json!({ "metrictype": "ledger", "timestamp": BASE_MS, "secret": "globex-only-5521" });
    assert_eq!(server.post("/api/v1/write", &admin_b, &secret).status, 200);
    let temps: Vec<f64> = (0..9).map(temperature).collect();
    json!({
        "url": server.url(),
        "chromium": chromium(),
        "screenshots": screenshots,
        "measure": std::env::var("STRATA_UI_MEASURE").is_ok_and(|v| v == "1"),
        "tenant_a": "acme",
        "admin_a": admin_a,
        "read_a": server.create_key(&admin_a, "read"),
        "admin_b": admin_b,
        "admin_empty": server.create_tenant("initech"),
        "metric_b": "ledger",
        "secret_b": "globex-only-5521",
        "events": EVENTS,
        "devices": DEVICES,
        "temps": temps,
        "rejected_metric": "boiler",
        "rejected_marker": "rejected-7f3a",
        "alert_rule": "too-hot",
    })
}

/// A rule that never fires and one that has fired (a firing instance and its history).
fn seed_alerts(server: &TestServer, admin_a: &str) {
    let rule = server.post(
        "/api/v1/alerts",
        admin_a,
        &json!({ "name": "too-hot", "kind": "event", "metric": "thermostat",
                 "condition": "temp > 90", "channels": [] }),
    );
    assert_eq!(rule.status, 201, "{}", rule.text);
    let furnace = server.post(
        "/api/v1/schema/metrics",
        admin_a,
        &json!({ "name": "furnace" }),
    );
    assert_eq!(furnace.status, 201, "{}", furnace.text);
    let level = json!({ "type": "double" });
    let declared = server.put(
        "/api/v1/schema/metrics/furnace/fields/level",
        admin_a,
        &level,
    );
    assert_eq!(declared.status, 200, "{}", declared.text);
    let rule = server.post(
        "/api/v1/alerts",
        admin_a,
        &json!({ "name": "furnace-hot", "kind": "event", "metric": "furnace",
                 "condition": "level > 90", "channels": [] }),
    );
    assert_eq!(rule.status, 201, "{}", rule.text);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let hot = json!({ "metrictype": "furnace", "timestamp": now_ms, "unit": "f1", "level": 95.5 });
    assert_eq!(server.post("/api/v1/write", admin_a, &hot).status, 200);
}

#[test]
fn the_app_in_chromium() {
    if !have_browser() {
        return;
    }
    let server = TestServer::start();
    let temp = tempfile::tempdir().unwrap();
    let screenshots = std::env::var("STRATA_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| temp.path().to_path_buf());
    let config = seed(&server, &screenshots);
    let out = Command::new(python())
        .arg(clients_dir().join("web_ui.py"))
        .arg(config.to_string())
        .output()
        .expect("run web_ui.py");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed:\n{stderr}\nserver log:\n{}",
        server.log()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("web_ui.py printed no report ({e}):\n{stdout}\n{stderr}"));
    let passed = report["passed"].as_array().expect("passed checks");
    assert_eq!(passed.len(), 15, "{report:#}\n{stderr}");
    eprintln!("{stderr}");
    eprintln!("measurements: {}", report["measured"]);
}
