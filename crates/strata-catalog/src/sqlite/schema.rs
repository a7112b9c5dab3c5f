//! The schema registry: cached snapshots, applying changes (one history version each),
//! auto-created metrics and the history itself.

use std::sync::Arc;

use sqlx::sqlite::SqliteConnection;
use sqlx::Row;
use strata_core::TenantId;

use super::field_changes::{self, FieldUpdate};
use super::metric_changes::{self, MetricUpdate};
use super::names::metric_owner;
use super::schema_load::load_schema;
use super::{lock, ms_to_time, now_ms, require_tenant, SqliteCatalog};
use crate::model::{Metric, SchemaVersion, TenantSchema};
use crate::validate;
use crate::{CatalogError, SchemaChange, SchemaRegistry};

/// A snapshot plus a generation bumped by every invalidation, so a reload that raced a
/// mutation never stores its stale result.
#[derive(Default)]
pub(super) struct SchemaSlot {
    pub(super) generation: u64,
    pub(super) snapshot: Option<Arc<TenantSchema>>,
}

/// Appends the tenant's next history version (dense from 1) with the change's readable text.
pub(super) async fn append_history(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    change: String,
) -> Result<SchemaVersion, CatalogError> {
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM schema_history WHERE tenant_id = ?",
    )
    .bind(tenant)
    .fetch_one(&mut *conn)
    .await?;
    let at_ms = now_ms();
    sqlx::query(
        "INSERT INTO schema_history (tenant_id, version, at_ms, change) VALUES (?, ?, ?, ?)",
    )
    .bind(tenant)
    .bind(version)
    .bind(at_ms)
    .bind(&change)
    .execute(&mut *conn)
    .await?;
    tracing::info!(tenant = %tenant, version, change = %change, "schema changed");
    Ok(SchemaVersion {
        version,
        at: ms_to_time(at_ms)?,
        change,
    })
}

#[async_trait::async_trait]
impl SchemaRegistry for SqliteCatalog {
    async fn schema(&self, tenant: TenantId) -> Result<Arc<TenantSchema>, CatalogError> {
        let generation = {
            let cache = lock(&self.schema_cache);
            match cache.get(&tenant) {
                Some(SchemaSlot {
                    snapshot: Some(snapshot),
                    ..
                }) => return Ok(snapshot.clone()),
                Some(slot) => slot.generation,
                None => 0,
            }
        };
        // One read transaction so the snapshot is consistent across its queries.
        let mut tx = self.pool.begin().await?;
        let snapshot = Arc::new(load_schema(&mut tx, tenant).await?);
        tx.commit().await?;
        let mut cache = lock(&self.schema_cache);
        let slot = cache.entry(tenant).or_default();
        if slot.generation == generation {
            slot.snapshot = Some(snapshot.clone());
        }
        Ok(snapshot)
    }

    async fn apply(
        &self,
        tenant: TenantId,
        change: SchemaChange,
    ) -> Result<SchemaVersion, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        require_tenant(&mut tx, tenant).await?;
        let text = apply_change(&mut tx, tenant, change).await?;
        let version = append_history(&mut tx, tenant, text).await?;
        tx.commit().await?;
        self.invalidate_schema(tenant);
        Ok(version)
    }

    async fn ensure_metric(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Arc<Metric>, CatalogError> {
        if let Some(metric) = self.schema(tenant).await?.metric(name) {
            return Ok(metric.clone());
        }
        validate::name("metric", name)?;
        // Holding the write lock until the snapshot is read means no change can slip between
        // creating (or finding) the metric and returning it.
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if metric_owner(&mut tx, tenant, name).await?.is_none() {
            let (id, _) = metric_changes::create_metric(&mut tx, tenant, name, &[]).await?;
            append_history(
                &mut tx,
                tenant,
                format!("created metric {name:?} on first write"),
            )
            .await?;
            tx.commit().await?;
            self.invalidate_schema(tenant);
            tracing::info!(tenant = %tenant, metric = %id, name, "metric created on first write");
        } else {
            // Created after our cache read, possibly by another process whose changes never
            // invalidated our cache: reload so the answer is not served from a stale snapshot.
            tx.rollback().await?;
            self.invalidate_schema(tenant);
        }
        let snapshot = self.schema(tenant).await?;
        snapshot.metric(name).cloned().ok_or_else(|| {
            debug_assert!(false, "metric {name:?} missing right after ensure_metric");
            CatalogError::Internal("a metric vanished while it was being created".to_string())
        })
    }

    async fn history(&self, tenant: TenantId) -> Result<Vec<SchemaVersion>, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        require_tenant(&mut conn, tenant).await?;
        let rows = sqlx::query(
            "SELECT version, at_ms, change FROM schema_history WHERE tenant_id = ? \
             ORDER BY version",
        )
        .bind(tenant)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SchemaVersion {
                    version: row.try_get("version")?,
                    at: ms_to_time(row.try_get("at_ms")?)?,
                    change: row.try_get("change")?,
                })
            })
            .collect()
    }
}

/// Makes the change; returns its readable history text.
async fn apply_change(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    change: SchemaChange,
) -> Result<String, CatalogError> {
    match change {
        SchemaChange::CreateMetric { name, aliases } => {
            Ok(metric_changes::create_metric(conn, tenant, &name, &aliases)
                .await?
                .1)
        }
        SchemaChange::UpdateMetric {
            metric,
            rename_to,
            add_aliases,
            remove_aliases,
            timestamp_aliases,
            timestamp_patterns,
            series_keys,
            retention_days,
            timestamp_unit,
        } => {
            let update = MetricUpdate {
                rename_to,
                add_aliases,
                remove_aliases,
                timestamp_aliases,
                timestamp_patterns,
                series_keys,
                retention_days,
                timestamp_unit,
            };
            metric_changes::update_metric(conn, tenant, &metric, update).await
        }
        SchemaChange::DeleteMetric { metric } => {
            metric_changes::delete_metric(conn, tenant, &metric).await
        }
        SchemaChange::MergeMetric { metric, from } => {
            super::metric_merge::merge_metric(conn, tenant, &metric, &from).await
        }
        SchemaChange::DeclareField {
            metric,
            field,
            field_type,
            aliases,
            hidden,
            expression,
            conversions,
        } => {
            let declaration = field_changes::FieldDeclaration {
                field_type,
                aliases: &aliases,
                hidden,
                expression: expression.as_deref(),
                conversions: &conversions,
            };
            field_changes::declare_field(conn, tenant, &metric, &field, declaration).await
        }
        SchemaChange::UpdateField {
            metric,
            field,
            rename_to,
            field_type,
            add_aliases,
            remove_aliases,
            hidden,
        } => {
            let update = FieldUpdate {
                rename_to,
                field_type,
                add_aliases,
                remove_aliases,
                hidden,
            };
            field_changes::update_field(conn, tenant, &metric, &field, update).await
        }
        SchemaChange::DropField { metric, field } => {
            field_changes::drop_field(conn, tenant, &metric, &field).await
        }
    }
}
