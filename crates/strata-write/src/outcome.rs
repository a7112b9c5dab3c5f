//! What a write answers: the accepted count and each rejected event, or the reason nothing was
//! stored.

use strata_catalog::CatalogError;
use strata_storage::StorageError;

/// One rejected event: its index in the body, the pipeline stage that refused it and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub index: usize,
    pub stage: &'static str,
    pub reason: String,
    /// The event as sent, capped at `Limits::error_payload_bytes`, for the error log.
    pub payload: String,
    pub metric: Option<String>,
}

/// The answer to a write whose body could be split into events. Everything counted in
/// `accepted` (and every rejection, in the error log) is durable when this is returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub accepted: usize,
    /// In body order.
    pub rejections: Vec<Rejection>,
}

/// Why a write stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The body cannot be split into events (malformed JSON, too many events, too deep). The
    /// message names the problem and its byte offset; the body is in the error log.
    #[error("{0}")]
    Body(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A broken internal promise (for example the catalog answering the wrong number of ids).
    #[error("internal write-path error: {0}")]
    Internal(String),
}
