//! Incoming names: registering the keys devices sent (dense ids, durable before return, cached
//! in process) and merging their statistics.

use std::collections::{HashMap, HashSet};

use sqlx::sqlite::SqliteConnection;
use sqlx::Row;
use strata_core::{MetricId, NameId, TenantId};

use super::{lock, metric_tenant, SqliteCatalog};
use crate::model::IncomingStatsDelta;
use crate::validate::{self, MAX_INCOMING_SAMPLES};
use crate::{CatalogError, IncomingNames};

/// The ids of one metric's incoming names, as last committed by this process.
pub(super) struct IncomingIds {
    tenant: TenantId,
    ids: HashMap<String, NameId>,
}

fn metric_not_found(metric: MetricId) -> CatalogError {
    CatalogError::NotFound(format!("metric {metric} not found"))
}

#[async_trait::async_trait]
impl IncomingNames for SqliteCatalog {
    async fn register_incoming_names(
        &self,
        tenant: TenantId,
        metric: MetricId,
        names: &[String],
    ) -> Result<Vec<NameId>, CatalogError> {
        if let Some(ids) = self.cached_incoming_ids(tenant, metric, names)? {
            return Ok(ids);
        }
        for name in names {
            validate::name("field", name)?;
        }

        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if metric_tenant(&mut tx, metric).await? != Some(tenant) {
            return Err(metric_not_found(metric));
        }
        let mut stored = stored_ids(&mut tx, metric).await?;
        stored.ids.reserve(names.len());
        let mut created = 0usize;
        let mut result = Vec::with_capacity(names.len());
        for name in names {
            if let Some(id) = stored.ids.get(name) {
                result.push(*id);
                continue;
            }
            result.push(insert_next_id(&mut tx, metric, &mut stored, name).await?);
            created += 1;
        }
        tx.commit().await?;
        if created > 0 {
            self.invalidate_schema(tenant);
            tracing::debug!(tenant = %tenant, metric = %metric, created, "incoming names registered");
        }
        let ids = stored.ids;
        lock(&self.incoming_cache).insert(metric, IncomingIds { tenant, ids });
        Ok(result)
    }

    async fn record_incoming_stats(
        &self,
        tenant: TenantId,
        deltas: Vec<IncomingStatsDelta>,
    ) -> Result<(), CatalogError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut checked: HashSet<MetricId> = HashSet::new();
        for delta in deltas {
            if !checked.contains(&delta.metric) {
                if metric_tenant(&mut tx, delta.metric).await? != Some(tenant) {
                    return Err(metric_not_found(delta.metric));
                }
                checked.insert(delta.metric);
            }
            merge_delta(&mut tx, &delta).await?;
        }
        tx.commit().await?;
        self.invalidate_schema(tenant);
        Ok(())
    }
}

impl SqliteCatalog {
    /// The ids of `names` when this process already knows all of them; NotFound when the cached
    /// metric belongs to another tenant.
    fn cached_incoming_ids(
        &self,
        tenant: TenantId,
        metric: MetricId,
        names: &[String],
    ) -> Result<Option<Vec<NameId>>, CatalogError> {
        let cache = lock(&self.incoming_cache);
        let Some(known) = cache.get(&metric) else {
            return Ok(None);
        };
        if known.tenant != tenant {
            return Err(metric_not_found(metric));
        }
        Ok(names.iter().map(|n| known.ids.get(n).copied()).collect())
    }
}

/// A metric's incoming names with their ids, and the highest id given so far.
struct StoredIds {
    ids: HashMap<String, NameId>,
    max_id: NameId,
}

/// Every incoming name of the metric with its id.
async fn stored_ids(
    conn: &mut SqliteConnection,
    metric: MetricId,
) -> Result<StoredIds, CatalogError> {
    let rows = sqlx::query("SELECT name, name_id FROM incoming_names WHERE metric_id = ?")
        .bind(metric)
        .fetch_all(&mut *conn)
        .await?;
    let mut ids: HashMap<String, NameId> = HashMap::with_capacity(rows.len());
    let mut max_id: NameId = 0;
    for row in rows {
        let id: i64 = row.try_get("name_id")?;
        let id = NameId::try_from(id).map_err(|_| {
            CatalogError::Internal("catalog holds an out-of-range name id".to_string())
        })?;
        max_id = max_id.max(id);
        ids.insert(row.try_get("name")?, id);
    }
    debug_assert_eq!(
        usize::try_from(max_id).ok(),
        Some(ids.len()),
        "incoming name ids are dense from 1"
    );
    Ok(StoredIds { ids, max_id })
}

/// Stores `name` under the metric's next id.
async fn insert_next_id(
    conn: &mut SqliteConnection,
    metric: MetricId,
    stored: &mut StoredIds,
    name: &str,
) -> Result<NameId, CatalogError> {
    let id = stored.max_id.checked_add(1).ok_or_else(|| {
        CatalogError::Invalid(format!("metric {metric} has too many incoming names"))
    })?;
    sqlx::query("INSERT INTO incoming_names (metric_id, name_id, name) VALUES (?, ?, ?)")
        .bind(metric)
        .bind(i64::from(id))
        .bind(name)
        .execute(&mut *conn)
        .await?;
    stored.max_id = id;
    stored.ids.insert(name.to_string(), id);
    Ok(id)
}

/// Adds one delta to the stored statistics of its incoming name.
async fn merge_delta(
    conn: &mut SqliteConnection,
    delta: &IncomingStatsDelta,
) -> Result<(), CatalogError> {
    let row = sqlx::query(
        "SELECT count, first_seen_ms, last_seen_ms, kinds, samples FROM incoming_names \
         WHERE metric_id = ? AND name_id = ?",
    )
    .bind(delta.metric)
    .bind(i64::from(delta.name))
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        CatalogError::NotFound(format!(
            "incoming name {} of metric {} not found",
            delta.name, delta.metric
        ))
    })?;
    let count: i64 = row.try_get("count")?;
    let first: Option<i64> = row.try_get("first_seen_ms")?;
    let last: Option<i64> = row.try_get("last_seen_ms")?;
    let kinds: i64 = row.try_get("kinds")?;
    let samples: String = row.try_get("samples")?;
    let mut samples: Vec<String> = serde_json::from_str(&samples)?;

    let added = i64::try_from(delta.count).unwrap_or(i64::MAX);
    let count = count.saturating_add(added);
    let first = Some(first.map_or(delta.first_seen_ms, |f| f.min(delta.first_seen_ms)));
    let last = Some(last.map_or(delta.last_seen_ms, |l| l.max(delta.last_seen_ms)));
    let kinds = kinds | i64::from(delta.kinds);
    add_samples(&mut samples, &delta.samples);
    sqlx::query(
        "UPDATE incoming_names SET count = ?, first_seen_ms = ?, last_seen_ms = ?, \
         kinds = ?, samples = ? WHERE metric_id = ? AND name_id = ?",
    )
    .bind(count)
    .bind(first)
    .bind(last)
    .bind(kinds)
    .bind(serde_json::to_string(&samples)?)
    .bind(delta.metric)
    .bind(i64::from(delta.name))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Keeps the first distinct samples seen, up to [`MAX_INCOMING_SAMPLES`], each truncated.
fn add_samples(samples: &mut Vec<String>, new: &[String]) {
    for sample in new {
        if samples.len() >= MAX_INCOMING_SAMPLES {
            break;
        }
        let sample = validate::truncate_sample(sample);
        if !samples.contains(&sample) {
            samples.push(sample);
        }
    }
}
