//! Issue 16: live queries (`POST /api/v1/sql/live`) read by a real Server-Sent Events client
//! (reqwest streaming the body, lines parsed here) on the real server.
//!
//! Exactness is checked by content: every acknowledged matching event appears exactly once, in
//! order per series, and nothing else does (the test watches [`QUIET`] for extras). Nothing
//! here asserts a timing.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{thermostat_tenant as tenant, write_events, TestServer};

/// How long an update that must come may take.
const WAIT: Duration = Duration::from_secs(30);
/// How long a test watches for events that must not come.
const QUIET: Duration = Duration::from_secs(2);
const T0: i64 = 1_800_000_000_000;

/// One Server-Sent Event: its name and its JSON data.
#[derive(Debug)]
struct Sse {
    event: String,
    data: Value,
}

/// A live query being read on a thread of its own.
struct Live {
    events: mpsc::Receiver<Sse>,
}

impl Live {
    /// Starts a live query; panics unless the server answers 200 with an event stream.
    fn start(server: &TestServer, key: &str, body: &Value) -> Live {
        let response = open(server, key, body);
        assert_eq!(response.status(), 200, "live query refused");
        let content_type = response.headers()["content-type"].to_str().unwrap_or("");
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let (sender, events) = mpsc::channel();
        std::thread::spawn(move || read_events(response, sender));
        Live { events }
    }

    /// The next event, or `None` after `wait`.
    fn next(&self, wait: Duration) -> Option<Sse> {
        self.events.recv_timeout(wait).ok()
    }

    fn expect(&self, name: &str) -> Value {
        let event = self
            .next(WAIT)
            .unwrap_or_else(|| panic!("no {name} event within {WAIT:?}"));
        assert_eq!(event.event, name, "{:?}", event.data);
        event.data
    }

    /// Rows of `rows` events until `count` arrived; then checks nothing more comes.
    fn rows(&self, count: usize) -> Vec<Vec<Value>> {
        let mut rows = Vec::new();
        let deadline = Instant::now() + WAIT;
        while rows.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self.next(left).unwrap_or_else(|| {
                panic!("{} of {count} rows within {WAIT:?}: {rows:?}", rows.len())
            });
            assert_eq!(event.event, "rows", "{:?}", event.data);
            assert_eq!(event.data["mode"], "tail");
            rows.extend(table(&event.data));
        }
        if let Some(extra) = self.next(QUIET) {
            panic!("more than the {count} expected rows: {extra:?} after {rows:?}");
        }
        rows
    }
}

fn open(server: &TestServer, key: &str, body: &Value) -> reqwest::blocking::Response {
    reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .expect("client")
        .post(format!("{}/api/v1/sql/live", server.url()))
        .bearer_auth(key)
        .json(body)
        .send()
        .expect("live request")
}

/// Parses `event:`/`data:` lines until the stream ends or the test drops the receiver.
fn read_events(response: reqwest::blocking::Response, sender: mpsc::Sender<Sse>) {
    let mut event = String::new();
    let mut data = String::new();
    for line in BufReader::new(response).lines() {
        let Ok(line) = line else { return };
        if let Some(name) = line.strip_prefix("event:") {
            event = name.trim().to_string();
        } else if let Some(part) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(part.strip_prefix(' ').unwrap_or(part));
        } else if line.is_empty() && !data.is_empty() {
            let parsed = serde_json::from_str(&data).expect("each data is JSON");
            let sse = Sse {
                event: std::mem::take(&mut event),
                data: parsed,
            };
            data.clear();
            if sender.send(sse).is_err() {
                return;
            }
        }
    }
}

