//! A small blocking client for the parts of the Strata HTTP contract the benchmarks use.

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use strata_core::Role;

use crate::BenchError;

/// Longest error body kept in an error message; servers may echo whole payloads.
const MAX_ERROR_BODY_CHARS: usize = 1024;
/// Longest accepted base URL.
const MAX_BASE_URL_BYTES: usize = 2048;

/// Answer of `POST /api/v1/write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAck {
    pub accepted: u64,
    pub rejected: u64,
    #[serde(default)]
    pub errors: Vec<WriteRejection>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRejection {
    pub index: u64,
    pub error: String,
}

/// Answer of `POST /api/v1/compact`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactAnswer {
    /// The lowest watermark over the tenant's metrics after the run (RFC 3339), if any.
    #[serde(default)]
    pub watermark: Option<String>,
    pub files_written: u64,
    pub rows: u64,
    #[serde(default)]
    pub metrics: Vec<MetricCompactAnswer>,
    /// Files rewritten by lazy re-typing in the same run.
    #[serde(default)]
    pub retyped_files: u64,
}

/// One metric's part of a [`CompactAnswer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricCompactAnswer {
    pub metric: String,
    #[serde(default)]
    pub watermark: Option<String>,
    pub files_written: u64,
    pub rows: u64,
    #[serde(default)]
    pub duplicates_skipped: u64,
}

/// Answer of `POST /api/v1/sql` in the `json` format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlAnswer {
    pub columns: Vec<SqlColumn>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

impl SqlAnswer {
    /// The single integer of a `SELECT count(*) ...` answer.
    pub fn single_count(&self) -> Result<u64, BenchError> {
        let cell = match self.rows.as_slice() {
            [row] if row.len() == 1 => &row[0],
            _ => {
                return Err(BenchError::Decode(format!(
                    "expected one row with one column, got {} rows",
                    self.rows.len()
                )))
            }
        };
        // Servers may render 64-bit integers as strings to keep them exact in JSON.
        let count = match cell {
            serde_json::Value::Number(number) => number.as_u64(),
            serde_json::Value::String(text) => text.parse().ok(),
            _ => None,
        };
        count.ok_or_else(|| BenchError::Decode(format!("expected a count, got {cell}")))
    }
}

/// Blocking HTTP client bound to one server.
#[derive(Debug, Clone)]
pub struct StrataClient {
    base_url: String,
    http: Client,
}

