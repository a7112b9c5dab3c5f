//! Alerts, channels and silences (tenant admin): decode, call the alert service, encode.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use strata_alerts::AlertError;
use strata_core::Role;

use crate::auth::TenantCaller;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::state::AppState;

type Answer = Result<Json<Value>, ApiError>;
type Created = Result<(StatusCode, Json<Value>), ApiError>;

impl From<AlertError> for ApiError {
    fn from(error: AlertError) -> Self {
        match error {
            AlertError::Invalid(m) => ApiError::bad_request(m),
            AlertError::NotFound(m) => ApiError::not_found(m),
            AlertError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            AlertError::Delivery(m) => ApiError::new(StatusCode::BAD_GATEWAY, m),
            AlertError::Internal(m) => {
                tracing::error!("alerting failure: {m}");
                ApiError::internal("internal alerting error; see the server log")
            }
        }
    }
}

fn admin(caller: &TenantCaller) -> Result<strata_core::TenantId, ApiError> {
    caller.require(Role::Admin)?;
    Ok(caller.tenant.id)
}

pub async fn create_channel(
    State(state): State<AppState>,
    caller: TenantCaller,
    JsonBody(body): JsonBody<Value>,
) -> Created {
    let tenant = admin(&caller)?;
    Ok((
        StatusCode::CREATED,
        Json(state.alerts().create_channel(tenant, &body).await?),
    ))
}

pub async fn list_channels(State(state): State<AppState>, caller: TenantCaller) -> Answer {
    Ok(Json(state.alerts().list_channels(admin(&caller)?).await?))
}

pub async fn delete_channel(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(name): Path<String>,
) -> Answer {
    state
        .alerts()
        .delete_channel(admin(&caller)?, &name)
        .await?;
    Ok(Json(json!({ "deleted": name })))
}

pub async fn test_channel(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(name): Path<String>,
) -> Answer {
    state.alerts().test_channel(admin(&caller)?, &name).await?;
    Ok(Json(json!({ "delivered": true })))
}

pub async fn create_rule(
    State(state): State<AppState>,
    caller: TenantCaller,
    JsonBody(body): JsonBody<Value>,
) -> Created {
    let tenant = admin(&caller)?;
    Ok((
        StatusCode::CREATED,
        Json(state.alerts().create_rule(tenant, &body).await?),
    ))
}

pub async fn list_rules(State(state): State<AppState>, caller: TenantCaller) -> Answer {
    Ok(Json(state.alerts().list_rules(admin(&caller)?).await))
}

pub async fn show_rule(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(name): Path<String>,
) -> Answer {
    Ok(Json(
        state.alerts().show_rule(admin(&caller)?, &name).await?,
    ))
}

pub async fn delete_rule(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(name): Path<String>,
) -> Answer {
    state.alerts().delete_rule(admin(&caller)?, &name).await?;
    Ok(Json(json!({ "deleted": name })))
}

pub async fn test_rule(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(name): Path<String>,
) -> Answer {
    Ok(Json(
        state.alerts().test_rule(admin(&caller)?, &name).await?,
    ))
}

/// `{"labels": {...}}` selects the instances to acknowledge; no body or no labels: all firing.
pub async fn acknowledge(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Answer {
    let tenant = admin(&caller)?;
    let bytes = crate::body::read_limited(request, state.limits().admin_body_bytes).await?;
    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        crate::body::parse_json(&bytes)?
    };
    let labels = match body.get("labels") {
        None | Some(Value::Null) => Default::default(),
        Some(labels) => serde_json::from_value(labels.clone()).map_err(|_| {
            ApiError::bad_request("labels: expected an object of label name to text")
        })?,
    };
    let count = state.alerts().acknowledge(tenant, &name, &labels).await?;
    Ok(Json(json!({ "acknowledged": count })))
}

pub async fn create_silence(
    State(state): State<AppState>,
    caller: TenantCaller,
    JsonBody(body): JsonBody<Value>,
) -> Created {
    let tenant = admin(&caller)?;
    Ok((
        StatusCode::CREATED,
        Json(state.alerts().create_silence(tenant, &body).await?),
    ))
}

pub async fn list_silences(State(state): State<AppState>, caller: TenantCaller) -> Answer {
    Ok(Json(state.alerts().list_silences(admin(&caller)?).await?))
}

pub async fn delete_silence(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(id): Path<String>,
) -> Answer {
    state.alerts().delete_silence(admin(&caller)?, &id).await?;
    Ok(Json(json!({ "deleted": id })))
}
