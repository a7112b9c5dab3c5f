//! Authentication: a bearer token, or the web app's session cookie (`session.rs`) standing for
//! the tenant key it signed in with. The operator token only creates tenants; every other call
//! needs a tenant key whose role allows it. Failures never say whether a key exists elsewhere.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::Method;
use strata_catalog::{KeyInfo, Tenant};
use strata_core::Role;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::session::{cookie_value, csrf_matches, CSRF_HEADER};
use crate::state::AppState;

/// A caller holding a tenant key.
#[derive(Debug, Clone)]
pub struct TenantCaller {
    pub tenant: Tenant,
    pub key: KeyInfo,
}

impl TenantCaller {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.key.role.allows(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this call needs a key with role {role}{}; this key has role {}",
                if role == Role::Admin { "" } else { " or admin" },
                self.key.role
            )))
        }
    }
}

/// The caller presented the operator token.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("missing Authorization header; send `Authorization: Bearer <key>`")
    })?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not valid text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::unauthorized("Authorization header must be `Bearer <key>`"))?
        .trim();
    if token.is_empty() {
        return Err(ApiError::unauthorized("empty bearer token"));
    }
    Ok(token)
}

/// Compares without an early exit so response time does not reveal a prefix match.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if constant_time_eq(token.as_bytes(), state.operator_token().as_bytes()) {
            return Ok(Operator);
        }
        // A valid tenant key is authenticated but not allowed here: 403, not 401.
        if state.tenants().authenticate(token).await?.is_some() {
            return Err(ApiError::forbidden(
                "this call needs the operator token; a tenant key cannot create tenants",
            ));
        }
        Err(ApiError::unauthorized("invalid token"))
    }
}

impl FromRequestParts<AppState> for TenantCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // A bearer token wins over a cookie: API clients never depend on browser state.
        let from_cookie;
        let token = if parts.headers.contains_key(AUTHORIZATION) {
            bearer(parts)?
        } else if let Some(key) = session_key(parts, state)? {
            from_cookie = key;
            from_cookie.as_str()
        } else {
            bearer(parts)?
        };
        match state.tenants().authenticate(token).await? {
            Some((tenant, key)) => Ok(TenantCaller { tenant, key }),
            None if constant_time_eq(token.as_bytes(), state.operator_token().as_bytes()) => {
                Err(ApiError::forbidden(
                    "the operator token only creates tenants; use a tenant key for this call",
                ))
            }
            None => Err(ApiError::unauthorized("invalid or revoked key")),
        }
    }
}

/// The tenant key behind the request's session cookie, if it has one. A cookie naming no live
/// session is 401 (signed out or expired); a state-changing call without the session's CSRF
/// token is 403, before anything runs.
fn session_key(parts: &Parts, state: &AppState) -> Result<Option<String>, ApiError> {
    let Some(cookie) = cookie_value(&parts.headers) else {
        return Ok(None);
    };
    let session = state.sessions().get(cookie).ok_or_else(|| {
        ApiError::unauthorized("the session has expired or was signed out; sign in again")
    })?;
    let safe = matches!(parts.method, Method::GET | Method::HEAD);
    if !safe && !csrf_matches(&parts.headers, &session) {
        return Err(ApiError::forbidden(format!(
            "a call with the session cookie that changes state needs the session's CSRF token \
             in the {CSRF_HEADER} header (GET /api/v1/session returns it)"
        )));
    }
    Ok(Some(session.key))
}
