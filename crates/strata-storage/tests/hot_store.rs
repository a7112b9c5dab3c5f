//! The hot tier against a real fjall directory.

use std::collections::BTreeSet;
use std::sync::Arc;
use strata_core::{MetricId, TenantId};

use strata_core::Value;
use strata_storage::key::{self, DAY_MS, HOUR_MS, WEEK_MS};
use strata_storage::{
    ErrorRecord, HotEvent, HotOptions, HotRow, HotStore, HotWrite, ScanRequest, StorageError,
};
use tempfile::TempDir;

/// Monday 2017-04-24 00:00 UTC.
const MONDAY: i64 = 1_492_992_000_000;

fn fast_options() -> HotOptions {
    // Durability is not under test here; see tests/durability.rs for the fsync'd path.
    HotOptions {
        sync: false,
        ..HotOptions::default()
    }
}

/// Every week gets its own keyspace, as before the archive existed (the window reaches back
/// further than any test timestamp).
fn all_weekly_options() -> HotOptions {
    HotOptions {
        recent_weeks_past: u32::MAX,
        recent_weeks_future: u32::MAX,
        ..fast_options()
    }
}

fn open(dir: &TempDir) -> Arc<HotStore> {
    HotStore::open(dir.path(), fast_options()).unwrap()
}

fn event(metric: i64, timestamp_ms: i64, series: u64, value: i64) -> HotEvent {
    HotEvent {
        metric: MetricId(metric),
        timestamp_ms,
        series,
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

fn scan(store: &HotStore, request: ScanRequest) -> Vec<HotRow> {
    store.scan(&request).unwrap().map(Result::unwrap).collect()
}

fn range(tenant: i64, metric: i64, start_ms: i64, end_ms: i64) -> ScanRequest {
    ScanRequest {
        start_ms,
        end_ms,
        ..ScanRequest::all(TenantId(tenant), MetricId(metric))
    }
}

fn timestamps(rows: &[HotRow]) -> Vec<i64> {
    rows.iter().map(|r| r.timestamp_ms).collect()
}

#[test]
fn time_range_is_start_inclusive_end_exclusive_across_weeks() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let next_monday = MONDAY + WEEK_MS;
    let times = [
        MONDAY - 1, // previous week
        MONDAY,
        MONDAY + HOUR_MS - 1,
        MONDAY + HOUR_MS,
        MONDAY + 3 * DAY_MS + 17,
        next_monday - 1,
        next_monday,
        next_monday + 5,
    ];
    write(
        &store,
        1,
        times
            .iter()
            .enumerate()
            .map(|(i, t)| event(10, *t, 0, i as i64))
            .collect(),
    );
    assert_eq!(store.partitions().len(), 3, "three weeks touched");

    let all = scan(&store, ScanRequest::all(TenantId(1), MetricId(10)));
    assert_eq!(timestamps(&all), times.to_vec());

    let rows = scan(&store, range(1, 10, MONDAY, next_monday));
    assert_eq!(timestamps(&rows), times[1..6].to_vec());

    let rows = scan(&store, range(1, 10, MONDAY + 1, next_monday + 1));
    assert_eq!(
        timestamps(&rows),
        vec![
            MONDAY + HOUR_MS - 1,
            MONDAY + HOUR_MS,
            MONDAY + 3 * DAY_MS + 17,
            next_monday - 1,
            next_monday
        ]
    );

    let rows = scan(&store, range(1, 10, MONDAY + HOUR_MS - 1, MONDAY + HOUR_MS));
    assert_eq!(timestamps(&rows), vec![MONDAY + HOUR_MS - 1]);

    assert!(scan(&store, range(1, 10, MONDAY, MONDAY)).is_empty());
    assert!(scan(&store, range(1, 10, MONDAY + 10, MONDAY)).is_empty());

    let rows = scan(&store, range(1, 10, i64::MIN, MONDAY));
    assert_eq!(timestamps(&rows), vec![MONDAY - 1]);
    let rows = scan(&store, range(1, 10, next_monday, i64::MAX));
    assert_eq!(timestamps(&rows), vec![next_monday, next_monday + 5]);
}

#[test]
fn negative_and_extreme_timestamps_are_stored_and_found() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let times = [i64::MIN, -86_400_000 * 365 * 100, -1, 0, 1, i64::MAX - 1];
    write(
        &store,
        1,
        times
            .iter()
            .enumerate()
            .map(|(i, t)| event(10, *t, 0, i as i64))
            .collect(),
    );
    let all = scan(&store, ScanRequest::all(TenantId(1), MetricId(10)));
    assert_eq!(timestamps(&all), times.to_vec());
    let rows = scan(&store, range(1, 10, -1, 1));
    assert_eq!(timestamps(&rows), vec![-1, 0]);
    let rows = scan(&store, range(1, 10, i64::MIN, i64::MIN + 1));
    assert_eq!(timestamps(&rows), vec![i64::MIN]);
}

