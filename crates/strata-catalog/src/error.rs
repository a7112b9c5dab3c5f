use thiserror::Error;

/// Every catalog failure. The first three are the caller's fault and carry a message meant for
/// the end user; `Internal` is a storage failure whose details go to the log, not to the user.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The named thing does not exist (for this tenant).
    #[error("{0}")]
    NotFound(String),
    /// A name or object is already taken; the message names the name and its owner.
    #[error("{0}")]
    Conflict(String),
    /// The input breaks a rule: bad name, reserved name, bad pattern, over a limit.
    #[error("{0}")]
    Invalid(String),
    /// Storage failure. Never includes file paths.
    #[error("{0}")]
    Internal(String),
}

impl From<sqlx::Error> for CatalogError {
    fn from(err: sqlx::Error) -> Self {
        if let Some(db) = err.as_database_error() {
            // The in-process write lock makes this unreachable for a single server; another
            // process writing the same file can still race us, and the UNIQUE indexes win.
            if db.is_unique_violation() {
                tracing::info!(error = %db, "catalog unique constraint rejected a change");
                return CatalogError::Conflict(
                    "a name in this change was taken by a concurrent change; retry".to_string(),
                );
            }
        }
        tracing::error!(error = %err, "catalog storage failure");
        CatalogError::Internal("catalog storage failure".to_string())
    }
}

impl From<serde_json::Error> for CatalogError {
    fn from(err: serde_json::Error) -> Self {
        tracing::error!(error = %err, "catalog holds a value that does not decode");
        CatalogError::Internal("catalog holds a value that does not decode".to_string())
    }
}
