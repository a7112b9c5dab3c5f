//! The embedded catalog: one SQLite file (WAL, foreign keys, FULL sync) per data directory.
//!
//! Every mutation runs under one in-process async mutex and a `BEGIN IMMEDIATE` transaction, so
//! history versions are dense and ordered and checks see the state they change. UNIQUE indexes
//! back the name rules in case another process writes the same file.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::rngs::OsRng;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::Row;
use strata_core::{FieldId, FieldType, JsonKind, MetricId, NameId, Role, TenantId};

use crate::model::{
    Field, IncomingName, IncomingStatsDelta, KeyInfo, Metric, NewKey, SchemaVersion, Tenant,
    TenantSchema, TenantSettings,
};
use crate::validate::{self, MAX_INCOMING_SAMPLES};
use crate::{ColdFile, ColdManifest, CompactionCommit, CompactionRecord, DeletedMetric};

mod cold;
use crate::{Catalog, CatalogError, SchemaChange, SettingsPatch};

/// Ordered schema migrations; a version is applied once and recorded.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_initial.sql")),
    (2, include_str!("migrations/0002_cold_tier.sql")),
    (3, include_str!("migrations/0003_retention.sql")),
];

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Readers run in parallel under WAL; writes are serialized anyway.
const MAX_CONNECTIONS: u32 = 4;
/// `last_used_at` is bookkeeping; writing it on every request would make reads write.
const LAST_USED_WRITE_INTERVAL: Duration = Duration::from_secs(60);
/// Bound on cached authenticated keys; the cache is cleared when it would grow past it.
const MAX_CACHED_KEYS: usize = 100_000;
const SECRET_PREFIX: &str = "sk_";
const SECRET_BYTES: usize = 32;
const KEY_ID_BYTES: usize = 8;

pub struct SqliteCatalog {
    pool: SqlitePool,
    /// Serializes every mutation in this process.
    write_lock: tokio::sync::Mutex<()>,
    schema_cache: Mutex<HashMap<TenantId, SchemaSlot>>,
    auth_cache: Mutex<AuthCache>,
    incoming_cache: Mutex<HashMap<MetricId, IncomingIds>>,
}

/// A snapshot plus a generation bumped by every invalidation, so a reload that raced a
/// mutation never stores its stale result.
#[derive(Default)]
struct SchemaSlot {
    generation: u64,
    snapshot: Option<Arc<TenantSchema>>,
}

#[derive(Default)]
struct AuthCache {
    /// Bumped by every revocation, for the same reason as [`SchemaSlot::generation`].
    generation: u64,
    by_hash: HashMap<String, CachedKey>,
}

struct CachedKey {
    tenant: Tenant,
    info: KeyInfo,
    last_used_written: Option<Instant>,
}

struct IncomingIds {
    tenant: TenantId,
    ids: HashMap<String, NameId>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps are updated by single inserts/removes, so a panic elsewhere cannot leave
    // them half-changed; keep serving rather than propagate the poison.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ms_to_time(ms: i64) -> Result<DateTime<Utc>, CatalogError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| {
        tracing::error!(ms, "catalog holds an out-of-range timestamp");
        CatalogError::Internal("catalog holds an out-of-range timestamp".to_string())
    })
}

fn opt_ms_to_time(ms: Option<i64>) -> Result<Option<DateTime<Utc>>, CatalogError> {
    ms.map(ms_to_time).transpose()
}

