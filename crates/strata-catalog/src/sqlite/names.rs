//! Who holds a name: metric names are unique among a tenant's live metrics, field names and
//! timestamp aliases among one metric's local names. The lookups and inserts schema changes share.

use sqlx::sqlite::SqliteConnection;
use sqlx::Row;
use strata_core::{FieldId, FieldType, MetricId, TenantId};

use super::now_ms;
use crate::CatalogError;

/// Who holds a name inside one metric.
pub(super) enum LocalOwner {
    Field { id: FieldId, display: String },
    TimestampAlias,
}

/// A live metric as schema changes see it: its id and display name.
pub(super) struct MetricRow {
    pub(super) id: MetricId,
    pub(super) name: String,
}

pub(super) fn local_conflict(name: &str, owner: &LocalOwner, metric: &str) -> CatalogError {
    match owner {
        LocalOwner::Field { display, .. } => CatalogError::Conflict(format!(
            "name {name:?} is already used by field {display:?} of metric {metric:?}"
        )),
        LocalOwner::TimestampAlias => CatalogError::Conflict(format!(
            "name {name:?} is already used as a timestamp alias of metric {metric:?}"
        )),
    }
}

fn metric_not_found(name: &str) -> CatalogError {
    CatalogError::NotFound(format!("metric {name:?} not found"))
}

/// The live metric of `tenant` that has `name` as display name or alias.
pub(super) async fn metric_owner(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    name: &str,
) -> Result<Option<MetricRow>, CatalogError> {
    let row = sqlx::query(
        "SELECT m.id, m.name FROM metric_names n JOIN metrics m ON m.id = n.metric_id \
         WHERE n.tenant_id = ? AND n.name = ? AND n.live = 1",
    )
    .bind(tenant)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(MetricRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
        })
    })
    .transpose()
}

pub(super) async fn resolve_metric(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    name: &str,
) -> Result<MetricRow, CatalogError> {
    metric_owner(conn, tenant, name)
        .await?
        .ok_or_else(|| metric_not_found(name))
}

pub(super) async fn local_owner(
    conn: &mut SqliteConnection,
    metric: MetricId,
    name: &str,
) -> Result<Option<LocalOwner>, CatalogError> {
    let row = sqlx::query(
        "SELECT l.field_id, f.name AS display FROM metric_local_names l \
         LEFT JOIN fields f ON f.id = l.field_id WHERE l.metric_id = ? AND l.name = ?",
    )
    .bind(metric)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let field_id: Option<FieldId> = row.try_get("field_id")?;
    Ok(Some(match field_id {
        Some(id) => LocalOwner::Field {
            id,
            display: row.try_get("display")?,
        },
        None => LocalOwner::TimestampAlias,
    }))
}

pub(super) async fn insert_metric_name(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric: MetricId,
    name: &str,
) -> Result<(), CatalogError> {
    // Every metric name and alias is claimed here, so a rollup's name can never name a
    // metric: writes cannot reach a rollup (rollups are read-only, issue 16).
    if super::rollups::rollup_named(conn, tenant, name)
        .await?
        .is_some()
    {
        return Err(CatalogError::Conflict(format!(
            "{name:?} is a rollup, and rollups are read-only to writes"
        )));
    }
    sqlx::query("INSERT INTO metric_names (metric_id, tenant_id, name, live) VALUES (?, ?, ?, 1)")
        .bind(metric)
        .bind(tenant)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn insert_local_name(
    conn: &mut SqliteConnection,
    metric: MetricId,
    field: Option<FieldId>,
    name: &str,
) -> Result<(), CatalogError> {
    sqlx::query("INSERT INTO metric_local_names (metric_id, field_id, name) VALUES (?, ?, ?)")
        .bind(metric)
        .bind(field)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn insert_field(
    conn: &mut SqliteConnection,
    metric: MetricId,
    name: &str,
    field_type: Option<FieldType>,
    hidden: bool,
) -> Result<FieldId, CatalogError> {
    let id = sqlx::query(
        "INSERT INTO fields (metric_id, name, field_type, hidden, created_at_ms) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(metric)
    .bind(name)
    .bind(field_type.map(FieldType::as_str))
    .bind(hidden)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?
    .last_insert_rowid();
    insert_local_name(conn, metric, Some(FieldId(id)), name).await?;
    Ok(FieldId(id))
}

/// Gives `name` to `metric` unless it already has it; Conflict if another live metric of the
/// tenant holds it. Returns whether the name was new to the metric.
pub(super) async fn claim_metric_name(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric: &MetricRow,
    name: &str,
) -> Result<bool, CatalogError> {
    match metric_owner(conn, tenant, name).await? {
        Some(owner) if owner.id != metric.id => Err(CatalogError::Conflict(format!(
            "name {name:?} is already used by metric {:?}",
            owner.name
        ))),
        Some(_) => Ok(false),
        None => {
            insert_metric_name(conn, tenant, metric.id, name).await?;
            Ok(true)
        }
    }
}
