//! Sources (tenant admin, issue 19): `POST /api/v1/sources`, `GET /api/v1/sources`, `GET` and
//! `DELETE /api/v1/sources/{id}`. Decode, call the source supervisor, encode. Another tenant's
//! id answers 404 like an unknown one; passwords are never echoed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::SecondsFormat;
use serde_json::{json, Value};
use strata_core::Role;
use strata_sources::{SourceError, SourceInfo};

use crate::auth::TenantCaller;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::state::AppState;

type Answer = Result<Json<Value>, ApiError>;

impl From<SourceError> for ApiError {
    fn from(error: SourceError) -> Self {
        match error {
            SourceError::Invalid(m) => ApiError::bad_request(m),
            SourceError::NotFound(m) => ApiError::not_found(m),
            SourceError::Internal(m) => {
                tracing::error!("source failure: {m}");
                ApiError::internal("internal source error; see the server log")
            }
        }
    }
}

fn admin(caller: &TenantCaller) -> Result<strata_core::TenantId, ApiError> {
    caller.require(Role::Admin)?;
    Ok(caller.tenant.id)
}

/// A source as the API shows it: identity, configuration without secrets, live status.
fn encode(info: &SourceInfo) -> Value {
    let created = chrono::DateTime::from_timestamp_millis(info.created_at_ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
    json!({
        "id": info.id,
        "kind": info.kind,
        "config": info.config,
        "created": created,
        "status": info.status.state.as_str(),
        "messages": info.status.messages,
        "accepted": info.status.accepted,
        "rejected": info.status.rejected,
        "last_error": info.status.last_error,
        "lag": info.status.lag,
    })
}

pub async fn create(
    State(state): State<AppState>,
    caller: TenantCaller,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = admin(&caller)?;
    let info = state.sources().create(tenant, &body).await?;
    Ok((StatusCode::CREATED, Json(encode(&info))))
}

pub async fn list(State(state): State<AppState>, caller: TenantCaller) -> Answer {
    let sources = state.sources().list(admin(&caller)?).await?;
    Ok(Json(json!({
        "sources": sources.iter().map(encode).collect::<Vec<_>>()
    })))
}

pub async fn show(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(id): Path<String>,
) -> Answer {
    let info = state.sources().get(admin(&caller)?, &id).await?;
    Ok(Json(encode(&info)))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(id): Path<String>,
) -> Answer {
    state.sources().delete(admin(&caller)?, &id).await?;
    Ok(Json(json!({ "deleted": id })))
}
