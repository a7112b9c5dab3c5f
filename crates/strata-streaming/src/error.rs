//! Errors of streaming SQL, each naming what the caller can change.

use strata_query::QueryError;

#[derive(Debug, thiserror::Error)]
pub enum StreamingError {
    /// The SQL does not parse or plan, or is not allowed (the planner's message).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The tenant already runs as many live queries as it may.
    #[error("this tenant already runs {limit} live queries (the limit); close one first")]
    TooManyLiveQueries { limit: usize },
    #[error("live query failed: {0}")]
    Internal(String),
}
