//! Alert instance states, their transition history and the notification outbox (SQLite).

use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::Row;
use strata_core::TenantId;

use crate::alerting::{
    AlertChanges, DeliveryOutcome, HistoryRow, InstanceRow, NewNotification, NotificationRow,
};
use crate::CatalogError;

const INSTANCE_COLUMNS: &str = "SELECT rule_id, labels, state, value, state_since_ms, \
     active_since_ms, last_active_ms, notified_ms, suppressed, acknowledged FROM alert_instances";

const NOTIFICATION_COLUMNS: &str = "SELECT id, channel, tenant_id, rule_name, state, alerts, \
     created_ms, status, attempts, next_attempt_ms, last_error, delivered_ms \
     FROM alert_notifications";

pub(super) async fn all_instances(pool: &SqlitePool) -> Result<Vec<InstanceRow>, CatalogError> {
    let rows = sqlx::query(INSTANCE_COLUMNS).fetch_all(pool).await?;
    rows.iter().map(instance_row).collect()
}

pub(super) async fn tenant_instances(
    pool: &SqlitePool,
    tenant: TenantId,
) -> Result<Vec<(String, String, InstanceRow)>, CatalogError> {
    let rows = sqlx::query(
        "SELECT r.name AS rule_name, r.kind AS rule_kind, i.rule_id, i.labels, i.state, i.value, \
         i.state_since_ms, i.active_since_ms, i.last_active_ms, i.notified_ms, i.suppressed, \
         i.acknowledged FROM alert_instances i JOIN alert_rules r ON r.id = i.rule_id \
         WHERE r.tenant_id = ? ORDER BY r.name, i.labels",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("rule_name")?,
                row.try_get("rule_kind")?,
                instance_row(row)?,
            ))
        })
        .collect()
}

/// Writes one evaluation's changes inside the caller's transaction. NotFound when the rule is
/// gone (deleted while it was evaluated): nothing is written then.
pub(super) async fn write_changes(
    conn: &mut SqliteConnection,
    changes: &AlertChanges,
) -> Result<(), CatalogError> {
    let owner: Option<TenantId> =
        sqlx::query_scalar("SELECT tenant_id FROM alert_rules WHERE id = ?")
            .bind(changes.rule_id)
            .fetch_optional(&mut *conn)
            .await?;
    if owner != Some(changes.tenant) {
        return Err(CatalogError::NotFound(
            "the alert rule was deleted".to_string(),
        ));
    }
    for instance in &changes.instances {
        upsert_instance(conn, instance).await?;
    }
    for labels in &changes.removed {
        sqlx::query("DELETE FROM alert_instances WHERE rule_id = ? AND labels = ?")
            .bind(changes.rule_id)
            .bind(labels)
            .execute(&mut *conn)
            .await?;
    }
    for row in &changes.history {
        insert_history(conn, row).await?;
    }
    for notification in &changes.notifications {
        add_notification(conn, changes.tenant, notification).await?;
    }
    Ok(())
}

