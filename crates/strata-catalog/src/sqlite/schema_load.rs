//! Loading a tenant's live schema snapshot: metrics, then their names, fields, field names and
//! timestamp aliases, and incoming names, each with one query inside the caller's transaction.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::Row;
use strata_core::{FieldId, FieldType, JsonKind, MetricId, NameId, TenantId, TimestampUnit};

use super::{ms_to_time, opt_ms_to_time, require_tenant};
use crate::model::{Field, IncomingName, Metric, TenantSchema};
use crate::CatalogError;

/// The metrics loaded so far, by position, with an index from id to position.
struct LoadedMetrics {
    metrics: Vec<Metric>,
    by_id: HashMap<MetricId, usize>,
}

impl LoadedMetrics {
    fn get_mut(&mut self, id: MetricId) -> Option<&mut Metric> {
        let at = *self.by_id.get(&id)?;
        self.metrics.get_mut(at)
    }
}

/// Runs inside one read transaction of the caller, so the snapshot is consistent.
pub(super) async fn load_schema(
    conn: &mut SqliteConnection,
    tenant: TenantId,
) -> Result<TenantSchema, CatalogError> {
    require_tenant(conn, tenant).await?;
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) FROM schema_history WHERE tenant_id = ?",
    )
    .bind(tenant)
    .fetch_one(&mut *conn)
    .await?;
    let cold_retention_days: Option<i64> =
        sqlx::query_scalar("SELECT cold_retention_days FROM tenants WHERE id = ?")
            .bind(tenant)
            .fetch_one(&mut *conn)
            .await?;

    let mut loaded = load_metrics(conn, tenant).await?;
    attach_metric_names(conn, tenant, &mut loaded).await?;
    let field_index = attach_fields(conn, tenant, &mut loaded).await?;
    attach_local_names(conn, tenant, &mut loaded, &field_index).await?;
    attach_incoming_names(conn, tenant, &mut loaded).await?;

    for m in &loaded.metrics {
        debug_assert!(
            m.fields.iter().all(|f| f.names.contains(&f.name)),
            "every field's display name is one of its names"
        );
    }
    Ok(TenantSchema {
        tenant,
        version,
        metrics: loaded.metrics.into_iter().map(Arc::new).collect(),
        cold_retention_days: cold_retention_days.and_then(|days| u32::try_from(days).ok()),
    })
}

/// The tenant's live metrics by id, without names, fields or incoming names yet.
async fn load_metrics(
    conn: &mut SqliteConnection,
    tenant: TenantId,
) -> Result<LoadedMetrics, CatalogError> {
    let rows = sqlx::query(
        "SELECT id, name, timestamp_patterns, series_keys, series_hashes_exact, series_generation, \
         created_at_ms, retention_days, timestamp_unit, merged_into FROM metrics \
         WHERE tenant_id = ? AND deleted_at_ms IS NULL ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    let mut loaded = LoadedMetrics {
        metrics: Vec::with_capacity(rows.len()),
        by_id: HashMap::with_capacity(rows.len()),
    };
    for row in rows {
        let id: MetricId = row.try_get("id")?;
        let patterns: String = row.try_get("timestamp_patterns")?;
        let series_keys: String = row.try_get("series_keys")?;
        loaded.by_id.insert(id, loaded.metrics.len());
        loaded.metrics.push(Metric {
            id,
            name: row.try_get("name")?,
            aliases: Vec::new(),
            timestamp_aliases: Vec::new(),
            timestamp_patterns: serde_json::from_str(&patterns)?,
            series_keys: serde_json::from_str(&series_keys)?,
            series_hashes_exact: row.try_get::<i64, _>("series_hashes_exact")? != 0,
            series_generation: row.try_get("series_generation")?,
            fields: Vec::new(),
            incoming: Vec::new(),
            created_at: ms_to_time(row.try_get("created_at_ms")?)?,
            retention_days: row
                .try_get::<Option<i64>, _>("retention_days")?
                .and_then(|days| u32::try_from(days).ok()),
            timestamp_unit: timestamp_unit(&row)?,
            merged_into: row.try_get("merged_into")?,
        });
    }
    Ok(loaded)
}

/// The stored unit; the column's CHECK admits only the names `TimestampUnit` parses.
fn timestamp_unit(row: &SqliteRow) -> Result<TimestampUnit, CatalogError> {
    let text: String = row.try_get("timestamp_unit")?;
    text.parse().map_err(|err| {
        tracing::error!(%err, "catalog holds an unknown timestamp unit");
        CatalogError::Internal("catalog holds a value that does not decode".to_string())
    })
}

/// Every live name other than the display name becomes an alias, in the order added.
async fn attach_metric_names(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    loaded: &mut LoadedMetrics,
) -> Result<(), CatalogError> {
    let rows = sqlx::query(
        "SELECT metric_id, name FROM metric_names WHERE tenant_id = ? AND live = 1 ORDER BY seq",
    )
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let metric_id: MetricId = row.try_get("metric_id")?;
        let name: String = row.try_get("name")?;
        if let Some(m) = loaded.get_mut(metric_id) {
            if name != m.name {
                m.aliases.push(name);
            }
        }
    }
    Ok(())
}

