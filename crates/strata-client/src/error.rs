//! What a call can fail with: an error answer (status and the server's message), no usable
//! answer at all, an unusable base URL, or an answer that is not the documented shape.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

/// Longest `Retry-After` honoured: a misconfigured proxy asking for an hour should not stall a
/// client that long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Largest error body kept in a message; servers behind proxies can answer with whole HTML
/// pages.
const MAX_ERROR_MESSAGE_CHARS: usize = 2000;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with a 4xx/5xx status; `message` is its `error` text.
    #[error("{message} (HTTP {})", status.as_u16())]
    Status {
        status: StatusCode,
        message: String,
        /// The server's `Retry-After` (in seconds, capped at [`MAX_RETRY_AFTER`]), if it sent
        /// one: when a retry may succeed.
        retry_after: Option<Duration>,
    },
    /// No usable answer: connection refused, timeout, unreadable body. The cause is shown in
    /// the message, whole chain included, and is not also the error's source (which would
    /// print it twice under `{:#}`).
    #[error("cannot reach {url}: {}", chain(cause))]
    Transport { url: String, cause: reqwest::Error },
    /// The base URL cannot address a Strata server.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The answer is not what the contract says.
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl ApiError {
    /// Whether re-sending the identical request may succeed: the server could not be reached,
    /// failed internally, or asked us to slow down.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Transport { cause, .. } => !cause.is_builder(),
            ApiError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::InvalidUrl { .. } | ApiError::Decode(_) => false,
        }
    }

    /// The error of an answer with status `status` and body `body`.
    pub fn from_answer(status: StatusCode, body: &str) -> ApiError {
        ApiError::Status {
            status,
            message: error_message(status, body),
            retry_after: None,
        }
    }

    /// The same error carrying the answer's `Retry-After` header (delay-seconds; the HTTP-date
    /// form is not used by Strata and reads as absent).
    pub fn with_retry_after(self, header: Option<&str>) -> ApiError {
        match self {
            ApiError::Status {
                status, message, ..
            } => ApiError::Status {
                status,
                message,
                retry_after: header
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER)),
            },
            other => other,
        }
    }

    /// How long the server asked the client to wait before retrying, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// reqwest's top-level message ("error sending request") hides the cause (connection refused,
/// timeout); the whole chain, on one line.
fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(err) = cause {
        text.push_str(&format!(": {err}"));
        cause = err.source();
    }
    text
}

/// The server's `error` text, or the body itself (shortened) when it is not the usual shape.
pub fn error_message(status: StatusCode, body: &str) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) {
        if let Some(Value::String(message)) = map.get("error") {
            return message.clone();
        }
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string();
    }
    let mut shown: String = trimmed.chars().take(MAX_ERROR_MESSAGE_CHARS).collect();
    if shown.len() < trimmed.len() {
        shown.push_str("...");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_the_error_key() {
        assert_eq!(
            error_message(StatusCode::CONFLICT, r#"{"error":"metric exists"}"#),
            "metric exists"
        );
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, ""), "Bad Gateway");
        let long = "x".repeat(5000);
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, &long).len(),
            MAX_ERROR_MESSAGE_CHARS + 3
        );
        let shown = ApiError::Status {
            status: StatusCode::CONFLICT,
            message: "metric exists".into(),
            retry_after: None,
        }
        .to_string();
        assert_eq!(shown, "metric exists (HTTP 409)");
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let busy = || ApiError::from_answer(StatusCode::SERVICE_UNAVAILABLE, "");
        assert_eq!(busy().retry_after(), None);
        let two = busy().with_retry_after(Some(" 2 "));
        assert_eq!(two.retry_after(), Some(Duration::from_secs(2)));
        let huge = busy().with_retry_after(Some("86400"));
        assert_eq!(huge.retry_after(), Some(MAX_RETRY_AFTER));
        let date = busy().with_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(date.retry_after(), None);
    }
}
