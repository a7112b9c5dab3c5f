//! Schema changes of a metric: create, update (one step per kind of change) and delete. Each
//! returns the readable text its history version records.

use sqlx::sqlite::SqliteConnection;
use strata_core::{FieldId, MetricId, TenantId, TimestampUnit};

use super::names::{
    claim_metric_name, insert_field, insert_local_name, insert_metric_name, local_conflict,
    local_owner, metric_owner, resolve_metric, LocalOwner, MetricRow,
};
use super::series_hashes::{bump_series_generation, mark_series_hashes_stale_if_data};
use super::{now_ms, quoted_list};
use crate::validate;
use crate::CatalogError;

pub(super) async fn create_metric(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    name: &str,
    aliases: &[String],
) -> Result<(MetricId, String), CatalogError> {
    validate::name("metric", name)?;
    for alias in aliases {
        validate::name("alias", alias)?;
    }
    let mut names: Vec<&str> = vec![name];
    for alias in aliases {
        if !names.contains(&alias.as_str()) {
            names.push(alias);
        }
    }
    if names.len() > validate::MAX_NAMES_PER_METRIC {
        return Err(CatalogError::Invalid(format!(
            "metric {name:?} would have {} names; the limit is {}",
            names.len(),
            validate::MAX_NAMES_PER_METRIC
        )));
    }
    for n in &names {
        if let Some(owner) = metric_owner(conn, tenant, n).await? {
            return Err(CatalogError::Conflict(format!(
                "name {n:?} is already used by metric {:?}",
                owner.name
            )));
        }
    }
    let id = sqlx::query("INSERT INTO metrics (tenant_id, name, created_at_ms) VALUES (?, ?, ?)")
        .bind(tenant)
        .bind(name)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?
        .last_insert_rowid();
    for n in &names {
        insert_metric_name(conn, tenant, MetricId(id), n).await?;
    }
    let aliases: Vec<String> = names[1..].iter().map(|s| s.to_string()).collect();
    let text = if aliases.is_empty() {
        format!("created metric {name:?}")
    } else {
        format!(
            "created metric {name:?} with aliases {}",
            quoted_list(&aliases)
        )
    };
    Ok((MetricId(id), text))
}

pub(super) struct MetricUpdate {
    pub(super) rename_to: Option<String>,
    pub(super) add_aliases: Vec<String>,
    pub(super) remove_aliases: Vec<String>,
    pub(super) timestamp_aliases: Option<Vec<String>>,
    pub(super) timestamp_patterns: Option<Vec<String>>,
    pub(super) series_keys: Option<Vec<String>>,
    pub(super) retention_days: Option<u32>,
    pub(super) timestamp_unit: Option<TimestampUnit>,
}

pub(super) async fn update_metric(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric_name: &str,
    update: MetricUpdate,
) -> Result<String, CatalogError> {
    let mut metric = resolve_metric(conn, tenant, metric_name).await?;
    let mut parts = Vec::new();
    if let Some(new_name) = update.rename_to {
        rename_metric(conn, tenant, &mut metric, new_name, &mut parts).await?;
    }
    add_metric_aliases(conn, tenant, &metric, &update.add_aliases, &mut parts).await?;
    remove_metric_aliases(conn, &metric, &update.remove_aliases, &mut parts).await?;
    check_metric_name_count(conn, &metric).await?;
    if let Some(ts_aliases) = update.timestamp_aliases {
        set_timestamp_aliases(conn, &metric, &ts_aliases, &mut parts).await?;
    }
    if let Some(patterns) = update.timestamp_patterns {
        set_timestamp_patterns(conn, &metric, &patterns, &mut parts).await?;
    }
    if let Some(keys) = update.series_keys {
        set_series_keys(conn, &metric, &keys, &mut parts).await?;
    }
    if let Some(days) = update.retention_days {
        set_retention(conn, &metric, days, &mut parts).await?;
    }
    if let Some(unit) = update.timestamp_unit {
        set_timestamp_unit(conn, &metric, unit, &mut parts).await?;
    }
    if parts.is_empty() {
        return Ok(format!("updated metric {:?} (no changes)", metric.name));
    }
    Ok(parts.join("; "))
}

