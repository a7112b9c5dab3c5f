use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use strata_catalog::CatalogError;

/// Every error the API returns: a status and a message naming what was wrong, sent as
/// `{"error": "<message>"}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, "{}", self.message);
        }
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::NotFound(m) => ApiError::not_found(m),
            CatalogError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            CatalogError::Invalid(m) => ApiError::bad_request(m),
            CatalogError::Internal(m) => {
                tracing::error!("catalog failure: {m}");
                ApiError::internal("internal catalog error; see the server log")
            }
        }
    }
}

impl From<strata_storage::StorageError> for ApiError {
    fn from(err: strata_storage::StorageError) -> Self {
        tracing::error!("hot tier failure: {err}");
        ApiError::internal("internal storage error; nothing was acknowledged; see the server log")
    }
}
