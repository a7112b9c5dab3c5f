//! Errors of streaming SQL, each naming what the caller can change.

use strata_catalog::CatalogError;
use strata_query::QueryError;

#[derive(Debug, thiserror::Error)]
pub enum StreamingError {
    /// The SQL does not parse or plan, or is not allowed (the planner's message).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The tenant already runs as many live queries as it may.
    #[error("this tenant already runs {limit} live queries (the limit); close one first")]
    TooManyLiveQueries { limit: usize },
    /// A rollup's SQL is not a time-bucketed aggregate of one metric (names the part).
    #[error("invalid rollup: {0}")]
    InvalidRollup(String),
    /// The catalog refused or failed (unknown rollup, a taken name, the per-tenant limit).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The rollup's source metric changed so that its stored rows no longer fit; maintenance
    /// rebuilds it.
    #[error("the rollup's source changed: {0}")]
    SourceChanged(String),
    /// A synchronous request waited longer than it may.
    #[error("{0}")]
    Timeout(String),
    #[error("live query failed: {0}")]
    Internal(String),
}

impl From<datafusion::error::DataFusionError> for StreamingError {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        StreamingError::Query(QueryError::from(error))
    }
}

impl From<datafusion::arrow::error::ArrowError> for StreamingError {
    fn from(error: datafusion::arrow::error::ArrowError) -> Self {
        StreamingError::Internal(format!("arrow: {error}"))
    }
}