/// 0 clears the metric's retention (the tenant's cold retention alone applies).
async fn set_retention(
    conn: &mut SqliteConnection,
    metric: &MetricRow,
    days: u32,
    parts: &mut Vec<String>,
) -> Result<(), CatalogError> {
    validate::metric_retention_days(days)?;
    let stored = (days > 0).then_some(i64::from(days));
    sqlx::query("UPDATE metrics SET retention_days = ? WHERE id = ?")
        .bind(stored)
        .bind(metric.id)
        .execute(&mut *conn)
        .await?;
    parts.push(match stored {
        Some(days) => format!("metric {:?} keeps {days} days of raw data", metric.name),
        None => format!("metric {:?} follows the tenant's retention", metric.name),
    });
    Ok(())
}

/// Applies to events written afterwards; stored rows keep the instants they were read as.
async fn set_timestamp_unit(
    conn: &mut SqliteConnection,
    metric: &MetricRow,
    unit: TimestampUnit,
    parts: &mut Vec<String>,
) -> Result<(), CatalogError> {
    sqlx::query("UPDATE metrics SET timestamp_unit = ? WHERE id = ?")
        .bind(unit.as_str())
        .bind(metric.id)
        .execute(&mut *conn)
        .await?;
    parts.push(format!(
        "metric {:?} reads numeric timestamps as {} (timestamp_unit {unit})",
        metric.name,
        unit.describe()
    ));
    Ok(())
}

/// The old display name stays one of the metric's names (an alias).
async fn rename_metric(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric: &mut MetricRow,
    new_name: String,
    parts: &mut Vec<String>,
) -> Result<(), CatalogError> {
    validate::name("metric", &new_name)?;
    if new_name == metric.name {
        return Ok(());
    }
    // When the new name is already an alias of this metric, it only becomes the display name.
    claim_metric_name(conn, tenant, metric, &new_name).await?;
    sqlx::query("UPDATE metrics SET name = ? WHERE id = ?")
        .bind(&new_name)
        .bind(metric.id)
        .execute(&mut *conn)
        .await?;
    parts.push(format!("renamed metric {:?} to {new_name:?}", metric.name));
    metric.name = new_name;
    Ok(())
}

async fn add_metric_aliases(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric: &MetricRow,
    aliases: &[String],
    parts: &mut Vec<String>,
) -> Result<(), CatalogError> {
    let mut added = Vec::new();
    for alias in aliases {
        validate::name("alias", alias)?;
        if claim_metric_name(conn, tenant, metric, alias).await? {
            added.push(alias.clone());
        }
    }
    if !added.is_empty() {
        parts.push(format!(
            "added aliases {} to metric {:?}",
            quoted_list(&added),
            metric.name
        ));
    }
    Ok(())
}

async fn remove_metric_aliases(
    conn: &mut SqliteConnection,
    metric: &MetricRow,
    aliases: &[String],
    parts: &mut Vec<String>,
) -> Result<(), CatalogError> {
    for alias in aliases {
        if *alias == metric.name {
            return Err(CatalogError::Invalid(format!(
                "{alias:?} is the display name of the metric; rename it before removing the name"
            )));
        }
        let removed = sqlx::query("DELETE FROM metric_names WHERE metric_id = ? AND name = ?")
            .bind(metric.id)
            .bind(alias)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if removed == 0 {
            return Err(CatalogError::NotFound(format!(
                "alias {alias:?} not found on metric {:?}",
                metric.name
            )));
        }
    }
    if !aliases.is_empty() {
        parts.push(format!(
            "removed aliases {} from metric {:?}",
            quoted_list(aliases),
            metric.name
        ));
    }
    Ok(())
}

async fn check_metric_name_count(
    conn: &mut SqliteConnection,
    metric: &MetricRow,
) -> Result<(), CatalogError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metric_names WHERE metric_id = ?")
        .bind(metric.id)
        .fetch_one(&mut *conn)
        .await?;
    let name_count = usize::try_from(n).unwrap_or(usize::MAX);
    if name_count > validate::MAX_NAMES_PER_METRIC {
        return Err(CatalogError::Invalid(format!(
            "metric {:?} would have {name_count} names; the limit is {}",
            metric.name,
            validate::MAX_NAMES_PER_METRIC
        )));
    }
    Ok(())
}

