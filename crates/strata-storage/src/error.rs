use std::sync::Arc;

use thiserror::Error;

/// Errors of the storage layer. Messages never carry file system paths: they may reach end
/// users, and server paths are not theirs to see. Path detail goes to the tracing log instead.
///
/// `Clone` because one failed group commit answers every caller that shared it.
#[derive(Debug, Clone, Error)]
pub enum StorageError {
    #[error("storage I/O error while {context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("storage engine error while {context}")]
    Engine {
        context: &'static str,
        #[source]
        source: Arc<fjall::Error>,
    },
    #[error("the hot-tier data directory is already open in another process")]
    Locked,
    #[error("stored data is corrupt: {what}")]
    Corrupt { what: String },
    #[error("the hot store is closed")]
    Closed,
    #[error("invalid storage request: {reason}")]
    InvalidRequest { reason: String },
}

impl StorageError {
    /// Wraps a fjall error, logging its full detail (which may include paths) server-side only.
    pub(crate) fn engine(context: &'static str, source: fjall::Error) -> Self {
        tracing::error!(context, error = ?source, "hot-tier storage engine error");
        match source {
            fjall::Error::Locked => StorageError::Locked,
            fjall::Error::Io(io) => StorageError::Io {
                context,
                source: Arc::new(io),
            },
            other => StorageError::Engine {
                context,
                source: Arc::new(other),
            },
        }
    }
}
