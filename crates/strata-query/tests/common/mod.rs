//! Test harness: a real SqliteCatalog and a real HotStore in a tempdir.
#![allow(dead_code)]

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use strata_catalog::{DynCatalog, SchemaChange, SqliteCatalog};
use strata_core::{FieldType, TenantId, Value};
use strata_query::{QueryConfig, QueryEngine, QueryError, TenantSession};
use strata_storage::{HotEvent, HotOptions, HotStore, HotWrite};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub catalog: DynCatalog,
    pub hot: Arc<HotStore>,
    pub engine: QueryEngine,
}

/// 2015-01-12T10:12:15Z, the seed's "January 12, 2015 10:12:15" (a Monday).
pub const T0: i64 = 1_421_057_535_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 24 * HOUR;
pub const WEEK: i64 = 7 * DAY;

pub async fn harness() -> Harness {
    harness_with(QueryConfig::default()).await
}

pub async fn harness_with(config: QueryConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let catalog: DynCatalog = Arc::new(
        SqliteCatalog::open(&dir.path().join("catalog.db"))
            .await
            .unwrap(),
    );
    let hot = HotStore::open(
        &dir.path().join("hot"),
        HotOptions {
            sync: false,
            ..HotOptions::default()
        },
    )
    .unwrap();
    let engine = QueryEngine::new(catalog.clone(), hot.clone(), config);
    Harness {
        dir,
        catalog,
        hot,
        engine,
    }
}

impl Harness {
    pub async fn tenant(&self, name: &str) -> TenantId {
        self.catalog.create_tenant(name).await.unwrap().0.id
    }

    pub async fn change(&self, tenant: TenantId, change: SchemaChange) {
        self.catalog.apply(tenant, change).await.unwrap();
    }

    pub async fn declare(
        &self,
        tenant: TenantId,
        metric: &str,
        field: &str,
        field_type: Option<FieldType>,
        aliases: &[&str],
        hidden: bool,
    ) {
        self.catalog.ensure_metric(tenant, metric).await.unwrap();
        self.change(
            tenant,
            SchemaChange::DeclareField {
                metric: metric.into(),
                field: field.into(),
                field_type,
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                hidden,
            },
        )
        .await;
    }

    /// Writes events the way ingest would: metric ensured, names registered, values stored
    /// under name ids, series hash from the series-key fields' values.
    pub async fn write(
        &self,
        tenant: TenantId,
        metric: &str,
        events: &[(i64, Vec<(&str, Value)>)],
    ) {
        let m = self.catalog.ensure_metric(tenant, metric).await.unwrap();
        let mut hot_events = Vec::new();
        for (index, (timestamp_ms, values)) in events.iter().enumerate() {
            let names: Vec<String> = values.iter().map(|(n, _)| n.to_string()).collect();
            let ids = self
                .catalog
                .register_incoming_names(tenant, m.id, &names)
                .await
                .unwrap();
            let schema = self.catalog.schema(tenant).await.unwrap();
            let metric_now = schema.metric_by_id(m.id).unwrap();
            let key_values: Vec<Option<&Value>> = metric_now
                .series_key_fields()
                .iter()
                .map(|field| {
                    field.names.iter().find_map(|name| {
                        values
                            .iter()
                            .find(|(n, v)| n == name && *v != Value::Null)
                            .map(|(_, v)| v)
                    })
                })
                .collect();
            hot_events.push(HotEvent {
                metric: m.id,
                timestamp_ms: *timestamp_ms,
                series: strata_ingest::series_hash(&key_values),
                content_hash: (index as u64 + 1) * 7919 + *timestamp_ms as u64,
                values: ids
                    .into_iter()
                    .zip(values.iter().map(|(_, v)| v.clone()))
                    .collect(),
            });
        }
        self.hot
            .write(HotWrite {
                tenant,
                events: hot_events,
                errors: Vec::new(),
            })
            .await
            .unwrap();
    }

    pub async fn session(&self, tenant: TenantId) -> TenantSession {
        self.engine.session(tenant).await.unwrap()
    }
}

pub async fn run(session: &TenantSession, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    session.execute(sql).await?.collect().await
}

/// The result as an aligned text table (what a human would read).
pub async fn table(session: &TenantSession, sql: &str) -> String {
    let batches = run(session, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&batches).unwrap().to_string()
}

/// The result's cells as text, row by row.
pub async fn rows(session: &TenantSession, sql: &str) -> Vec<Vec<String>> {
    use datafusion::arrow::util::display::ArrayFormatter;
    let batches = run(session, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let options = Default::default();
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    out
}

pub fn s(text: &str) -> Value {
    Value::Str(text.to_string())
}

pub fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}
