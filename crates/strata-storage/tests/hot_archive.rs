//! Issue 24: a sparse spread of old (or far-future) weeks shares one archive keyspace instead of
//! creating a keyspace per week, and the error log stays under its per-tenant size and age caps.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use strata_core::MetricId;
use strata_core::TenantId;

use strata_core::Value;
use strata_storage::key::{DAY_MS, WEEK_MS};
use strata_storage::{
    ErrorRecord, HotEvent, HotOptions, HotPartitionInfo, HotStore, HotWrite, ScanRequest,
    RECENT_WEEKS_PAST,
};
use tempfile::TempDir;

const SPREAD_START: i64 = 1_000_000_000_000;
const WEEKS: i64 = 1_000;

fn options() -> HotOptions {
    HotOptions {
        sync: false,
        ..HotOptions::default()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap()
}

fn event(metric: i64, timestamp_ms: i64, value: i64) -> HotEvent {
    HotEvent {
        metric: MetricId(metric),
        timestamp_ms,
        series: 0,
        content_hash: value as u64,
        values: vec![(1, Value::Int(value))],
    }
}

fn write(store: &HotStore, tenant: i64, events: Vec<HotEvent>) {
    store
        .write_blocking(HotWrite {
            tenant: TenantId(tenant),
            events,
            errors: vec![],
        })
        .unwrap();
}

fn count(store: &HotStore, tenant: i64, metric: i64, start_ms: i64, end_ms: i64) -> usize {
    let request = ScanRequest {
        start_ms,
        end_ms,
        ..ScanRequest::all(TenantId(tenant), MetricId(metric))
    };
    store.scan(&request).unwrap().map(Result::unwrap).count()
}

fn disk_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .flatten()
        .map(|entry| {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                disk_bytes(&entry.path())
            } else {
                // Blocks in use, as `du` counts: fjall's journal is a sparse 64 MiB file.
                meta.blocks() * 512
            }
        })
        .sum()
}

#[test]
fn far_weeks_share_the_archive_and_recent_weeks_get_their_own_keyspace() {
    let dir = TempDir::new().unwrap();
    let store = HotStore::open(dir.path(), options()).unwrap();
    let spread: Vec<HotEvent> = (0..WEEKS)
        .map(|i| event(10, SPREAD_START + i * WEEK_MS, i))
        .collect();
    let now = now_ms();
    let recent = vec![
        event(11, now, 1),
        event(11, now - i64::from(RECENT_WEEKS_PAST - 1) * WEEK_MS, 2),
        event(11, now + 200 * WEEK_MS, 3), // a clock far ahead: archived
    ];
    write(&store, 1, spread.clone());
    write(&store, 1, recent);
    write(&store, 2, vec![event(10, SPREAD_START + 7 * WEEK_MS, 7)]);

    let partitions = store.partitions();
    let weekly: Vec<_> = partitions.iter().filter(|p| !p.archived).collect();
    assert_eq!(weekly.len(), 2, "{weekly:?}");
    assert_eq!(partitions.len() as i64, WEEKS + 3);
    assert!(partitions
        .iter()
        .filter(|p| p.archived)
        .all(|p| p.name.ends_with("@archive")));
    assert!(disk_bytes(dir.path()) < 50 * 1024 * 1024);

    let check = |store: &HotStore| {
        assert_eq!(count(store, 1, 10, i64::MIN, i64::MAX), WEEKS as usize);
        for week in [0, 1, 7, 500, WEEKS - 1] {
            let start = SPREAD_START + week * WEEK_MS;
            assert_eq!(
                count(store, 1, 10, start, start + WEEK_MS),
                1,
                "week {week}"
            );
        }
        assert_eq!(count(store, 2, 10, i64::MIN, i64::MAX), 1);
        assert_eq!(count(store, 1, 11, i64::MIN, i64::MAX), 3);
    };
    check(&store);
    // An identical re-send meets its twin's key in the archive.
    write(&store, 1, spread[495..505].to_vec());
    check(&store);
    drop(store);
    let store = HotStore::open(dir.path(), options()).unwrap();
    // Row counts and sizes change when the write buffer is flushed; the assignments may not.
    let assignments = |partitions: &[HotPartitionInfo]| -> Vec<(String, bool, i64)> {
        partitions
            .iter()
            .map(|p| (p.name.clone(), p.archived, p.week_start_ms))
            .collect()
    };
    assert_eq!(
        assignments(&store.partitions()),
        assignments(&partitions),
        "assignments survive a reopen"
    );
    check(&store);

    // Dropping an archived week removes that week's rows of every tenant and nothing else.
    let week_7 = strata_storage::key::week_start_ms(SPREAD_START + 7 * WEEK_MS);
    store.drop_partition(week_7).unwrap();
    assert_eq!(count(&store, 1, 10, i64::MIN, i64::MAX), WEEKS as usize - 1);
    assert_eq!(count(&store, 2, 10, i64::MIN, i64::MAX), 0);
    assert_eq!(store.partitions().len(), partitions.len() - 1);
    assert!(store.dropped_before_ms() >= week_7 + WEEK_MS);
    // A row written to the dropped week later is found again.
    write(&store, 2, vec![event(10, week_7 + DAY_MS, 70)]);
    assert_eq!(count(&store, 2, 10, week_7, week_7 + WEEK_MS), 1);
}