fn random_hex(bytes: usize) -> Result<String, CatalogError> {
    let mut buf = vec![0u8; bytes];
    OsRng.try_fill_bytes(&mut buf).map_err(|e| {
        tracing::error!(error = %e, "OS random number generator failed");
        CatalogError::Internal("random number generator unavailable".to_string())
    })?;
    Ok(hex::encode(buf))
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn looks_like_secret(secret: &str) -> bool {
    secret.len() == SECRET_PREFIX.len() + 2 * SECRET_BYTES
        && secret.starts_with(SECRET_PREFIX)
        && secret[SECRET_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn parse_role(text: &str) -> Result<Role, CatalogError> {
    text.parse().map_err(|_| {
        tracing::error!(role = text, "catalog holds an unknown role");
        CatalogError::Internal("catalog holds an unknown role".to_string())
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

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn tenant_not_found(id: TenantId) -> CatalogError {
    CatalogError::NotFound(format!("tenant {id} not found"))
}

fn metric_not_found(name: &str) -> CatalogError {
    CatalogError::NotFound(format!("metric {name:?} not found"))
}

/// Who holds a name inside one metric.
enum LocalOwner {
    Field { id: FieldId, display: String },
    TimestampAlias,
}

struct MetricRow {
    id: MetricId,
    name: String,
}

fn local_conflict(name: &str, owner: &LocalOwner, metric: &str) -> CatalogError {
    match owner {
        LocalOwner::Field { display, .. } => CatalogError::Conflict(format!(
            "name {name:?} is already used by field {display:?} of metric {metric:?}"
        )),
        LocalOwner::TimestampAlias => CatalogError::Conflict(format!(
            "name {name:?} is already used as a timestamp alias of metric {metric:?}"
        )),
    }
}

// ---------- statements shared by several operations (run inside a transaction) ----------

async fn require_tenant(conn: &mut SqliteConnection, tenant: TenantId) -> Result<(), CatalogError> {
    let found = sqlx::query("SELECT 1 FROM tenants WHERE id = ?")
        .bind(tenant)
        .fetch_optional(&mut *conn)
        .await?;
    found.map(|_| ()).ok_or_else(|| tenant_not_found(tenant))
}

/// The live metric of `tenant` that has `name` as display name or alias.
async fn metric_owner(
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

async fn resolve_metric(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    name: &str,
) -> Result<MetricRow, CatalogError> {
    metric_owner(conn, tenant, name)
        .await?
        .ok_or_else(|| metric_not_found(name))
}

async fn local_owner(
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

async fn insert_metric_name(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric: MetricId,
    name: &str,
) -> Result<(), CatalogError> {
    sqlx::query("INSERT INTO metric_names (metric_id, tenant_id, name, live) VALUES (?, ?, ?, 1)")
        .bind(metric)
        .bind(tenant)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert_local_name(
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

async fn insert_field(
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
    insert_local_name(conn, metric, Some(id), name).await?;
    Ok(id)
}

async fn count_metric_names(
    conn: &mut SqliteConnection,
    metric: MetricId,
) -> Result<usize, CatalogError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metric_names WHERE metric_id = ?")
        .bind(metric)
        .fetch_one(&mut *conn)
        .await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

async fn check_field_name_count(
    conn: &mut SqliteConnection,
    field: FieldId,
    display: &str,
) -> Result<(), CatalogError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metric_local_names WHERE field_id = ?")
        .bind(field)
        .fetch_one(&mut *conn)
        .await?;
    if usize::try_from(n).unwrap_or(usize::MAX) > validate::MAX_NAMES_PER_FIELD {
        return Err(CatalogError::Invalid(format!(
            "field {display:?} would have {n} names; the limit is {}",
            validate::MAX_NAMES_PER_FIELD
        )));
    }
    Ok(())
}

/// Adds `aliases` to a field, skipping those it already has. Returns the ones added.
async fn add_field_aliases(
    conn: &mut SqliteConnection,
    metric: &MetricRow,
    field: FieldId,
    aliases: &[String],
) -> Result<Vec<String>, CatalogError> {
    let mut added = Vec::new();
    for alias in aliases {
        match local_owner(conn, metric.id, alias).await? {
            Some(LocalOwner::Field { id, .. }) if id == field => {}
            Some(owner) => return Err(local_conflict(alias, &owner, &metric.name)),
            None => {
                insert_local_name(conn, metric.id, Some(field), alias).await?;
                added.push(alias.clone());
            }
        }
    }
    Ok(added)
}

async fn append_history(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    change: String,
) -> Result<SchemaVersion, CatalogError> {
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM schema_history WHERE tenant_id = ?",
    )
    .bind(tenant)
    .fetch_one(&mut *conn)
    .await?;
    let at_ms = now_ms();
    sqlx::query(
        "INSERT INTO schema_history (tenant_id, version, at_ms, change) VALUES (?, ?, ?, ?)",
    )
    .bind(tenant)
    .bind(version)
    .bind(at_ms)
    .bind(&change)
    .execute(&mut *conn)
    .await?;
    tracing::info!(tenant, version, change = %change, "schema changed");
    Ok(SchemaVersion {
        version,
        at: ms_to_time(at_ms)?,
        change,
    })
}

async fn insert_key(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    role: Role,
) -> Result<NewKey, CatalogError> {
    let secret = format!("{SECRET_PREFIX}{}", random_hex(SECRET_BYTES)?);
    let id = random_hex(KEY_ID_BYTES)?;
    let created_at_ms = now_ms();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, role, secret_sha256, created_at_ms) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(tenant)
    .bind(role.as_str())
    .bind(hash_secret(&secret))
    .bind(created_at_ms)
    .execute(&mut *conn)
    .await?;
    debug_assert!(looks_like_secret(&secret));
    Ok(NewKey {
        info: KeyInfo {
            id,
            tenant,
            role,
            created_at: ms_to_time(created_at_ms)?,
            last_used_at: None,
        },
        secret,
    })
}

fn tenant_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Tenant, CatalogError> {
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: ms_to_time(row.try_get("created_at_ms")?)?,
    })
}

// ---------- schema changes (each returns the readable history text) ----------

async fn create_metric(
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
        insert_metric_name(conn, tenant, id, n).await?;
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
    Ok((id, text))
}

struct MetricUpdate {
    rename_to: Option<String>,
    add_aliases: Vec<String>,
    remove_aliases: Vec<String>,
    timestamp_aliases: Option<Vec<String>>,
    timestamp_patterns: Option<Vec<String>>,
    series_keys: Option<Vec<String>>,
}

async fn update_metric(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric_name: &str,
    update: MetricUpdate,
) -> Result<String, CatalogError> {
    let mut metric = resolve_metric(conn, tenant, metric_name).await?;
    let mut parts = Vec::new();

    if let Some(new_name) = update.rename_to {
        validate::name("metric", &new_name)?;
        if new_name != metric.name {
            match metric_owner(conn, tenant, &new_name).await? {
                Some(owner) if owner.id != metric.id => {
                    return Err(CatalogError::Conflict(format!(
                        "name {new_name:?} is already used by metric {:?}",
                        owner.name
                    )))
                }
                // Already an alias of this metric: it only becomes the display name.
                Some(_) => {}
                None => insert_metric_name(conn, tenant, metric.id, &new_name).await?,
            }
            sqlx::query("UPDATE metrics SET name = ? WHERE id = ?")
                .bind(&new_name)
                .bind(metric.id)
                .execute(&mut *conn)
                .await?;
            parts.push(format!("renamed metric {:?} to {new_name:?}", metric.name));
            metric.name = new_name;
        }
    }

    let mut added = Vec::new();
    for alias in &update.add_aliases {
        validate::name("alias", alias)?;
        match metric_owner(conn, tenant, alias).await? {
            Some(owner) if owner.id != metric.id => {
                return Err(CatalogError::Conflict(format!(
                    "name {alias:?} is already used by metric {:?}",
                    owner.name
                )))
            }
            Some(_) => {}
            None => {
                insert_metric_name(conn, tenant, metric.id, alias).await?;
                added.push(alias.clone());
            }
        }
    }
    if !added.is_empty() {
        parts.push(format!(
            "added aliases {} to metric {:?}",
            quoted_list(&added),
            metric.name
        ));
    }

    for alias in &update.remove_aliases {
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
    if !update.remove_aliases.is_empty() {
        parts.push(format!(
            "removed aliases {} from metric {:?}",
            quoted_list(&update.remove_aliases),
            metric.name
        ));
    }
    let name_count = count_metric_names(conn, metric.id).await?;
    if name_count > validate::MAX_NAMES_PER_METRIC {
        return Err(CatalogError::Invalid(format!(
            "metric {:?} would have {name_count} names; the limit is {}",
            metric.name,
            validate::MAX_NAMES_PER_METRIC
        )));
    }

    if let Some(ts_aliases) = update.timestamp_aliases {
        if ts_aliases.len() > validate::MAX_TIMESTAMP_ALIASES {
            return Err(CatalogError::Invalid(format!(
                "{} timestamp aliases given; the limit is {}",
                ts_aliases.len(),
                validate::MAX_TIMESTAMP_ALIASES
            )));
        }
        for alias in &ts_aliases {
            validate::field_level_name("timestamp alias", alias)?;
        }
        validate::no_duplicates("timestamp_aliases", &ts_aliases)?;
        sqlx::query("DELETE FROM metric_local_names WHERE metric_id = ? AND field_id IS NULL")
            .bind(metric.id)
            .execute(&mut *conn)
            .await?;
        for alias in &ts_aliases {
            if let Some(owner) = local_owner(conn, metric.id, alias).await? {
                return Err(local_conflict(alias, &owner, &metric.name));
            }
            insert_local_name(conn, metric.id, None, alias).await?;
        }
        parts.push(format!(
            "set timestamp aliases of metric {:?} to [{}]",
            metric.name,
            quoted_list(&ts_aliases)
        ));
    }

    if let Some(patterns) = update.timestamp_patterns {
        validate::timestamp_patterns(&patterns)?;
        sqlx::query("UPDATE metrics SET timestamp_patterns = ? WHERE id = ?")
            .bind(serde_json::to_string(&patterns)?)
            .bind(metric.id)
            .execute(&mut *conn)
            .await?;
        parts.push(format!(
            "set timestamp patterns of metric {:?} to [{}]",
            metric.name,
            quoted_list(&patterns)
        ));
    }

    if let Some(keys) = update.series_keys {
        if keys.len() > validate::MAX_SERIES_KEYS {
            return Err(CatalogError::Invalid(format!(
                "{} series keys given; the limit is {}",
                keys.len(),
                validate::MAX_SERIES_KEYS
            )));
        }
        let mut ids: Vec<FieldId> = Vec::with_capacity(keys.len());
        for key in &keys {
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
            quoted_list(&keys)
        ));
    }

    if parts.is_empty() {
        return Ok(format!("updated metric {:?} (no changes)", metric.name));
    }
    Ok(parts.join("; "))
}

async fn delete_metric(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric_name: &str,
) -> Result<String, CatalogError> {
    let metric = resolve_metric(conn, tenant, metric_name).await?;
    sqlx::query("UPDATE metrics SET deleted_at_ms = ? WHERE id = ?")
        .bind(now_ms())
        .bind(metric.id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE metric_names SET live = 0 WHERE metric_id = ?")
        .bind(metric.id)
        .execute(&mut *conn)
        .await?;
    Ok(format!("deleted metric {:?}", metric.name))
}

fn describe_type(field_type: Option<FieldType>) -> String {
    match field_type {
        Some(t) => format!("as {t}"),
        None => "with no type".to_string(),
    }
}

async fn declare_field(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric_name: &str,
    field: &str,
    field_type: Option<FieldType>,
    aliases: &[String],
    hidden: bool,
) -> Result<String, CatalogError> {
    let metric = resolve_metric(conn, tenant, metric_name).await?;
    validate::field_level_name("field", field)?;
    for alias in aliases {
        validate::field_level_name("alias", alias)?;
    }
    let hidden_text = if hidden { ", hidden" } else { "" };
    let (field_id, display, mut text) = match local_owner(conn, metric.id, field).await? {
        Some(owner @ LocalOwner::TimestampAlias) => {
            return Err(local_conflict(field, &owner, &metric.name))
        }
        Some(LocalOwner::Field { id, display }) => {
            sqlx::query("UPDATE fields SET field_type = ?, hidden = ? WHERE id = ?")
                .bind(field_type.map(FieldType::as_str))
                .bind(hidden)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            let text = format!(
                "redeclared field {display:?} of metric {:?} {}{hidden_text}",
                metric.name,
                describe_type(field_type)
            );
            (id, display, text)
        }
        None => {
            let id = insert_field(conn, metric.id, field, field_type, hidden).await?;
            let text = format!(
                "declared field {field:?} of metric {:?} {}{hidden_text}",
                metric.name,
                describe_type(field_type)
            );
            (id, field.to_string(), text)
        }
    };
    let added = add_field_aliases(conn, &metric, field_id, aliases).await?;
    check_field_name_count(conn, field_id, &display).await?;
    if !added.is_empty() {
        mark_series_hashes_stale_if_key_field(conn, metric.id, field_id).await?;
    }
    if !added.is_empty() {
        text.push_str(&format!("; added aliases {}", quoted_list(&added)));
    }
    Ok(text)
}

struct FieldUpdate {
    rename_to: Option<String>,
    field_type: Option<FieldType>,
    add_aliases: Vec<String>,
    remove_aliases: Vec<String>,
    hidden: Option<bool>,
}

async fn update_field(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric_name: &str,
    field: &str,
    update: FieldUpdate,
) -> Result<String, CatalogError> {
    let metric = resolve_metric(conn, tenant, metric_name).await?;
    let (field_id, mut display) = match local_owner(conn, metric.id, field).await? {
        Some(LocalOwner::Field { id, display }) => (id, display),
        _ => {
            return Err(CatalogError::NotFound(format!(
                "field {field:?} not found in metric {:?}",
                metric.name
            )))
        }
    };
    let mut parts = Vec::new();

    if let Some(new_name) = update.rename_to {
        validate::field_level_name("field", &new_name)?;
        if new_name != display {
            match local_owner(conn, metric.id, &new_name).await? {
                // One of its own aliases: only the display name changes, precedence stays.
                Some(LocalOwner::Field { id, .. }) if id == field_id => {}
                Some(owner) => return Err(local_conflict(&new_name, &owner, &metric.name)),
                // A new name joins at the end of the precedence order.
                None => {
                    insert_local_name(conn, metric.id, Some(field_id), &new_name).await?;
                    mark_series_hashes_stale_if_key_field(conn, metric.id, field_id).await?;
                }
            }
            sqlx::query("UPDATE fields SET name = ? WHERE id = ?")
                .bind(&new_name)
                .bind(field_id)
                .execute(&mut *conn)
                .await?;
            parts.push(format!(
                "renamed field {display:?} of metric {:?} to {new_name:?}",
                metric.name
            ));
            display = new_name;
        }
    }

    if let Some(field_type) = update.field_type {
        sqlx::query("UPDATE fields SET field_type = ? WHERE id = ?")
            .bind(field_type.as_str())
            .bind(field_id)
            .execute(&mut *conn)
            .await?;
        parts.push(format!(
            "set type of field {display:?} of metric {:?} to {field_type}",
            metric.name
        ));
    }

    for alias in &update.add_aliases {
        validate::field_level_name("alias", alias)?;
    }
    let added = add_field_aliases(conn, &metric, field_id, &update.add_aliases).await?;
    if !added.is_empty() || !update.remove_aliases.is_empty() {
        mark_series_hashes_stale_if_key_field(conn, metric.id, field_id).await?;
    }
    if !added.is_empty() {
        parts.push(format!(
            "added aliases {} to field {display:?} of metric {:?}",
            quoted_list(&added),
            metric.name
        ));
    }

    for alias in &update.remove_aliases {
        if *alias == display {
            return Err(CatalogError::Invalid(format!(
                "{alias:?} is the display name of the field; rename it before removing the name"
            )));
        }
        let removed = sqlx::query(
            "DELETE FROM metric_local_names WHERE metric_id = ? AND field_id = ? AND name = ?",
        )
        .bind(metric.id)
        .bind(field_id)
        .bind(alias)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if removed == 0 {
            return Err(CatalogError::NotFound(format!(
                "alias {alias:?} not found on field {display:?} of metric {:?}",
                metric.name
            )));
        }
    }
    if !update.remove_aliases.is_empty() {
        parts.push(format!(
            "removed aliases {} from field {display:?} of metric {:?}",
            quoted_list(&update.remove_aliases),
            metric.name
        ));
    }
    check_field_name_count(conn, field_id, &display).await?;

    if let Some(hidden) = update.hidden {
        sqlx::query("UPDATE fields SET hidden = ? WHERE id = ?")
            .bind(hidden)
            .bind(field_id)
            .execute(&mut *conn)
            .await?;
        let verb = if hidden { "hid" } else { "unhid" };
        parts.push(format!(
            "{verb} field {display:?} of metric {:?}",
            metric.name
        ));
    }

    if parts.is_empty() {
        return Ok(format!(
            "updated field {display:?} of metric {:?} (no changes)",
            metric.name
        ));
    }
    Ok(parts.join("; "))
}

// ---------- snapshot loading ----------

async fn load_schema(
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

    let mut metrics: Vec<Metric> = Vec::new();
    let mut index: HashMap<MetricId, usize> = HashMap::new();
    let rows = sqlx::query(
        "SELECT id, name, timestamp_patterns, series_keys, series_hashes_exact, series_generation, \
         created_at_ms FROM metrics \
         WHERE tenant_id = ? AND deleted_at_ms IS NULL ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let id: MetricId = row.try_get("id")?;
        let patterns: String = row.try_get("timestamp_patterns")?;
        let series_keys: String = row.try_get("series_keys")?;
        index.insert(id, metrics.len());
        metrics.push(Metric {
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
        });
    }

    let rows = sqlx::query(
        "SELECT metric_id, name FROM metric_names WHERE tenant_id = ? AND live = 1 ORDER BY seq",
    )
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let metric_id: MetricId = row.try_get("metric_id")?;
        let name: String = row.try_get("name")?;
        if let Some(m) = index.get(&metric_id).map(|i| &mut metrics[*i]) {
            if name != m.name {
                m.aliases.push(name);
            }
        }
    }

    let mut field_index: HashMap<FieldId, (usize, usize)> = HashMap::new();
    let rows = sqlx::query(
        "SELECT f.id, f.metric_id, f.name, f.field_type, f.hidden FROM fields f \
         JOIN metrics m ON m.id = f.metric_id \
         WHERE m.tenant_id = ? AND m.deleted_at_ms IS NULL ORDER BY f.id",
    )
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let metric_id: MetricId = row.try_get("metric_id")?;
        let Some(&mi) = index.get(&metric_id) else {
            continue;
        };
        let id: FieldId = row.try_get("id")?;
        let fields = &mut metrics[mi].fields;
        field_index.insert(id, (mi, fields.len()));
        fields.push(Field {
            id,
            name: row.try_get("name")?,
            field_type: parse_field_type(row.try_get("field_type")?)?,
            names: Vec::new(),
            hidden: row.try_get("hidden")?,
        });
    }

    let rows = sqlx::query(
        "SELECT l.metric_id, l.field_id, l.name FROM metric_local_names l \
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
        match field_id {
            Some(fid) => {
                if let Some(&(mi, fi)) = field_index.get(&fid) {
                    metrics[mi].fields[fi].names.push(name);
                }
            }
            None => {
                if let Some(&mi) = index.get(&metric_id) {
                    metrics[mi].timestamp_aliases.push(name);
                }
            }
        }
    }

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
        let Some(&mi) = index.get(&metric_id) else {
            continue;
        };
        let name_id: i64 = row.try_get("name_id")?;
        let count: i64 = row.try_get("count")?;
        let kinds: i64 = row.try_get("kinds")?;
        let samples: String = row.try_get("samples")?;
        metrics[mi].incoming.push(IncomingName {
            id: NameId::try_from(name_id).map_err(|_| {
                CatalogError::Internal("catalog holds an out-of-range name id".to_string())
            })?,
            name: row.try_get("name")?,
            count: u64::try_from(count).unwrap_or(0),
            first_seen: opt_ms_to_time(row.try_get("first_seen_ms")?)?,
            last_seen: opt_ms_to_time(row.try_get("last_seen_ms")?)?,
            kinds: JsonKind::from_bits(u8::try_from(kinds).unwrap_or(u8::MAX)),
            samples: serde_json::from_str(&samples)?,
        });
    }

    for m in &metrics {
        debug_assert!(
            m.fields.iter().all(|f| f.names.contains(&f.name)),
            "every field's display name is one of its names"
        );
    }
    Ok(TenantSchema {
        tenant,
        version,
        metrics: metrics.into_iter().map(Arc::new).collect(),
        cold_retention_days: cold_retention_days.and_then(|days| u32::try_from(days).ok()),
    })
}

// ---------- the catalog ----------

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog file at `path` and brings its tables up to date.
    pub async fn open(path: &Path) -> Result<Self, CatalogError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Incoming-name ids must survive a power cut once returned: data is stored under them.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, path = %path.display(), "cannot open the catalog");
                CatalogError::Internal("cannot open the catalog database".to_string())
            })?;
        let catalog = SqliteCatalog {
            pool,
            write_lock: tokio::sync::Mutex::new(()),
            schema_cache: Mutex::new(HashMap::new()),
            auth_cache: Mutex::new(AuthCache::default()),
            incoming_cache: Mutex::new(HashMap::new()),
        };
        catalog.migrate().await?;
        Ok(catalog)
    }

    async fn migrate(&self) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS catalog_migrations \
             (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let current: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM catalog_migrations")
                .fetch_one(&mut *tx)
                .await?;
        let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if current > latest {
            return Err(CatalogError::Internal(format!(
                "the catalog is at schema version {current}, newer than this build knows ({latest})"
            )));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO catalog_migrations (version, applied_at_ms) VALUES (?, ?)")
                .bind(version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            tracing::info!(version, "catalog migrated");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Must be called after every committed change that shows in [`TenantSchema`].
    fn invalidate_schema(&self, tenant: TenantId) {
        let mut cache = lock(&self.schema_cache);
        let slot = cache.entry(tenant).or_default();
        slot.generation += 1;
        slot.snapshot = None;
    }

    async fn write_last_used(&self, key_id: &str, at_ms: i64) {
        let result = sqlx::query("UPDATE api_keys SET last_used_at_ms = ? WHERE id = ?")
            .bind(at_ms)
            .bind(key_id)
            .execute(&self.pool)
            .await;
        // Bookkeeping only: a failure here must not fail the request that authenticated.
        if let Err(e) = result {
            tracing::warn!(error = %e, key_id, "could not record key use");
        }
    }

    async fn apply_locked(
        &self,
        conn: &mut SqliteConnection,
        tenant: TenantId,
        change: SchemaChange,
    ) -> Result<String, CatalogError> {
        match change {
            SchemaChange::CreateMetric { name, aliases } => {
                Ok(create_metric(conn, tenant, &name, &aliases).await?.1)
            }
            SchemaChange::UpdateMetric {
                metric,
                rename_to,
                add_aliases,
                remove_aliases,
                timestamp_aliases,
                timestamp_patterns,
                series_keys,
            } => {
                let update = MetricUpdate {
                    rename_to,
                    add_aliases,
                    remove_aliases,
                    timestamp_aliases,
                    timestamp_patterns,
                    series_keys,
                };
                update_metric(conn, tenant, &metric, update).await
            }
            SchemaChange::DeleteMetric { metric } => delete_metric(conn, tenant, &metric).await,
            SchemaChange::DeclareField {
                metric,
                field,
                field_type,
                aliases,
                hidden,
            } => declare_field(conn, tenant, &metric, &field, field_type, &aliases, hidden).await,
            SchemaChange::UpdateField {
                metric,
                field,
                rename_to,
                field_type,
                add_aliases,
                remove_aliases,
                hidden,
            } => {
                let update = FieldUpdate {
                    rename_to,
                    field_type,
                    add_aliases,
                    remove_aliases,
                    hidden,
                };
                update_field(conn, tenant, &metric, &field, update).await
            }
        }
    }

    async fn metric_tenant(
        conn: &mut SqliteConnection,
        metric: MetricId,
    ) -> Result<Option<TenantId>, CatalogError> {
        Ok(
            sqlx::query_scalar("SELECT tenant_id FROM metrics WHERE id = ?")
                .bind(metric)
                .fetch_optional(&mut *conn)
                .await?,
        )
    }
}

#[async_trait::async_trait]
impl Catalog for SqliteCatalog {
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
        let key = insert_key(&mut tx, id, Role::Admin).await?;
        tx.commit().await?;
        tracing::info!(tenant = id, name, "tenant created");
        Ok((
            Tenant {
                id,
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
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        require_tenant(&mut tx, tenant).await?;
        let key = insert_key(&mut tx, tenant, role).await?;
        tx.commit().await?;
        tracing::info!(tenant, key_id = %key.info.id, role = %role, "key created");
        Ok(key)
    }

    async fn list_keys(&self, tenant: TenantId) -> Result<Vec<KeyInfo>, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        require_tenant(&mut conn, tenant).await?;
        let rows = sqlx::query(
            "SELECT id, role, created_at_ms, last_used_at_ms FROM api_keys \
             WHERE tenant_id = ? AND revoked_at_ms IS NULL ORDER BY created_at_ms, id",
        )
        .bind(tenant)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                Ok(KeyInfo {
                    id: row.try_get("id")?,
                    tenant,
                    role: parse_role(&role)?,
                    created_at: ms_to_time(row.try_get("created_at_ms")?)?,
                    last_used_at: opt_ms_to_time(row.try_get("last_used_at_ms")?)?,
                })
            })
            .collect()
    }

    async fn revoke_key(&self, tenant: TenantId, key_id: &str) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at_ms = ? \
             WHERE id = ? AND tenant_id = ? AND revoked_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(key_id)
        .bind(tenant)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if revoked == 0 {
            // Same answer whether the key is unknown, revoked or another tenant's.
            return Err(CatalogError::NotFound(format!("key {key_id:?} not found")));
        }
        let mut cache = lock(&self.auth_cache);
        cache.generation += 1;
        cache.by_hash.retain(|_, cached| cached.info.id != key_id);
        tracing::info!(tenant, key_id, "key revoked");
        Ok(())
    }

    async fn authenticate(&self, secret: &str) -> Result<Option<(Tenant, KeyInfo)>, CatalogError> {
        if !looks_like_secret(secret) {
            return Ok(None);
        }
        let hash = hash_secret(secret);
        let now = Instant::now();
        let (generation, hit) = {
            let mut cache = lock(&self.auth_cache);
            let generation = cache.generation;
            let hit = cache.by_hash.get_mut(&hash).map(|cached| {
                let due = cached
                    .last_used_written
                    .is_none_or(|t| now.duration_since(t) >= LAST_USED_WRITE_INTERVAL);
                let mut used_ms = None;
                if due {
                    let at_ms = now_ms();
                    cached.last_used_written = Some(now);
                    cached.info.last_used_at = DateTime::from_timestamp_millis(at_ms);
                    used_ms = Some(at_ms);
                }
                (cached.tenant.clone(), cached.info.clone(), used_ms)
            });
            (generation, hit)
        };
        if let Some((tenant, info, used_ms)) = hit {
            if let Some(at_ms) = used_ms {
                self.write_last_used(&info.id, at_ms).await;
            }
            return Ok(Some((tenant, info)));
        }

        let row = sqlx::query(
            "SELECT k.id, k.tenant_id, k.role, k.created_at_ms, t.name, \
             t.created_at_ms AS tenant_created_at_ms FROM api_keys k \
             JOIN tenants t ON t.id = k.tenant_id \
             WHERE k.secret_sha256 = ? AND k.revoked_at_ms IS NULL",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let at_ms = now_ms();
        let tenant_id: TenantId = row.try_get("tenant_id")?;
        let role: String = row.try_get("role")?;
        let tenant = Tenant {
            id: tenant_id,
            name: row.try_get("name")?,
            created_at: ms_to_time(row.try_get("tenant_created_at_ms")?)?,
        };
        let info = KeyInfo {
            id: row.try_get("id")?,
            tenant: tenant_id,
            role: parse_role(&role)?,
            created_at: ms_to_time(row.try_get("created_at_ms")?)?,
            last_used_at: Some(ms_to_time(at_ms)?),
        };
        self.write_last_used(&info.id, at_ms).await;
        {
            let mut cache = lock(&self.auth_cache);
            // A revocation that committed while we read would otherwise be undone by this insert.
            if cache.generation == generation {
                if cache.by_hash.len() >= MAX_CACHED_KEYS {
                    cache.by_hash.clear();
                }
                cache.by_hash.insert(
                    hash,
                    CachedKey {
                        tenant: tenant.clone(),
                        info: info.clone(),
                        last_used_written: Some(now),
                    },
                );
            }
        }
        Ok(Some((tenant, info)))
    }

    async fn settings(&self, tenant: TenantId) -> Result<TenantSettings, CatalogError> {
        let row = sqlx::query(
            "SELECT metric_keys, timestamp_patterns, cold_retention_days FROM tenants WHERE id = ?",
        )
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| tenant_not_found(tenant))?;
        let metric_keys: String = row.try_get("metric_keys")?;
        let patterns: String = row.try_get("timestamp_patterns")?;
        let cold_retention_days: Option<i64> = row.try_get("cold_retention_days")?;
        Ok(TenantSettings {
            metric_keys: serde_json::from_str(&metric_keys)?,
            timestamp_patterns: serde_json::from_str(&patterns)?,
            cold_retention_days: cold_retention_days.and_then(|d| u32::try_from(d).ok()),
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
        let guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        require_tenant(&mut tx, tenant).await?;
        let mut parts = Vec::new();
        if let Some(keys) = &patch.metric_keys {
            sqlx::query("UPDATE tenants SET metric_keys = ? WHERE id = ?")
                .bind(serde_json::to_string(keys)?)
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            parts.push(format!("set metric keys to [{}]", quoted_list(keys)));
        }
        if let Some(patterns) = &patch.timestamp_patterns {
            sqlx::query("UPDATE tenants SET timestamp_patterns = ? WHERE id = ?")
                .bind(serde_json::to_string(patterns)?)
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            parts.push(format!(
                "set tenant timestamp patterns to [{}]",
                quoted_list(patterns)
            ));
        }
        if let Some(days) = patch.cold_retention_days {
            validate::cold_retention_days(days)?;
            // 0 means "keep forever", stored as NULL.
            let stored = (days > 0).then_some(i64::from(days));
            sqlx::query("UPDATE tenants SET cold_retention_days = ? WHERE id = ?")
                .bind(stored)
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            parts.push(match stored {
                Some(days) => format!("set cold retention to {days} days"),
                None => "set cold retention to forever".to_string(),
            });
        }
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

    async fn schema(&self, tenant: TenantId) -> Result<Arc<TenantSchema>, CatalogError> {
        let generation = {
            let cache = lock(&self.schema_cache);
            match cache.get(&tenant) {
                Some(SchemaSlot {
                    snapshot: Some(snapshot),
                    ..
                }) => return Ok(snapshot.clone()),
                Some(slot) => slot.generation,
                None => 0,
            }
        };
        // One read transaction so the snapshot is consistent across its queries.
        let mut tx = self.pool.begin().await?;
        let snapshot = Arc::new(load_schema(&mut tx, tenant).await?);
        tx.commit().await?;
        let mut cache = lock(&self.schema_cache);
        let slot = cache.entry(tenant).or_default();
        if slot.generation == generation {
            slot.snapshot = Some(snapshot.clone());
        }
        Ok(snapshot)
    }

    async fn apply(
        &self,
        tenant: TenantId,
        change: SchemaChange,
    ) -> Result<SchemaVersion, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        require_tenant(&mut tx, tenant).await?;
        let text = self.apply_locked(&mut tx, tenant, change).await?;
        let version = append_history(&mut tx, tenant, text).await?;
        tx.commit().await?;
        self.invalidate_schema(tenant);
        Ok(version)
    }

    async fn ensure_metric(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Arc<Metric>, CatalogError> {
        if let Some(metric) = self.schema(tenant).await?.metric(name) {
            return Ok(metric.clone());
        }
        validate::name("metric", name)?;
        // Holding the write lock until the snapshot is read means no change can slip between
        // creating (or finding) the metric and returning it.
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if metric_owner(&mut tx, tenant, name).await?.is_none() {
            let (id, _) = create_metric(&mut tx, tenant, name, &[]).await?;
            append_history(
                &mut tx,
                tenant,
                format!("created metric {name:?} on first write"),
            )
            .await?;
            tx.commit().await?;
            self.invalidate_schema(tenant);
            tracing::info!(tenant, metric = id, name, "metric created on first write");
        } else {
            // Created after our cache read, possibly by another process whose changes never
            // invalidated our cache: reload so the answer is not served from a stale snapshot.
            tx.rollback().await?;
            self.invalidate_schema(tenant);
        }
        let snapshot = self.schema(tenant).await?;
        snapshot.metric(name).cloned().ok_or_else(|| {
            debug_assert!(false, "metric {name:?} missing right after ensure_metric");
            CatalogError::Internal("a metric vanished while it was being created".to_string())
        })
    }

    async fn history(&self, tenant: TenantId) -> Result<Vec<SchemaVersion>, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        require_tenant(&mut conn, tenant).await?;
        let rows = sqlx::query(
            "SELECT version, at_ms, change FROM schema_history WHERE tenant_id = ? \
             ORDER BY version",
        )
        .bind(tenant)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SchemaVersion {
                    version: row.try_get("version")?,
                    at: ms_to_time(row.try_get("at_ms")?)?,
                    change: row.try_get("change")?,
                })
            })
            .collect()
    }

    async fn register_incoming_names(
        &self,
        tenant: TenantId,
        metric: MetricId,
        names: &[String],
    ) -> Result<Vec<NameId>, CatalogError> {
        let not_found = || CatalogError::NotFound(format!("metric {metric} not found"));
        {
            let cache = lock(&self.incoming_cache);
            if let Some(known) = cache.get(&metric) {
                if known.tenant != tenant {
                    return Err(not_found());
                }
                let ids: Option<Vec<NameId>> =
                    names.iter().map(|n| known.ids.get(n).copied()).collect();
                if let Some(ids) = ids {
                    return Ok(ids);
                }
            }
        }
        for name in names {
            validate::name("field", name)?;
        }

        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if Self::metric_tenant(&mut tx, metric).await? != Some(tenant) {
            return Err(not_found());
        }
        let rows = sqlx::query("SELECT name, name_id FROM incoming_names WHERE metric_id = ?")
            .bind(metric)
            .fetch_all(&mut *tx)
            .await?;
        let mut ids: HashMap<String, NameId> = HashMap::with_capacity(rows.len() + names.len());
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
        let mut created = 0usize;
        let mut result = Vec::with_capacity(names.len());
        for name in names {
            if let Some(id) = ids.get(name) {
                result.push(*id);
                continue;
            }
            let id = max_id.checked_add(1).ok_or_else(|| {
                CatalogError::Invalid(format!("metric {metric} has too many incoming names"))
            })?;
            sqlx::query("INSERT INTO incoming_names (metric_id, name_id, name) VALUES (?, ?, ?)")
                .bind(metric)
                .bind(i64::from(id))
                .bind(name)
                .execute(&mut *tx)
                .await?;
            max_id = id;
            ids.insert(name.clone(), id);
            result.push(id);
            created += 1;
        }
        tx.commit().await?;
        if created > 0 {
            self.invalidate_schema(tenant);
            tracing::debug!(tenant, metric, created, "incoming names registered");
        }
        lock(&self.incoming_cache).insert(metric, IncomingIds { tenant, ids });
        Ok(result)
    }

    async fn cold_manifest(
        &self,
        tenant: TenantId,
        metric: MetricId,
    ) -> Result<ColdManifest, CatalogError> {
        self.cold_manifest_impl(tenant, metric).await
    }

    async fn commit_compaction(&self, commit: CompactionCommit) -> Result<(), CatalogError> {
        self.commit_compaction_impl(commit).await
    }

    async fn cold_paths(&self) -> Result<HashSet<String>, CatalogError> {
        self.cold_paths_impl().await
    }

    async fn retired_cold_files(
        &self,
        retired_before_ms: i64,
    ) -> Result<Vec<ColdFile>, CatalogError> {
        self.retired_cold_files_impl(retired_before_ms).await
    }

    async fn forget_cold_files(&self, ids: &[i64]) -> Result<(), CatalogError> {
        self.forget_cold_files_impl(ids).await
    }

    async fn retire_cold_files(
        &self,
        tenant: TenantId,
        metric: MetricId,
        before_day_ms: i64,
    ) -> Result<u64, CatalogError> {
        self.retire_cold_files_impl(tenant, metric, before_day_ms)
            .await
    }

    async fn metrics_to_purge(
        &self,
        deleted_before_ms: i64,
    ) -> Result<Vec<DeletedMetric>, CatalogError> {
        self.metrics_to_purge_impl(deleted_before_ms).await
    }

    async fn mark_metric_purged(
        &self,
        tenant: TenantId,
        metric: MetricId,
    ) -> Result<u64, CatalogError> {
        self.mark_metric_purged_impl(tenant, metric).await
    }

    async fn record_compaction(&self, record: CompactionRecord) -> Result<(), CatalogError> {
        self.record_compaction_impl(record).await
    }

    async fn last_compaction(
        &self,
        tenant: TenantId,
    ) -> Result<Option<CompactionRecord>, CatalogError> {
        self.last_compaction_impl(tenant).await
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
                if Self::metric_tenant(&mut tx, delta.metric).await? != Some(tenant) {
                    return Err(CatalogError::NotFound(format!(
                        "metric {} not found",
                        delta.metric
                    )));
                }
                checked.insert(delta.metric);
            }
            let row = sqlx::query(
                "SELECT count, first_seen_ms, last_seen_ms, kinds, samples FROM incoming_names \
                 WHERE metric_id = ? AND name_id = ?",
            )
            .bind(delta.metric)
            .bind(i64::from(delta.name))
            .fetch_optional(&mut *tx)
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
            for sample in &delta.samples {
                if samples.len() >= MAX_INCOMING_SAMPLES {
                    break;
                }
                let sample = validate::truncate_sample(sample);
                if !samples.contains(&sample) {
                    samples.push(sample);
                }
            }
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
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.invalidate_schema(tenant);
        Ok(())
    }
}

