//! Ingest profiles per metric, dismissed schema suggestions and saved query usage (issue 17).

use sqlx::Row;
use strata_core::{now_ms, MetricId, TenantId};

use super::{metric_tenant, SqliteCatalog};
use crate::{CatalogError, ProfileStore};

#[async_trait::async_trait]
impl ProfileStore for SqliteCatalog {
    async fn metric_profile(
        &self,
        tenant: TenantId,
        metric: MetricId,
    ) -> Result<Option<String>, CatalogError> {
        Ok(sqlx::query_scalar(
            "SELECT profile FROM metric_profiles WHERE metric_id = ? AND tenant_id = ?",
        )
        .bind(metric)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn metric_profiles(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<(MetricId, String)>, CatalogError> {
        let rows = sqlx::query(
            "SELECT metric_id, profile FROM metric_profiles WHERE tenant_id = ? ORDER BY metric_id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("metric_id")?, row.try_get("profile")?)))
            .collect()
    }

    async fn store_metric_profile(
        &self,
        tenant: TenantId,
        metric: MetricId,
        profile: String,
    ) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if metric_tenant(&mut tx, metric).await? != Some(tenant) {
            return Err(CatalogError::NotFound(format!("metric {metric} not found")));
        }
        sqlx::query(
            "INSERT INTO metric_profiles (metric_id, tenant_id, profile, updated_at_ms) \
             VALUES (?, ?, ?, ?) ON CONFLICT (metric_id) \
             DO UPDATE SET profile = excluded.profile, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(metric)
        .bind(tenant)
        .bind(profile)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn dismiss_suggestion(&self, tenant: TenantId, id: &str) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query(
            "INSERT INTO dismissed_suggestions (tenant_id, suggestion_id, dismissed_at_ms) \
             VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn dismissed_suggestions(&self, tenant: TenantId) -> Result<Vec<String>, CatalogError> {
        Ok(sqlx::query_scalar(
            "SELECT suggestion_id FROM dismissed_suggestions WHERE tenant_id = ? \
             ORDER BY suggestion_id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn query_usages(&self) -> Result<Vec<(TenantId, String)>, CatalogError> {
        let rows = sqlx::query("SELECT tenant_id, usage FROM query_usage ORDER BY tenant_id")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| Ok((row.try_get("tenant_id")?, row.try_get("usage")?)))
            .collect()
    }

    async fn store_query_usage(&self, tenant: TenantId, usage: String) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query(
            "INSERT INTO query_usage (tenant_id, usage, updated_at_ms) VALUES (?, ?, ?) \
             ON CONFLICT (tenant_id) \
             DO UPDATE SET usage = excluded.usage, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(tenant)
        .bind(usage)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
