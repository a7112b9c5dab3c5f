//! `Writer` in-process, over a real SQLite catalog and a real fjall hot tier in temporary
//! directories (no server spawned): bodies, per-event errors, idempotent re-sends, and the
//! event stream receiving exactly the committed rows.

use std::sync::Arc;

use strata_catalog::{DynCatalog, SchemaChange, SqliteCatalog};
use strata_core::{Limits, TenantId, Value};
use strata_ingest::BodyFormat;
use strata_storage::{HotOptions, HotRow, HotStore, ScanRequest};
use strata_write::{WriteError, WriteOutcome, WriteRequest, Writer};
use tempfile::TempDir;

struct Fixture {
    _dir: TempDir,
    catalog: DynCatalog,
    hot: Arc<HotStore>,
    writer: Arc<Writer>,
    tenant: TenantId,
}

async fn fixture() -> Fixture {
    fixture_with(Limits::default()).await
}

async fn fixture_with(limits: Limits) -> Fixture {
    let dir = TempDir::new().expect("tempdir");
    let catalog: DynCatalog = Arc::new(
        SqliteCatalog::open(&dir.path().join("catalog.sqlite"))
            .await
            .expect("catalog"),
    );
    let hot = HotStore::open(&dir.path().join("hot"), HotOptions::default()).expect("hot");
    let (tenant, _key) = catalog.create_tenant("acme").await.expect("tenant");
    let writer = Arc::new(Writer::new(catalog.clone(), hot.clone(), limits));
    Fixture {
        _dir: dir,
        catalog,
        hot,
        writer,
        tenant: tenant.id,
    }
}

impl Fixture {
    async fn write(&self, body: &str, format: BodyFormat) -> Result<WriteOutcome, WriteError> {
        self.writer
            .write(WriteRequest {
                door: "test",
                tenant: self.tenant,
                body: body.as_bytes(),
                format,
                metric: None,
                implied_fields: &[],
            })
            .await
    }

    async fn rows(&self, metric: &str) -> Vec<HotRow> {
        let schema = self.catalog.schema(self.tenant).await.expect("schema");
        let Some(metric) = schema.metric(metric) else {
            return Vec::new();
        };
        let scan = self
            .hot
            .scan(&ScanRequest {
                tenant: self.tenant,
                metric: metric.id,
                start_ms: i64::MIN,
                end_ms: i64::MAX,
                series: None,
                names: None,
            })
            .expect("scan");
        scan.collect::<Result<Vec<_>, _>>().expect("rows")
    }
}

#[tokio::test]
async fn json_arrays_and_ndjson_are_stored_with_unknown_fields_under_their_names() {
    let f = fixture().await;
    let array = r#"[{"metrictype":"env","timestamp":1000,"temp":21.5},
                    {"metrictype":"env","timestamp":2000,"tmp":"22"}]"#;
    let outcome = f.write(array, BodyFormat::Json).await.expect("write");
    assert_eq!((outcome.accepted, outcome.rejections.len()), (2, 0));
    let lines = "{\"metrictype\":\"env\",\"timestamp\":3000,\"temp\":23}\n\n\
                 {\"metrictype\":\"other\",\"timestamp\":3000,\"x\":true}\n";
    let outcome = f.write(lines, BodyFormat::Ndjson).await.expect("write");
    assert_eq!(outcome.accepted, 2);
    assert_eq!(f.rows("env").await.len(), 3);
    assert_eq!(f.rows("other").await.len(), 1);
    let schema = f.catalog.schema(f.tenant).await.expect("schema");
    let env = schema.metric("env").expect("auto-created");
    let names: Vec<&str> = env.incoming.iter().map(|n| n.name.as_str()).collect();
    assert!(
        names.contains(&"temp") && names.contains(&"tmp"),
        "{names:?}"
    );
}

