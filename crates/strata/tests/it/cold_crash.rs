//! Issue 5: kill -9 at injected points of a compaction (after the files are written and before
//! the manifest commit; after the commit and before the late index is pruned) and of a re-typing
//! (after the typed file is written and before the manifest swap), then restart: every
//! acknowledged event is returned exactly once, and orphan files are collected.
//!
//! The fault point is passed to the server through env `STRATA_FAULT_POINT`, set on that child
//! process only (never on the test process, whose other tests run in parallel threads and spawn
//! servers of their own); the restarted server runs without it.

use crate::common::{parquet_files, TestServer};
use serde_json::{json, Value};

const NDJSON: &str = "application/x-ndjson";
const DAY0: i64 = 1_421_020_800_000;

fn write(server: &TestServer, key: &str, events: &[Value]) {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let answer = server.post_raw("/api/v1/write", key, NDJSON, body.into_bytes());
    assert_eq!(answer.status, 200, "{}", answer.text);
}

fn totals(server: &TestServer, key: &str) -> (i64, i64) {
    let answer = server.sql(key, "SELECT count(*), sum(CAST(v AS BIGINT)) FROM m");
    assert_eq!(answer.status, 200, "{}", answer.text);
    let row = &answer.body["rows"][0];
    (row[0].as_i64().unwrap(), row[1].as_i64().unwrap_or(0))
}

/// Parquet files on disk once there are `listed` of them, or after 5 s. Orphans are collected
/// at startup by a background task, so this gives it a moment.
fn files_once_orphans_are_collected(server: &TestServer, listed: u64) -> u64 {
    let mut on_disk = 0;
    for _ in 0..100 {
        on_disk = parquet_files(&server.data_dir().join("cold")).len() as u64;
        if on_disk == listed {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    on_disk
}

/// A server that aborts at `point`; a later `restart` runs without the fault point.
fn start_with_fault(point: &str) -> TestServer {
    let mut server = TestServer::start_with_env(
        &["--compact-after-secs", "0", "--compact-interval-secs", "0"],
        &[("STRATA_FAULT_POINT", point)],
    );
    server.clear_env();
    server
}

fn wait_for_exit(server: &mut TestServer) {
    let status = server.stop_and_status();
    assert!(
        !status.success(),
        "the server should have aborted at the fault point"
    );
}

#[test]
fn kill_during_compaction_loses_nothing_and_leaves_no_orphans() {
    for point in ["compaction.after_files", "compaction.after_commit"] {
        let mut server = start_with_fault(point);
        let admin = server.create_tenant("acme");
        let events: Vec<Value> = (0..100)
            .map(|i| json!({"metrictype": "m", "timestamp": DAY0 + i * 3_600_000, "v": i}))
            .collect();
        write(&server, &admin, &events);
        let expected = (100, (0..100).sum::<i64>());

        // The compaction request dies with the process.
        let answered = server
            .request(reqwest::Method::POST, "/api/v1/compact", Some(&admin))
            .json(&json!({}))
            .send()
            .map(|response| response.status().is_success());
        assert!(
            !answered.unwrap_or(false),
            "{point}: compaction should die before answering"
        );
        wait_for_exit(&mut server);
        let written = parquet_files(&server.data_dir().join("cold"));
        assert!(
            !written.is_empty(),
            "{point}: files were written before the crash"
        );

        server.restart();
        assert_eq!(totals(&server, &admin), expected, "{point}: after restart");
        let status = server.get("/api/v1/status", &admin);
        let listed = status.body["metrics"][0]["cold"]["files"]
            .as_u64()
            .unwrap_or(0);
        if point == "compaction.after_files" {
            assert_eq!(listed, 0, "{point}: the manifest was never committed");
        } else {
            assert!(listed > 0, "{point}: the commit happened before the crash");
        }
        assert_eq!(
            files_once_orphans_are_collected(&server, listed),
            listed,
            "{point}: orphan files remain"
        );

        // Late events and a finishing compaction still give exactly the acknowledged rows.
        write(&server, &admin, &events[..10]);
        let answer = server.post("/api/v1/compact", &admin, &json!({}));
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(
            totals(&server, &admin),
            expected,
            "{point}: after recompaction"
        );
    }

    kill_during_retyping_keeps_the_old_file_and_loses_nothing();
}

/// Files compacted while `v` was unknown hold it as text; once `v` is declared, the next run
/// rewrites them typed. The process dies after writing the first typed file.
fn kill_during_retyping_keeps_the_old_file_and_loses_nothing() {
    let point = "retype.after_file";
    let mut server = start_with_fault(point);
    let admin = server.create_tenant("acme");
    let events: Vec<Value> = (0..100)
        .map(|i| json!({"metrictype": "m", "timestamp": DAY0 + i * 3_600_000, "v": i.to_string()}))
        .collect();
    write(&server, &admin, &events);
    let expected = (100, (0..100).sum::<i64>());
    let answer = server.post("/api/v1/compact", &admin, &json!({}));
    assert_eq!(answer.status, 200, "{}", answer.text);
    let files_before = parquet_files(&server.data_dir().join("cold")).len() as u64;
    assert!(files_before > 1, "several days give several files");

    let declared = server.put(
        "/api/v1/schema/metrics/m/fields/v",
        &admin,
        &json!({"type": "integer"}),
    );
    assert_eq!(declared.status, 200, "{}", declared.text);
    let answered = server
        .request(reqwest::Method::POST, "/api/v1/compact", Some(&admin))
        .json(&json!({}))
        .send()
        .map(|response| response.status().is_success());
    assert!(!answered.unwrap_or(false), "re-typing should die first");
    wait_for_exit(&mut server);
    assert_eq!(
        parquet_files(&server.data_dir().join("cold")).len() as u64,
        files_before + 1,
        "one typed file was written before the crash"
    );

    server.restart();
    assert_eq!(totals(&server, &admin), expected, "after restart");
    let status = server.get("/api/v1/status", &admin);
    let listed = status.body["metrics"][0]["cold"]["files"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(listed, files_before, "the swap was never committed");
    assert_eq!(
        files_once_orphans_are_collected(&server, listed),
        listed,
        "the orphan typed file remains"
    );

    // The next run re-types every file, and the values are the same.
    let answer = server.post("/api/v1/compact", &admin, &json!({}));
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["retyped_files"].as_u64(), Some(files_before));
    assert_eq!(totals(&server, &admin), expected, "after re-typing");
}
