//! [`Client`]: one server's base URL and an HTTP connection pool. Two ways to call it:
//! - path segments with the key the client was made with (`get`, `post`, ...): the CLI, which
//!   runs each command with one key;
//! - the typed calls (`sql`, `write_ndjson`, `create_tenant`, ...) with the key passed per call:
//!   the benchmark and the tests, which juggle operator, admin, write and read keys.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use reqwest::blocking::{Client as HttpClient, ClientBuilder, RequestBuilder, Response};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use strata_core::Role;

use crate::{ApiError, CompactAnswer, SqlAnswer, WriteAnswer};

/// How long one CLI request may take. Generous because compaction and analytic queries are
/// legitimately slow; a hung server still fails eventually instead of blocking a script forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a live query is read at most; the server's keep-alive comments arrive every 5 s.
const LIVE_QUERY_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest accepted base URL.
const MAX_BASE_URL_BYTES: usize = 2048;
/// Longest answer echoed in a decoding error; servers may echo whole payloads.
const MAX_ECHOED_ANSWER_CHARS: usize = 1024;

/// A client bound to one server (and, for the segment calls, one key).
#[derive(Debug, Clone)]
pub struct Client {
    base: Url,
    /// `base` without a trailing slash, for paths such as `/api/v1/sql`.
    base_text: String,
    key: Option<String>,
    http: HttpClient,
}