#[test]
fn other_tenants_and_metrics_are_never_returned() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    // Neighbouring ids on both sides, including negative ones and the extremes.
    for tenant in [-1, 0, 1, 2, i64::MAX, i64::MIN] {
        for metric in [-1, 0, 1, 2] {
            let value = tenant.wrapping_mul(10).wrapping_add(metric);
            write(&store, tenant, vec![event(metric, MONDAY + 5, 0, value)]);
        }
    }
    for tenant in [-1, 0, 1, 2, i64::MAX, i64::MIN] {
        for metric in [-1, 0, 1, 2] {
            let rows = scan(&store, ScanRequest::all(TenantId(tenant), MetricId(metric)));
            let expected = tenant.wrapping_mul(10).wrapping_add(metric);
            assert_eq!(rows.len(), 1, "tenant {tenant} metric {metric}");
            assert_eq!(rows[0].values, vec![(1, Value::Int(expected))]);
        }
    }
    assert!(scan(&store, ScanRequest::all(TenantId(3), MetricId(1))).is_empty());
}

#[test]
fn identical_event_is_stored_once_and_different_content_twice() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let original = HotEvent {
        metric: MetricId(7),
        timestamp_ms: MONDAY + 1000,
        series: 0,
        content_hash: 0xABCD,
        values: vec![(1, Value::Float(21.5))],
    };
    write(&store, 1, vec![original.clone()]);
    write(&store, 1, vec![original.clone()]);
    write(&store, 1, vec![original.clone(), original.clone()]);
    assert_eq!(
        scan(&store, ScanRequest::all(TenantId(1), MetricId(7))).len(),
        1
    );

    let different = HotEvent {
        content_hash: 0xBEEF,
        values: vec![(1, Value::Float(22.0))],
        ..original.clone()
    };
    write(&store, 1, vec![different]);
    let rows = scan(&store, ScanRequest::all(TenantId(1), MetricId(7)));
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.timestamp_ms == MONDAY + 1000));
    let hashes: BTreeSet<u64> = rows.iter().map(|r| r.content_hash).collect();
    assert_eq!(hashes, BTreeSet::from([0xABCD, 0xBEEF]));
}

#[test]
fn series_filter_returns_only_those_series() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let mut events = Vec::new();
    for hour in 0..30 {
        for series in [1u64, 2, 3, u64::MAX] {
            let ts = MONDAY + 6 * DAY_MS + hour * HOUR_MS + series as i64 % 1000;
            events.push(event(10, ts, series, hour * 10 + (series % 7) as i64));
        }
    }
    write(&store, 1, events);
    // Another metric with the same series, to prove the seek stays inside the metric.
    write(&store, 1, vec![event(11, MONDAY + 6 * DAY_MS, 2, 1)]);

    let request = ScanRequest {
        series: Some(vec![2]),
        ..ScanRequest::all(TenantId(1), MetricId(10))
    };
    let rows = scan(&store, request);
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|r| r.series == 2));
    assert!(timestamps(&rows).windows(2).all(|w| w[0] < w[1]));

    // Several series, a time window crossing the week boundary and cutting hours mid-way.
    let start = MONDAY + 6 * DAY_MS + 20 * HOUR_MS + 2;
    let end = MONDAY + 6 * DAY_MS + 26 * HOUR_MS + 3;
    let request = ScanRequest {
        series: Some(vec![u64::MAX, 2, 2, 99]),
        ..range(1, 10, start, end)
    };
    let rows = scan(&store, request);
    let expected: Vec<(i64, u64)> = (0..30)
        .flat_map(|hour| {
            [2u64, u64::MAX].map(|s| (MONDAY + 6 * DAY_MS + hour * HOUR_MS + s as i64 % 1000, s))
        })
        .filter(|(ts, _)| *ts >= start && *ts < end)
        .collect();
    let mut got: Vec<(i64, u64)> = rows.iter().map(|r| (r.timestamp_ms, r.series)).collect();
    got.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(got, expected_sorted);
    assert!(!got.is_empty());
    // Hour 20 holds series 2 at +2 ms (inside) and u64::MAX at +615 ms (inside); hour 26 holds
    // series 2 at +2 (inside, < +3) but u64::MAX at +615 (outside).
    assert!(got.contains(&(MONDAY + 6 * DAY_MS + 26 * HOUR_MS + 2, 2)));
    assert!(!got.contains(&(MONDAY + 6 * DAY_MS + 26 * HOUR_MS + 615, u64::MAX)));

    let request = ScanRequest {
        series: Some(vec![]),
        ..ScanRequest::all(TenantId(1), MetricId(10))
    };
    assert!(scan(&store, request).is_empty());
}

