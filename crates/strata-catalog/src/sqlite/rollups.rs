//! [`RollupStore`] for SQLite: definitions, versions, watermarks and buckets.

use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::Row;
use strata_core::{now_ms, TenantId};

use super::names::metric_owner;
use super::{require_tenant, SqliteCatalog};
use crate::rollups::{
    Backfill, RollupCommit, RollupRow, RollupVersion, VersionBuckets, MAX_ROLLUPS_PER_TENANT,
};
use crate::{CatalogError, RollupStore};

const COLUMNS: &str = "id, tenant_id, name, served_version, served_sql, served_schema, \
     served_fingerprint, pending_version, pending_sql, pending_schema, pending_fingerprint, retired_version, backfill_seq, \
     backfill_from_ms, backfill_to_ms, backfill_cursor_ms, applied_seq, error, created_at_ms";

#[async_trait::async_trait]
impl RollupStore for SqliteCatalog {
    async fn create_rollup(
        &self,
        tenant: TenantId,
        name: &str,
        version: RollupVersion,
        backfill: Backfill,
    ) -> Result<RollupRow, CatalogError> {
        crate::validate::name("rollup", name)?;
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        require_tenant(&mut tx, tenant).await?;
        if metric_owner(&mut tx, tenant, name).await?.is_some() {
            return Err(CatalogError::Conflict(format!(
                "{name:?} already names a metric; a rollup needs a name of its own"
            )));
        }
        if rollup_named(&mut tx, tenant, name).await?.is_some() {
            return Err(CatalogError::Conflict(format!(
                "rollup {name:?} already exists"
            )));
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rollups WHERE tenant_id = ?")
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
        if u64::try_from(count).unwrap_or(0) >= MAX_ROLLUPS_PER_TENANT {
            return Err(CatalogError::Invalid(format!(
                "a tenant may have at most {MAX_ROLLUPS_PER_TENANT} rollups"
            )));
        }
        sqlx::query(
            "INSERT INTO rollups (tenant_id, name, pending_version, pending_sql, pending_schema, \
             pending_fingerprint, backfill_seq, backfill_from_ms, backfill_to_ms, \
             backfill_cursor_ms, applied_seq, created_at_ms) \
             VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(name)
        .bind(&version.sql)
        .bind(&version.schema)
        .bind(&version.source_fingerprint)
        .bind(seq_to_db(backfill.seq))
        .bind(backfill.from_ms)
        .bind(backfill.to_ms)
        .bind(backfill.cursor_ms)
        .bind(seq_to_db(backfill.seq))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let row = rollup_named(&mut tx, tenant, name)
            .await?
            .ok_or_else(|| CatalogError::Internal("a new rollup vanished".to_string()))?;
        tx.commit().await?;
        Ok(row)
    }

    async fn rollup(&self, tenant: TenantId, name: &str) -> Result<RollupRow, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        rollup_named(&mut conn, tenant, name)
            .await?
            .ok_or_else(|| not_found(name))
    }

    async fn rollups(&self, tenant: TenantId) -> Result<Vec<RollupRow>, CatalogError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM rollups WHERE tenant_id = ? ORDER BY name"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rollup_row).collect()
    }

