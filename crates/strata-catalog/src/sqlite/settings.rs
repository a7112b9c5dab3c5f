//! Per-tenant settings: reading them and applying a patch (one history version per update).

use sqlx::sqlite::SqliteConnection;
use sqlx::Row;
use strata_core::TenantId;

use super::schema::append_history;
use super::{quoted_list, require_tenant, tenant_not_found, SqliteCatalog};
use crate::model::TenantSettings;
use crate::validate;
use crate::{CatalogError, SettingsPatch, SettingsStore};

#[async_trait::async_trait]
impl SettingsStore for SqliteCatalog {
    async fn settings(&self, tenant: TenantId) -> Result<TenantSettings, CatalogError> {
        let row = sqlx::query(
            "SELECT metric_keys, timestamp_patterns, cold_retention_days, mqtt_topics FROM tenants \
             WHERE id = ?",
        )
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| tenant_not_found(tenant))?;
        let metric_keys: String = row.try_get("metric_keys")?;
        let patterns: String = row.try_get("timestamp_patterns")?;
        let cold_retention_days: Option<i64> = row.try_get("cold_retention_days")?;
        let mqtt_topics: String = row.try_get("mqtt_topics")?;
        Ok(TenantSettings {
            metric_keys: serde_json::from_str(&metric_keys)?,
            timestamp_patterns: serde_json::from_str(&patterns)?,
            cold_retention_days: cold_retention_days.and_then(|d| u32::try_from(d).ok()),
            mqtt_topics: serde_json::from_str(&mqtt_topics)?,
        })
    }

    async fn update_settings(
        &self,
        tenant: TenantId,
        patch: SettingsPatch,
    ) -> Result<TenantSettings, CatalogError> {
        if let Some(keys) = &patch.metric_keys {
            validate::metric_keys(keys)?;
        }
        if let Some(patterns) = &patch.timestamp_patterns {
            validate::timestamp_patterns(patterns)?;
        }
        if let Some(templates) = &patch.mqtt_topics {
            strata_core::topic::parse_topic_templates(templates)
                .map_err(|e| CatalogError::Invalid(e.to_string()))?;
        }
        let guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        require_tenant(&mut tx, tenant).await?;
        let parts = write_patch(&mut tx, tenant, &patch).await?;
        let text = if parts.is_empty() {
            "updated tenant settings (no changes)".to_string()
        } else {
            parts.join("; ")
        };
        append_history(&mut tx, tenant, text).await?;
        tx.commit().await?;
        self.invalidate_schema(tenant);
        drop(guard);
        self.settings(tenant).await
    }
}

/// Writes each setting the patch sets; returns the history text of each.
async fn write_patch(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    patch: &SettingsPatch,
) -> Result<Vec<String>, CatalogError> {
    let mut parts = Vec::new();
    if let Some(keys) = &patch.metric_keys {
        sqlx::query("UPDATE tenants SET metric_keys = ? WHERE id = ?")
            .bind(serde_json::to_string(keys)?)
            .bind(tenant)
            .execute(&mut *conn)
            .await?;
        parts.push(format!("set metric keys to [{}]", quoted_list(keys)));
    }
    if let Some(patterns) = &patch.timestamp_patterns {
        sqlx::query("UPDATE tenants SET timestamp_patterns = ? WHERE id = ?")
            .bind(serde_json::to_string(patterns)?)
            .bind(tenant)
            .execute(&mut *conn)
            .await?;
        parts.push(format!(
            "set tenant timestamp patterns to [{}]",
            quoted_list(patterns)
        ));
    }
    if let Some(templates) = &patch.mqtt_topics {
        sqlx::query("UPDATE tenants SET mqtt_topics = ? WHERE id = ?")
            .bind(serde_json::to_string(templates)?)
            .bind(tenant)
            .execute(&mut *conn)
            .await?;
        parts.push(format!(
            "set MQTT topic templates to [{}]",
            quoted_list(templates)
        ));
    }
    if let Some(days) = patch.cold_retention_days {
        validate::cold_retention_days(days)?;
        // 0 means "keep forever", stored as NULL.
        let stored = (days > 0).then_some(i64::from(days));
        sqlx::query("UPDATE tenants SET cold_retention_days = ? WHERE id = ?")
            .bind(stored)
            .bind(tenant)
            .execute(&mut *conn)
            .await?;
        parts.push(match stored {
            Some(days) => format!("set cold retention to {days} days"),
            None => "set cold retention to forever".to_string(),
        });
    }
    Ok(parts)
}
