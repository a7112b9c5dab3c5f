//! Issue 14's design input: three ways to make a batch of events durable in the hot tier,
//! measured on the benchmark's shape (1,000 series, 12 values per event, one event per series
//! per second, requests of 5,000 events committed in groups), all with an fsync per group.
//!
//! - `rows`: today's path, the real [`HotStore`]: one 48-byte fjall key per event, inserted into
//!   fjall's memtable by the writer thread, fjall journal fsync'd per group.
//! - `wal_ingest`: the group's rows appended to a write-ahead file and fsync'd; rows kept in
//!   memory and, every `--flush-rows`, sorted and handed to fjall's bulk ingestion (tables written
//!   directly: no memtable, no fjall journal). Same keys as `rows`.
//! - `blocks`: one fjall entry per (series, hour, group) holding that series' rows of the group
//!   back to back, fsync'd per group through fjall's journal.
//!
//! Run: `cargo bench -p strata-storage --bench hot_write_layouts -- --events 2000000`.
//! Prints, per layout, events/s and CPU microseconds per event (process CPU, all threads,
//! including fjall's background flushes and compactions until they are idle).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use fjall::{Database, KeyspaceCreateOptions, PersistMode};
use strata_core::{MetricId, NameId, TenantId, Value};
use strata_storage::{codec, key, HotEvent, HotOptions, HotStore, HotWrite};

const SERIES: u64 = 1_000;
const REQUEST_EVENTS: usize = 5_000;
const TENANT: TenantId = TenantId(1);
const METRIC: MetricId = MetricId(1);
/// 2026-11-30 00:00 UTC, a Monday: every event falls in one weekly keyspace.
const START_MS: i64 = 1_796_083_200_000;

struct Args {
    events: usize,
    group_requests: usize,
    flush_rows: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: 2_000_000,
        group_requests: 4,
        flush_rows: 1_000_000,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut number = || words.next().and_then(|n| n.parse().ok());
        match word.as_str() {
            "--events" => args.events = number().unwrap_or(args.events),
            "--group-requests" => args.group_requests = number().unwrap_or(args.group_requests),
            "--flush-rows" => args.flush_rows = number().unwrap_or(args.flush_rows),
            _ => {} // `cargo bench` passes `--bench`.
        }
    }
    args
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Event `i`: series `i % 1000`, one event per series per second, shaped like `strata bench
/// gen`'s `readings`: 7 numbers and 5 text tags that stay the same for a series.
fn event(i: u64) -> HotEvent {
    let series = i % SERIES;
    let second = i64::try_from(i / SERIES).unwrap_or(i64::MAX);
    let noise = mix(i);
    let mut values: Vec<(NameId, Value)> = (1..=7)
        .map(|name| (name, Value::Float((noise >> name) as f64 / 1e15)))
        .collect();
    let tags = [
        format!("truck_{series}"),
        format!("fleet-{}", series % 3),
        format!("driver-{}", series % 50),
        format!("model-{}", series % 5),
        format!("v{}.0", series % 4),
    ];
    values.extend((8..).zip(tags.map(Value::Str)));
    HotEvent {
        metric: METRIC,
        timestamp_ms: START_MS + second * 1000,
        series: mix(series + 1),
        content_hash: noise,
        values,
    }
}

/// The groups of the run: `group_requests` requests of 5,000 events each.
fn groups(args: &Args) -> impl Iterator<Item = Vec<HotEvent>> + '_ {
    let group_events = REQUEST_EVENTS * args.group_requests;
    (0..args.events.div_ceil(group_events)).map(move |g| {
        let first = g * group_events;
        let last = (first + group_events).min(args.events);
        (first as u64..last as u64).map(event).collect()
    })
}

/// utime + stime of this process, all threads, in microseconds (from `/proc/self/stat`).
fn process_cpu_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    ticks * 10_000
}

/// Waits until fjall's background work stops using CPU (no progress for half a second).
fn settle() {
    let mut last = process_cpu_us();
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(500));
        let now = process_cpu_us();
        if now - last < 20_000 {
            return;
        }
        last = now;
    }
}

