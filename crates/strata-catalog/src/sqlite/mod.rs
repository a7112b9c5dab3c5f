//! The embedded catalog: one SQLite file (WAL, foreign keys, FULL sync) per data directory.
//!
//! Every mutation runs under one in-process async mutex and a `BEGIN IMMEDIATE` transaction, so
//! history versions are dense and ordered and checks see the state they change. UNIQUE indexes
//! back the name rules in case another process writes the same file.
//!
//! This module holds the type, opening, the pool, migrations and the helpers every concern
//! shares; each role trait is implemented in the file of its concern: `tenants.rs` (with
//! `keys.rs`), `settings.rs`, `schema.rs` (with `schema_load.rs`, `metric_changes.rs`,
//! `metric_merge.rs`, `field_changes.rs`, `names.rs`, `series_hashes.rs`), `incoming.rs`, `manifest.rs`, `alerts.rs` (with `outbox.rs`), `rollups.rs` and `sources.rs`.

mod alerts;
mod field_changes;
mod incoming;
mod keys;
mod manifest;
mod metric_changes;
mod metric_merge;
mod names;
mod outbox;
mod profiles;
mod rollups;
mod schema;
mod schema_load;
mod series_hashes;
mod settings;
mod sources;
mod tenants;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use strata_core::now_ms;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use strata_core::{MetricId, TenantId};

use crate::CatalogError;

/// Ordered schema migrations; a version is applied once and recorded.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_initial.sql")),
    (2, include_str!("../migrations/0002_cold_tier.sql")),
    (3, include_str!("../migrations/0003_retention.sql")),
    (4, include_str!("../migrations/0004_alerts.sql")),
    (5, include_str!("../migrations/0005_rollups.sql")),
    (6, include_str!("../migrations/0006_metric_retention.sql")),
    (7, include_str!("../migrations/0007_profiles.sql")),
    (8, include_str!("../migrations/0008_timestamp_unit.sql")),
    (9, include_str!("../migrations/0009_merge_and_derived.sql")),
    (10, include_str!("../migrations/0010_query_usage.sql")),
    (11, include_str!("../migrations/0011_conversions.sql")),
    (12, include_str!("../migrations/0012_hidden_since.sql")),
    (13, include_str!("../migrations/0013_mqtt_topics.sql")),
    (14, include_str!("../migrations/0014_sources.sql")),
];

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Readers run in parallel under WAL; writes are serialized anyway.
const MAX_CONNECTIONS: u32 = 4;

pub struct SqliteCatalog {
    pool: SqlitePool,
    /// Serializes every mutation in this process.
    write_lock: tokio::sync::Mutex<()>,
    schema_cache: Mutex<HashMap<TenantId, schema::SchemaSlot>>,
    auth_cache: Mutex<keys::AuthCache>,
    incoming_cache: Mutex<HashMap<MetricId, incoming::IncomingIds>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps are updated by single inserts/removes, so a panic elsewhere cannot leave
    // them half-changed; keep serving rather than propagate the poison.
    m.lock().unwrap_or_else(PoisonError::into_inner)
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

/// Names as they appear in history texts: `"a", "b"`.
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

async fn require_tenant(conn: &mut SqliteConnection, tenant: TenantId) -> Result<(), CatalogError> {
    let found = sqlx::query("SELECT 1 FROM tenants WHERE id = ?")
        .bind(tenant)
        .fetch_optional(&mut *conn)
        .await?;
    found.map(|_| ()).ok_or_else(|| tenant_not_found(tenant))
}

/// The tenant owning `metric`, deleted or not; `None` if no such metric exists.
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
            auth_cache: Mutex::new(keys::AuthCache::default()),
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
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM catalog_migrations")
            .fetch_all(&mut *tx)
            .await?;
        let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if let Some(unknown) = applied
            .iter()
            .find(|v| !MIGRATIONS.iter().any(|(known, _)| known == *v))
        {
            return Err(CatalogError::Internal(format!(
                "the catalog has schema version {unknown}, which this build does not know (it knows up to {latest})"
            )));
        }
        // Every known version not recorded yet, in order, rather than those above the highest
        // recorded: two lines of work can each add a version, and a catalog migrated with the
        // higher one (8, timestamp units) must still receive the lower (7, profiles).
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| !applied.contains(v)) {
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

    /// Must be called after every committed change that shows in [`crate::TenantSchema`].
    fn invalidate_schema(&self, tenant: TenantId) {
        let mut cache = lock(&self.schema_cache);
        let slot = cache.entry(tenant).or_default();
        slot.generation += 1;
        slot.snapshot = None;
    }
}
