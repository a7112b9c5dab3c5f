//! The one HTTP client every client command uses: base URL, bearer key, JSON in and out, and the
//! mapping of server errors (`{"error": "..."}` + status) to [`ApiError`].

use std::fmt;
use std::time::Duration;

use reqwest::blocking::{Client as HttpClient, RequestBuilder, Response};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::cli::Connection;

/// How long one request may take. Generous because compaction and analytic queries are
/// legitimately slow; a hung server still fails eventually instead of blocking a script forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest error body echoed back to the user; servers behind proxies can answer with whole
/// HTML pages.
const MAX_ERROR_MESSAGE_CHARS: usize = 2000;

/// A failed call: either the server answered with an error status, or it could not be reached.
#[derive(Debug)]
pub enum ApiError {
    /// The server answered with a 4xx/5xx status; `message` is its `error` text.
    Status { status: StatusCode, message: String },
    /// No usable answer: connection refused, timeout, unreadable body.
    Transport { url: String, source: reqwest::Error },
}

impl ApiError {
    /// Whether re-sending the identical request may succeed: the server could not be reached,
    /// failed internally, or asked us to slow down.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Transport { source, .. } => !source.is_builder(),
            ApiError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Status { status, message } => {
                write!(f, "{message} (HTTP {})", status.as_u16())
            }
            ApiError::Transport { url, source } => {
                // reqwest's top-level message ("error sending request") hides the cause
                // (connection refused, timeout); show the whole chain.
                write!(f, "cannot reach {url}: {source}")?;
                let mut cause = std::error::Error::source(source);
                while let Some(err) = cause {
                    write!(f, ": {err}")?;
                    cause = err.source();
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ApiError {}

/// A client bound to one server and one key.
pub struct Client {
    base: Url,
    key: Option<String>,
    http: HttpClient,
}

impl Client {
    pub fn new(conn: &Connection) -> anyhow::Result<Self> {
        Self::with_key(&conn.url, conn.key.clone())
    }

    pub fn with_key(url: &str, key: Option<String>) -> anyhow::Result<Self> {
        let mut base =
            Url::parse(url).map_err(|e| anyhow::anyhow!("invalid server URL {url:?}: {e}"))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            anyhow::bail!("invalid server URL {url:?}: expected http://host:port");
        }
        // A trailing slash would otherwise produce an empty path segment before `api`.
        if let Ok(mut segments) = base.path_segments_mut() {
            segments.pop_if_empty();
        }
        let http = HttpClient::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("strata-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            base,
            key: key.filter(|k| !k.is_empty()),
            http,
        })
    }

    /// The URL of `segments` below the base URL; each segment is percent-encoded, so metric
    /// names with spaces or slashes stay one segment.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        url
    }

    pub fn get(&self, segments: &[&str]) -> Result<Value, ApiError> {
        self.call(Method::GET, segments, None)
    }

    pub fn post(&self, segments: &[&str], body: &Value) -> Result<Value, ApiError> {
        self.call(Method::POST, segments, Some(body))
    }

    pub fn put(&self, segments: &[&str], body: &Value) -> Result<Value, ApiError> {
        self.call(Method::PUT, segments, Some(body))
    }

    pub fn patch(&self, segments: &[&str], body: &Value) -> Result<Value, ApiError> {
        self.call(Method::PATCH, segments, Some(body))
    }

    pub fn delete(&self, segments: &[&str]) -> Result<Value, ApiError> {
        self.call(Method::DELETE, segments, None)
    }

    /// Sends a raw body (NDJSON for writes) and returns the JSON answer.
    pub fn post_raw(
        &self,
        url: Url,
        content_type: &str,
        body: bytes::Bytes,
    ) -> Result<Value, ApiError> {
        let request = self
            .request(Method::POST, url.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        json_answer(&url, request.send())
    }

    /// Sends a JSON body and returns the answer's text untouched (for SQL in csv format).
    pub fn post_for_text(&self, segments: &[&str], body: &Value) -> Result<String, ApiError> {
        let url = self.url(segments);
        let response = self.request(Method::POST, url.clone()).json(body).send();
        let response = checked(&url, response)?;
        response.text().map_err(|source| ApiError::Transport {
            url: url.to_string(),
            source,
        })
    }

    fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = self.url(segments);
        tracing::debug!(%method, %url, "request");
        let mut request = self.request(method, url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        json_answer(&url, request.send())
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }
}

/// Turns an error status into [`ApiError::Status`] with the server's message.
fn checked(url: &Url, response: reqwest::Result<Response>) -> Result<Response, ApiError> {
    let response = response.map_err(|source| ApiError::Transport {
        url: url.to_string(),
        source,
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().unwrap_or_default();
    Err(ApiError::Status {
        status,
        message: error_message(status, &text),
    })
}

fn json_answer(url: &Url, response: reqwest::Result<Response>) -> Result<Value, ApiError> {
    let response = checked(url, response)?;
    let text = response.text().map_err(|source| ApiError::Transport {
        url: url.to_string(),
        source,
    })?;
    if text.trim().is_empty() {
        // 204 and bare 200/201 answers carry nothing; callers print a confirmation instead.
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
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
    fn path_segments_are_encoded_and_base_path_kept() {
        let client = Client::with_key("http://127.0.0.1:1/prefix/", None).unwrap();
        let url = client.url(&["api", "v1", "schema", "metrics", "new machine/2", "fields"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/prefix/api/v1/schema/metrics/new%20machine%2F2/fields"
        );
    }

    #[test]
    fn rejects_unusable_urls() {
        assert!(Client::with_key("127.0.0.1:8686", None).is_err());
        assert!(Client::with_key("ftp://host/", None).is_err());
    }

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
        }
        .to_string();
        assert_eq!(shown, "metric exists (HTTP 409)");
    }
}
