//! Kill -9 at each commit point of the write path after the WAL append: a child process writes
//! with fsync on and a small flush size, prints each acknowledgement, and dies (by `abort` at a
//! chosen point of its first flush, or by SIGKILL while flushes run). The parent reopens the
//! store and checks that every acknowledged row is there exactly once, and that the store keeps
//! numbering upwards.
//!
//! Commit points: after the WAL append (`durability.rs`), after the flush's ingestion into fjall
//! but before `flushed_seq` is recorded (rows are then both in fjall and in the replayed WAL),
//! after `flushed_seq` but before the WAL segments are deleted, and at random while flushes run.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use strata_core::{MetricId, TenantId, Value};
use strata_storage::{CrashPoint, HotEvent, HotOptions, HotStore, HotWrite, ScanRequest};

const CHILD_DIR_ENV: &str = "STRATA_FLUSH_CRASH_CHILD_DIR";
const CHILD_POINT_ENV: &str = "STRATA_FLUSH_CRASH_POINT";
const EVENTS_PER_WRITE: u64 = 20;
/// Small, so that flushes start after a few writes.
const FLUSH_ROWS: usize = 150;
const MONDAY: i64 = 1_492_992_000_000;
const TENANT: TenantId = TenantId(3);
const METRIC: MetricId = MetricId(1);

fn options(crash_at: Option<CrashPoint>) -> HotOptions {
    HotOptions {
        flush_rows: FLUSH_ROWS,
        crash_at,
        ..HotOptions::default()
    }
}

fn events(thread: u64, write: u64) -> Vec<HotEvent> {
    (0..EVENTS_PER_WRITE)
        .map(|event| {
            let id = ((thread * 1_000_000 + write) * EVENTS_PER_WRITE + event) as i64;
            HotEvent {
                metric: METRIC,
                timestamp_ms: MONDAY + id * 60_000,
                series: thread,
                content_hash: id as u64,
                values: vec![(1, Value::Int(id)), (2, Value::Str(format!("v{id}")))],
            }
        })
        .collect()
}

/// Runs only as the child of the tests below.
#[test]
#[ignore = "helper: run in a child process by the crash tests"]
fn flush_crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let crash_at = match std::env::var(CHILD_POINT_ENV).as_deref() {
        Ok("after_ingest") => Some(CrashPoint::AfterIngest),
        Ok("after_flushed_seq") => Some(CrashPoint::AfterFlushedSeq),
        _ => None,
    };
    let store = HotStore::open(std::path::Path::new(&dir), options(crash_at)).unwrap();
    let threads: Vec<_> = (0..2u64)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                // Bounded so a child that is never killed still ends.
                for write in 0..20_000u64 {
                    let write_request = HotWrite {
                        tenant: TENANT,
                        events: events(thread, write),
                        errors: vec![],
                    };
                    let ack = store.write_blocking(write_request).unwrap();
                    println!("ACK {thread} {write} {}", ack.last_seq);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

/// Starts the child; returns it and its stdout lines.
fn spawn_child(
    dir: &std::path::Path,
    point: &str,
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "flush_crash_child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_POINT_ENV, point)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    (child, BufReader::new(stdout).lines())
}

fn parse_ack(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.strip_prefix("ACK ")?;
    let parts: Vec<u64> = rest.split(' ').map(|p| p.parse().unwrap()).collect();
    Some((parts[0], parts[1], parts[2]))
}

/// Reopens the store and checks every acknowledged row is there exactly once.
fn check_recovery(dir: &std::path::Path, acked: &[(u64, u64, u64)]) {
    assert!(!acked.is_empty(), "the child acknowledged nothing");
    for reopen in 0..2 {
        let store = HotStore::open(dir, options(None)).unwrap();
        let ids: Vec<i64> = store
            .scan(&ScanRequest::all(TENANT, METRIC))
            .unwrap()
            .map(|row| match row.unwrap().values[..] {
                [(1, Value::Int(id)), (2, Value::Str(_))] => id,
                ref other => panic!("unexpected values {other:?}"),
            })
            .collect();
        let unique: BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!(
            ids.len(),
            unique.len(),
            "a row was read twice (reopen {reopen})"
        );
        let missing: Vec<i64> = acked
            .iter()
            .flat_map(|(thread, write, _)| events(*thread, *write))
            .map(|event| event.content_hash as i64)
            .filter(|id| !unique.contains(id))
            .collect();
        assert!(
            missing.is_empty(),
            "{} acknowledged rows lost (reopen {reopen}), e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        let highest_acked = acked.iter().map(|ack| ack.2).max().unwrap();
        assert!(store.last_seq() >= highest_acked);
        let ack = store
            .write_blocking(HotWrite {
                tenant: TENANT,
                events: events(9, reopen),
                errors: vec![],
            })
            .unwrap();
        assert!(ack.first_seq > highest_acked, "numbers keep rising");
        store.close();
    }
}

fn crash_at_point(point: &str) {
    let dir = tempfile::TempDir::new().unwrap();
    let (mut child, lines) = spawn_child(dir.path(), point);
    // The child aborts itself at its first flush; read until its stdout closes.
    let acked: Vec<_> = lines
        .map_while(Result::ok)
        .filter_map(|l| parse_ack(&l))
        .collect();
    let status = child.wait().unwrap();
    // Only the crash point aborts: SIGABRT proves the child died inside a flush.
    assert_eq!(status.signal(), Some(6), "child status {status:?}");
    check_recovery(dir.path(), &acked);
}

#[test]
fn a_crash_after_ingestion_before_flushed_seq_loses_and_doubles_nothing() {
    crash_at_point("after_ingest");
}

#[test]
fn a_crash_after_flushed_seq_before_the_wal_delete_loses_and_doubles_nothing() {
    crash_at_point("after_flushed_seq");
}

#[test]
fn sigkill_while_flushes_run_loses_and_doubles_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    let (mut child, mut lines) = spawn_child(dir.path(), "none");
    let mut acked = Vec::new();
    // Enough writes for several flushes of FLUSH_ROWS rows.
    while acked.len() < 60 {
        let line = lines.next().expect("child ended early").unwrap();
        acked.extend(parse_ack(&line));
    }
    // Child::kill sends SIGKILL on Unix: no destructor, no final flush.
    child.kill().unwrap();
    child.wait().unwrap();
    acked.extend(lines.map_while(Result::ok).filter_map(|l| parse_ack(&l)));
    check_recovery(dir.path(), &acked);
}
