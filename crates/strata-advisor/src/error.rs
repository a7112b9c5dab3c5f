//! What asking for, applying or dismissing a suggestion can fail with.

use strata_catalog::CatalogError;

#[derive(Debug, thiserror::Error)]
pub enum AdvisorError {
    /// No current suggestion has this id (applied, dismissed, or the evidence changed).
    #[error("no current suggestion {0:?}; GET /api/v1/schema/suggestions lists them")]
    NotFound(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}