    async fn all_rollups(&self) -> Result<Vec<RollupRow>, CatalogError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM rollups ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rollup_row).collect()
    }

    async fn restart_rollup(
        &self,
        tenant: TenantId,
        name: &str,
        version: RollupVersion,
        backfill: Backfill,
    ) -> Result<RollupRow, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current = rollup_named(&mut tx, tenant, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let latest = [
            current.served.as_ref().map(|v| v.version),
            current.pending.as_ref().map(|(v, _)| v.version),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
        if let Some((pending, _)) = &current.pending {
            delete_version(&mut tx, current.id, pending.version).await?;
        }
        sqlx::query(
            "UPDATE rollups SET pending_version = ?, pending_sql = ?, pending_schema = ?, \
             pending_fingerprint = ?, backfill_seq = ?, backfill_from_ms = ?, backfill_to_ms = ?, backfill_cursor_ms = ?, \
             applied_seq = ?, error = NULL WHERE id = ?",
        )
        .bind(latest + 1)
        .bind(&version.sql)
        .bind(&version.schema)
        .bind(&version.source_fingerprint)
        .bind(seq_to_db(backfill.seq))
        .bind(backfill.from_ms)
        .bind(backfill.to_ms)
        .bind(backfill.cursor_ms)
        .bind(seq_to_db(backfill.seq))
        .bind(current.id)
        .execute(&mut *tx)
        .await?;
        let row = rollup_named(&mut tx, tenant, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        tx.commit().await?;
        Ok(row)
    }

    async fn delete_rollup(&self, tenant: TenantId, name: &str) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current = rollup_named(&mut tx, tenant, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        sqlx::query("DELETE FROM rollup_buckets WHERE rollup_id = ?")
            .bind(current.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM rollups WHERE id = ?")
            .bind(current.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn commit_rollup(&self, commit: RollupCommit) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let Some(current) = rollup_by_id(&mut tx, commit.rollup).await? else {
            return Err(CatalogError::NotFound(format!(
                "rollup {} no longer exists",
                commit.rollup
            )));
        };
        let live = |version: i64| {
            current.served.as_ref().map(|v| v.version) == Some(version)
                || current.pending.as_ref().map(|(v, _)| v.version) == Some(version)
        };
        if let Some(stale) = commit.versions.iter().find(|part| !live(part.version)) {
            return Err(CatalogError::NotFound(format!(
                "rollup {} version {} is no longer maintained",
                commit.rollup, stale.version
            )));
        }
        for part in &commit.versions {
            write_buckets(&mut tx, commit.rollup, part).await?;
        }
        if let Some(seq) = commit.applied_seq {
            sqlx::query("UPDATE rollups SET applied_seq = MAX(applied_seq, ?) WHERE id = ?")
                .bind(seq_to_db(seq))
                .bind(commit.rollup)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(cursor) = commit.backfill_cursor_ms {
            sqlx::query("UPDATE rollups SET backfill_cursor_ms = ? WHERE id = ?")
                .bind(cursor)
                .bind(commit.rollup)
                .execute(&mut *tx)
                .await?;
        }
        if commit.complete {
            complete_pending(&mut tx, &current).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_rollup_error(
        &self,
        rollup: i64,
        error: Option<String>,
    ) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query("UPDATE rollups SET error = ? WHERE id = ?")
            .bind(error)
            .bind(rollup)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn rollup_buckets(
        &self,
        rollup: i64,
        version: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, CatalogError> {
        let rows = sqlx::query(
            "SELECT bucket_ms, rows FROM rollup_buckets WHERE rollup_id = ? AND version = ? \
             AND bucket_ms >= ? AND bucket_ms < ? ORDER BY bucket_ms",
        )
        .bind(rollup)
        .bind(version)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("bucket_ms")?, row.try_get("rows")?)))
            .collect()
    }
}

fn not_found(name: &str) -> CatalogError {
    CatalogError::NotFound(format!("no rollup named {name:?}"))
}

/// Sequence numbers fit SQLite's signed integers for 9.2e18 writes.
fn seq_to_db(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

async fn write_buckets(
    conn: &mut SqliteConnection,
    rollup: i64,
    part: &VersionBuckets,
) -> Result<(), CatalogError> {
    for (start_ms, end_ms) in &part.clear {
        sqlx::query(
            "DELETE FROM rollup_buckets WHERE rollup_id = ? AND version = ? \
             AND bucket_ms >= ? AND bucket_ms < ?",
        )
        .bind(rollup)
        .bind(part.version)
        .bind(start_ms)
        .bind(end_ms)
        .execute(&mut *conn)
        .await?;
    }
    for (bucket_ms, rows) in &part.buckets {
        sqlx::query(
            "INSERT OR REPLACE INTO rollup_buckets (rollup_id, version, bucket_ms, rows) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(rollup)
        .bind(part.version)
        .bind(bucket_ms)
        .bind(rows)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The pending version becomes the served one and the served one is retired; the buckets of
/// the version retired before go.
async fn complete_pending(
    conn: &mut SqliteConnection,
    current: &RollupRow,
) -> Result<(), CatalogError> {
    if let Some(retired) = current.retired_version {
        delete_version(conn, current.id, retired).await?;
    }
    sqlx::query(
        "UPDATE rollups SET retired_version = served_version, \
         served_version = pending_version, served_sql = pending_sql, \
         served_schema = pending_schema, served_fingerprint = pending_fingerprint, \
         pending_version = NULL, pending_sql = NULL, pending_schema = NULL, \
         pending_fingerprint = NULL, backfill_seq = NULL, backfill_from_ms = NULL, \
         backfill_to_ms = NULL, backfill_cursor_ms = NULL WHERE id = ?",
    )
    .bind(current.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn delete_version(
    conn: &mut SqliteConnection,
    rollup: i64,
    version: i64,
) -> Result<(), CatalogError> {
    sqlx::query("DELETE FROM rollup_buckets WHERE rollup_id = ? AND version = ?")
        .bind(rollup)
        .bind(version)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The tenant's rollup of that name, if any.
pub(super) async fn rollup_named(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    name: &str,
) -> Result<Option<RollupRow>, CatalogError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM rollups WHERE tenant_id = ? AND name = ?"
    ))
    .bind(tenant)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(rollup_row).transpose()
}

async fn rollup_by_id(
    conn: &mut SqliteConnection,
    id: i64,
) -> Result<Option<RollupRow>, CatalogError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM rollups WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(rollup_row).transpose()
}

fn rollup_row(row: &SqliteRow) -> Result<RollupRow, CatalogError> {
    let served = match row.try_get::<Option<i64>, _>("served_version")? {
        Some(version) => Some(RollupVersion {
            version,
            sql: row.try_get("served_sql")?,
            schema: row.try_get("served_schema")?,
            source_fingerprint: row
                .try_get::<Option<String>, _>("served_fingerprint")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    let pending = match row.try_get::<Option<i64>, _>("pending_version")? {
        Some(version) => Some((
            RollupVersion {
                version,
                sql: row.try_get("pending_sql")?,
                schema: row.try_get("pending_schema")?,
                source_fingerprint: row
                    .try_get::<Option<String>, _>("pending_fingerprint")?
                    .unwrap_or_default(),
            },
            Backfill {
                seq: u64::try_from(row.try_get::<i64, _>("backfill_seq")?).unwrap_or(0),
                from_ms: row.try_get("backfill_from_ms")?,
                to_ms: row.try_get("backfill_to_ms")?,
                cursor_ms: row.try_get("backfill_cursor_ms")?,
            },
        )),
        None => None,
    };
    Ok(RollupRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        served,
        pending,
        retired_version: row.try_get("retired_version")?,
        applied_seq: u64::try_from(row.try_get::<i64, _>("applied_seq")?).unwrap_or(0),
        error: row.try_get("error")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}