#[test]
fn names_projection_decodes_only_requested_names() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    write(
        &store,
        1,
        vec![HotEvent {
            metric: MetricId(10),
            timestamp_ms: MONDAY,
            series: 0,
            content_hash: 1,
            // Unsorted on purpose: storage sorts by name id.
            values: vec![
                (9, Value::Str("nine".into())),
                (2, Value::Bool(true)),
                (4, Value::Null),
                (7, Value::Float(7.5)),
            ],
        }],
    );
    let all = scan(&store, ScanRequest::all(TenantId(1), MetricId(10)));
    assert_eq!(
        all[0].values,
        vec![
            (2, Value::Bool(true)),
            (4, Value::Null),
            (7, Value::Float(7.5)),
            (9, Value::Str("nine".into()))
        ]
    );
    let request = ScanRequest {
        names: Some(vec![9, 4, 100]),
        ..ScanRequest::all(TenantId(1), MetricId(10))
    };
    let rows = scan(&store, request);
    assert_eq!(
        rows[0].values,
        vec![(4, Value::Null), (9, Value::Str("nine".into()))]
    );

    // The raw path gives the same row without owned decoding.
    let mut scan = store
        .scan(&ScanRequest::all(TenantId(1), MetricId(10)))
        .unwrap();
    let raw = scan.next_raw().unwrap().unwrap();
    assert_eq!(raw.timestamp_ms(), MONDAY);
    let mut reader = raw.values().unwrap();
    assert_eq!(reader.seq(), all[0].seq);
    let mut names = Vec::new();
    reader
        .for_each(Some(&[7]), |name, value| {
            names.push((name, value.to_value()))
        })
        .unwrap();
    assert_eq!(names, vec![(7, Value::Float(7.5))]);
    assert!(scan.next_raw().is_none());
}

