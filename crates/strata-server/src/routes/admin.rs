//! Tenants (operator), API keys and per-tenant settings (tenant admin).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strata_catalog::{KeyInfo, SettingsPatch, TenantSettings};
use strata_client::{KeyCreated, TenantCreated};
use strata_core::Role;

use crate::auth::{Operator, TenantCaller};
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    name: String,
}

pub async fn create_tenant(
    State(state): State<AppState>,
    _operator: Operator,
    JsonBody(body): JsonBody<CreateTenant>,
) -> Result<(StatusCode, Json<TenantCreated>), ApiError> {
    let (tenant, key) = state.tenants().create_tenant(&body.name).await?;
    tracing::info!(tenant = %tenant.name, "tenant created");
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated {
            tenant: tenant.name,
            admin_key: key.secret,
            key_id: key.info.id,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    role: String,
}

#[derive(Serialize)]
struct KeyView {
    id: String,
    role: Role,
    created_at: String,
    last_used_at: Option<String>,
}

impl From<KeyInfo> for KeyView {
    fn from(k: KeyInfo) -> Self {
        KeyView {
            id: k.id,
            role: k.role,
            created_at: k.created_at.to_rfc3339(),
            last_used_at: k.last_used_at.map(|t| t.to_rfc3339()),
        }
    }
}

pub async fn create_key(
    State(state): State<AppState>,
    caller: TenantCaller,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    caller.require(Role::Admin)?;
    let role: Role = body
        .role
        .parse()
        .map_err(|e: strata_core::UnknownRole| ApiError::bad_request(format!("role: {e}")))?;
    let key = state.tenants().create_key(caller.tenant.id, role).await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyCreated {
            id: key.info.id,
            key: key.secret,
            role: key.info.role.to_string(),
        }),
    ))
}

pub async fn list_keys(
    State(state): State<AppState>,
    caller: TenantCaller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let keys: Vec<KeyView> = state
        .tenants()
        .list_keys(caller.tenant.id)
        .await?
        .into_iter()
        .map(KeyView::from)
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    state.tenants().revoke_key(caller.tenant.id, &id).await?;
    Ok(Json(json!({ "revoked": id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchSettings {
    metric_keys: Option<Vec<String>>,
    timestamp_patterns: Option<Vec<String>>,
    /// Days of cold data to keep; 0 keeps it forever.
    cold_retention_days: Option<u32>,
    /// MQTT topic templates such as `plant/{site}/{metric}/{device}`; `[]` restores the defaults.
    mqtt_topics: Option<Vec<String>>,
}

/// The templates MQTT publishes are matched against: the tenant's, or the defaults it has.
fn effective_topics(s: &TenantSettings) -> Vec<String> {
    if s.mqtt_topics.is_empty() {
        strata_core::topic::DEFAULT_TOPIC_TEMPLATES
            .map(String::from)
            .to_vec()
    } else {
        s.mqtt_topics.clone()
    }
}

fn settings_json(s: &TenantSettings) -> Value {
    json!({
        "metric_keys": s.metric_keys,
        "timestamp_patterns": s.timestamp_patterns,
        "cold_retention_days": s.cold_retention_days,
        "mqtt_topics": effective_topics(s),
    })
}

pub async fn get_settings(
    State(state): State<AppState>,
    caller: TenantCaller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let settings = state.settings_store().settings(caller.tenant.id).await?;
    Ok(Json(settings_json(&settings)))
}

pub async fn patch_settings(
    State(state): State<AppState>,
    caller: TenantCaller,
    JsonBody(body): JsonBody<PatchSettings>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    if let Some(patterns) = &body.timestamp_patterns {
        super::schema::validate_patterns("timestamp_patterns", patterns)?;
    }
    let settings = state
        .settings_store()
        .update_settings(
            caller.tenant.id,
            SettingsPatch {
                metric_keys: body.metric_keys,
                timestamp_patterns: body.timestamp_patterns,
                cold_retention_days: body.cold_retention_days,
                mqtt_topics: body.mqtt_topics,
            },
        )
        .await?;
    Ok(Json(settings_json(&settings)))
}
