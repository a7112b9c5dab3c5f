//! The InfluxDB line protocol doors (issue 19): `POST /api/v2/write` (InfluxDB 2 clients,
//! Telegraf's `outputs.influxdb_v2`), `POST /write` (InfluxDB 1) and `POST /api/v3/write_lp`
//! (InfluxDB 3). Each authenticates as InfluxDB clients do, reads the body (size limit, gzip),
//! calls [`strata_write::Writer::write`] with the line protocol format and answers in the
//! shape its clients parse. `bucket`/`db`/`org` are accepted and ignored: the key names the
//! tenant, and each line's measurement names its metric.

use axum::extract::{Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::json;
use strata_core::Role;
use strata_ingest::{BodyFormat, Precision};
use strata_write::{WriteOutcome, WriteRequest};

use crate::body::read_limited;
use crate::error::ApiError;
use crate::state::AppState;

/// Which InfluxDB version's answers a door gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    V1,
    V2,
    V3,
}

pub async fn write_v1(state: State<AppState>, uri: Uri, request: Request) -> Response {
    write(state, Dialect::V1, uri, request).await
}

pub async fn write_v2(state: State<AppState>, uri: Uri, request: Request) -> Response {
    write(state, Dialect::V2, uri, request).await
}

pub async fn write_v3(state: State<AppState>, uri: Uri, request: Request) -> Response {
    write(state, Dialect::V3, uri, request).await
}

async fn write(
    State(state): State<AppState>,
    dialect: Dialect,
    uri: Uri,
    request: Request,
) -> Response {
    let query = query_pairs(&uri);
    let tenant = match caller(&state, request.headers(), &query).await {
        Ok(tenant) => tenant,
        Err(error) => return refusal(dialect, error),
    };
    let precision = match precision(&query) {
        Ok(precision) => precision,
        Err(error) => return refusal(dialect, error),
    };
    let writer = state.writer();
    let body = match read_limited(request, writer.limits().write_body_bytes).await {
        Ok(body) => body,
        Err(error) => {
            writer
                .record_unreadable_body(tenant, "body", &error.message, b"")
                .await;
            return refusal(dialect, error);
        }
    };
    let written = writer
        .write(WriteRequest {
            door: strata_core::telemetry::door::LINE_PROTOCOL,
            tenant,
            body: &body,
            format: BodyFormat::LineProtocol(precision),
            metric: None,
            implied_fields: &[],
        })
        .await;
    match written {
        Ok(outcome) => {
            state.ingest_rate().record(tenant, outcome.accepted as u64);
            answer(dialect, outcome)
        }
        Err(error) => refusal(dialect, crate::write::api_error(error)),
    }
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .unwrap_or_default()
}

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn precision(query: &[(String, String)]) -> Result<Precision, ApiError> {
    match param(query, "precision") {
        None => Ok(Precision::default()),
        Some(text) => Precision::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "precision {text:?} is not one of ns, us, ms, s (or n, u for InfluxDB 1)"
            ))
        }),
    }
}

/// The tenant of the key the request carries the ways InfluxDB clients send it:
/// `Authorization: Token <key>`, `Bearer <key>`, `Basic` with the key as password, or
/// InfluxDB 1's `p=<key>` query parameter. The key must be allowed to write.
async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<strata_core::TenantId, ApiError> {
    let key = key_of(headers, query)?;
    let Some((tenant, key)) = state.tenants().authenticate(&key).await? else {
        return Err(ApiError::unauthorized("invalid or revoked key"));
    };
    if !key.role.allows(Role::Write) {
        return Err(ApiError::forbidden(format!(
            "writing needs a key with role write or admin; this key has role {}",
            key.role
        )));
    }
    Ok(tenant.id)
}

fn key_of(headers: &HeaderMap, query: &[(String, String)]) -> Result<String, ApiError> {
    let missing = || {
        ApiError::unauthorized(
            "missing credentials; send `Authorization: Token <key>` (or Bearer, Basic with the \
             key as password, or ?p=<key>)",
        )
    };
    let Some(header) = headers.get(AUTHORIZATION) else {
        return param(query, "p").map(str::to_string).ok_or_else(missing);
    };
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not valid text"))?;
    let (scheme, credentials) = value.split_once(' ').ok_or_else(missing)?;
    let credentials = credentials.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "token" | "bearer" if !credentials.is_empty() => Ok(credentials.to_string()),
        "basic" => basic_password(credentials),
        _ => Err(missing()),
    }
}

fn basic_password(credentials: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::unauthorized("Basic credentials must be base64 of user:key");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (_, password) = text.split_once(':').ok_or_else(invalid)?;
    Ok(password.to_string())
}

/// 204 when every line was stored; otherwise 400 naming each rejected line (the others are
/// stored, and every rejected line is in the error log with its bytes).
fn answer(dialect: Dialect, outcome: WriteOutcome) -> Response {
    if outcome.rejections.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let reasons: Vec<&str> = outcome
        .rejections
        .iter()
        .take(MAX_LISTED_REJECTIONS)
        .map(|r| r.reason.as_str())
        .collect();
    let summary = format!(
        "partial write: {} line(s) stored, {} rejected: {}",
        outcome.accepted,
        outcome.rejections.len(),
        reasons.join("; ")
    );
    let body = match dialect {
        Dialect::V1 => json!({ "error": summary }),
        Dialect::V2 => json!({ "code": "invalid", "message": summary }),
        Dialect::V3 => json!({
            "error": "partial write of line protocol occurred",
            "data": outcome.rejections.iter().take(MAX_LISTED_REJECTIONS).map(|r| json!({
                "original_line": r.payload,
                "line_number": line_number(&r.reason),
                "error_message": r.reason,
            })).collect::<Vec<_>>(),
        }),
    };
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// A 400 lists at most this many rejected lines (all of them are in the error log).
const MAX_LISTED_REJECTIONS: usize = 100;

/// The line number a line protocol rejection starts with (`line 3: ...`); `None` for
/// rejections after parsing (metric, timestamp, validation), which name their event instead.
fn line_number(reason: &str) -> Option<usize> {
    reason
        .strip_prefix("line ")?
        .split(':')
        .next()?
        .parse()
        .ok()
}

/// An error in the shape the door's clients parse: InfluxDB 2's `{"code","message"}`, or
/// `{"error"}` for InfluxDB 1 and 3.
fn refusal(dialect: Dialect, error: ApiError) -> Response {
    if error.status.is_server_error() {
        tracing::error!(status = %error.status, "{}", error.message);
    }
    let body = match dialect {
        Dialect::V2 => json!({ "code": influx_code(error.status), "message": error.message }),
        Dialect::V1 | Dialect::V3 => json!({ "error": error.message }),
    };
    (error.status, Json(body)).into_response()
}

fn influx_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not found",
        StatusCode::PAYLOAD_TOO_LARGE => "request too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported media type",
        status if status.is_server_error() => "internal error",
        _ => "invalid",
    }
}