#[test]
fn seq_is_strictly_increasing_and_recovered_after_reopen() {
    let dir = TempDir::new().unwrap();
    let mut seen = Vec::new();
    {
        let store = open(&dir);
        assert_eq!(store.last_seq(), 0);
        for i in 0..5 {
            let ack = store
                .write_blocking(HotWrite {
                    tenant: TenantId(1),
                    events: vec![
                        event(10, MONDAY + i, 0, i),
                        event(10, MONDAY + i + 100, 0, i),
                    ],
                    errors: vec![],
                })
                .unwrap();
            assert_eq!(ack.rows, 2);
            assert_eq!(ack.last_seq, ack.first_seq + 1);
            seen.push(ack.first_seq);
        }
        assert_eq!(store.last_seq(), seen[4] + 1);
        let empty = store.write_blocking(HotWrite::default()).unwrap();
        assert_eq!((empty.first_seq, empty.rows), (0, 0));
        store.close();
        assert!(matches!(
            store.write_blocking(HotWrite::default()),
            Err(StorageError::Closed)
        ));
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let row_seqs: Vec<u64> = {
        let store = open(&dir);
        let last_before = seen[4] + 1;
        assert_eq!(store.last_seq(), last_before);
        let ack = store
            .write_blocking(HotWrite {
                tenant: TenantId(1),
                events: vec![event(10, MONDAY + 50, 0, 50)],
                errors: vec![],
            })
            .unwrap();
        assert_eq!(ack.first_seq, last_before + 1);
        scan(&store, ScanRequest::all(TenantId(1), MetricId(10)))
            .iter()
            .map(|r| r.seq)
            .collect()
    };
    let unique: BTreeSet<u64> = row_seqs.iter().copied().collect();
    assert_eq!(unique.len(), 11, "every row has its own seq");
}

#[test]
fn dropping_the_store_without_close_keeps_seq() {
    let dir = TempDir::new().unwrap();
    let last = {
        let store = open(&dir);
        write(&store, 1, vec![event(10, MONDAY, 0, 1)]);
        store.last_seq()
        // Dropped here: Drop stops the writer and persists.
    };
    let store = open(&dir);
    assert_eq!(store.last_seq(), last);
    assert_eq!(
        scan(&store, ScanRequest::all(TenantId(1), MetricId(10))).len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_are_all_acknowledged_and_present() {
    let dir = TempDir::new().unwrap();
    let store = HotStore::open(dir.path(), HotOptions::default()).unwrap();
    const TASKS: i64 = 32;
    const WRITES: i64 = 20;
    const EVENTS: i64 = 5;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for write in 0..WRITES {
                let events = (0..EVENTS)
                    .map(|e| {
                        let id = (task * WRITES + write) * EVENTS + e;
                        event(10, MONDAY + id * 1000, task as u64, id)
                    })
                    .collect();
                let ack = store
                    .write(HotWrite {
                        tenant: TenantId(1),
                        events,
                        errors: vec![],
                    })
                    .await
                    .unwrap();
                acks.push(ack);
            }
            acks
        }));
    }
    let mut ranges = Vec::new();
    for handle in handles {
        for ack in handle.await.unwrap() {
            assert_eq!(ack.rows, EVENTS as usize);
            ranges.push((ack.first_seq, ack.last_seq));
        }
    }
    ranges.sort();
    assert!(
        ranges.windows(2).all(|w| w[0].1 < w[1].0),
        "seq ranges never overlap"
    );
    let rows = scan(&store, ScanRequest::all(TenantId(1), MetricId(10)));
    assert_eq!(rows.len() as i64, TASKS * WRITES * EVENTS);
    let ids: BTreeSet<i64> = rows
        .iter()
        .map(|r| match r.values[..] {
            [(1, Value::Int(id))] => id,
            _ => panic!("unexpected values {:?}", r.values),
        })
        .collect();
    assert_eq!(ids, (0..TASKS * WRITES * EVENTS).collect());
    assert_eq!(store.last_seq(), ranges.last().unwrap().1);
}

/// Weeks of 2017 are far from now: by default they share the archive keyspace.
#[test]
fn drop_partition_removes_only_that_week() {
    drop_partition_removes_only_that_week_in(
        fast_options(),
        [
            "hot_2017-04-17@archive",
            "hot_2017-04-24@archive",
            "hot_2017-05-01@archive",
        ],
    );
}

/// With a window reaching back to 2017 each week gets its own keyspace.
#[test]
fn drop_partition_removes_only_that_weekly_keyspace() {
    drop_partition_removes_only_that_week_in(
        all_weekly_options(),
        ["hot_2017-04-17", "hot_2017-04-24", "hot_2017-05-01"],
    );
}

