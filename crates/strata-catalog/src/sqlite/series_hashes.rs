//! Keeping series hashes honest: a change to what the write path hashes into a row's series
//! marks older rows' hashes stale and starts a new series generation.

use sqlx::sqlite::SqliteConnection;
use strata_core::{FieldId, MetricId};

use crate::CatalogError;

/// Rows already stored were hashed with the old series keys (or the old names of a key field),
/// so a seek by the new hash could miss them. Only matters once the metric has data.
pub(super) async fn mark_series_hashes_stale_if_data(
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
pub(super) async fn mark_series_hashes_stale_if_key_field(
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
pub(super) async fn bump_series_generation(
    conn: &mut SqliteConnection,
    metric_id: MetricId,
) -> Result<(), CatalogError> {
    sqlx::query("UPDATE metrics SET series_generation = series_generation + 1 WHERE id = ?")
        .bind(metric_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
