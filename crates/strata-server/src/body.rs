//! Request bodies with explicit size limits and errors that name the problem, always as
//! `{"error": ...}` rather than axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub async fn read_limited(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let body = req.into_body();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(err) => {
            // http-body's LengthLimitError is the only failure that means "too big".
            let too_big = std::error::Error::source(&err)
                .map(|s| s.is::<http_body_util::LengthLimitError>())
                .unwrap_or(false)
                || err.to_string().contains("length limit");
            if too_big {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is larger than the limit of {limit} bytes"),
                ))
            } else {
                Err(ApiError::bad_request(format!(
                    "could not read request body: {err}"
                )))
            }
        }
    }
}

/// A JSON body for the admin and schema endpoints: limited to `Limits::admin_body_bytes`,
/// unknown keys rejected by the target type's `deny_unknown_fields`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_limited(req, state.limits().admin_body_bytes).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; expected a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))
}