fn table(data: &Value) -> Vec<Vec<Value>> {
    data["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row.as_array().expect("a row").clone())
        .collect()
}

fn reading(device: &str, offset_ms: i64, temp: f64) -> Value {
    json!({"metrictype": "thermostat", "timestamp": T0 + offset_ms, "name": device, "temp": temp})
}

#[test]
fn a_tail_sends_the_answer_then_each_acked_matching_event_once_in_order() {
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    write_events(
        &server,
        &key,
        &[
            reading("a", 0, 70.0),
            reading("b", 0, 20.0),
            reading("b", 1, 80.0),
        ],
    );
    let sql = "SELECT name, temp FROM thermostat WHERE temp > 50";
    let live = Live::start(&server, &key, &json!({ "sql": sql }));
    let first = live.expect("snapshot");
    assert_eq!(first["mode"], "tail");
    assert_eq!(first["truncated"], false);
    let columns: Vec<&str> = first["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(columns, ["name", "temp"]);
    let mut now = table(&first);
    now.sort_by_key(|r| r[0].to_string());
    assert_eq!(
        now,
        [vec![json!("a"), json!(70.0)], vec![json!("b"), json!(80.0)]]
    );

    // Ten requests over two devices; every third reading is hot, some sent under the alias.
    let mut expected: Vec<Vec<Value>> = Vec::new();
    for request in 0..10 {
        let mut events = Vec::new();
        for i in 0..6 {
            let n = request * 6 + i;
            let device = if n % 2 == 0 { "a" } else { "b" };
            let temp = if n % 3 == 0 { 90.0 + n as f64 } else { 10.0 };
            let mut event = reading(device, 1_000 + n, temp);
            if n % 4 == 0 {
                let object = event.as_object_mut().expect("object");
                let value = object.remove("temp").expect("temp");
                object.insert("tmp".into(), value);
            }
            if temp > 50.0 {
                expected.push(vec![json!(device), json!(temp)]);
            }
            events.push(event);
        }
        write_events(&server, &key, &events);
        if request % 3 == 1 {
            // An identical re-send (a device retrying): stored once, so shown once.
            write_events(&server, &key, &events);
        }
    }
    // Another tenant's identical writes never reach this tail.
    let other = tenant(&server, "other");
    write_events(&server, &other, &[reading("a", 5_000, 99.5)]);
    assert_eq!(live.rows(expected.len()), expected);
}

/// Issue 17: a tail over a derived field computes it for each new event, as `/sql` does.
#[test]
fn a_tail_over_a_derived_field_sends_its_computed_value() {
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    let derived = server.put(
        "/api/v1/schema/metrics/thermostat/fields/temp_f",
        &key,
        &json!({"expression": "temp * 9 / 5 + 32"}),
    );
    assert_eq!(derived.status, 200, "{}", derived.text);
    write_events(&server, &key, &[reading("a", 0, 100.0)]);
    let sql = "SELECT name, temp_f FROM thermostat WHERE temp_f > 122";
    let live = Live::start(&server, &key, &json!({ "sql": sql }));
    assert_eq!(
        table(&live.expect("snapshot")),
        [vec![json!("a"), json!(212.0)]]
    );
    write_events(
        &server,
        &key,
        &[reading("a", 1, 20.0), reading("b", 1, 60.0)],
    );
    assert_eq!(live.rows(1), [vec![json!("b"), json!(140.0)]]);
}

/// Issue 17: a tail converts an alias's values as `/sql` does (Fahrenheit under `tempF`).
#[test]
fn a_tail_converts_an_alias_into_its_field_unit() {
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    let converted = server.put(
        "/api/v1/schema/metrics/thermostat/fields/temp",
        &key,
        &json!({"type": "double", "aliases": ["tmp", "tempF"],
                "conversions": {"tempF": "(tempF - 32) * 5 / 9"}}),
    );
    assert_eq!(converted.status, 200, "{}", converted.text);
    let sql = "SELECT name, temp FROM thermostat WHERE temp > 50";
    let live = Live::start(&server, &key, &json!({ "sql": sql }));
    assert!(table(&live.expect("snapshot")).is_empty());
    let fahrenheit = |device: &str, offset_ms: i64, value: f64| {
        json!({"metrictype": "thermostat", "timestamp": T0 + offset_ms, "name": device,
               "tempF": value})
    };
    write_events(
        &server,
        &key,
        &[fahrenheit("a", 1, 212.0), fahrenheit("b", 1, 100.0)],
    );
    assert_eq!(live.rows(1), [vec![json!("a"), json!(100.0)]]);
}

#[test]
fn a_query_that_is_not_a_tail_is_rerun_when_its_metric_changes() {
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    write_events(&server, &key, &[reading("a", 0, 1.0)]);
    // HAVING filters groups after aggregation, which buckets do not keep: this one re-runs.
    let sql = "SELECT name, count(*) AS n FROM thermostat GROUP BY name HAVING count(*) > 0 \
               ORDER BY name";
    let live = Live::start(
        &server,
        &key,
        &json!({ "sql": sql, "min_interval_ms": 200 }),
    );
    let first = live.expect("snapshot");
    assert_eq!(first["mode"], "rerun");
    assert_eq!(table(&first), [vec![json!("a"), json!(1)]]);
    // Nothing changed: no re-run.
    assert!(live.next(QUIET).is_none(), "a re-run with no new data");
    write_events(&server, &key, &[reading("a", 1, 2.0), reading("b", 1, 3.0)]);
    let again = live.expect("snapshot");
    assert_eq!(again["mode"], "rerun");
    assert_eq!(
        table(&again),
        [vec![json!("a"), json!(2)], vec![json!("b"), json!(1)]]
    );
}

#[test]
fn bad_live_queries_are_refused_with_the_cause() {
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    let cases = [
        (json!({"sql": "SELEC 1"}), 400, "SELEC"),
        (json!({"sql": "SELECT nope FROM thermostat"}), 400, "nope"),
        (json!({"sql": "DELETE FROM thermostat"}), 400, ""),
        (
            json!({"sql": "SELECT 1", "min_interval_ms": 5}),
            400,
            "min_interval_ms",
        ),
        (json!({"sql": "SELECT 1", "every": 5}), 400, "every"),
    ];
    for (body, status, named) in cases {
        let response = open(&server, &key, &body);
        assert_eq!(response.status(), status, "{body}");
        let text = response.text().unwrap_or_default();
        assert!(text.contains(named), "{body}: {text}");
    }
    let unauthenticated = open(&server, "not-a-key", &json!({"sql": "SELECT 1"}));
    assert_eq!(unauthenticated.status(), 401);
}

/// A live query read by `curl -N`, a real SSE client that a test can close by killing it.
struct CurlLive(std::process::Child);

impl CurlLive {
    /// Starts `curl`; returns once the first event (the snapshot) arrived.
    fn start(server: &TestServer, key: &str, body: &Value) -> CurlLive {
        let mut child = std::process::Command::new("curl")
            .args(["-sN", "-X", "POST", "-H", "content-type: application/json"])
            .arg("-H")
            .arg(format!("authorization: Bearer {key}"))
            .arg("-d")
            .arg(body.to_string())
            .arg(format!("{}/api/v1/sql/live", server.url()))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("curl runs");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("a line").expect("text");
        assert_eq!(first, "event: snapshot");
        CurlLive(child)
    }
}

impl Drop for CurlLive {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl_available() -> bool {
    strata_testkit::available(
        "curl",
        strata_testkit::probe(std::path::Path::new("curl"), &["--version"], None),
    )
}

#[test]
fn a_tenant_runs_at_most_its_limit_of_live_queries() {
    if !curl_available() {
        return;
    }
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    let body = json!({"sql": "SELECT name FROM thermostat"});
    let open_ones: Vec<CurlLive> = (0..16)
        .map(|_| CurlLive::start(&server, &key, &body))
        .collect();
    let refused = open(&server, &key, &body);
    assert_eq!(refused.status(), 429);
    assert!(refused.text().unwrap_or_default().contains("16"));
    // Another tenant has slots of its own.
    let other = tenant(&server, "other");
    Live::start(&server, &other, &body).expect("snapshot");
    // A closed live query frees its slot (noticed at the next keep-alive write).
    drop(open_ones);
    let deadline = Instant::now() + WAIT;
    loop {
        let response = open(&server, &key, &body);
        if response.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no slot freed after the clients left"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn events_written_while_a_live_query_starts_arrive_exactly_once() {
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (url, key, stop) = (server.url().to_string(), key.clone(), stop.clone());
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut written = 0i64;
            // One event per request, so commits land all through the first answer's run.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || written < 200 {
                let event = reading("a", written, written as f64);
                let answer = client
                    .post(format!("{url}/api/v1/write"))
                    .bearer_auth(&key)
                    .body(event.to_string())
                    .send()
                    .expect("write");
                assert_eq!(answer.status(), 200);
                written += 1;
            }
            written
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let live = Live::start(
        &server,
        &key,
        &json!({"sql": "SELECT temp FROM thermostat"}),
    );
    let first = live.expect("snapshot");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().expect("writer") as usize;
    let mut seen: Vec<i64> = table(&first)
        .iter()
        .map(|row| row[0].as_f64().expect("temp") as i64)
        .collect();
    let before = seen.len();
    assert!(
        before > 0 && before < written,
        "{before} of {written} in the first answer"
    );
    seen.extend(
        live.rows(written - before)
            .iter()
            .map(|row| row[0].as_f64().expect("temp") as i64),
    );
    // Every event once, and the tail in write order.
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..written as i64).collect::<Vec<_>>());
    assert!(seen[before..].windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}

/// With room for one batch in the event stream, parallel writes overflow it: the tail falls
/// behind, re-reads what it missed from the hot tier, and still sends every matching event
/// exactly once (before the re-read, the query ended with "fell behind ... start it again").
#[test]
fn a_tail_that_falls_behind_the_stream_re_reads_and_misses_nothing() {
    const WRITERS: usize = 8;
    const WRITES_EACH: usize = 40;
    let server = TestServer::start_with(&["--event-stream-batches", "1"]);
    let key = tenant(&server, "acme");
    let live = Live::start(
        &server,
        &key,
        &json!({"sql": "SELECT name FROM thermostat WHERE temp > 90"}),
    );
    assert!(table(&live.expect("snapshot")).is_empty());
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (server, key) = (&server, &key);
            scope.spawn(move || {
                for i in 0..WRITES_EACH {
                    let name = format!("d{writer}_{i}");
                    let offset = (writer * WRITES_EACH + i) as i64;
                    let events = [reading(&name, offset, 95.0), reading("cold", offset, 20.0)];
                    write_events(server, key, &events);
                }
            });
        }
    });
    let mut names: Vec<String> = live
        .rows(WRITERS * WRITES_EACH)
        .iter()
        .map(|row| row[0].as_str().expect("name").to_string())
        .collect();
    names.sort();
    let mut expected: Vec<String> = (0..WRITERS)
        .flat_map(|w| (0..WRITES_EACH).map(move |i| format!("d{w}_{i}")))
        .collect();
    expected.sort();
    assert_eq!(names, expected, "every matching event exactly once");
    assert!(
        server
            .log()
            .contains("a live query fell behind the event stream"),
        "the tail never lagged, so this test proved nothing; log:\n{}",
        server.log()
    );
}

