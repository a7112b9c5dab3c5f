//! Issue 16: rollups (`/api/v1/rollups`) on the real server.
//!
//! The invariant (DESIGN.md 7, "derived data equals its definition"): after every step,
//! `SELECT * FROM <rollup>` equals the rollup's SQL run over raw data, row for row. Each check
//! first asks `GET /api/v1/rollups/{name}?sync=true`, which answers once the rollup reflects
//! every acknowledged write, so nothing here depends on timing.

use serde_json::{json, Value};

use crate::common::{raw_only_checked, thermostat_tenant as tenant, write_events, TestServer};

const T0: i64 = 1_800_000_000_000;
const MINUTE_MS: i64 = 60_000;
const ROLLUP_SQL: &str = "SELECT date_bin(INTERVAL '1 minute', timestamp) AS timestamp, name, \
     avg(temp) AS temp, max(temp) AS temp_max, count(*) AS n FROM thermostat GROUP BY 1, 2";

/// Compaction only on request, so the test chooses when rows move to the cold tier.
fn start(extra: &[&str]) -> TestServer {
    let mut args = vec!["--compact-after-secs", "0", "--compact-interval-secs", "0"];
    args.extend_from_slice(extra);
    TestServer::start_with(&args)
}

/// Deterministic pseudo-random numbers (no seed file to keep: the sequence is the test).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }

    /// `count` readings over `span_ms` after `start_ms`, temperatures in halves (exact sums).
    fn readings(&mut self, count: usize, start_ms: i64, span_ms: u64, field: &str) -> Vec<Value> {
        (0..count)
            .map(|_| {
                let device = format!("d{}", self.next(4));
                let at = start_ms + self.next(span_ms) as i64;
                let temp = self.next(200) as f64 / 2.0;
                json!({"metrictype": "thermostat", "timestamp": at, "name": device, field: temp})
            })
            .collect()
    }
}

fn create(server: &TestServer, key: &str, name: &str, sql: &str) -> Value {
    let answer = server.post("/api/v1/rollups", key, &json!({"name": name, "sql": sql}));
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.body
}

fn sync(server: &TestServer, key: &str, name: &str) -> Value {
    let answer = server.get(&format!("/api/v1/rollups/{name}?sync=true"), key);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["state"], "current", "{}", answer.text);
    answer.body
}

fn rows(server: &TestServer, key: &str, sql: &str) -> Vec<Value> {
    let answer = server.sql(key, sql);
    assert_eq!(answer.status, 200, "{sql}: {}", answer.text);
    answer.body["rows"].as_array().expect("rows").clone()
}

/// Syncs, then checks the rollup row for row against its SQL over raw data; returns the rows.
fn assert_exact(server: &TestServer, key: &str, name: &str, sql: &str, step: &str) -> Vec<Value> {
    sync(server, key, name);
    assert_exact_now(server, key, name, sql, step)
}

/// Checks the rollup against its SQL over raw data without waiting first.
fn assert_exact_now(
    server: &TestServer,
    key: &str,
    name: &str,
    sql: &str,
    step: &str,
) -> Vec<Value> {
    let stored = rows(server, key, &format!("SELECT * FROM {name} ORDER BY 1, 2"));
    // Over raw rows even though the rollup answers `sql` (query routing would read it).
    let raw_sql = raw_only_checked(server, key, sql, name);
    let raw = rows(server, key, &format!("{raw_sql} ORDER BY 1, 2"));
    assert!(!raw.is_empty(), "{step}: no raw rows");
    assert_eq!(stored.len(), raw.len(), "{step}: row counts differ");
    for (index, (left, right)) in stored.iter().zip(&raw).enumerate() {
        assert_eq!(
            left, right,
            "{step}: row {index} differs from the SQL over raw data"
        );
    }
    stored
}

fn total_count(rows: &[Value]) -> i64 {
    rows.iter().map(|r| r[4].as_i64().expect("n")).sum()
}

