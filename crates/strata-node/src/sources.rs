//! The sources (issue 19): started from the catalog once the writer and the event-stream
//! subscribers exist, shown in `strata.sources` through the query engine's listing slot, and
//! stopped at shutdown before the hot tier closes.

use std::sync::Arc;

use strata_catalog::DynCatalog;
use strata_core::TenantId;
use strata_query::system_sources::{SourceListing, SourceRow};
use strata_query::QueryEngine;
use strata_sources::Sources;
use strata_write::Writer;

use crate::ServerError;

/// Starts every stored source and gives the query engine their status.
pub(crate) async fn start(
    catalog: &DynCatalog,
    writer: &Arc<Writer>,
    query: &QueryEngine,
) -> Result<Sources, ServerError> {
    let sources = Sources::start(catalog.clone(), catalog.clone(), writer.clone())
        .await
        .map_err(|e| ServerError::Sources(e.to_string()))?;
    query.set_source_listing(Arc::new(Listing(sources.clone())));
    Ok(sources)
}

/// `strata.sources`'s rows, from the supervisor.
struct Listing(Sources);

#[async_trait::async_trait]
impl SourceListing for Listing {
    async fn tenant_sources(&self, tenant: TenantId) -> Result<Vec<SourceRow>, String> {
        let sources = self.0.list(tenant).await.map_err(|e| e.to_string())?;
        Ok(sources
            .into_iter()
            .map(|info| SourceRow {
                id: info.id,
                kind: info.kind,
                status: info.status.state.as_str().to_string(),
                messages: info.status.messages,
                accepted: info.status.accepted,
                rejected: info.status.rejected,
                lag: info.status.lag,
                last_error: info.status.last_error,
                created_ms: info.created_at_ms,
            })
            .collect())
    }
}