#[tokio::test]
async fn bad_events_are_rejected_one_by_one_and_kept_in_the_error_log() {
    let f = fixture().await;
    let body = r#"[{"metrictype":"env","timestamp":1000,"temp":1},
                   42,
                   {"timestamp":1000,"temp":2},
                   {"metrictype":"env","timestamp":"not a time","temp":3},
                   {"metrictype":"timestamp","timestamp":1000}]"#;
    let outcome = f.write(body, BodyFormat::Json).await.expect("write");
    assert_eq!(outcome.accepted, 1);
    let indexes: Vec<usize> = outcome.rejections.iter().map(|r| r.index).collect();
    assert_eq!(indexes, vec![1, 2, 3, 4]);
    assert_eq!(outcome.rejections[2].stage, "timestamp");
    assert_eq!(outcome.rejections[3].stage, "metric");
    let logged = f.hot.read_errors(f.tenant, 0, 100).expect("errors");
    assert_eq!(logged.len(), 4);
    assert_eq!(logged[1].payload.trim(), r#"{"timestamp":1000,"temp":2}"#);
    assert_eq!(f.rows("env").await.len(), 1);
}

#[tokio::test]
async fn a_body_that_cannot_be_split_stores_nothing_and_is_logged_whole() {
    let f = fixture().await;
    let err = f
        .write(r#"[{"metrictype":"env","timestamp":1}"#, BodyFormat::Json)
        .await
        .expect_err("malformed");
    let WriteError::Body(message) = err else {
        panic!("not a body error: {err:?}");
    };
    assert!(message.contains("byte"), "names the location: {message}");
    let logged = f.hot.read_errors(f.tenant, 0, 10).expect("errors");
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].stage, "parse");
    assert!(f.rows("env").await.is_empty());
}

#[tokio::test]
async fn an_identical_re_send_is_stored_once_and_aliases_share_a_series() {
    let f = fixture().await;
    let body = r#"[{"metrictype":"env","timestamp":1000,"device":"a","temp":1},
                   {"metrictype":"env","timestamp":2000,"device":"a","temp":2}]"#;
    f.write(body, BodyFormat::Json).await.expect("write");
    f.write(body, BodyFormat::Json).await.expect("re-send");
    assert_eq!(f.rows("env").await.len(), 2);
    // With `device` (alias `dev`) as the series key, both spellings land in one series.
    let declare = SchemaChange::DeclareField {
        metric: "env".into(),
        field: "device".into(),
        field_type: None,
        aliases: vec!["dev".into()],
        hidden: false,
        expression: None,
        conversions: Default::default(),
    };
    f.catalog.apply(f.tenant, declare).await.expect("declare");
    let keys = SchemaChange::UpdateMetric {
        metric: "env".into(),
        rename_to: None,
        add_aliases: vec![],
        remove_aliases: vec![],
        timestamp_aliases: None,
        timestamp_patterns: None,
        series_keys: Some(vec!["device".into()]),
        retention_days: None,
        timestamp_unit: None,
    };
    f.catalog.apply(f.tenant, keys).await.expect("series keys");
    let body = r#"[{"metrictype":"env","timestamp":5000,"device":"b","temp":1},
                   {"metrictype":"env","timestamp":6000,"dev":"b","temp":2}]"#;
    f.write(body, BodyFormat::Json).await.expect("write");
    let series: Vec<u64> = f
        .rows("env")
        .await
        .iter()
        .filter(|r| r.timestamp_ms >= 5000)
        .map(|r| r.series)
        .collect();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0], series[1]);
    assert_ne!(series[0], 0);
}