fn record(time_ms: i64, reason: &str) -> ErrorRecord {
    ErrorRecord {
        time_ms,
        stage: "parse".to_string(),
        reason: reason.to_string(),
        payload: "x".repeat(900),
        index: Some(0),
        metric: None,
    }
}

fn log_errors(store: &HotStore, tenant: i64, records: Vec<ErrorRecord>) {
    store
        .write_blocking(HotWrite {
            tenant: TenantId(tenant),
            events: vec![],
            errors: records,
        })
        .unwrap();
}

#[test]
fn error_log_keeps_each_tenant_under_its_size_and_age_caps_oldest_first() {
    let dir = TempDir::new().unwrap();
    let capped = HotOptions {
        // About 20 records of ~1 KB each.
        error_log_tenant_bytes: 20 * 1024,
        error_log_max_age: Duration::from_secs(3600),
        ..options()
    };
    let store = HotStore::open(dir.path(), capped.clone()).unwrap();
    let now = now_ms();
    for i in 0..100 {
        log_errors(&store, 1, vec![record(now + i, &format!("r{i}"))]);
    }
    log_errors(&store, 2, vec![record(now, "other tenant")]);
    let kept = store.read_errors(TenantId(1), i64::MIN, 1_000).unwrap();
    assert!(
        (10..=20).contains(&kept.len()),
        "{} records kept",
        kept.len()
    );
    // The newest are kept, in order, ending with the last one written.
    assert_eq!(kept.last().unwrap().reason, "r99");
    let first: i64 = kept[0].reason[1..].parse().unwrap();
    let reasons: Vec<String> = (first..100).map(|i| format!("r{i}")).collect();
    assert_eq!(
        kept.iter().map(|r| r.reason.clone()).collect::<Vec<_>>(),
        reasons
    );
    assert_eq!(
        store.read_errors(TenantId(2), i64::MIN, 10).unwrap().len(),
        1
    );

    // Records past the age cap go at the sweep that follows a reopen, for every tenant.
    log_errors(
        &store,
        3,
        vec![record(now - 2 * 3_600_000, "old"), record(now, "new")],
    );
    drop(store);
    let store = HotStore::open(dir.path(), capped).unwrap();
    // Any command runs after the writer's first sweep.
    log_errors(&store, 4, vec![record(now, "wake")]);
    let tenant_3: Vec<String> = store
        .read_errors(TenantId(3), i64::MIN, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.reason)
        .collect();
    assert_eq!(tenant_3, ["new"]);
    assert_eq!(
        store
            .read_errors(TenantId(1), i64::MIN, 1_000)
            .unwrap()
            .len(),
        kept.len()
    );
}
