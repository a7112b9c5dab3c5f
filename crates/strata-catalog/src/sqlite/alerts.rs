//! [`AlertStore`] for SQLite: channels, rules and silences here; instance states, history and
//! the outbox in `outbox.rs`.

use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::Row;
use strata_core::TenantId;

use super::{require_tenant, SqliteCatalog};
use crate::alerting::{
    AlertChanges, ChannelRow, DeliveryOutcome, HistoryRow, InstanceRow, NewRule, NotificationRow,
    RuleRow, SilenceRow, MAX_CHANNELS_PER_TENANT, MAX_RULES_PER_TENANT, MAX_SILENCES_PER_TENANT,
};
use crate::{AlertStore, CatalogError};

#[async_trait::async_trait]
impl AlertStore for SqliteCatalog {
    async fn create_channel(&self, channel: ChannelRow) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        require_tenant(&mut tx, channel.tenant).await?;
        if channel_exists(&mut tx, channel.tenant, &channel.name).await? {
            return Err(CatalogError::Conflict(format!(
                "channel {:?} already exists",
                channel.name
            )));
        }
        let count = count_rows(&mut tx, "alert_channels", channel.tenant).await?;
        if count >= MAX_CHANNELS_PER_TENANT {
            return Err(CatalogError::Invalid(format!(
                "a tenant may have at most {MAX_CHANNELS_PER_TENANT} channels"
            )));
        }
        sqlx::query(
            "INSERT INTO alert_channels (tenant_id, name, kind, config, created_at_ms) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(channel.tenant)
        .bind(&channel.name)
        .bind(&channel.kind)
        .bind(serde_json::to_string(&channel.config)?)
        .bind(channel.created_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn channels(&self, tenant: TenantId) -> Result<Vec<ChannelRow>, CatalogError> {
        let rows = sqlx::query(
            "SELECT tenant_id, name, kind, config, created_at_ms FROM alert_channels \
             WHERE tenant_id = ? ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(channel_row).collect()
    }

    async fn delete_channel(&self, tenant: TenantId, name: &str) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !channel_exists(&mut tx, tenant, name).await? {
            return Err(CatalogError::NotFound(format!("no channel named {name:?}")));
        }
        let users: Vec<String> = sqlx::query_scalar(
            "SELECT r.name FROM alert_rule_channels c JOIN alert_rules r ON r.id = c.rule_id \
             WHERE c.tenant_id = ? AND c.channel = ? ORDER BY r.name",
        )
        .bind(tenant)
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        if !users.is_empty() {
            return Err(CatalogError::Conflict(format!(
                "channel {name:?} is used by alert rules {}; delete or change them first",
                super::quoted_list(&users)
            )));
        }
        sqlx::query("DELETE FROM alert_channels WHERE tenant_id = ? AND name = ?")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_rule(&self, tenant: TenantId, rule: NewRule) -> Result<RuleRow, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        require_tenant(&mut tx, tenant).await?;
        check_new_rule(&mut tx, tenant, &rule).await?;
        let created_at_ms = strata_core::now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO alert_rules (tenant_id, name, kind, definition, created_at_ms) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(tenant)
        .bind(&rule.name)
        .bind(&rule.kind)
        .bind(serde_json::to_string(&rule.definition)?)
        .bind(created_at_ms)
        .fetch_one(&mut *tx)
        .await?;
        for (position, channel) in rule.channels.iter().enumerate() {
            sqlx::query(
                "INSERT INTO alert_rule_channels (rule_id, tenant_id, channel, position) \
                 VALUES (?, ?, ?, ?)",
            )
            .bind(id)
            .bind(tenant)
            .bind(channel)
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(RuleRow {
            id,
            tenant,
            name: rule.name,
            kind: rule.kind,
            definition: rule.definition,
            channels: rule.channels,
            created_at_ms,
        })
    }

    async fn all_rules(&self) -> Result<Vec<RuleRow>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, kind, definition, created_at_ms FROM alert_rules \
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let links = sqlx::query(
            "SELECT rule_id, channel FROM alert_rule_channels ORDER BY rule_id, position",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut rules = rows.iter().map(rule_row).collect::<Result<Vec<_>, _>>()?;
        for link in &links {
            let rule_id: i64 = link.try_get("rule_id")?;
            if let Some(rule) = rules.iter_mut().find(|r| r.id == rule_id) {
                rule.channels.push(link.try_get("channel")?);
            }
        }
        Ok(rules)
    }

    async fn delete_rule(&self, tenant: TenantId, name: &str) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let deleted = sqlx::query("DELETE FROM alert_rules WHERE tenant_id = ? AND name = ?")
            .bind(tenant)
            .bind(name)
            .execute(&self.pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!(
                "no alert rule named {name:?}"
            )));
        }
        Ok(())
    }

    async fn all_instances(&self) -> Result<Vec<InstanceRow>, CatalogError> {
        super::outbox::all_instances(&self.pool).await
    }