#[tokio::test]
async fn the_event_stream_receives_exactly_the_committed_rows() {
    let f = fixture().await;
    // Nothing is copied for the stream while nobody listens.
    assert!(!f.writer.events().wants(f.tenant));
    let mut events = f.writer.events().subscribe();
    assert!(f.writer.events().wants(f.tenant));
    let body = r#"[{"metrictype":"env","timestamp":1000,"temp":1},
                   "bad",
                   {"metrictype":"env","timestamp":2000,"temp":2},
                   {"metrictype":"env","timestamp":3000,"temp":3}]"#;
    let outcome = f.write(body, BodyFormat::Json).await.expect("write");
    assert_eq!(outcome.accepted, 3);
    let batch = events.try_recv().expect("one batch");
    assert_eq!(batch.tenant, f.tenant);
    let stored = f.rows("env").await;
    assert_eq!(batch.rows.len(), stored.len());
    for (published, row) in batch.rows.iter().zip(&stored) {
        assert_eq!(published.timestamp_ms, row.timestamp_ms);
        assert_eq!(published.content_hash, row.content_hash);
        assert_eq!(published.values, row.values);
    }
    let seqs: Vec<u64> = stored.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (batch.first_seq..batch.first_seq + 3).collect::<Vec<_>>()
    );
    assert_eq!(stored[0].values[0].1, Value::Int(1));
    // A request that stores only rejections publishes nothing.
    f.write(r#"[1, 2]"#, BodyFormat::Json).await.expect("write");
    assert!(events.try_recv().is_err(), "no batch for rejections only");
}

#[tokio::test]
async fn an_interested_subscriber_gets_only_the_tenants_it_registered() {
    let f = fixture().await;
    let stream = f.writer.events().clone();
    let mut events = stream.subscribe_interested();
    assert!(!stream.wants(f.tenant), "no interest registered yet");
    let body = r#"{"metrictype":"env","timestamp":1000,"temp":1}"#;
    f.write(body, BodyFormat::Json).await.expect("write");
    assert!(
        events.try_recv().is_err(),
        "nothing copied for an uninterested tenant"
    );
    stream.add_interest(f.tenant);
    f.write(body, BodyFormat::Json).await.expect("write");
    assert_eq!(events.try_recv().expect("a batch").tenant, f.tenant);
    stream.remove_interest(f.tenant);
    assert!(!stream.wants(f.tenant));
}

/// Concurrent requests share group commits; the stream still publishes them in sequence order,
/// and a subscriber that lags re-reads exactly the rows it lost by sequence number.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_arrive_in_commit_order_and_a_lag_is_re_read_by_sequence_number() {
    let f = fixture_with(Limits {
        event_stream_batches: 4,
        ..Limits::default()
    })
    .await;
    let (writer, catalog, tenant) = (f.writer.clone(), f.catalog.clone(), f.tenant);
    let start_seq = writer.events().committed_seq();
    let mut events = writer.events().subscribe();
    let tasks: Vec<_> = (0..16)
        .map(|client| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let body = format!(
                        r#"{{"metrictype":"env","timestamp":{},"temp":{client}}}"#,
                        1000 + client * 100 + i
                    );
                    let request = WriteRequest {
                        door: "test",
                        tenant,
                        body: body.as_bytes(),
                        format: BodyFormat::Json,
                        metric: None,
                        implied_fields: &[],
                    };
                    writer.write(request).await.expect("write");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task");
    }
    // Drain what the stream kept: first sequence numbers only grow.
    let (mut received, mut lost, mut last_seq) = (0usize, 0u64, start_seq);
    loop {
        match events.try_recv() {
            Ok(batch) => {
                assert!(batch.first_seq > last_seq, "out of commit order");
                last_seq = batch.first_seq + batch.rows.len() as u64 - 1;
                received += batch.rows.len();
            }
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => lost += n,
            Err(_) => break,
        }
    }
    assert!(lost > 0, "a 4-batch stream must drop some of 320 batches");
    let metric = catalog
        .schema(tenant)
        .await
        .expect("schema")
        .metric("env")
        .expect("env")
        .id;
    let mut reread = 0;
    writer
        .events()
        .reread(tenant, metric, start_seq, u64::MAX, |chunk| {
            reread += chunk.len()
        })
        .expect("re-read");
    assert_eq!(reread, 320, "every committed row, once");
    let mut missed = 0;
    writer
        .events()
        .reread(
            tenant,
            metric,
            start_seq,
            last_seq - (received as u64) + 1,
            |chunk| missed += chunk.len(),
        )
        .expect("re-read");
    assert_eq!(
        missed + received,
        320,
        "the lost rows are exactly those before the kept ones"
    );
}
