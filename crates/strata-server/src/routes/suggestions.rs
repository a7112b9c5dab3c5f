//! Schema suggestions (issue 17): list them with their evidence, apply one (a normal, versioned
//! schema change), dismiss one for good. The advisor decides; this only decodes and encodes.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use strata_advisor::{AdvisorError, SuggestOptions, DEFAULT_STALE_DAYS};
use strata_core::Role;

use crate::auth::TenantCaller;
use crate::body::JsonQuery;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest silence a request may ask about: ten years.
const MAX_STALE_DAYS: u32 = 3650;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Days without a value after which a field is suggested hidden.
    stale_days: Option<u32>,
}

impl Options {
    fn checked(&self) -> Result<SuggestOptions, ApiError> {
        let days = self.stale_days.unwrap_or(DEFAULT_STALE_DAYS);
        if days == 0 || days > MAX_STALE_DAYS {
            return Err(ApiError::bad_request(format!(
                "stale_days: {days} is out of range; use 1 to {MAX_STALE_DAYS}"
            )));
        }
        Ok(SuggestOptions {
            stale_after_days: days,
        })
    }
}

impl From<AdvisorError> for ApiError {
    fn from(err: AdvisorError) -> Self {
        match err {
            AdvisorError::NotFound(_) => ApiError::not_found(err.to_string()),
            AdvisorError::Catalog(err) => err.into(),
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    caller: TenantCaller,
    JsonQuery(options): JsonQuery<Options>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let options = options.checked()?;
    let suggestions = state
        .advisor()
        .suggestions(caller.tenant.id, options)
        .await?;
    Ok(Json(json!({ "suggestions": suggestions })))
}

pub async fn apply(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(id): Path<String>,
    JsonQuery(options): JsonQuery<Options>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let options = options.checked()?;
    let applied = state
        .advisor()
        .apply(caller.tenant.id, &id, options)
        .await?;
    Ok(Json(json!({
        "applied": applied.suggestion,
        "version": applied.version.version,
        "change": applied.version.change,
    })))
}

pub async fn dismiss(
    State(state): State<AppState>,
    caller: TenantCaller,
    Path(id): Path<String>,
    JsonQuery(options): JsonQuery<Options>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let options = options.checked()?;
    let dismissed = state
        .advisor()
        .dismiss(caller.tenant.id, &id, options)
        .await?;
    Ok(Json(json!({ "dismissed": dismissed })))
}