fn drop_partition_removes_only_that_week_in(options: HotOptions, expected: [&str; 3]) {
    let dir = TempDir::new().unwrap();
    let store = HotStore::open(dir.path(), options.clone()).unwrap();
    let weeks = [MONDAY - WEEK_MS, MONDAY, MONDAY + WEEK_MS];
    for (i, week) in weeks.iter().enumerate() {
        write(&store, 1, vec![event(10, week + DAY_MS, 0, i as i64)]);
        write(&store, 2, vec![event(10, week + DAY_MS, 0, i as i64)]);
    }
    let names: Vec<String> = store.partitions().into_iter().map(|p| p.name).collect();
    assert_eq!(names, expected);
    let touched = store.partitions_for(MONDAY + 5, MONDAY + WEEK_MS + 1);
    assert_eq!(
        touched.iter().map(|p| p.week_start_ms).collect::<Vec<_>>(),
        vec![MONDAY, MONDAY + WEEK_MS]
    );
    assert!(store
        .partitions_for(MONDAY + 3 * WEEK_MS, i64::MAX)
        .is_empty());
    assert_eq!(touched[0].week_end_ms, MONDAY + WEEK_MS);

    assert!(matches!(
        store.drop_partition(MONDAY + 1),
        Err(StorageError::InvalidRequest { .. })
    ));
    store.drop_partition(MONDAY).unwrap();
    store.drop_partition(MONDAY).unwrap(); // idempotent
    for tenant in [1, 2] {
        let rows = scan(&store, ScanRequest::all(TenantId(tenant), MetricId(10)));
        assert_eq!(
            timestamps(&rows),
            vec![MONDAY - WEEK_MS + DAY_MS, MONDAY + WEEK_MS + DAY_MS]
        );
    }
    drop(store);
    let store = HotStore::open(dir.path(), options).unwrap();
    assert_eq!(store.partitions().len(), 2, "the drop survives a reopen");
    // Writing into the dropped week again recreates it, empty but for the new row.
    write(&store, 1, vec![event(10, MONDAY + 2, 0, 9)]);
    assert_eq!(
        timestamps(&scan(&store, range(1, 10, MONDAY, MONDAY + WEEK_MS))),
        vec![MONDAY + 2]
    );
}

#[test]
fn scan_is_a_consistent_snapshot() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    write(&store, 1, vec![event(10, MONDAY, 0, 1)]);
    let mut scan_before = store
        .scan(&ScanRequest::all(TenantId(1), MetricId(10)))
        .unwrap();
    write(
        &store,
        1,
        vec![
            event(10, MONDAY + 1, 0, 2),
            event(10, MONDAY + WEEK_MS, 0, 3),
        ],
    );
    assert_eq!(scan_before.by_ref().count(), 1);
    assert_eq!(
        store
            .scan(&ScanRequest::all(TenantId(1), MetricId(10)))
            .unwrap()
            .count(),
        3
    );
}