    async fn tenant_instances(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<(String, String, InstanceRow)>, CatalogError> {
        super::outbox::tenant_instances(&self.pool, tenant).await
    }

    async fn commit_alert_changes(&self, changes: AlertChanges) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        super::outbox::write_changes(&mut tx, &changes).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn alert_history(
        &self,
        tenant: TenantId,
        limit: u32,
    ) -> Result<Vec<HistoryRow>, CatalogError> {
        super::outbox::history(&self.pool, tenant, limit).await
    }

    async fn due_notifications(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, CatalogError> {
        super::outbox::due(&self.pool, now_ms, limit).await
    }

    async fn finish_delivery(
        &self,
        id: &str,
        channel: &str,
        outcome: DeliveryOutcome,
    ) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        super::outbox::finish(&self.pool, id, channel, outcome).await
    }

    async fn notifications(
        &self,
        tenant: TenantId,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, CatalogError> {
        super::outbox::of_tenant(&self.pool, tenant, limit).await
    }

    async fn create_silence(&self, silence: SilenceRow) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        require_tenant(&mut tx, silence.tenant).await?;
        // Ended silences do not count against the limit; they are dropped here.
        sqlx::query("DELETE FROM alert_silences WHERE tenant_id = ? AND until_ms < ?")
            .bind(silence.tenant)
            .bind(silence.created_ms)
            .execute(&mut *tx)
            .await?;
        let count = count_rows(&mut tx, "alert_silences", silence.tenant).await?;
        if count >= MAX_SILENCES_PER_TENANT {
            return Err(CatalogError::Invalid(format!(
                "a tenant may have at most {MAX_SILENCES_PER_TENANT} silences"
            )));
        }
        sqlx::query(
            "INSERT INTO alert_silences \
             (id, tenant_id, matchers, starts_ms, until_ms, comment, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&silence.id)
        .bind(silence.tenant)
        .bind(serde_json::to_string(&silence.matchers)?)
        .bind(silence.starts_ms)
        .bind(silence.until_ms)
        .bind(&silence.comment)
        .bind(silence.created_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn live_silences(&self, now_ms: i64) -> Result<Vec<SilenceRow>, CatalogError> {
        let rows = sqlx::query(&format!(
            "{SILENCE_COLUMNS} WHERE until_ms >= ? ORDER BY created_ms"
        ))
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(silence_row).collect()
    }

    async fn silences(&self, tenant: TenantId) -> Result<Vec<SilenceRow>, CatalogError> {
        let rows = sqlx::query(&format!(
            "{SILENCE_COLUMNS} WHERE tenant_id = ? ORDER BY created_ms"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(silence_row).collect()
    }

    async fn delete_silence(&self, tenant: TenantId, id: &str) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let deleted = sqlx::query("DELETE FROM alert_silences WHERE tenant_id = ? AND id = ?")
            .bind(tenant)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(CatalogError::NotFound(format!("no silence with id {id:?}")));
        }
        Ok(())
    }
}

const SILENCE_COLUMNS: &str = "SELECT id, tenant_id, matchers, starts_ms, until_ms, comment, \
                               created_ms FROM alert_silences";

/// Name taken, channels unknown, rule limit: checked inside the creating transaction.
async fn check_new_rule(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    rule: &NewRule,
) -> Result<(), CatalogError> {
    let taken: Option<i64> =
        sqlx::query_scalar("SELECT id FROM alert_rules WHERE tenant_id = ? AND name = ?")
            .bind(tenant)
            .bind(&rule.name)
            .fetch_optional(&mut *conn)
            .await?;
    if taken.is_some() {
        return Err(CatalogError::Conflict(format!(
            "alert rule {:?} already exists",
            rule.name
        )));
    }
    for channel in &rule.channels {
        if !channel_exists(conn, tenant, channel).await? {
            return Err(CatalogError::Invalid(format!(
                "channels: no channel named {channel:?}; create it with POST /api/v1/channels"
            )));
        }
    }
    if count_rows(conn, "alert_rules", tenant).await? >= MAX_RULES_PER_TENANT {
        return Err(CatalogError::Invalid(format!(
            "a tenant may have at most {MAX_RULES_PER_TENANT} alert rules"
        )));
    }
    Ok(())
}

async fn channel_exists(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    name: &str,
) -> Result<bool, CatalogError> {
    let found = sqlx::query("SELECT 1 FROM alert_channels WHERE tenant_id = ? AND name = ?")
        .bind(tenant)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// Rows of `table` owned by `tenant`; `table` is one of this file's constants, never input.
async fn count_rows(
    conn: &mut SqliteConnection,
    table: &'static str,
    tenant: TenantId,
) -> Result<u64, CatalogError> {
    let count: i64 =
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = ?"))
            .bind(tenant)
            .fetch_one(&mut *conn)
            .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

fn channel_row(row: &SqliteRow) -> Result<ChannelRow, CatalogError> {
    let config: String = row.try_get("config")?;
    Ok(ChannelRow {
        tenant: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        config: serde_json::from_str(&config)?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn rule_row(row: &SqliteRow) -> Result<RuleRow, CatalogError> {
    let definition: String = row.try_get("definition")?;
    Ok(RuleRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        definition: serde_json::from_str(&definition)?,
        channels: Vec::new(),
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn silence_row(row: &SqliteRow) -> Result<SilenceRow, CatalogError> {
    let matchers: String = row.try_get("matchers")?;
    Ok(SilenceRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant_id")?,
        matchers: serde_json::from_str(&matchers)?,
        starts_ms: row.try_get("starts_ms")?,
        until_ms: row.try_get("until_ms")?,
        comment: row.try_get("comment")?,
        created_ms: row.try_get("created_ms")?,
    })
}
