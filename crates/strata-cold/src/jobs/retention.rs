//! Cold retention: the files of days past a metric's retention (the tenant's cold retention, or
//! the metric's own `retention_days` when shorter) are retired, and deleted after the
//! retired-file grace period like any retired file. Queries stop returning those days at once,
//! from the same floor ([`crate::retention_floor_ms`]).

use strata_core::now_ms;

use super::JobState;
use crate::{retention_floor_ms, ColdError};

/// Retires the files below each metric's retention floor; answers how many.
pub(super) async fn expire_cold_files(state: &JobState) -> Result<u64, ColdError> {
    let mut expired = 0;
    for tenant in state.catalog.tenants.list_tenants().await? {
        let schema = state.catalog.schemas.schema(tenant.id).await?;
        for metric in &schema.metrics {
            // The tenant's cold retention, or the metric's own when shorter.
            let days = schema.retention_days_of(metric);
            let Some(floor) = retention_floor_ms(now_ms(), days) else {
                continue;
            };
            let retired = state
                .catalog
                .manifest
                .retire_cold_files(tenant.id, metric.id, floor)
                .await?;
            if retired > 0 {
                tracing::info!(
                    tenant = %tenant.name,
                    metric = %metric.name,
                    files = retired,
                    "cold files past retention retired"
                );
            }
            expired += retired;
        }
    }
    Ok(expired)
}
