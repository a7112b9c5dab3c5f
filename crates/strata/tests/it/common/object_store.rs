//! What the cold-tier tests against real object stores share: starting an emulator process on
//! an ephemeral port, skipping (or, under `STRATA_REQUIRE_CLIENTS=1`, failing) when it is not
//! installed, and the end-to-end scenario every store must pass: compact three days into the
//! bucket, read them back exactly once, take a late event and a re-send, survive restarts and
//! collect the replaced files.
//!
//! Declared in `main.rs` as `mod cloud` (not named `object_store`, which would shadow the crate
//! of that name if a test ever depends on it).
#![allow(dead_code)]

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{reading, totals, write_events, TestServer, DAY0, DAY_MS};

pub use strata_testkit::{available, last_line, probe};

/// The directory with the pinned test clients and peers (`npm ci` and pip install there).
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// The venv's python when `.ci/run` put it on PATH; `STRATA_PYTHON` overrides.
pub fn python() -> PathBuf {
    PathBuf::from(std::env::var("STRATA_PYTHON").unwrap_or_else(|_| "python3".to_string()))
}

/// A port that was free a moment ago. Emulators cannot report a port they chose themselves,
/// so the test picks one and hands it over (a race with other processes, but a short one).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// An emulator process, killed on drop. Its output goes to a log file that failures quote.
pub struct Peer {
    name: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Peer {
    /// Spawns `command` with its output in a log file, then waits until `ready_url` answers
    /// HTTP at all (any status: the emulators answer `/` with an error).
    pub fn spawn(name: &str, mut command: Command, ready_url: &str) -> Peer {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("peer.log");
        let out = File::create(&log).expect("peer log");
        let err = out.try_clone().expect("peer log");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let mut peer = Peer {
            name: name.to_string(),
            child,
            log,
            _dir: dir,
        };
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.get(ready_url).send().is_err() {
            if let Ok(Some(status)) = peer.child.try_wait() {
                panic!("{name} exited with {status}:\n{}", peer.log());
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not answer on {ready_url} within 60 s:\n{}",
                peer.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        peer
    }

    /// What the emulator printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `strata serve` with its cold tier at `cold_url`, compacting on request only, and deleting
/// replaced files at the next garbage collection (startup) rather than 10 minutes later.
pub fn start_strata(cold_url: &str, env: &[(&str, String)]) -> TestServer {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestServer::start_with_env(
        &[
            "--cold-url",
            cold_url,
            "--compact-after-secs",
            "0",
            "--compact-interval-secs",
            "0",
            "--plan-tier",
            "cold",
            "--retired-grace-secs",
            "0",
        ],
        &env,
    )
}

/// Parquet files under a local directory (there must be none when the cold tier is remote).
fn local_parquet_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                local_parquet_files(&path)
            } else {
                usize::from(path.extension().is_some_and(|e| e == "parquet"))
            }
        })
        .sum()
}

/// The number of live cold files `GET /api/v1/status` reports for `reading`.
fn manifest_files(status: &Value) -> Option<usize> {
    match status {
        Value::Object(map) => {
            if map.get("metric").and_then(Value::as_str) == Some("reading") {
                return map.get("cold")?.get("files")?.as_u64().map(|n| n as usize);
            }
            map.values().find_map(manifest_files)
        }
        Value::Array(items) => items.iter().find_map(manifest_files),
        _ => None,
    }
}