/// Replaces the metric's timestamp aliases.
async fn set_timestamp_aliases(
    conn: &mut SqliteConnection,
    metric: &MetricRow,
    ts_aliases: &[String],
    parts: &mut Vec<String>,
) -> Result<(), CatalogError> {
    if ts_aliases.len() > validate::MAX_TIMESTAMP_ALIASES {
        return Err(CatalogError::Invalid(format!(
            "{} timestamp aliases given; the limit is {}",
            ts_aliases.len(),
            validate::MAX_TIMESTAMP_ALIASES
        )));
    }
    for alias in ts_aliases {
        validate::field_level_name("timestamp alias", alias)?;
    }
    validate::no_duplicates("timestamp_aliases", ts_aliases)?;
    sqlx::query("DELETE FROM metric_local_names WHERE metric_id = ? AND field_id IS NULL")
        .bind(metric.id)
        .execute(&mut *conn)
        .await?;
    for alias in ts_aliases {
        if let Some(owner) = local_owner(conn, metric.id, alias).await? {
            return Err(local_conflict(alias, &owner, &metric.name));
        }
        insert_local_name(conn, metric.id, None, alias).await?;
    }
    parts.push(format!(
        "set timestamp aliases of metric {:?} to [{}]",
        metric.name,
        quoted_list(ts_aliases)
    ));
    Ok(())
}

async fn set_timestamp_patterns(
    conn: &mut SqliteConnection,
    metric: &MetricRow,
    patterns: &[String],
    parts: &mut Vec<String>,
) -> Result<(), CatalogError> {
    validate::timestamp_patterns(patterns)?;
    sqlx::query("UPDATE metrics SET timestamp_patterns = ? WHERE id = ?")
        .bind(serde_json::to_string(patterns)?)
        .bind(metric.id)
        .execute(&mut *conn)
        .await?;
    parts.push(format!(
        "set timestamp patterns of metric {:?} to [{}]",
        metric.name,
        quoted_list(patterns)
    ));
    Ok(())
}

/// Sets the series keys, declaring (untyped) the fields they name that do not exist yet. Rows
/// already stored were hashed under the old keys, hence the stale mark and the new generation.
async fn set_series_keys(
    conn: &mut SqliteConnection,
    metric: &MetricRow,
    keys: &[String],
    parts: &mut Vec<String>,
) -> Result<(), CatalogError> {
    if keys.len() > validate::MAX_SERIES_KEYS {
        return Err(CatalogError::Invalid(format!(
            "{} series keys given; the limit is {}",
            keys.len(),
            validate::MAX_SERIES_KEYS
        )));
    }
    let ids = series_key_fields(conn, metric, keys, parts).await?;
    sqlx::query("UPDATE metrics SET series_keys = ? WHERE id = ?")
        .bind(serde_json::to_string(&ids)?)
        .bind(metric.id)
        .execute(&mut *conn)
        .await?;
    mark_series_hashes_stale_if_data(conn, metric.id).await?;
    bump_series_generation(conn, metric.id).await?;
    parts.push(format!(
        "set series keys of metric {:?} to [{}]",
        metric.name,
        quoted_list(keys)
    ));
    Ok(())
}

/// The field id each series key names, in order; fields not declared yet are declared.
async fn series_key_fields(
    conn: &mut SqliteConnection,
    metric: &MetricRow,
    keys: &[String],
    parts: &mut Vec<String>,
) -> Result<Vec<FieldId>, CatalogError> {
    let mut ids: Vec<FieldId> = Vec::with_capacity(keys.len());
    for key in keys {
        validate::field_level_name("field", key)?;
        let id = match local_owner(conn, metric.id, key).await? {
            Some(LocalOwner::Field { id, .. }) => id,
            Some(owner @ LocalOwner::TimestampAlias) => {
                return Err(local_conflict(key, &owner, &metric.name))
            }
            None => {
                let id = insert_field(conn, metric.id, key, None, false).await?;
                parts.push(format!(
                    "declared field {key:?} of metric {:?} for series keys",
                    metric.name
                ));
                id
            }
        };
        if ids.contains(&id) {
            return Err(CatalogError::Invalid(format!(
                "series_keys names field {key:?} twice"
            )));
        }
        ids.push(id);
    }
    Ok(ids)
}

pub(super) async fn delete_metric(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric_name: &str,
) -> Result<String, CatalogError> {
    let metric = resolve_metric(conn, tenant, metric_name).await?;
    // Metrics merged into this one go with it: their data was only readable through it.
    sqlx::query("UPDATE metrics SET deleted_at_ms = ? WHERE id = ? OR merged_into = ?")
        .bind(now_ms())
        .bind(metric.id)
        .bind(metric.id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE metric_names SET live = 0 WHERE metric_id = ?")
        .bind(metric.id)
        .execute(&mut *conn)
        .await?;
    Ok(format!("deleted metric {:?}", metric.name))
}