#[test]
fn a_rollup_equals_its_sql_over_raw_data_through_late_events_resends_aliases_compaction_and_restarts(
) {
    let mut server = start(&[]);
    let key = tenant(&server, "acme");
    let mut random = Lcg(7);
    let first = random.readings(300, T0, (120 * MINUTE_MS) as u64, "temp");
    write_events(&server, &key, &first);
    create(&server, &key, "thermostat_1m", ROLLUP_SQL);
    let stored = assert_exact(&server, &key, "thermostat_1m", ROLLUP_SQL, "backfill");
    assert_eq!(total_count(&stored), 300);

    // New events in order, then out of order into buckets the rollup already holds.
    let newer = random.readings(100, T0 + 120 * MINUTE_MS, (30 * MINUTE_MS) as u64, "temp");
    write_events(&server, &key, &newer);
    let older = random.readings(100, T0, (150 * MINUTE_MS) as u64, "temp");
    write_events(&server, &key, &older);
    let stored = assert_exact(&server, &key, "thermostat_1m", ROLLUP_SQL, "out of order");
    assert_eq!(total_count(&stored), 500);

    // Identical re-sends are one stored event, and count once.
    write_events(&server, &key, &first[..50]);
    let stored = assert_exact(&server, &key, "thermostat_1m", ROLLUP_SQL, "re-sends");
    assert_eq!(total_count(&stored), 500, "a re-send was counted twice");

    // Values under an alias of the field.
    let aliased = random.readings(50, T0, (150 * MINUTE_MS) as u64, "tmp");
    write_events(&server, &key, &aliased);
    assert_exact(&server, &key, "thermostat_1m", ROLLUP_SQL, "aliases");

    // Compaction moves everything to Parquet; late events then land in compacted windows.
    let compacted = server.post("/api/v1/compact", &key, &json!({}));
    assert_eq!(compacted.status, 200, "{}", compacted.text);
    assert_exact(&server, &key, "thermostat_1m", ROLLUP_SQL, "compaction");
    let late = random.readings(60, T0, (150 * MINUTE_MS) as u64, "temp");
    write_events(&server, &key, &late);
    let stored = assert_exact(
        &server,
        &key,
        "thermostat_1m",
        ROLLUP_SQL,
        "late after compaction",
    );
    assert_eq!(total_count(&stored), 610);

    // A clean restart, then kill -9 right after acknowledged writes (before a cycle can run,
    // most of the time): the next start finds the rows above the watermark.
    server.restart();
    assert_exact(&server, &key, "thermostat_1m", ROLLUP_SQL, "restart");
    for round in 0..3 {
        let batch = random.readings(40, T0, (150 * MINUTE_MS) as u64, "temp");
        write_events(&server, &key, &batch);
        server.kill9();
        server.restart();
        let step = format!("kill -9 round {round}");
        let stored = assert_exact(&server, &key, "thermostat_1m", ROLLUP_SQL, &step);
        assert_eq!(total_count(&stored), 610 + 40 * (round + 1));
    }
}

#[test]
fn a_query_of_a_rollup_sees_every_write_acknowledged_before_it() {
    // A long cycle, so only the read's own refresh can bring the rollup up to date.
    let server = start(&["--rollup-cycle-ms", "3600000"]);
    let key = tenant(&server, "acme");
    let mut random = Lcg(13);
    write_events(&server, &key, &random.readings(100, T0, 3_600_000, "temp"));
    create(&server, &key, "thermostat_1m", ROLLUP_SQL);
    sync(&server, &key, "thermostat_1m");
    for round in 0..5 {
        let batch = random.readings(30, T0, 3_600_000, "temp");
        write_events(&server, &key, &batch);
        let step = format!("read right after write {round}");
        let stored = assert_exact_now(&server, &key, "thermostat_1m", ROLLUP_SQL, &step);
        assert_eq!(total_count(&stored), 100 + 30 * (round + 1));
    }
}