fn report(layout: &str, events: usize, load: Duration, cpu_us: u64, dir: &Path) {
    let rate = events as f64 / load.as_secs_f64();
    let cpu_per_event = cpu_us as f64 / events as f64;
    let disk_mib = dir_bytes(dir) as f64 / (1024.0 * 1024.0);
    println!(
        "| {layout} | {events} | {rate:.0} | {cpu_per_event:.2} | {disk_mib:.0} |",
        rate = rate,
    );
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            _ => entry.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// Runs `load` on a fresh directory and reports its rate and CPU, background work included.
fn measure(layout: &str, args: &Args, load: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cpu_before = process_cpu_us();
    let started = Instant::now();
    load(dir.path());
    let elapsed = started.elapsed();
    settle();
    let cpu_us = process_cpu_us() - cpu_before;
    report(layout, args.events, elapsed, cpu_us, dir.path());
}

fn load_rows(dir: &Path, args: &Args) {
    let store = HotStore::open(dir, HotOptions::default()).expect("hot store");
    for events in groups(args) {
        let write = HotWrite {
            tenant: TENANT,
            events,
            errors: Vec::new(),
        };
        store.write_blocking(write).expect("durable write");
    }
    store.close();
}

/// One row as the WAL and the ingestion see it: its key and its encoded value.
struct EncodedRow {
    key: [u8; key::KEY_LEN],
    value: Vec<u8>,
}

fn encode_rows(events: Vec<HotEvent>, first_seq: u64) -> Vec<EncodedRow> {
    events
        .into_iter()
        .zip(first_seq..)
        .map(|(mut event, seq)| {
            event.values.sort_by_key(|(name, _)| *name);
            EncodedRow {
                key: key::encode(
                    TENANT,
                    event.metric,
                    event.series,
                    event.timestamp_ms,
                    event.content_hash,
                ),
                value: codec::encode_value(seq, &event.values),
            }
        })
        .collect()
}

fn append_to_wal(wal: &mut File, rows: &[EncodedRow]) {
    let mut frame = Vec::with_capacity(rows.len() * 128);
    for row in rows {
        frame.extend_from_slice(&row.key);
        frame.extend_from_slice(&(row.value.len() as u32).to_le_bytes());
        frame.extend_from_slice(&row.value);
    }
    wal.write_all(&frame).expect("WAL append");
    wal.sync_data().expect("WAL fsync");
}

fn ingest_sorted(keyspace: &fjall::Keyspace, mut rows: Vec<EncodedRow>) {
    rows.sort_unstable_by_key(|row| row.key);
    // Ingestion takes strictly ascending keys; a re-sent event has its twin's key and is
    // ingested once (the real flush keeps the newest seq; this workload has no re-sends).
    rows.dedup_by(|later, kept| later.key == kept.key);
    let mut ingestion = keyspace.start_ingestion().expect("ingestion");
    for row in rows {
        ingestion.write(row.key, row.value).expect("ingest row");
    }
    ingestion.finish().expect("finish ingestion");
}

fn load_wal_ingest(dir: &Path, args: &Args) {
    let db = Database::builder(dir.join("db")).open().expect("fjall");
    let rows = db
        .keyspace("rows", KeyspaceCreateOptions::default)
        .expect("keyspace");
    let mut wal = File::create(dir.join("wal")).expect("WAL file");
    let mut buffered: Vec<EncodedRow> = Vec::new();
    let mut next_seq = 1;
    for events in groups(args) {
        let count = events.len() as u64;
        let encoded = encode_rows(events, next_seq);
        next_seq += count;
        append_to_wal(&mut wal, &encoded);
        buffered.extend(encoded);
        if buffered.len() >= args.flush_rows {
            ingest_sorted(&rows, std::mem::take(&mut buffered));
            wal.set_len(0).expect("WAL truncate");
        }
    }
    if !buffered.is_empty() {
        ingest_sorted(&rows, buffered);
    }
}

/// The group's rows per (series, hour), each run of rows one fjall value.
fn blocks_of(rows: Vec<EncodedRow>) -> HashMap<[u8; 32], Vec<u8>> {
    let mut blocks: HashMap<[u8; 32], Vec<u8>> = HashMap::new();
    for row in rows {
        let mut block_key = [0u8; 32];
        block_key.copy_from_slice(&row.key[..32]);
        let block = blocks.entry(block_key).or_default();
        block.extend_from_slice(&row.key[32..]);
        block.extend_from_slice(&(row.value.len() as u32).to_le_bytes());
        block.extend_from_slice(&row.value);
    }
    blocks
}

fn load_blocks(dir: &Path, args: &Args) {
    let db = Database::builder(dir)
        .manual_journal_persist(true)
        .open()
        .expect("fjall");
    let keyspace = db
        .keyspace("rows", KeyspaceCreateOptions::default)
        .expect("keyspace");
    let mut next_seq = 1;
    for events in groups(args) {
        let count = events.len() as u64;
        let rows = encode_rows(events, next_seq);
        let mut batch = db.batch();
        for (prefix, block) in blocks_of(rows) {
            let mut block_key = prefix.to_vec();
            block_key.extend_from_slice(&next_seq.to_be_bytes());
            batch.insert(&keyspace, block_key, block);
        }
        next_seq += count;
        batch.commit().expect("commit");
        db.persist(PersistMode::SyncData).expect("fsync");
    }
}

fn main() {
    let args = parse_args();
    println!(
        "{} events, {} series, groups of {} x {} events, WAL flush every {} rows",
        args.events, SERIES, args.group_requests, REQUEST_EVENTS, args.flush_rows
    );
    println!(
        "| layout | events | events/s (load) | CPU us/event (all threads, settled) | disk MiB |"
    );
    println!("| --- | --- | --- | --- | --- |");
    measure("generating events only (in every row below)", &args, |_| {
        groups(&args).for_each(drop)
    });
    measure("rows (today)", &args, |dir| load_rows(dir, &args));
    measure("wal_ingest", &args, |dir| load_wal_ingest(dir, &args));
    measure("blocks", &args, |dir| load_blocks(dir, &args));
}
