//! What an alerting call can fail with, mapped by the front doors onto status codes.

use strata_catalog::CatalogError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AlertError {
    /// The input breaks a rule: 400 with a message naming the field.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A channel test could not deliver: 502 with the receiver's answer.
    #[error("{0}")]
    Delivery(String),
    /// Storage or engine failure; details go to the log.
    #[error("{0}")]
    Internal(String),
}

impl From<CatalogError> for AlertError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NotFound(m) => AlertError::NotFound(m),
            CatalogError::Conflict(m) => AlertError::Conflict(m),
            CatalogError::Invalid(m) => AlertError::Invalid(m),
            CatalogError::Internal(m) => AlertError::Internal(m),
        }
    }
}

pub(crate) fn invalid(field: &str, message: impl std::fmt::Display) -> AlertError {
    AlertError::Invalid(format!("{field}: {message}"))
}