#[test]
fn kill_9_during_a_backfill_resumes_from_its_last_step_and_ends_exact() {
    // One-hour backfill steps, so 20 days of data take hundreds of steps.
    let mut server = start(&["--rollup-backfill-chunk-mins", "60"]);
    let key = tenant(&server, "acme");
    let mut random = Lcg(11);
    for day in 0..20 {
        let events = random.readings(200, T0 + day * 86_400_000, 86_400_000, "temp");
        write_events(&server, &key, &events);
    }
    create(&server, &key, "thermostat_1m", ROLLUP_SQL);
    let mut seen = 0.0;
    for _ in 0..2_000 {
        let answer = server.get("/api/v1/rollups/thermostat_1m", &key);
        assert_eq!(answer.status, 200, "{}", answer.text);
        seen = answer.body["progress"].as_f64().expect("progress");
        if seen > 0.05 && answer.body["state"] == "backfilling" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // Until the first backfill completes, a query names the cause instead of "table not found".
    let early = server.sql(&key, "SELECT count(*) FROM thermostat_1m");
    assert_eq!(early.status, 400, "{}", early.text);
    assert!(
        early.text.contains("still backfilling its first version"),
        "{}",
        early.text
    );
    eprintln!("killing the server at backfill progress {seen}");
    server.kill9();
    server.restart();
    let resumed = server.get("/api/v1/rollups/thermostat_1m", &key);
    let progress = resumed.body["progress"].as_f64().expect("progress");
    assert!(
        progress >= seen,
        "the backfill restarted from {progress} after reaching {seen}"
    );
    let stored = assert_exact(&server, &key, "thermostat_1m", ROLLUP_SQL, "after kill -9");
    assert_eq!(total_count(&stored), 4_000);
}

#[test]
fn a_changed_sql_backfills_a_new_version_and_delete_removes_the_rollup() {
    let server = start(&[]);
    let key = tenant(&server, "acme");
    let mut random = Lcg(3);
    write_events(&server, &key, &random.readings(200, T0, 3_600_000, "temp"));
    create(&server, &key, "thermostat_1m", ROLLUP_SQL);
    sync(&server, &key, "thermostat_1m");
    let hourly = "SELECT date_trunc('hour', timestamp) AS timestamp, name, min(temp) AS low \
                  FROM thermostat GROUP BY 1, 2";
    let altered = server.patch(
        "/api/v1/rollups/thermostat_1m",
        &key,
        &json!({"sql": hourly}),
    );
    assert_eq!(altered.status, 200, "{}", altered.text);
    assert_eq!(altered.body["sql"], hourly);
    // Until the new version completes, queries read the old one: never a mix of both.
    let columns = server.sql(&key, "SELECT * FROM thermostat_1m LIMIT 1");
    let names: Vec<&str> = columns.body["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names == ["timestamp", "name", "temp", "temp_max", "n"]
            || names == ["timestamp", "name", "low"],
        "{names:?}"
    );
    let shown = sync(&server, &key, "thermostat_1m");
    assert_eq!(shown["version"], 2, "{shown}");
    assert_exact(&server, &key, "thermostat_1m", hourly, "after PATCH");
    let listed = rows(
        &server,
        &key,
        "SELECT name, state, progress FROM strata.rollups",
    );
    assert_eq!(listed, vec![json!(["thermostat_1m", "current", 1.0])]);

    let deleted = server.delete("/api/v1/rollups/thermostat_1m", &key);
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(
        server.get("/api/v1/rollups/thermostat_1m", &key).status,
        404
    );
    let gone = server.sql(&key, "SELECT * FROM thermostat_1m");
    assert_eq!(gone.status, 400, "{}", gone.text);
}

#[test]
fn a_new_alias_on_the_source_rebuilds_the_rollup_to_match_the_raw_data() {
    let server = start(&[]);
    let key = tenant(&server, "acme");
    let mut random = Lcg(5);
    write_events(&server, &key, &random.readings(100, T0, 3_600_000, "temp"));
    // `temperature` is unknown until it becomes an alias of `temp`.
    write_events(
        &server,
        &key,
        &random.readings(100, T0, 3_600_000, "temperature"),
    );
    create(&server, &key, "thermostat_1m", ROLLUP_SQL);
    let before = assert_exact(
        &server,
        &key,
        "thermostat_1m",
        ROLLUP_SQL,
        "before the alias",
    );
    let aliased = server.put(
        "/api/v1/schema/metrics/thermostat/fields/temp",
        &key,
        &json!({"type": "double", "aliases": ["tmp", "temperature"]}),
    );
    assert_eq!(aliased.status, 200, "{}", aliased.text);
    let after = assert_exact(
        &server,
        &key,
        "thermostat_1m",
        ROLLUP_SQL,
        "after the alias",
    );
    assert_ne!(before, after, "the alias changed nothing in the raw answer");
}

#[test]
fn rollups_never_see_another_tenant_and_are_read_only_to_writes() {
    let server = start(&[]);
    let acme = tenant(&server, "acme");
    let globex = tenant(&server, "globex");
    let mut random = Lcg(9);
    write_events(&server, &acme, &random.readings(100, T0, 3_600_000, "temp"));
    create(&server, &acme, "thermostat_1m", ROLLUP_SQL);
    write_events(
        &server,
        &globex,
        &random.readings(500, T0, 3_600_000, "temp"),
    );
    let stored = assert_exact(&server, &acme, "thermostat_1m", ROLLUP_SQL, "isolation");
    assert_eq!(
        total_count(&stored),
        100,
        "another tenant's events reached the rollup"
    );
    assert_eq!(
        server.get("/api/v1/rollups/thermostat_1m", &globex).status,
        404
    );
    let foreign = server.sql(&globex, "SELECT * FROM thermostat_1m");
    assert_eq!(foreign.status, 400, "{}", foreign.text);

    // A write to the rollup's name is refused per event, and nothing reaches the rollup.
    let written = server.post(
        "/api/v1/write",
        &acme,
        &json!([{"metrictype": "thermostat_1m", "timestamp": T0, "name": "x", "temp": 1.0}]),
    );
    assert!(written.text.contains("rollup"), "{}", written.text);
    let stored = assert_exact(&server, &acme, "thermostat_1m", ROLLUP_SQL, "refused write");
    assert_eq!(total_count(&stored), 100);
}

#[test]
fn a_rollup_that_is_not_a_bucketed_aggregate_of_one_metric_is_refused_naming_the_part() {
    let server = start(&[]);
    let key = tenant(&server, "acme");
    write_events(
        &server,
        &key,
        &[json!({"metrictype": "thermostat", "timestamp": T0, "name": "a", "temp": 1.0})],
    );
    let cases = [
        ("SELECT name, avg(temp) FROM thermostat GROUP BY name", "timestamp"),
        (
            "SELECT date_bin(INTERVAL '1 month', timestamp) AS timestamp, avg(temp) FROM thermostat GROUP BY 1",
            "fixed interval",
        ),
        (
            "SELECT date_trunc('month', timestamp) AS timestamp, avg(temp) FROM thermostat GROUP BY 1",
            "no fixed width",
        ),
        (
            "SELECT date_bin(INTERVAL '1 minute', timestamp) AS timestamp, avg(temp) FROM thermostat GROUP BY 1 LIMIT 5",
            "LIMIT",
        ),
        (
            "SELECT date_bin(INTERVAL '1 minute', timestamp) AS timestamp, avg(temp) FROM thermostat GROUP BY 1 ORDER BY 1",
            "ORDER BY",
        ),
        (
            "SELECT date_bin(INTERVAL '1 minute', a.timestamp) AS timestamp, count(*) FROM thermostat a JOIN thermostat b ON a.name = b.name GROUP BY 1",
            "join",
        ),
        ("SELECT timestamp, temp FROM thermostat", "GROUP BY"),
        (
            "SELECT date_bin(INTERVAL '1 minute', time) AS timestamp, count(*) FROM strata.errors GROUP BY 1",
            "not a metric",
        ),
        ("SELECT nonsense FROM", "Expected"),
    ];
    for (sql, part) in cases {
        let answer = server.post("/api/v1/rollups", &key, &json!({"name": "r", "sql": sql}));
        assert_eq!(answer.status, 400, "{sql}: {}", answer.text);
        assert!(
            answer.error().contains(part),
            "{sql}: the error should name {part:?}: {}",
            answer.error()
        );
    }
    let taken = server.post(
        "/api/v1/rollups",
        &key,
        &json!({"name": "thermostat", "sql": ROLLUP_SQL}),
    );
    assert_eq!(taken.status, 409, "{}", taken.text);
    create(&server, &key, "thermostat_1m", ROLLUP_SQL);
    let twice = server.post(
        "/api/v1/rollups",
        &key,
        &json!({"name": "thermostat_1m", "sql": ROLLUP_SQL}),
    );
    assert_eq!(twice.status, 409, "{}", twice.text);
    let reader = server.create_key(&key, "read");
    let forbidden = server.post(
        "/api/v1/rollups",
        &reader,
        &json!({"name": "other", "sql": ROLLUP_SQL}),
    );
    assert_eq!(forbidden.status, 403, "{}", forbidden.text);
    let unknown = server.post(
        "/api/v1/rollups",
        &key,
        &json!({"name": "other", "sql": ROLLUP_SQL, "bogus": 1}),
    );
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    assert_eq!(server.get("/api/v1/rollups/missing", &key).status, 404);
}

#[test]
fn buckets_below_the_retention_floor_keep_their_rows_when_raw_data_expires() {
    raw_data_expires_under_the_rollup(|server, key| {
        let patched = server.patch("/api/v1/settings", key, &json!({"cold_retention_days": 30}));
        assert_eq!(patched.status, 200, "{}", patched.text);
    });
}

/// Downsampling retention: the metric's own `retention_days` expires its raw data while the
/// tenant keeps everything else, the rollup keeps its buckets (a retention change is not a
/// definition change, so nothing is rebuilt), and other metrics are untouched.
#[test]
fn a_metric_retention_keeps_raw_data_short_and_the_rollup_long() {
    let (server, key) = raw_data_expires_under_the_rollup(|server, key| {
        let bad = server.patch(
            "/api/v1/schema/metrics/thermostat",
            key,
            &json!({"retention_days": 100_000}),
        );
        assert_eq!(bad.status, 400, "{}", bad.text);
        assert!(bad.text.contains("retention_days"), "{}", bad.text);
        let patched = server.patch(
            "/api/v1/schema/metrics/thermostat",
            key,
            &json!({"retention_days": 30}),
        );
        assert_eq!(patched.status, 200, "{}", patched.text);
        assert_eq!(
            patched.body["metric"]["retention_days"], 30,
            "{}",
            patched.text
        );
    });
    let version = server.get("/api/v1/rollups/thermostat_1d", &key);
    assert_eq!(version.body["version"], 1, "not rebuilt: {}", version.text);
    let other = rows(&server, &key, "SELECT count(*) FROM other");
    assert_eq!(
        other,
        vec![json!([2])],
        "the tenant keeps other metrics' old data"
    );
}

/// A rebuild (a PATCH of the SQL, then a change of the source's definition) backfills from
/// the raw rows retention kept, and takes the old version's buckets below the floor: the
/// expired day keeps its count, and the column the new SQL adds is null there.
#[test]
fn a_rebuild_keeps_the_history_only_the_rollup_holds() {
    let (server, key) = raw_data_expires_under_the_rollup(|server, key| {
        let patched = server.patch(
            "/api/v1/schema/metrics/thermostat",
            key,
            &json!({"retention_days": 30}),
        );
        assert_eq!(patched.status, 200, "{}", patched.text);
    });
    let wider = "SELECT date_trunc('day', timestamp) AS timestamp, name, count(*) AS n, \
                 count(temp) AS readings FROM thermostat GROUP BY 1, 2";
    let altered = server.patch(
        "/api/v1/rollups/thermostat_1d",
        &key,
        &json!({"sql": wider}),
    );
    assert_eq!(altered.status, 200, "{}", altered.text);
    assert_eq!(sync(&server, &key, "thermostat_1d")["version"], 2);
    let kept = "SELECT n, readings FROM thermostat_1d ORDER BY timestamp";
    let expected = vec![json!([1, null]), json!([2, 2])];
    assert_eq!(rows(&server, &key, kept), expected, "after the PATCH");

    // A type change (`temp` was declared double from the first sample) changes the source's
    // definition: a rebuild with the same SQL.
    let typed = server.put(
        "/api/v1/schema/metrics/thermostat/fields/temp",
        &key,
        &json!({"type": "string"}),
    );
    assert_eq!(typed.status, 200, "{}", typed.text);
    let rebuilt = sync(&server, &key, "thermostat_1d");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut version = rebuilt["version"].clone();
    while version != json!(3) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        version = sync(&server, &key, "thermostat_1d")["version"].clone();
    }
    assert_eq!(version, 3, "the type change rebuilds the rollup");
    assert_eq!(rows(&server, &key, kept), expected, "after the rebuild");
}

