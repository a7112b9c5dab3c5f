//! Tenants: creation (with the first admin key), lookups and listing; the key half of the
//! directory is in `keys.rs`.

use sqlx::Row;
use strata_core::{Role, TenantId};

use super::{keys, ms_to_time, now_ms, tenant_not_found, SqliteCatalog};
use crate::model::{KeyInfo, NewKey, Tenant, TenantSettings};
use crate::validate;
use crate::{CatalogError, TenantDirectory};

fn tenant_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Tenant, CatalogError> {
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: ms_to_time(row.try_get("created_at_ms")?)?,
    })
}

#[async_trait::async_trait]
impl TenantDirectory for SqliteCatalog {
    async fn create_tenant(&self, name: &str) -> Result<(Tenant, NewKey), CatalogError> {
        validate::name("tenant", name)?;
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists = sqlx::query("SELECT 1 FROM tenants WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(CatalogError::Conflict(format!(
                "tenant {name:?} already exists"
            )));
        }
        let defaults = TenantSettings::default();
        let created_at_ms = now_ms();
        let id = sqlx::query(
            "INSERT INTO tenants (name, created_at_ms, metric_keys, timestamp_patterns) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(name)
        .bind(created_at_ms)
        .bind(serde_json::to_string(&defaults.metric_keys)?)
        .bind(serde_json::to_string(&defaults.timestamp_patterns)?)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        let key = keys::insert_key(&mut tx, TenantId(id), Role::Admin).await?;
        tx.commit().await?;
        tracing::info!(tenant = id, name, "tenant created");
        Ok((
            Tenant {
                id: TenantId(id),
                name: name.to_string(),
                created_at: ms_to_time(created_at_ms)?,
            },
            key,
        ))
    }

    async fn tenant(&self, id: TenantId) -> Result<Tenant, CatalogError> {
        let row = sqlx::query("SELECT id, name, created_at_ms FROM tenants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => tenant_from_row(&row),
            None => Err(tenant_not_found(id)),
        }
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, CatalogError> {
        let row = sqlx::query("SELECT id, name, created_at_ms FROM tenants WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, CatalogError> {
        let rows = sqlx::query("SELECT id, name, created_at_ms FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn create_key(&self, tenant: TenantId, role: Role) -> Result<NewKey, CatalogError> {
        keys::create(self, tenant, role).await
    }

    async fn list_keys(&self, tenant: TenantId) -> Result<Vec<KeyInfo>, CatalogError> {
        keys::list(self, tenant).await
    }

    async fn revoke_key(&self, tenant: TenantId, key_id: &str) -> Result<(), CatalogError> {
        keys::revoke(self, tenant, key_id).await
    }

    async fn authenticate(&self, secret: &str) -> Result<Option<(Tenant, KeyInfo)>, CatalogError> {
        keys::authenticate(self, secret).await
    }
}