async fn upsert_instance(
    conn: &mut SqliteConnection,
    instance: &InstanceRow,
) -> Result<(), CatalogError> {
    sqlx::query(
        "INSERT INTO alert_instances (rule_id, labels, state, value, state_since_ms, \
         active_since_ms, last_active_ms, notified_ms, suppressed, acknowledged) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (rule_id, labels) DO UPDATE SET state = excluded.state, \
         value = excluded.value, state_since_ms = excluded.state_since_ms, \
         active_since_ms = excluded.active_since_ms, last_active_ms = excluded.last_active_ms, \
         notified_ms = excluded.notified_ms, suppressed = excluded.suppressed, \
         acknowledged = excluded.acknowledged",
    )
    .bind(instance.rule_id)
    .bind(&instance.labels)
    .bind(&instance.state)
    .bind(instance.value)
    .bind(instance.state_since_ms)
    .bind(instance.active_since_ms)
    .bind(instance.last_active_ms)
    .bind(instance.notified_ms)
    .bind(instance.suppressed)
    .bind(instance.acknowledged)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_history(conn: &mut SqliteConnection, row: &HistoryRow) -> Result<(), CatalogError> {
    sqlx::query(
        "INSERT INTO alert_history \
         (tenant_id, rule_name, labels, from_state, to_state, value, time_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(row.tenant)
    .bind(&row.rule_name)
    .bind(&row.labels)
    .bind(&row.from_state)
    .bind(&row.to_state)
    .bind(row.value)
    .bind(row.time_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts the notification, or with a group window adds its alert to the open pending row of
/// the same rule, channel and state.
async fn add_notification(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    notification: &NewNotification,
) -> Result<(), CatalogError> {
    if notification.group_until_ms > notification.created_ms && notification.status == "pending" {
        let open = sqlx::query(
            "SELECT id, alerts FROM alert_notifications WHERE tenant_id = ? AND rule_name = ? \
             AND channel = ? AND state = ? AND status = 'pending' AND attempts = 0 \
             AND group_until_ms > ? ORDER BY created_ms LIMIT 1",
        )
        .bind(tenant)
        .bind(&notification.rule_name)
        .bind(&notification.channel)
        .bind(&notification.state)
        .bind(notification.created_ms)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(open) = open {
            let id: String = open.try_get("id")?;
            let alerts: String = open.try_get("alerts")?;
            let mut alerts: Vec<serde_json::Value> = serde_json::from_str(&alerts)?;
            alerts.push(notification.alert.clone());
            sqlx::query("UPDATE alert_notifications SET alerts = ? WHERE id = ? AND channel = ?")
                .bind(serde_json::to_string(&alerts)?)
                .bind(&id)
                .bind(&notification.channel)
                .execute(&mut *conn)
                .await?;
            return Ok(());
        }
    }
    sqlx::query(
        "INSERT INTO alert_notifications (id, channel, tenant_id, rule_name, state, alerts, \
         created_ms, group_until_ms, status, next_attempt_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&notification.id)
    .bind(&notification.channel)
    .bind(tenant)
    .bind(&notification.rule_name)
    .bind(&notification.state)
    .bind(serde_json::to_string(&[&notification.alert])?)
    .bind(notification.created_ms)
    .bind(notification.group_until_ms)
    .bind(&notification.status)
    .bind(notification.group_until_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn history(
    pool: &SqlitePool,
    tenant: TenantId,
    limit: u32,
) -> Result<Vec<HistoryRow>, CatalogError> {
    let rows = sqlx::query(
        "SELECT * FROM (SELECT id, tenant_id, rule_name, labels, from_state, to_state, value, \
         time_ms FROM alert_history WHERE tenant_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
    )
    .bind(tenant)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(HistoryRow {
                tenant: row.try_get("tenant_id")?,
                rule_name: row.try_get("rule_name")?,
                labels: row.try_get("labels")?,
                from_state: row.try_get("from_state")?,
                to_state: row.try_get("to_state")?,
                value: row.try_get("value")?,
                time_ms: row.try_get("time_ms")?,
            })
        })
        .collect()
}

pub(super) async fn due(
    pool: &SqlitePool,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<NotificationRow>, CatalogError> {
    // A receiver gets one rule's notifications in the order of their transitions: a row waits
    // while an older one of the same rule and channel is still pending (in backoff, say).
    let rows = sqlx::query(&format!(
        "{NOTIFICATION_COLUMNS} n WHERE status = 'pending' AND next_attempt_ms <= ? \
         AND group_until_ms <= ? AND NOT EXISTS (SELECT 1 FROM alert_notifications o \
         WHERE o.tenant_id = n.tenant_id AND o.rule_name = n.rule_name \
         AND o.channel = n.channel AND o.status = 'pending' AND o.created_ms < n.created_ms) \
         ORDER BY n.rowid LIMIT ?"
    ))
    .bind(now_ms)
    .bind(now_ms)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(notification_row).collect()
}

pub(super) async fn finish(
    pool: &SqlitePool,
    id: &str,
    channel: &str,
    outcome: DeliveryOutcome,
) -> Result<(), CatalogError> {
    let (status, next_ms, error, delivered_ms) = match outcome {
        DeliveryOutcome::Delivered { at_ms } => ("delivered", None, None, Some(at_ms)),
        DeliveryOutcome::Retry {
            next_attempt_ms,
            error,
        } => ("pending", Some(next_attempt_ms), Some(error), None),
        DeliveryOutcome::Failed { error } => ("failed", None, Some(error), None),
    };
    sqlx::query(
        "UPDATE alert_notifications SET status = ?, attempts = attempts + 1, \
         next_attempt_ms = COALESCE(?, next_attempt_ms), last_error = COALESCE(?, last_error), \
         delivered_ms = ? WHERE id = ? AND channel = ?",
    )
    .bind(status)
    .bind(next_ms)
    .bind(error)
    .bind(delivered_ms)
    .bind(id)
    .bind(channel)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn of_tenant(
    pool: &SqlitePool,
    tenant: TenantId,
    limit: u32,
) -> Result<Vec<NotificationRow>, CatalogError> {
    let rows = sqlx::query(&format!(
        "SELECT * FROM ({NOTIFICATION_COLUMNS} WHERE tenant_id = ? \
         ORDER BY created_ms DESC, id LIMIT ?) ORDER BY created_ms, id"
    ))
    .bind(tenant)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(notification_row).collect()
}

fn instance_row(row: &SqliteRow) -> Result<InstanceRow, CatalogError> {
    Ok(InstanceRow {
        rule_id: row.try_get("rule_id")?,
        labels: row.try_get("labels")?,
        state: row.try_get("state")?,
        value: row.try_get("value")?,
        state_since_ms: row.try_get("state_since_ms")?,
        active_since_ms: row.try_get("active_since_ms")?,
        last_active_ms: row.try_get("last_active_ms")?,
        notified_ms: row.try_get("notified_ms")?,
        suppressed: row.try_get("suppressed")?,
        acknowledged: row.try_get("acknowledged")?,
    })
}

fn notification_row(row: &SqliteRow) -> Result<NotificationRow, CatalogError> {
    let alerts: String = row.try_get("alerts")?;
    Ok(NotificationRow {
        id: row.try_get("id")?,
        channel: row.try_get("channel")?,
        tenant: row.try_get("tenant_id")?,
        rule_name: row.try_get("rule_name")?,
        state: row.try_get("state")?,
        alerts: serde_json::from_str(&alerts)?,
        created_ms: row.try_get("created_ms")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        next_attempt_ms: row.try_get("next_attempt_ms")?,
        last_error: row.try_get("last_error")?,
        delivered_ms: row.try_get("delivered_ms")?,
    })
}
