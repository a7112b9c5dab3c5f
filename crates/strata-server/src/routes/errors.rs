//! `GET /api/v1/errors?since=...&limit=...`: the tenant's error log of rejected events.

use axum::extract::{Query, State};
use axum::http::Uri;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use strata_core::Role;

use crate::auth::TenantCaller;
use crate::error::ApiError;
use crate::state::AppState;

/// Most records one call returns; page with `since`.
const MAX_ERRORS_PER_CALL: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorsQuery {
    since: Option<String>,
    limit: Option<usize>,
}

/// Accepts epoch millis or RFC 3339 for `since`.
fn parse_since(text: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "since: {text:?} is neither epoch milliseconds nor an RFC 3339 time"
            ))
        })
}

pub async fn list(
    State(state): State<AppState>,
    caller: TenantCaller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = Query::<ErrorsQuery>::try_from_uri(&uri)
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    caller.require(Role::Read)?;
    let since = query
        .since
        .as_deref()
        .map(parse_since)
        .transpose()?
        .unwrap_or(i64::MIN);
    let limit = query.limit.unwrap_or(1000).min(MAX_ERRORS_PER_CALL);
    let hot = state.hot().clone();
    let tenant = caller.tenant.id;
    let records = tokio::task::spawn_blocking(move || hot.read_errors(tenant, since, limit))
        .await
        .map_err(|e| ApiError::internal(format!("error log reader failed: {e}")))??;
    let errors: Vec<Value> = records
        .into_iter()
        .map(|r| {
            json!({
                "time": chrono::DateTime::from_timestamp_millis(r.time_ms).map(|t| t.to_rfc3339()),
                "stage": r.stage,
                "reason": r.reason,
                "index": r.index,
                "metric": r.metric,
                "payload": r.payload,
            })
        })
        .collect();
    Ok(Json(json!({ "errors": errors })))
}
