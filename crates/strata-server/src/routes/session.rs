//! `POST /api/v1/session` (a tenant key for the web app's session cookie), `GET` (who is signed
//! in, and the CSRF token the app sends back) and `DELETE` (sign out).

use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::TenantCaller;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::session::{behind_https, clear_cookie, cookie_value, set_cookie, Session};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    key: String,
}

fn session_json(caller: &TenantCaller, session: &Session) -> Value {
    json!({
        "tenant": caller.tenant.name,
        "role": caller.key.role.to_string(),
        "key_id": caller.key.id,
        "csrf": session.csrf,
        "expires": session.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<SignIn>,
) -> Result<Response, ApiError> {
    // Login CSRF: a cross-site form can post text that parses as JSON, but cannot send
    // `Content-Type: application/json` without a CORS preflight, which is never granted.
    let json_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !json_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "sign in with Content-Type: application/json",
        ));
    }
    let key = request.key.trim();
    let Some((tenant, info)) = state.tenants().authenticate(key).await? else {
        return Err(ApiError::unauthorized(
            "that key is not valid (or was revoked); use a tenant key (sk_…)",
        ));
    };
    // A browser signing in again gets a new session; the one its old cookie named ends, so a
    // cookie planted before sign-in (session fixation) is worth nothing after it.
    if let Some(old) = cookie_value(&headers) {
        state.sessions().remove(old);
    }
    let (cookie, session) = state.sessions().create(key);
    tracing::info!(tenant = %tenant.name, key_id = %info.id, "web session started");
    let caller = TenantCaller { tenant, key: info };
    let mut response = (StatusCode::CREATED, Json(session_json(&caller, &session))).into_response();
    let value = set_cookie(&cookie, behind_https(&headers))
        .parse()
        .map_err(|_| ApiError::internal("could not encode the session cookie"))?;
    response.headers_mut().insert(SET_COOKIE, value);
    Ok(response)
}

/// Who the cookie signs in as. `TenantCaller` already checked the session and its key.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: TenantCaller,
) -> Result<Json<Value>, ApiError> {
    let session = cookie_value(&headers)
        .and_then(|cookie| state.sessions().get(cookie))
        .ok_or_else(|| ApiError::unauthorized("not signed in: no session cookie"))?;
    Ok(Json(session_json(&caller, &session)))
}

/// Signs out: the session ends on the server and the cookie is cleared. Goes through
/// `TenantCaller`, so it needs the CSRF token like any state change.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: TenantCaller,
) -> Result<Response, ApiError> {
    if let Some(cookie) = cookie_value(&headers) {
        state.sessions().remove(cookie);
    }
    tracing::info!(tenant = %caller.tenant.name, key_id = %caller.key.id, "web session ended");
    let mut response = Json(json!({ "signed_out": true })).into_response();
    let value = clear_cookie()
        .parse()
        .map_err(|_| ApiError::internal("could not encode the session cookie"))?;
    response.headers_mut().insert(SET_COOKIE, value);
    Ok(response)
}