#[test]
fn error_log_is_per_tenant_and_filtered_by_time() {
    let dir = TempDir::new().unwrap();
    // Records dated 1970 are past the error log's age cap; the writer's startup sweep would
    // remove them while this test reads (a race that failed under load). Age is not under test.
    let open = |dir: &TempDir| {
        let options = HotOptions {
            error_log_max_age: std::time::Duration::MAX,
            ..fast_options()
        };
        HotStore::open(dir.path(), options).unwrap()
    };
    let record = |time_ms: i64, reason: &str| ErrorRecord {
        time_ms,
        stage: "parse".into(),
        reason: reason.into(),
        payload: "{\"bad\": ".into(),
        index: Some(3),
        metric: None,
    };
    {
        let store = open(&dir);
        let ack = store
            .write_blocking(HotWrite {
                tenant: TenantId(1),
                events: vec![event(10, MONDAY, 0, 1)],
                errors: vec![record(100, "a"), record(300, "c"), record(200, "b")],
            })
            .unwrap();
        assert_eq!(ack.rows, 1);
        assert_eq!(ack.last_seq, ack.first_seq + 3);
        store
            .write_blocking(HotWrite {
                tenant: TenantId(2),
                events: vec![],
                errors: vec![record(150, "other tenant")],
            })
            .unwrap();
        store
            .write_blocking(HotWrite {
                tenant: TenantId(0),
                events: vec![],
                errors: vec![record(-5, "tenant zero, negative time")],
            })
            .unwrap();
    }
    let store = open(&dir);
    let reasons =
        |records: Vec<ErrorRecord>| records.into_iter().map(|r| r.reason).collect::<Vec<_>>();
    assert_eq!(
        reasons(store.read_errors(TenantId(1), i64::MIN, 100).unwrap()),
        ["a", "b", "c"]
    );
    assert_eq!(
        reasons(store.read_errors(TenantId(1), 200, 100).unwrap()),
        ["b", "c"]
    );
    assert_eq!(
        reasons(store.read_errors(TenantId(1), 201, 100).unwrap()),
        ["c"]
    );
    assert_eq!(
        reasons(store.read_errors(TenantId(1), i64::MIN, 2).unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        reasons(store.read_errors(TenantId(2), 0, 100).unwrap()),
        ["other tenant"]
    );
    assert_eq!(
        reasons(store.read_errors(TenantId(0), i64::MIN, 100).unwrap()),
        ["tenant zero, negative time"]
    );
    assert!(store
        .read_errors(TenantId(3), i64::MIN, 100)
        .unwrap()
        .is_empty());
    let full = store.read_errors(TenantId(1), 100, 1).unwrap();
    assert_eq!(full, vec![record(100, "a")]);
}

#[test]
fn opening_a_directory_in_use_fails_without_leaking_the_path() {
    let dir = TempDir::new().unwrap();
    let _store = open(&dir);
    let error = HotStore::open(dir.path(), fast_options()).unwrap_err();
    assert!(matches!(error, StorageError::Locked), "{error:?}");
    let message = error.to_string();
    assert!(
        !message.contains(&*dir.path().to_string_lossy()),
        "{message}"
    );
}

#[test]
fn week_math_matches_partition_names() {
    assert_eq!(
        key::week_keyspace_name(MONDAY + 3 * DAY_MS),
        "hot_2017-04-24"
    );
    assert_eq!(key::week_start_ms(MONDAY - 1), MONDAY - WEEK_MS);
}

/// Purging a deleted metric removes its rows from every week and from the late index, durably,
/// and leaves other metrics and tenants alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_metric_removes_its_rows_everywhere_and_nothing_else() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    // Metric 10 of tenant 1 spans three weeks; rows below the late threshold also go to the
    // late index.
    let spread: Vec<HotEvent> = (0..30)
        .map(|i| event(10, MONDAY + i * DAY_MS / 2, i as u64 % 3, i))
        .collect();
    write(&store, 1, spread.clone());
    store
        .raise_late_threshold(TenantId(1), MetricId(10), MONDAY + 20 * DAY_MS)
        .await
        .unwrap();
    write(&store, 1, vec![event(10, MONDAY + HOUR_MS, 7, 1_000)]);
    assert_eq!(
        store
            .scan_late(&ScanRequest::all(TenantId(1), MetricId(10)))
            .unwrap()
            .count(),
        1
    );
    // Neighbours: another metric of the tenant, the same metric id in another tenant.
    write(&store, 1, vec![event(11, MONDAY, 0, 1)]);
    write(&store, 2, vec![event(10, MONDAY, 0, 1)]);

    let removed = store.purge_metric(TenantId(1), MetricId(10)).await.unwrap();
    assert_eq!(removed, 31 + 1, "30 + 1 rows in weeks, 1 in the late index");
    assert!(scan(&store, ScanRequest::all(TenantId(1), MetricId(10))).is_empty());
    assert_eq!(
        store
            .scan_late(&ScanRequest::all(TenantId(1), MetricId(10)))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(store.late_threshold(TenantId(1), MetricId(10)), None);
    assert_eq!(
        scan(&store, ScanRequest::all(TenantId(1), MetricId(11))).len(),
        1
    );
    assert_eq!(
        scan(&store, ScanRequest::all(TenantId(2), MetricId(10))).len(),
        1
    );
    // Idempotent, and durable across a reopen.
    assert_eq!(
        store.purge_metric(TenantId(1), MetricId(10)).await.unwrap(),
        0
    );
    store.close();
    drop(store);
    let store = open(&dir);
    assert!(scan(&store, ScanRequest::all(TenantId(1), MetricId(10))).is_empty());
    assert_eq!(store.late_threshold(TenantId(1), MetricId(10)), None);
    assert_eq!(
        scan(&store, ScanRequest::all(TenantId(1), MetricId(11))).len(),
        1
    );
}

/// Read-your-writes and exactly-once while the flusher moves rows from the write buffer into
/// fjall: after every acknowledged write a scan (whole range, and series by series) sees every
/// acknowledged row once, with re-sends of earlier rows among the writes.
#[test]
fn scans_racing_flushes_see_each_acknowledged_row_once() {
    let dir = TempDir::new().unwrap();
    let store = HotStore::open(
        dir.path(),
        HotOptions {
            flush_rows: 40,
            ..all_weekly_options()
        },
    )
    .unwrap();
    let mut acknowledged = BTreeSet::new();
    for write_index in 0..120i64 {
        // Ten new rows over two weeks and three series, and a re-send of ten earlier ones.
        let mut events: Vec<HotEvent> = (0..10)
            .map(|i| {
                let value = write_index * 10 + i;
                event(1, MONDAY + value * 3 * HOUR_MS, (value % 3) as u64, value)
            })
            .collect();
        if write_index > 0 {
            let old = (write_index - 1) * 5;
            events.extend(
                (old..old + 10).map(|v| event(1, MONDAY + v * 3 * HOUR_MS, (v % 3) as u64, v)),
            );
        }
        acknowledged.extend(events.iter().map(|e| e.content_hash as i64));
        write(&store, 1, events);
        let rows = scan(&store, ScanRequest::all(TenantId(1), MetricId(1)));
        let seen: Vec<i64> = rows.iter().map(|r| r.content_hash as i64).collect();
        let unique: BTreeSet<i64> = seen.iter().copied().collect();
        assert_eq!(
            seen.len(),
            unique.len(),
            "a row read twice after write {write_index}"
        );
        assert_eq!(unique, acknowledged, "rows after write {write_index}");
        let by_series = scan(
            &store,
            ScanRequest {
                series: Some(vec![0, 1, 2]),
                ..ScanRequest::all(TenantId(1), MetricId(1))
            },
        );
        assert_eq!(
            by_series.len(),
            acknowledged.len(),
            "series seek after write {write_index}"
        );
    }
    assert!(
        store.buffered_rows() < acknowledged.len(),
        "flushes ran during the test"
    );
}

/// Shards of one scan (`HotScan::shard`) read disjoint rows that together are the scan's rows:
/// flushed and buffered rows, series hashes at both ends of the hash space and at the shard
/// bounds, several weeks, and a time range that cuts its first and last hour. A row read by two
/// shards, or by none, fails the test.
#[test]
fn shards_of_a_scan_read_each_row_exactly_once() {
    let dir = TempDir::new().unwrap();
    let store = HotStore::open(
        dir.path(),
        HotOptions {
            flush_rows: 50,
            ..all_weekly_options()
        },
    )
    .unwrap();
    let edges = [
        0,
        1,
        u64::MAX / 3,
        u64::MAX / 2,
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
    ];
    let series = |i: i64| edges[(i % 7) as usize].wrapping_add((i / 7 % 3) as u64);
    for batch in 0..12i64 {
        let events = (0..40)
            .map(|i| {
                let value = batch * 40 + i;
                event(1, MONDAY + value * 37 * 60_000, series(value), value)
            })
            .collect();
        write(&store, 1, events);
    }
    assert!(store.buffered_rows() > 0, "some rows still buffered");
    let request = range(
        1,
        1,
        MONDAY + 30 * 60_000,
        MONDAY + 11 * DAY_MS + 7 * 60_000,
    );
    let whole: BTreeSet<(u64, i64)> = scan(&store, request.clone())
        .iter()
        .map(|r| (r.series, r.content_hash as i64))
        .collect();
    assert!(
        whole.len() > 300,
        "the range holds most rows: {}",
        whole.len()
    );
    for count in 1..=4 {
        let mut seen = Vec::new();
        for index in 0..count {
            let shard: Vec<HotRow> = store
                .scan(&request)
                .unwrap()
                .shard(index, count)
                .map(Result::unwrap)
                .collect();
            if count == 2 {
                assert!(
                    shard.len() > 100,
                    "shard {index} of 2 has {} rows",
                    shard.len()
                );
            }
            seen.extend(shard.iter().map(|r| (r.series, r.content_hash as i64)));
        }
        let unique: BTreeSet<(u64, i64)> = seen.iter().copied().collect();
        assert_eq!(
            seen.len(),
            unique.len(),
            "a row read twice with {count} shards"
        );
        assert_eq!(unique, whole, "rows with {count} shards");
    }
}
