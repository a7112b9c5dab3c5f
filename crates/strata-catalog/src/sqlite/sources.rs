//! [`SourceRegistry`] for SQLite: the `sources` table (migration 0014).

use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use strata_core::TenantId;

use super::{require_tenant, SqliteCatalog};
use crate::sources::{SourceRow, MAX_SOURCES_PER_TENANT};
use crate::{CatalogError, SourceRegistry};

#[async_trait::async_trait]
impl SourceRegistry for SqliteCatalog {
    async fn create_source(
        &self,
        tenant: TenantId,
        kind: &str,
        config: serde_json::Value,
    ) -> Result<SourceRow, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        require_tenant(&mut tx, tenant).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sources WHERE tenant_id = ?")
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
        if u64::try_from(count).unwrap_or(0) >= MAX_SOURCES_PER_TENANT {
            return Err(CatalogError::Invalid(format!(
                "a tenant may have at most {MAX_SOURCES_PER_TENANT} sources"
            )));
        }
        let row = SourceRow {
            id: super::keys::random_hex(8)?,
            tenant,
            kind: kind.to_string(),
            config,
            created_at_ms: strata_core::now_ms(),
        };
        sqlx::query(
            "INSERT INTO sources (id, tenant_id, kind, config, created_at_ms) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&row.id)
        .bind(tenant)
        .bind(&row.kind)
        .bind(serde_json::to_string(&row.config)?)
        .bind(row.created_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn source(&self, tenant: TenantId, id: &str) -> Result<SourceRow, CatalogError> {
        let row = sqlx::query(
            "SELECT id, tenant_id, kind, config, created_at_ms FROM sources \
             WHERE tenant_id = ? AND id = ?",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(source_row)
            .unwrap_or_else(|| Err(not_found(id)))
    }

    async fn sources(&self, tenant: TenantId) -> Result<Vec<SourceRow>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, kind, config, created_at_ms FROM sources \
             WHERE tenant_id = ? ORDER BY created_at_ms, id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(source_row).collect()
    }

    async fn all_sources(&self) -> Result<Vec<SourceRow>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, kind, config, created_at_ms FROM sources \
             ORDER BY created_at_ms, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(source_row).collect()
    }

    async fn delete_source(&self, tenant: TenantId, id: &str) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let deleted = sqlx::query("DELETE FROM sources WHERE tenant_id = ? AND id = ?")
            .bind(tenant)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }
}

/// The same answer for an unknown id and another tenant's: ids are not confirmed across tenants.
fn not_found(id: &str) -> CatalogError {
    CatalogError::NotFound(format!("no source with id {id:?}"))
}

fn source_row(row: &SqliteRow) -> Result<SourceRow, CatalogError> {
    let config: String = row.try_get("config")?;
    Ok(SourceRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant_id")?,
        kind: row.try_get("kind")?,
        config: serde_json::from_str(&config)?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{SourceRegistry, SqliteCatalog, TenantDirectory};

    #[tokio::test]
    async fn sources_are_durable_and_sealed_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let catalog = SqliteCatalog::open(&path).await.unwrap();
        let (a, _) = catalog.create_tenant("a").await.unwrap();
        let (b, _) = catalog.create_tenant("b").await.unwrap();
        let config = json!({"kind": "nats", "url": "nats://127.0.0.1:4222"});
        let made = catalog
            .create_source(a.id, "nats", config.clone())
            .await
            .unwrap();
        assert_eq!(made.id.len(), 16);
        assert!(
            catalog.source(b.id, &made.id).await.is_err(),
            "another tenant's id"
        );
        assert!(catalog.delete_source(b.id, &made.id).await.is_err());
        assert!(catalog.sources(b.id).await.unwrap().is_empty());
        drop(catalog);

        let catalog = SqliteCatalog::open(&path).await.unwrap();
        assert_eq!(catalog.all_sources().await.unwrap(), vec![made.clone()]);
        assert_eq!(catalog.source(a.id, &made.id).await.unwrap().config, config);
        catalog.delete_source(a.id, &made.id).await.unwrap();
        assert!(catalog.sources(a.id).await.unwrap().is_empty());
        assert!(catalog.delete_source(a.id, &made.id).await.is_err());
    }
}