/// Attaches the fields (without their names) and returns where each one is: metric position,
/// field position.
async fn attach_fields(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    loaded: &mut LoadedMetrics,
) -> Result<HashMap<FieldId, (usize, usize)>, CatalogError> {
    let mut field_index: HashMap<FieldId, (usize, usize)> = HashMap::new();
    let rows = sqlx::query(
        "SELECT f.id, f.metric_id, f.name, f.field_type, f.hidden, f.hidden_at_ms, f.expression \
         FROM fields f \
         JOIN metrics m ON m.id = f.metric_id \
         WHERE m.tenant_id = ? AND m.deleted_at_ms IS NULL ORDER BY f.id",
    )
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let metric_id: MetricId = row.try_get("metric_id")?;
        let Some(&mi) = loaded.by_id.get(&metric_id) else {
            continue;
        };
        let id: FieldId = row.try_get("id")?;
        let fields = &mut loaded.metrics[mi].fields;
        field_index.insert(id, (mi, fields.len()));
        fields.push(Field {
            id,
            name: row.try_get("name")?,
            field_type: parse_field_type(row.try_get("field_type")?)?,
            names: Vec::new(),
            hidden: row.try_get("hidden")?,
            hidden_since_ms: row.try_get("hidden_at_ms")?,
            expression: row.try_get("expression")?,
            conversions: Default::default(),
        });
    }
    Ok(field_index)
}

/// A metric's local names: a field's names in precedence order, or its timestamp aliases.
async fn attach_local_names(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    loaded: &mut LoadedMetrics,
    field_index: &HashMap<FieldId, (usize, usize)>,
) -> Result<(), CatalogError> {
    let rows = sqlx::query(
        "SELECT l.metric_id, l.field_id, l.name, l.conversion FROM metric_local_names l \
         JOIN metrics m ON m.id = l.metric_id \
         WHERE m.tenant_id = ? AND m.deleted_at_ms IS NULL ORDER BY l.seq",
    )
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let metric_id: MetricId = row.try_get("metric_id")?;
        let field_id: Option<FieldId> = row.try_get("field_id")?;
        let name: String = row.try_get("name")?;
        let conversion: Option<String> = row.try_get("conversion")?;
        match field_id {
            Some(fid) => {
                if let Some(&(mi, fi)) = field_index.get(&fid) {
                    let field = &mut loaded.metrics[mi].fields[fi];
                    if let Some(conversion) = conversion {
                        field.conversions.insert(name.clone(), conversion);
                    }
                    field.names.push(name);
                }
            }
            None => {
                if let Some(m) = loaded.get_mut(metric_id) {
                    m.timestamp_aliases.push(name);
                }
            }
        }
    }
    Ok(())
}

async fn attach_incoming_names(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    loaded: &mut LoadedMetrics,
) -> Result<(), CatalogError> {
    let rows = sqlx::query(
        "SELECT i.metric_id, i.name_id, i.name, i.count, i.first_seen_ms, i.last_seen_ms, \
         i.kinds, i.samples FROM incoming_names i JOIN metrics m ON m.id = i.metric_id \
         WHERE m.tenant_id = ? AND m.deleted_at_ms IS NULL ORDER BY i.metric_id, i.name_id",
    )
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let metric_id: MetricId = row.try_get("metric_id")?;
        let Some(m) = loaded.get_mut(metric_id) else {
            continue;
        };
        m.incoming.push(incoming_from_row(&row)?);
    }
    Ok(())
}

fn incoming_from_row(row: &SqliteRow) -> Result<IncomingName, CatalogError> {
    let name_id: i64 = row.try_get("name_id")?;
    let count: i64 = row.try_get("count")?;
    let kinds: i64 = row.try_get("kinds")?;
    let samples: String = row.try_get("samples")?;
    Ok(IncomingName {
        id: NameId::try_from(name_id).map_err(|_| {
            CatalogError::Internal("catalog holds an out-of-range name id".to_string())
        })?,
        name: row.try_get("name")?,
        count: u64::try_from(count).unwrap_or(0),
        first_seen: opt_ms_to_time(row.try_get("first_seen_ms")?)?,
        last_seen: opt_ms_to_time(row.try_get("last_seen_ms")?)?,
        kinds: JsonKind::from_bits(u8::try_from(kinds).unwrap_or(u8::MAX)),
        samples: serde_json::from_str(&samples)?,
    })
}

fn parse_field_type(text: Option<String>) -> Result<Option<FieldType>, CatalogError> {
    text.map(|t| {
        t.parse().map_err(|_| {
            tracing::error!(field_type = t, "catalog holds an unknown field type");
            CatalogError::Internal("catalog holds an unknown field type".to_string())
        })
    })
    .transpose()
}
