//! Rollups (tenant admin): `POST /api/v1/rollups`, `GET`, `PATCH`, `DELETE` on
//! `/api/v1/rollups/{name}`. Decode, call the rollup service, encode. `GET ...?sync=true`
//! answers once the rollup reflects every write acknowledged before the request and its
//! backfill is complete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use strata_core::Role;
use strata_streaming::RollupInfo;

use crate::auth::TenantCaller;
use crate::body::JsonBody;
use crate::body::JsonQuery;
use crate::error::ApiError;
use crate::state::AppState;

type Answer = Result<Json<Value>, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRollup {
    name: String,
    sql: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlterRollup {
    sql: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowOptions {
    #[serde(default)]
    sync: bool,
}

fn admin(caller: &TenantCaller) -> Result<strata_core::TenantId, ApiError> {
    caller.require(Role::Admin)?;
    Ok(caller.tenant.id)
}

fn encode(info: &RollupInfo) -> Value {
    json!({
        "name": info.name,
        "sql": info.sql,
        "state": info.state,
        "progress": info.progress,
        "version": info.served_version,
        "served_sql": info.served_sql,
        "error": info.error,
        "applied_seq": info.applied_seq,
        "created_at_ms": info.created_at_ms,
    })
}

pub async fn create(
    State(state): State<AppState>,
    caller: TenantCaller,
    JsonBody(body): JsonBody<CreateRollup>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = admin(&caller)?;
    let info = state
        .rollups()
        .create(tenant, &body.name, &body.sql)
        .await?;
    Ok((StatusCode::CREATED, Json(encode(&info))))
}

pub async fn list(State(state): State<AppState>, caller: TenantCaller) -> Answer {
    let rollups = state.rollups().list(admin(&caller)?).await?;
    Ok(Json(json!({
        "rollups": rollups.iter().map(encode).collect::<Vec<_>>()
    })))
}

pub async fn show(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(name): Path<String>,
    JsonQuery(options): JsonQuery<ShowOptions>,
) -> Answer {
    let tenant = admin(&caller)?;
    let info = if options.sync {
        state.rollups().sync(tenant, &name).await?
    } else {
        state.rollups().get(tenant, &name).await?
    };
    Ok(Json(encode(&info)))
}

pub async fn alter(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<AlterRollup>,
) -> Answer {
    let tenant = admin(&caller)?;
    let info = state.rollups().alter(tenant, &name, &body.sql).await?;
    Ok(Json(encode(&info)))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(name): Path<String>,
) -> Answer {
    let tenant = admin(&caller)?;
    state.rollups().delete(tenant, &name).await?;
    Ok(Json(json!({ "deleted": name })))
}