/// Rows already stored were hashed with the old series keys (or the old names of a key field),
/// so a seek by the new hash could miss them. Only matters once the metric has data.
async fn mark_series_hashes_stale_if_data(
    conn: &mut SqliteConnection,
    metric_id: MetricId,
) -> Result<(), CatalogError> {
    sqlx::query(
        "UPDATE metrics SET series_hashes_exact = 0 WHERE id = ? \
         AND EXISTS (SELECT 1 FROM incoming_names WHERE metric_id = ?)",
    )
    .bind(metric_id)
    .bind(metric_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A name change of a series-key field changes which value the write path hashes.
async fn mark_series_hashes_stale_if_key_field(
    conn: &mut SqliteConnection,
    metric_id: MetricId,
    field_id: FieldId,
) -> Result<(), CatalogError> {
    let keys: String = sqlx::query_scalar("SELECT series_keys FROM metrics WHERE id = ?")
        .bind(metric_id)
        .fetch_one(&mut *conn)
        .await?;
    let keys: Vec<FieldId> = serde_json::from_str(&keys)?;
    if keys.contains(&field_id) {
        mark_series_hashes_stale_if_data(conn, metric_id).await?;
        bump_series_generation(conn, metric_id).await?;
    }
    Ok(())
}

/// Any change to what the write path hashes into the series starts a new generation, so cold
/// files hashed under the old one are no longer pruned by series (see migration 0003).
async fn bump_series_generation(
    conn: &mut SqliteConnection,
    metric_id: MetricId,
) -> Result<(), CatalogError> {
    sqlx::query("UPDATE metrics SET series_generation = series_generation + 1 WHERE id = ?")
        .bind(metric_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