impl StrataClient {
    /// `base_url` such as `http://127.0.0.1:8686`; `timeout` bounds each whole request.
    pub fn new(base_url: &str, timeout: Duration) -> Result<StrataClient, BenchError> {
        let base_url = base_url.trim_end_matches('/');
        if base_url.len() > MAX_BASE_URL_BYTES
            || !(base_url.starts_with("http://") || base_url.starts_with("https://"))
        {
            return Err(BenchError::InvalidConfig(format!(
                "base URL must start with http:// or https:// and be at most {MAX_BASE_URL_BYTES} bytes, got {base_url:?}"
            )));
        }
        let http = Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|source| BenchError::Http {
                url: base_url.to_string(),
                source,
            })?;
        Ok(StrataClient {
            base_url: base_url.to_string(),
            http,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /health`.
    pub fn health(&self) -> Result<(), BenchError> {
        self.send(Method::GET, "/health", None, None).map(|_| ())
    }

    /// `POST /api/v1/tenants` with the operator token; returns the new tenant's admin key.
    pub fn create_tenant(&self, operator_token: &str, name: &str) -> Result<String, BenchError> {
        let body = serde_json::json!({ "name": name });
        let answer: serde_json::Value =
            self.json(Method::POST, "/api/v1/tenants", operator_token, &body)?;
        string_member(&answer, "admin_key")
    }

    /// `POST /api/v1/keys` with a tenant admin key; returns the new key's secret.
    pub fn create_key(&self, admin_key: &str, role: Role) -> Result<String, BenchError> {
        let body = serde_json::json!({ "role": role.as_str() });
        let answer: serde_json::Value =
            self.json(Method::POST, "/api/v1/keys", admin_key, &body)?;
        string_member(&answer, "key")
    }

    /// `POST /api/v1/write` with an NDJSON body; returns once the server says it is durable.
    pub fn write_ndjson(&self, key: &str, body: String) -> Result<WriteAck, BenchError> {
        let text = self.send(
            Method::POST,
            "/api/v1/write",
            Some(key),
            Some(("application/x-ndjson", body)),
        )?;
        decode(&text, "/api/v1/write")
    }

    /// `POST /api/v1/sql` in the `json` format.
    pub fn sql(&self, key: &str, sql: &str) -> Result<SqlAnswer, BenchError> {
        let body = serde_json::json!({ "sql": sql, "format": "json" });
        self.json(Method::POST, "/api/v1/sql", key, &body)
    }

    /// `POST /api/v1/compact` with a tenant admin key: compacts the tenant's hot rows older than
    /// the server's `--compact-after-secs` now. `timeout` replaces the client's default bound,
    /// since compacting a large tenant takes far longer than a query.
    pub fn compact(&self, admin_key: &str, timeout: Duration) -> Result<CompactAnswer, BenchError> {
        let path = "/api/v1/compact";
        let text = self.send_within(Method::POST, path, Some(admin_key), None, Some(timeout))?;
        decode(&text, path)
    }

    /// `GET /api/v1/status`: the tenant's watermarks, hot partitions and cold files.
    pub fn status(&self, key: &str) -> Result<serde_json::Value, BenchError> {
        let text = self.send(Method::GET, "/api/v1/status", Some(key), None)?;
        decode(&text, "/api/v1/status")
    }

    /// Sends a JSON body and returns the raw status and text even when the status is an error,
    /// for callers that treat some statuses (409 Conflict) as acceptable.
    pub fn send_json_raw(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> Result<(StatusCode, String), BenchError> {
        let url = format!("{}{path}", self.base_url);
        let response = self
            .http
            .request(method, &url)
            .bearer_auth(key)
            .json(body)
            .send()
            .map_err(|source| BenchError::Http {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        let text = response
            .text()
            .map_err(|source| BenchError::Http { url, source })?;
        Ok((status, text))
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> Result<T, BenchError> {
        let (status, text) = self.send_json_raw(method.clone(), path, key, body)?;
        if !status.is_success() {
            return Err(status_error(
                &method,
                &format!("{}{path}", self.base_url),
                status,
                &text,
            ));
        }
        decode(&text, path)
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<(&str, String)>,
    ) -> Result<String, BenchError> {
        self.send_within(method, path, key, body, None)
    }

    /// [`Self::send`] with `timeout` instead of the client's default bound, if given.
    fn send_within(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<(&str, String)>,
        timeout: Option<Duration>,
    ) -> Result<String, BenchError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some((content_type, body)) = body {
            request = request.header(CONTENT_TYPE, content_type).body(body);
        }
        let response = request.send().map_err(|source| BenchError::Http {
            url: url.clone(),
            source,
        })?;
        let status = response.status();
        let text = response.text().map_err(|source| BenchError::Http {
            url: url.clone(),
            source,
        })?;
        if !status.is_success() {
            return Err(status_error(&method, &url, status, &text));
        }
        Ok(text)
    }
}

pub(crate) fn status_error(
    method: &Method,
    url: &str,
    status: StatusCode,
    body: &str,
) -> BenchError {
    BenchError::Status {
        method: method.to_string(),
        url: url.to_string(),
        status: status.as_u16(),
        body: body.chars().take(MAX_ERROR_BODY_CHARS).collect(),
    }
}

fn decode<T: serde::de::DeserializeOwned>(text: &str, path: &str) -> Result<T, BenchError> {
    serde_json::from_str(text).map_err(|error| {
        let shown: String = text.chars().take(MAX_ERROR_BODY_CHARS).collect();
        BenchError::Decode(format!(
            "answer of {path} is not what the contract says ({error}): {shown}"
        ))
    })
}

fn string_member(answer: &serde_json::Value, member: &str) -> Result<String, BenchError> {
    answer
        .get(member)
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            BenchError::Decode(format!("answer has no string member {member:?}: {answer}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_decode_from_numbers_and_strings() {
        let answer: SqlAnswer = serde_json::from_str(
            r#"{"columns":[{"name":"count(*)","type":"Int64"}],"rows":[[42]]}"#,
        )
        .unwrap();
        assert_eq!(answer.single_count().unwrap(), 42);
        let answer: SqlAnswer =
            serde_json::from_str(r#"{"columns":[{"name":"c","type":"Int64"}],"rows":[["7"]]}"#)
                .unwrap();
        assert_eq!(answer.single_count().unwrap(), 7);
        let empty: SqlAnswer = serde_json::from_str(r#"{"columns":[],"rows":[]}"#).unwrap();
        assert!(empty.single_count().is_err());
        let text: SqlAnswer =
            serde_json::from_str(r#"{"columns":[{"name":"c","type":"Utf8"}],"rows":[["x"]]}"#)
                .unwrap();
        assert!(text.single_count().is_err());
    }

    #[test]
    fn base_url_must_be_http() {
        assert!(StrataClient::new("127.0.0.1:8686", Duration::from_secs(1)).is_err());
        let client = StrataClient::new("http://127.0.0.1:8686/", Duration::from_secs(1)).unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:8686");
    }

    #[test]
    fn compact_answer_decodes_the_server_shape() {
        let answer: CompactAnswer = serde_json::from_str(
            r#"{"watermark":"2026-01-01T03:00:00.000Z","files_written":3,"rows":120,
                "metrics":[{"metric":"readings","watermark":"2026-01-01T03:00:00.000Z",
                "files_written":2,"rows":60,"duplicates_skipped":0}],"retyped_files":0}"#,
        )
        .unwrap();
        assert_eq!(answer.rows, 120);
        assert_eq!(answer.metrics[0].metric, "readings");
        assert_eq!(answer.metrics[0].files_written, 2);
        let nothing: CompactAnswer =
            serde_json::from_str(r#"{"watermark":null,"files_written":0,"rows":0}"#).unwrap();
        assert!(nothing.metrics.is_empty());
    }

    #[test]
    fn write_ack_tolerates_missing_errors() {
        let ack: WriteAck = serde_json::from_str(r#"{"accepted":3,"rejected":0}"#).unwrap();
        assert_eq!(ack.accepted, 3);
        assert!(ack.errors.is_empty());
    }
}