/// Writes an old and a recent day (and the same to `other`), builds a daily rollup, runs
/// `expire` (which must put the old day past retention for `thermostat`), then checks the
/// rollup kept the old day while raw queries no longer read it.
fn raw_data_expires_under_the_rollup(expire: impl Fn(&TestServer, &str)) -> (TestServer, String) {
    let server = start(&[]);
    let key = tenant(&server, "acme");
    let day_ms = 86_400_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let old = now - 100 * day_ms;
    let recent = now - 2 * day_ms;
    let reading = |at: i64, temp: f64| json!({"metrictype": "thermostat", "timestamp": at, "name": "a", "temp": temp});
    write_events(&server, &key, &[reading(old, 1.0), reading(recent, 2.0)]);
    let other = |at: i64| json!({"metrictype": "other", "timestamp": at, "name": "a", "v": 1});
    write_events(&server, &key, &[other(old), other(recent)]);
    let compact = || {
        let answer = server.post("/api/v1/compact", &key, &json!({}));
        assert_eq!(answer.status, 200, "{}", answer.text);
    };
    compact();
    let daily = "SELECT date_trunc('day', timestamp) AS timestamp, name, count(*) AS n \
                 FROM thermostat GROUP BY 1, 2";
    create(&server, &key, "thermostat_1d", daily);
    assert_eq!(
        assert_exact(&server, &key, "thermostat_1d", daily, "both days").len(),
        2
    );

    // The old day expires from the raw data; two late events reach it, one the kept day.
    expire(&server, &key);
    let late = [
        reading(old + 1, 3.0),
        reading(old + 2, 3.0),
        reading(recent + 1, 4.0),
    ];
    write_events(&server, &key, &late);
    sync(&server, &key, "thermostat_1d");
    compact();
    let stored = rows(
        &server,
        &key,
        "SELECT n FROM thermostat_1d ORDER BY timestamp",
    );
    assert_eq!(
        stored,
        vec![json!([1]), json!([2])],
        "the expired day keeps what the rollup computed; the kept day counts its late event"
    );
    let raw = rows(&server, &key, &format!("{daily} ORDER BY 1"));
    assert_eq!(
        raw.len(),
        1,
        "raw data of the expired day is no longer read: {raw:?}"
    );
    assert_eq!(raw[0][2], json!(2), "{raw:?}");
    (server, key)
}