/// The whole cold-tier scenario on one store. `list_keys` lists every object name in the
/// bucket or container (through the emulator, not through strata); `prefix` is the path part
/// of `cold_url`, under which every file must land.
pub fn compaction_round_trip(
    cold_url: &str,
    prefix: &str,
    env: &[(&str, String)],
    list_keys: &dyn Fn() -> Vec<String>,
) {
    let parquet_keys = || -> Vec<String> {
        list_keys()
            .into_iter()
            .filter(|k| k.ends_with(".parquet"))
            .collect()
    };
    let mut server = start_strata(cold_url, env);
    let admin = server.create_tenant("acme");

    let mut events = Vec::new();
    let mut expected_sum = 0;
    for day in 0..3 {
        for i in 0..40 {
            let value = day * 100 + i;
            expected_sum += value;
            events.push(reading(
                &format!("d{}", i % 4),
                DAY0 + day * DAY_MS + i,
                value,
            ));
        }
    }
    write_events(&server, &admin, &events);
    let compacted = server.post("/api/v1/compact", &admin, &json!({}));
    assert_eq!(compacted.status, 200, "{}", compacted.text);
    assert_eq!(compacted.body["rows"], 120, "{}", compacted.text);
    let written = compacted.body["files_written"]
        .as_u64()
        .expect("files_written") as usize;
    // Three days of one metric: at least one file per day.
    assert!(written >= 3, "{}", compacted.text);

    // The files are in the bucket under the prefix, in the documented layout
    // (tenant id / metric id / year / month / day), and none is local.
    let keys = parquet_keys();
    assert_eq!(keys.len(), written, "{keys:?}");
    for day in ["12", "13", "14"] {
        let day_prefix = format!("{prefix}/t1/m1/2015/01/{day}/");
        assert!(
            keys.iter().any(|k| k.starts_with(&day_prefix)),
            "no file under {day_prefix}: {keys:?}"
        );
    }
    for key in &keys {
        assert!(
            key.starts_with(&format!("{prefix}/t1/m1/2015/01/1")),
            "{key}"
        );
    }
    assert_eq!(local_parquet_files(server.data_dir()), 0);

    // Reads come from the cold files, each event once; EXPLAIN names them.
    assert_eq!(totals(&server, &admin), (120, expected_sum));
    let explain = server.sql(&admin, "EXPLAIN SELECT count(*) FROM reading");
    assert!(explain.text.contains(".parquet"), "{}", explain.text);

    // A late event below the watermark and a re-send of a compacted one: still exactly once.
    write_events(
        &server,
        &admin,
        &[reading("d0", DAY0 + 5, 1_000), events[0].clone()],
    );
    assert_eq!(totals(&server, &admin), (121, expected_sum + 1_000));

    // After a restart the manifest still points into the bucket; a second compaction merges
    // the late event into day one, replacing that day's file.
    server.restart();
    assert_eq!(totals(&server, &admin), (121, expected_sum + 1_000));
    let again = server.post("/api/v1/compact", &admin, &json!({}));
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(totals(&server, &admin), (121, expected_sum + 1_000));

    // The next start collects garbage: the replaced files leave the bucket (deletes through
    // the store's API), and what is left is exactly what the manifest names.
    server.restart();
    let status = server.get("/api/v1/status", &admin);
    assert_eq!(status.status, 200, "{}", status.text);
    let in_manifest = manifest_files(&status.body).expect(&status.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let in_bucket = parquet_keys().len();
        if in_bucket == in_manifest {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bucket holds {in_bucket} files, the manifest {in_manifest}: {}",
            status.text
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(totals(&server, &admin), (121, expected_sum + 1_000));
}

/// Runs `strata serve --cold-url cold_url` expecting it to stop during startup; returns
/// whether it exited successfully and its standard error.
pub fn serve_until_exit(cold_url: &str, env: &[(&str, String)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(crate::common::BIN)
        .args(["serve", "--http", "127.0.0.1:0", "--pg", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--cold-url", cold_url])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("STRATA_OPERATOR_TOKEN")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run strata serve");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `strata serve --cold-url cold_url` must exit at startup, naming the URL, that the store
/// cannot be listed and the store's own reason (`reason`, e.g. its error code), without ever
/// listening.
pub fn startup_refuses(cold_url: &str, env: &[(&str, String)], reason: &str) {
    let (success, stderr) = serve_until_exit(cold_url, env);
    assert!(!success, "started anyway: {stderr}");
    assert!(stderr.contains(cold_url), "{stderr}");
    assert!(stderr.contains("cannot list the store"), "{stderr}");
    assert!(stderr.contains(reason), "expected {reason:?}: {stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
}