/// Rows of `answer` keyed by their first two columns (bucket and device).
fn by_group(rows: Vec<Vec<Value>>) -> std::collections::BTreeMap<String, Vec<Value>> {
    rows.into_iter()
        .map(|row| (format!("{}|{}", row[0], row[1]), row))
        .collect()
}

#[test]
fn a_grouped_query_sends_exactly_the_buckets_each_write_changed() {
    let server = TestServer::start();
    let key = tenant(&server, "acme");
    let minute = 60_000;
    write_events(
        &server,
        &key,
        &[
            reading("a", 0, 10.0),
            reading("a", 1_000, 20.0),
            reading("b", minute, 5.0),
        ],
    );
    let sql = "SELECT date_bin(INTERVAL '1 minute', timestamp) AS minute, name, count(*) AS n, \
               avg(temp) AS mean, min(temp) AS lo, max(temp) AS hi, sum(temp) AS total \
               FROM thermostat WHERE temp < 1000 GROUP BY 1, 2 ORDER BY 1, 2";
    let live = Live::start(&server, &key, &json!({ "sql": sql }));
    let first = live.expect("snapshot");
    assert_eq!(first["mode"], "buckets");
    let mut kept = by_group(table(&first));
    assert_eq!(kept.len(), 2);

    // Each write changes known buckets: an existing one, a late one, one under the alias, one
    // the filter drops entirely, and a new one.
    let writes: Vec<(Vec<Value>, usize)> = vec![
        (vec![reading("a", 2_000, 40.0)], 1),
        (
            vec![reading("b", 10, 1.0), reading("b", minute + 5, 7.0)],
            2,
        ),
        (
            vec![
                json!({"metrictype": "thermostat", "timestamp": T0 + 3_000, "name": "a", "tmp": 2.0}),
            ],
            1,
        ),
        (vec![reading("a", 4_000, 5_000.0)], 0),
        // A field no event had before adds a column to the metric; the query goes on.
        (
            vec![
                json!({"metrictype": "thermostat", "timestamp": T0 + minute + 6, "name": "b",
                        "temp": 6.0, "firmware": "2.1"}),
            ],
            1,
        ),
        (vec![reading("c", 5 * minute, 3.5)], 1),
        // An identical re-send of an event taken in above: stored once, counted once.
        (vec![reading("c", 5 * minute, 3.5)], 0),
    ];
    for (events, changed) in writes {
        write_events(&server, &key, &events);
        if changed == 0 {
            continue;
        }
        let update = live.expect("update");
        assert_eq!(update["mode"], "buckets");
        let rows = table(&update);
        assert_eq!(rows.len(), changed, "{update}");
        kept.extend(by_group(rows));
    }
    // Another tenant's writes to a metric of the same name change nothing here.
    let other = tenant(&server, "other");
    write_events(
        &server,
        &other,
        &[reading("a", 0, 99.0), reading("z", 0, 1.0)],
    );
    assert!(
        live.next(QUIET).is_none(),
        "an update for a write the filter drops or another tenant's write"
    );
    // What the live query holds equals the query over the stored data, group for group.
    let now = server.sql(&key, sql);
    assert_eq!(now.status, 200, "{}", now.text);
    assert_eq!(kept, by_group(table(&now.body)));
}
