//! The cold manifest: live and retired files, watermarks, purges of deleted metrics and the
//! compaction log.

use std::collections::HashSet;

use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::Row;
use strata_core::{MetricId, TenantId};

use super::{metric_tenant, now_ms, SqliteCatalog};
use crate::manifest::{
    ColdColumn, ColdFile, ColdManifest, CompactionCommit, CompactionRecord, DeletedMetric,
    NewColdFile, Watermark,
};
use crate::{CatalogError, ColdManifestStore};

const FILE_COLUMNS: &str = "id, tenant_id, metric_id, day_ms, path, row_count, size_bytes, \
                            min_ts_ms, max_ts_ms, columns, series_generation, created_at_ms";

fn to_u64(value: i64, what: &str) -> Result<u64, CatalogError> {
    u64::try_from(value).map_err(|_| CatalogError::Internal(format!("negative {what} in catalog")))
}

fn to_i64(value: u64, what: &str) -> Result<i64, CatalogError> {
    i64::try_from(value).map_err(|_| CatalogError::Invalid(format!("{what} {value} is too large")))
}

fn file_from_row(row: &SqliteRow) -> Result<ColdFile, CatalogError> {
    let columns: String = row.try_get("columns")?;
    let columns: Vec<ColdColumn> = serde_json::from_str(&columns)?;
    Ok(ColdFile {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant_id")?,
        metric: row.try_get("metric_id")?,
        day_ms: row.try_get("day_ms")?,
        path: row.try_get("path")?,
        rows: to_u64(row.try_get("row_count")?, "row count")?,
        bytes: to_u64(row.try_get("size_bytes")?, "file size")?,
        min_ts_ms: row.try_get("min_ts_ms")?,
        max_ts_ms: row.try_get("max_ts_ms")?,
        columns,
        series_generation: row.try_get("series_generation")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn record_from_row(row: &SqliteRow) -> Result<CompactionRecord, CatalogError> {
    Ok(CompactionRecord {
        tenant: row.try_get("tenant_id")?,
        started_at_ms: row.try_get("started_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
        outcome: row.try_get("outcome")?,
        files_written: to_u64(row.try_get("files_written")?, "file count")?,
        rows: to_u64(row.try_get("row_count")?, "row count")?,
        watermark_ms: row.try_get("watermark_ms")?,
        message: row.try_get("message")?,
    })
}

#[async_trait::async_trait]
impl ColdManifestStore for SqliteCatalog {
    async fn cold_manifest(
        &self,
        tenant: TenantId,
        metric: MetricId,
    ) -> Result<ColdManifest, CatalogError> {
        // One read transaction: the files and the watermark must be from the same commit.
        let mut tx = self.pool.begin().await?;
        let watermark = sqlx::query(
            "SELECT watermark_ms, compacted_seq FROM cold_watermarks \
             WHERE metric_id = ? AND tenant_id = ?",
        )
        .bind(metric)
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| -> Result<Watermark, CatalogError> {
            Ok(Watermark {
                watermark_ms: row.try_get("watermark_ms")?,
                compacted_seq: to_u64(row.try_get("compacted_seq")?, "sequence number")?,
            })
        })
        .transpose()?;
        let rows = sqlx::query(&format!(
            "SELECT {FILE_COLUMNS} FROM cold_files \
             WHERE metric_id = ? AND tenant_id = ? AND retired_at_ms IS NULL \
             ORDER BY day_ms, min_ts_ms, id"
        ))
        .bind(metric)
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let files = rows.iter().map(file_from_row).collect::<Result<_, _>>()?;
        Ok(ColdManifest { watermark, files })
    }

    async fn commit_compaction(&self, commit: CompactionCommit) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if metric_tenant(&mut tx, commit.metric).await? != Some(commit.tenant) {
            return Err(CatalogError::NotFound(format!(
                "metric {} not found",
                commit.metric
            )));
        }
        if let Some(new) = commit.watermark {
            advance_watermark(&mut tx, commit.tenant, commit.metric, new).await?;
        }
        let now = now_ms();
        for id in &commit.retire {
            retire_live_file(&mut tx, commit.metric, *id, now).await?;
        }
        for file in &commit.add {
            insert_file(&mut tx, commit.tenant, commit.metric, file, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn cold_paths(&self) -> Result<HashSet<String>, CatalogError> {
        let paths: Vec<String> = sqlx::query_scalar("SELECT path FROM cold_files")
            .fetch_all(&self.pool)
            .await?;
        Ok(paths.into_iter().collect())
    }

    async fn retired_cold_files(
        &self,
        retired_before_ms: i64,
    ) -> Result<Vec<ColdFile>, CatalogError> {
        let rows = sqlx::query(&format!(
            "SELECT {FILE_COLUMNS} FROM cold_files \
             WHERE retired_at_ms IS NOT NULL AND retired_at_ms < ? ORDER BY id"
        ))
        .bind(retired_before_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(file_from_row).collect()
    }

    async fn forget_cold_files(&self, ids: &[i64]) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for id in ids {
            sqlx::query("DELETE FROM cold_files WHERE id = ? AND retired_at_ms IS NOT NULL")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn retire_cold_files(
        &self,
        tenant: TenantId,
        metric: MetricId,
        before_day_ms: i64,
    ) -> Result<u64, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let changed = sqlx::query(
            "UPDATE cold_files SET retired_at_ms = ? \
             WHERE tenant_id = ? AND metric_id = ? AND day_ms < ? AND retired_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(tenant)
        .bind(metric)
        .bind(before_day_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed)
    }

    async fn metrics_to_purge(
        &self,
        deleted_before_ms: i64,
    ) -> Result<Vec<DeletedMetric>, CatalogError> {
        let rows = sqlx::query(
            "SELECT tenant_id, id, name, deleted_at_ms FROM metrics \
             WHERE deleted_at_ms IS NOT NULL AND deleted_at_ms <= ? AND purged_at_ms IS NULL \
             ORDER BY id",
        )
        .bind(deleted_before_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DeletedMetric {
                    tenant: row.try_get("tenant_id")?,
                    metric: row.try_get("id")?,
                    name: row.try_get("name")?,
                    deleted_at_ms: row.try_get("deleted_at_ms")?,
                })
            })
            .collect()
    }

    async fn mark_metric_purged(
        &self,
        tenant: TenantId,
        metric: MetricId,
    ) -> Result<u64, CatalogError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = now_ms();
        let marked = sqlx::query(
            "UPDATE metrics SET purged_at_ms = ? WHERE tenant_id = ? AND id = ? \
             AND deleted_at_ms IS NOT NULL AND purged_at_ms IS NULL",
        )
        .bind(now)
        .bind(tenant)
        .bind(metric)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked != 1 {
            return Err(CatalogError::NotFound(format!(
                "no deleted, unpurged metric {metric} in tenant {tenant}"
            )));
        }
        let retired = sqlx::query(
            "UPDATE cold_files SET retired_at_ms = ? \
             WHERE tenant_id = ? AND metric_id = ? AND retired_at_ms IS NULL",
        )
        .bind(now)
        .bind(tenant)
        .bind(metric)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(retired)
    }

    async fn record_compaction(&self, record: CompactionRecord) -> Result<(), CatalogError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query(
            "INSERT INTO compactions (tenant_id, started_at_ms, finished_at_ms, outcome, \
             files_written, row_count, watermark_ms, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.tenant)
        .bind(record.started_at_ms)
        .bind(record.finished_at_ms)
        .bind(&record.outcome)
        .bind(to_i64(record.files_written, "file count")?)
        .bind(to_i64(record.rows, "row count")?)
        .bind(record.watermark_ms)
        .bind(&record.message)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn last_compaction(
        &self,
        tenant: TenantId,
    ) -> Result<Option<CompactionRecord>, CatalogError> {
        let row = sqlx::query(
            "SELECT tenant_id, started_at_ms, finished_at_ms, outcome, files_written, row_count, \
             watermark_ms, message FROM compactions WHERE tenant_id = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record_from_row).transpose()
    }
}

/// Moves the metric's watermark to `new`; Conflict if that would move it backwards.
async fn advance_watermark(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric: MetricId,
    new: Watermark,
) -> Result<(), CatalogError> {
    let old =
        sqlx::query("SELECT watermark_ms, compacted_seq FROM cold_watermarks WHERE metric_id = ?")
            .bind(metric)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(old) = old {
        let old_ms: i64 = old.try_get("watermark_ms")?;
        let old_seq = to_u64(old.try_get("compacted_seq")?, "sequence number")?;
        // Moving backwards would hand rows already in files back to the hot tier.
        if new.watermark_ms < old_ms || new.compacted_seq < old_seq {
            return Err(CatalogError::Conflict(format!(
                "watermark of metric {metric} would move backwards"
            )));
        }
    }
    sqlx::query(
        "INSERT INTO cold_watermarks \
         (metric_id, tenant_id, watermark_ms, compacted_seq, updated_at_ms) \
         VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (metric_id) DO UPDATE SET watermark_ms = excluded.watermark_ms, \
         compacted_seq = excluded.compacted_seq, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(metric)
    .bind(tenant)
    .bind(new.watermark_ms)
    .bind(to_i64(new.compacted_seq, "sequence number")?)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Conflict unless the file is still live: a commit planned on a stale manifest must fail.
async fn retire_live_file(
    conn: &mut SqliteConnection,
    metric: MetricId,
    id: i64,
    now: i64,
) -> Result<(), CatalogError> {
    let changed = sqlx::query(
        "UPDATE cold_files SET retired_at_ms = ? \
         WHERE id = ? AND metric_id = ? AND retired_at_ms IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(metric)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if changed != 1 {
        // Someone else retired it first: this commit was planned on a stale manifest.
        return Err(CatalogError::Conflict(format!(
            "cold file {id} is no longer live"
        )));
    }
    Ok(())
}

async fn insert_file(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    metric: MetricId,
    file: &NewColdFile,
    now: i64,
) -> Result<(), CatalogError> {
    if file.min_ts_ms > file.max_ts_ms {
        return Err(CatalogError::Invalid(format!(
            "cold file {} has min timestamp after max",
            file.path
        )));
    }
    sqlx::query(
        "INSERT INTO cold_files (tenant_id, metric_id, day_ms, path, row_count, \
         size_bytes, min_ts_ms, max_ts_ms, columns, series_generation, created_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(tenant)
    .bind(metric)
    .bind(file.day_ms)
    .bind(&file.path)
    .bind(to_i64(file.rows, "row count")?)
    .bind(to_i64(file.bytes, "file size")?)
    .bind(file.min_ts_ms)
    .bind(file.max_ts_ms)
    .bind(serde_json::to_string(&file.columns)?)
    .bind(file.series_generation)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
