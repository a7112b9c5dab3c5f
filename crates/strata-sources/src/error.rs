//! What the source service answers when a call fails.

use strata_catalog::CatalogError;

/// Every failure of the source service's calls. `Invalid` and `NotFound` carry a message for
/// the end user; `Internal` details go to the log.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A configuration that cannot work; the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
}

impl From<CatalogError> for SourceError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NotFound(m) => SourceError::NotFound(m),
            CatalogError::Invalid(m) | CatalogError::Conflict(m) => SourceError::Invalid(m),
            CatalogError::Internal(m) => SourceError::Internal(m),
        }
    }
}
