//! [`Stores`]: a real `SqliteCatalog` and a real `HotStore` (no fsync: durability is tested
//! elsewhere) in a tempdir, and the catalog and write calls fixtures need.

use std::sync::Arc;

use strata_catalog::{DynCatalog, SchemaChange, SqliteCatalog};
use strata_core::{FieldType, Role, TenantId, Value};
use strata_storage::{HotEvent, HotOptions, HotStore, HotWrite};

/// The stores of one test, removed with the tempdir.
pub struct Stores {
    pub dir: tempfile::TempDir,
    pub catalog: DynCatalog,
    pub hot: Arc<HotStore>,
}

impl Stores {
    /// Opens both stores in a fresh tempdir. Panics on failure: this is test setup.
    pub async fn open() -> Stores {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog: DynCatalog = Arc::new(
            SqliteCatalog::open(&dir.path().join("catalog.db"))
                .await
                .expect("open the catalog"),
        );
        let options = HotOptions {
            sync: false,
            ..HotOptions::default()
        };
        let hot = HotStore::open(&dir.path().join("hot"), options).expect("open the hot store");
        Stores { dir, catalog, hot }
    }

    /// Creates a tenant; its id and admin key.
    pub async fn tenant(&self, name: &str) -> (TenantId, String) {
        let (tenant, key) = self.catalog.create_tenant(name).await.expect("tenant");
        (tenant.id, key.secret)
    }

    /// Creates a key with `role`; its secret.
    pub async fn key(&self, tenant: TenantId, role: Role) -> String {
        let key = self.catalog.create_key(tenant, role).await.expect("key");
        key.secret
    }

    pub async fn change(&self, tenant: TenantId, change: SchemaChange) {
        self.catalog
            .apply(tenant, change)
            .await
            .expect("schema change");
    }

    /// Declares `field` of `metric` (created when missing).
    pub async fn declare(
        &self,
        tenant: TenantId,
        metric: &str,
        field: &str,
        field_type: Option<FieldType>,
        aliases: &[&str],
        hidden: bool,
    ) {
        self.catalog
            .ensure_metric(tenant, metric)
            .await
            .expect("metric");
        let change = SchemaChange::DeclareField {
            metric: metric.into(),
            field: field.into(),
            field_type,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            hidden,
            expression: None,
            conversions: Default::default(),
        };
        self.change(tenant, change).await;
    }

    /// Writes events the way ingest would: metric ensured, names registered, values stored
    /// under name ids, series hash from the series-key fields' values.
    pub async fn write(
        &self,
        tenant: TenantId,
        metric: &str,
        events: &[(i64, Vec<(&str, Value)>)],
    ) {
        let m = self
            .catalog
            .ensure_metric(tenant, metric)
            .await
            .expect("metric");
        let mut hot_events = Vec::new();
        for (index, (timestamp_ms, values)) in events.iter().enumerate() {
            let names: Vec<String> = values.iter().map(|(n, _)| n.to_string()).collect();
            let ids = self
                .catalog
                .register_incoming_names(tenant, m.id, &names)
                .await
                .expect("names");
            hot_events.push(HotEvent {
                metric: m.id,
                timestamp_ms: *timestamp_ms,
                series: self.series(tenant, m.id, values).await,
                content_hash: (index as u64 + 1) * 7919 + *timestamp_ms as u64,
                values: ids
                    .into_iter()
                    .zip(values.iter().map(|(_, v)| v.clone()))
                    .collect(),
            });
        }
        let write = HotWrite {
            tenant,
            events: hot_events,
            errors: Vec::new(),
        };
        self.hot.write(write).await.expect("hot write");
    }

    /// The series hash of an event: its series-key fields' first non-null values.
    async fn series(
        &self,
        tenant: TenantId,
        metric: strata_core::MetricId,
        values: &[(&str, Value)],
    ) -> u64 {
        let schema = self.catalog.schema(tenant).await.expect("schema");
        let metric = schema.metric_by_id(metric).expect("the metric exists");
        let key_values: Vec<Option<&Value>> = metric
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
        strata_ingest::series_hash(&key_values)
    }
}
