//! Operations endpoints without a tenant key (issue 20): `GET /metrics` in the Prometheus text
//! format (loopback peers only unless `--allow-remote-metrics`) and `GET /ready`, which answers
//! 200 only while the catalog answers and the hot tier takes writes.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::error::ApiError;
use crate::http::ConnectionInfo;
use crate::state::AppState;

/// The Prometheus text exposition format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// A readiness probe that waits longer than this on the catalog reports it as not ready:
/// probes themselves time out after a few seconds.
const READY_CATALOG_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn metrics(
    State(state): State<AppState>,
    connection: Option<Extension<ConnectionInfo>>,
) -> Result<Response, ApiError> {
    let allowed = connection.is_some_and(|Extension(info)| info.may_read_metrics);
    if !allowed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "GET /metrics answers only clients on this host; start the server with \
             --allow-remote-metrics to let others scrape it",
        ));
    }
    let Some(recorder) = state.telemetry() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this process has no metrics recorder (another one was installed first)",
        ));
    };
    recorder.run_upkeep();
    let mut text = recorder.render();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    crate::scrape::render(&state, &mut text).await?;
    Ok(([(CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response())
}

pub async fn ready(State(state): State<AppState>) -> Response {
    let catalog = tokio::time::timeout(
        READY_CATALOG_TIMEOUT,
        state.tenants().tenant_by_name("ready-probe"),
    )
    .await;
    let catalog = match catalog {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(format!("the catalog failed: {error}")),
        Err(_) => Err(format!(
            "the catalog did not answer within {} s",
            READY_CATALOG_TIMEOUT.as_secs()
        )),
    };
    let hot = if state.hot().is_open() {
        Ok(())
    } else {
        Err("the hot tier is closed (the server is stopping)".to_string())
    };
    let check = |result: &Result<(), String>| match result {
        Ok(()) => "ok".to_string(),
        Err(message) => message.clone(),
    };
    let checks = json!({ "catalog": check(&catalog), "hot": check(&hot) });
    if catalog.is_ok() && hot.is_ok() {
        return Json(json!({ "status": "ready", "checks": checks })).into_response();
    }
    let body = json!({ "status": "not ready", "error": "a store is not ready", "checks": checks });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}