impl Client {
    /// The CLI's client: `key` on every segment call, 600 s per request, 10 s to connect.
    pub fn new(url: &str, key: Option<String>) -> Result<Client, ApiError> {
        let builder = HttpClient::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("strata-cli/", env!("CARGO_PKG_VERSION")));
        Self::build(url, key, builder)
    }

    /// A client without a bound key whose requests each take at most `timeout`.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Client, ApiError> {
        Self::build(url, None, HttpClient::builder().timeout(timeout))
    }

    fn build(url: &str, key: Option<String>, builder: ClientBuilder) -> Result<Client, ApiError> {
        let invalid = |reason: &str| ApiError::InvalidUrl {
            url: url.chars().take(MAX_ECHOED_ANSWER_CHARS).collect(),
            reason: reason.to_string(),
        };
        if url.len() > MAX_BASE_URL_BYTES {
            return Err(invalid("longer than 2048 bytes"));
        }
        let mut base = Url::parse(url).map_err(|error| invalid(&error.to_string()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("expected http://host:port"));
        }
        // A trailing slash would otherwise produce an empty path segment before `api`.
        if let Ok(mut segments) = base.path_segments_mut() {
            segments.pop_if_empty();
        }
        let http = builder.build().map_err(|cause| ApiError::Transport {
            url: url.to_string(),
            cause,
        })?;
        Ok(Client {
            base_text: base.as_str().trim_end_matches('/').to_string(),
            base,
            key: key.filter(|k| !k.is_empty()),
            http,
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_text
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

    /// A GET with query parameters (`?sync=true`).
    pub fn get_with_query(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        let mut url = self.url(segments);
        url.query_pairs_mut().extend_pairs(query);
        tracing::debug!(%url, "request");
        let request = self.request(Method::GET, url.clone(), self.key.as_deref());
        json_answer(&url, request.send())
    }

    /// A POST with query parameters (`?stale_days=7`).
    pub fn post_with_query(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        body: &Value,
    ) -> Result<Value, ApiError> {
        let mut url = self.url(segments);
        url.query_pairs_mut().extend_pairs(query);
        tracing::debug!(%url, "request");
        let request = self.request(Method::POST, url.clone(), self.key.as_deref());
        json_answer(&url, request.json(body).send())
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
            .request(Method::POST, url.clone(), self.key.as_deref())
            .header(CONTENT_TYPE, content_type)
            .body(body);
        json_answer(&url, request.send())
    }

    /// Sends a JSON body and returns the answer's text untouched (for SQL in csv format).
    pub fn post_for_text(&self, segments: &[&str], body: &Value) -> Result<String, ApiError> {
        let url = self.url(segments);
        let request = self.request(Method::POST, url.clone(), self.key.as_deref());
        let response = checked(&url, request.json(body).send())?;
        text_of(&url, response)
    }

    /// `POST /api/v1/sql/live` with `body` (`{"sql": ..., "min_interval_ms": ...}`): calls
    /// `on_event(name, data)` for each Server-Sent Event (`snapshot`, `rows`, `error`) until
    /// the server ends the stream or `on_event` returns false.
    pub fn sql_live(
        &self,
        body: &Value,
        mut on_event: impl FnMut(&str, Value) -> bool,
    ) -> Result<(), ApiError> {
        let url = self.url(&["api", "v1", "sql", "live"]);
        let request = self
            .request(Method::POST, url.clone(), self.key.as_deref())
            .timeout(LIVE_QUERY_TIMEOUT)
            .json(body);
        let response = checked(&url, request.send())?;
        let broken = |e: std::io::Error| ApiError::Decode(format!("the live stream broke: {e}"));
        let (mut name, mut data) = (String::new(), String::new());
        for line in BufReader::new(response).lines() {
            let line = line.map_err(broken)?;
            if let Some(event) = line.strip_prefix("event:") {
                name = event.trim().to_string();
            } else if let Some(part) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(part.strip_prefix(' ').unwrap_or(part));
            } else if line.is_empty() && !data.is_empty() {
                let value = decode::<Value>(&data, "/api/v1/sql/live")?;
                data.clear();
                if !on_event(&std::mem::take(&mut name), value) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = self.url(segments);
        tracing::debug!(%method, %url, "request");
        let mut request = self.request(method, url.clone(), self.key.as_deref());
        if let Some(body) = body {
            request = request.json(body);
        }
        json_answer(&url, request.send())
    }

    fn request(&self, method: Method, url: Url, key: Option<&str>) -> RequestBuilder {
        let request = self.http.request(method, url);
        match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }
}

/// The typed calls, each with its key.
impl Client {
    /// `GET /health`.
    pub fn health(&self) -> Result<(), ApiError> {
        self.send(Method::GET, "/health", None, None, None)
            .map(|_| ())
    }

    /// `POST /api/v1/tenants` with the operator token; returns the new tenant's admin key.
    pub fn create_tenant(&self, operator_token: &str, name: &str) -> Result<String, ApiError> {
        let body = serde_json::json!({ "name": name });
        let answer: crate::TenantCreated =
            self.json(Method::POST, "/api/v1/tenants", operator_token, &body)?;
        Ok(answer.admin_key)
    }

    /// `POST /api/v1/keys` with a tenant admin key; returns the new key's secret.
    pub fn create_key(&self, admin_key: &str, role: Role) -> Result<String, ApiError> {
        let body = serde_json::json!({ "role": role.as_str() });
        let answer: crate::KeyCreated =
            self.json(Method::POST, "/api/v1/keys", admin_key, &body)?;
        Ok(answer.key)
    }

    /// `POST /api/v1/write` with an NDJSON body; returns once the server says it is durable.
    pub fn write_ndjson(&self, key: &str, body: String) -> Result<WriteAnswer, ApiError> {
        let ndjson = Some(("application/x-ndjson", body));
        let text = self.send(Method::POST, "/api/v1/write", Some(key), ndjson, None)?;
        decode(&text, "/api/v1/write")
    }

    /// `POST /api/v1/sql` in the `json` format.
    pub fn sql(&self, key: &str, sql: &str) -> Result<SqlAnswer, ApiError> {
        let body = serde_json::json!({ "sql": sql, "format": "json" });
        self.json(Method::POST, "/api/v1/sql", key, &body)
    }

    /// `POST /api/v1/compact` with a tenant admin key: compacts the tenant's hot rows older than
    /// the server's `--compact-after-secs` now. `timeout` replaces the client's default bound,
    /// since compacting a large tenant takes far longer than a query.
    pub fn compact(&self, admin_key: &str, timeout: Duration) -> Result<CompactAnswer, ApiError> {
        let path = "/api/v1/compact";
        let text = self.send(Method::POST, path, Some(admin_key), None, Some(timeout))?;
        decode(&text, path)
    }

    /// `GET /api/v1/status`: the tenant's watermarks, hot partitions and cold files.
    pub fn status(&self, key: &str) -> Result<Value, ApiError> {
        let text = self.send(Method::GET, "/api/v1/status", Some(key), None, None)?;
        decode(&text, "/api/v1/status")
    }

    /// Sends a JSON body to `path` and returns the raw status and text even when the status is
    /// an error, for callers that treat some statuses (409 Conflict) as acceptable.
    pub fn send_json_raw(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: &Value,
    ) -> Result<(StatusCode, String), ApiError> {
        let url = self.path_url(path)?;
        let response = self
            .request(method, url.clone(), Some(key))
            .json(body)
            .send();
        let response = response.map_err(|cause| transport(&url, cause))?;
        let status = response.status();
        Ok((status, text_of(&url, response)?))
    }

    fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: &Value,
    ) -> Result<T, ApiError> {
        let (status, text) = self.send_json_raw(method, path, key, body)?;
        if !status.is_success() {
            return Err(ApiError::from_answer(status, &text));
        }
        decode(&text, path)
    }

    /// Sends an optional (content type, body) to `path`; the answer's text on success.
    /// `timeout`, if given, replaces the client's default bound.
    fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<(&str, String)>,
        timeout: Option<Duration>,
    ) -> Result<String, ApiError> {
        let url = self.path_url(path)?;
        let mut request = self.request(method, url.clone(), key);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if let Some((content_type, body)) = body {
            request = request.header(CONTENT_TYPE, content_type).body(body);
        }
        let response = checked(&url, request.send())?;
        text_of(&url, response)
    }

    /// `path` (such as `/api/v1/sql`) below the base URL.
    fn path_url(&self, path: &str) -> Result<Url, ApiError> {
        let url = format!("{}{path}", self.base_text);
        Url::parse(&url).map_err(|error| ApiError::InvalidUrl {
            url,
            reason: error.to_string(),
        })
    }
}

fn transport(url: &Url, cause: reqwest::Error) -> ApiError {
    ApiError::Transport {
        url: url.to_string(),
        cause,
    }
}

/// Turns an error status into [`ApiError::Status`] with the server's message.
fn checked(url: &Url, response: reqwest::Result<Response>) -> Result<Response, ApiError> {
    let response = response.map_err(|cause| transport(url, cause))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let text = response.text().unwrap_or_default();
    Err(ApiError::from_answer(status, &text).with_retry_after(retry_after.as_deref()))
}

fn text_of(url: &Url, response: Response) -> Result<String, ApiError> {
    response.text().map_err(|cause| transport(url, cause))
}

fn json_answer(url: &Url, response: reqwest::Result<Response>) -> Result<Value, ApiError> {
    let text = text_of(url, checked(url, response)?)?;
    if text.trim().is_empty() {
        // 204 and bare 200/201 answers carry nothing; callers print a confirmation instead.
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn decode<T: DeserializeOwned>(text: &str, path: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|error| {
        let shown: String = text.chars().take(MAX_ECHOED_ANSWER_CHARS).collect();
        ApiError::Decode(format!(
            "answer of {path} is not what the contract says ({error}): {shown}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded_and_base_path_kept() {
        let client = Client::new("http://127.0.0.1:1/prefix/", None).unwrap();
        let url = client.url(&["api", "v1", "schema", "metrics", "new machine/2", "fields"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/prefix/api/v1/schema/metrics/new%20machine%2F2/fields"
        );
    }

    #[test]
    fn rejects_unusable_urls() {
        assert!(Client::new("127.0.0.1:8686", None).is_err());
        assert!(Client::new("ftp://host/", None).is_err());
        assert!(Client::with_timeout("127.0.0.1:8686", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn base_url_has_no_trailing_slash() {
        let client =
            Client::with_timeout("http://127.0.0.1:8686/", Duration::from_secs(1)).unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:8686");
    }
}
