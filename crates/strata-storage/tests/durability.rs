//! Nothing acknowledged is lost: a child process writes with fsync on, prints each
//! acknowledgement, and is killed with SIGKILL; the parent reopens the store and checks that
//! every acknowledged row is there.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use strata_core::{MetricId, TenantId};

use strata_core::Value;
use strata_storage::{HotEvent, HotOptions, HotStore, HotWrite, ScanRequest};

const CHILD_DIR_ENV: &str = "STRATA_STORAGE_DURABILITY_CHILD_DIR";
const WRITER_THREADS: u64 = 4;
const EVENTS_PER_WRITE: u64 = 25;
const MONDAY: i64 = 1_492_992_000_000;
/// Acknowledgements to wait for before killing the child.
const ACKS_BEFORE_KILL: usize = 60;

fn event_id(thread: u64, write: u64, event: u64) -> i64 {
    ((thread * 1_000_000 + write) * EVENTS_PER_WRITE + event) as i64
}

/// Runs only as the child of `acknowledged_writes_survive_sigkill`.
#[test]
#[ignore = "helper: run in a child process by acknowledged_writes_survive_sigkill"]
fn durability_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let store = HotStore::open(std::path::Path::new(&dir), HotOptions::default()).unwrap();
    let threads: Vec<_> = (0..WRITER_THREADS)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                // Bounded so a child that is never killed still ends.
                for write in 0..100_000u64 {
                    let events = (0..EVENTS_PER_WRITE)
                        .map(|event| {
                            let id = event_id(thread, write, event);
                            HotEvent {
                                metric: MetricId(1),
                                // Spread over several weeks so partitions get created while
                                // the kill can happen.
                                timestamp_ms: MONDAY + id * 60_000,
                                series: thread,
                                content_hash: id as u64,
                                values: vec![
                                    (1, Value::Int(id)),
                                    (2, Value::Str(format!("payload {id}"))),
                                ],
                            }
                        })
                        .collect();
                    let ack = store
                        .write_blocking(HotWrite {
                            tenant: TenantId(7),
                            events,
                            errors: vec![],
                        })
                        .unwrap();
                    println!("ACK {thread} {write} {}", ack.last_seq);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability_child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();

    let mut acked: Vec<(u64, u64, u64)> = Vec::new();
    let parse = |line: &str, acked: &mut Vec<(u64, u64, u64)>| {
        if let Some(rest) = line.strip_prefix("ACK ") {
            let parts: Vec<u64> = rest.split(' ').map(|p| p.parse().unwrap()).collect();
            acked.push((parts[0], parts[1], parts[2]));
        }
    };
    while acked.len() < ACKS_BEFORE_KILL {
        let line = lines
            .next()
            .expect("child ended before enough acknowledgements")
            .unwrap();
        parse(&line, &mut acked);
    }
    // Child::kill sends SIGKILL on Unix: no destructor, no final persist.
    child.kill().unwrap();
    child.wait().unwrap();
    // Acknowledgements printed before the kill are still in the pipe.
    for line in lines {
        parse(&line.unwrap(), &mut acked);
    }

    let store = HotStore::open(dir.path(), HotOptions::default()).unwrap();
    let stored: BTreeSet<i64> = store
        .scan(&ScanRequest::all(TenantId(7), MetricId(1)))
        .unwrap()
        .map(|row| match row.unwrap().values[..] {
            [(1, Value::Int(id)), (2, Value::Str(_))] => id,
            ref other => panic!("unexpected values {other:?}"),
        })
        .collect();
    let mut missing = Vec::new();
    for (thread, write, _) in &acked {
        for event in 0..EVENTS_PER_WRITE {
            let id = event_id(*thread, *write, event);
            if !stored.contains(&id) {
                missing.push(id);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged rows lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let highest_acked_seq = acked.iter().map(|a| a.2).max().unwrap();
    assert!(store.last_seq() >= highest_acked_seq);
    // The store keeps working after recovery and numbers keep rising.
    let ack = store
        .write_blocking(HotWrite {
            tenant: TenantId(7),
            events: vec![],
            errors: vec![],
        })
        .unwrap();
    assert_eq!(ack.rows, 0);
    let next = store
        .write_blocking(HotWrite {
            tenant: TenantId(8),
            events: vec![HotEvent {
                metric: MetricId(1),
                timestamp_ms: MONDAY,
                series: 0,
                content_hash: 0,
                values: vec![],
            }],
            errors: vec![],
        })
        .unwrap();
    assert!(next.first_seq > highest_acked_seq);
}
