mod admin;
mod cold;
mod errors;
mod schema;
mod sql;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/tenants", post(admin::create_tenant))
        .route("/keys", post(admin::create_key).get(admin::list_keys))
        .route("/keys/{id}", delete(admin::revoke_key))
        .route(
            "/settings",
            get(admin::get_settings).patch(admin::patch_settings),
        )
        .route("/schema", get(schema::show))
        .route("/schema/history", get(schema::history))
        .route("/schema/metrics", post(schema::create_metric))
        .route(
            "/schema/metrics/{metric}",
            patch(schema::patch_metric).delete(schema::delete_metric),
        )
        .route(
            "/schema/metrics/{metric}/fields/{field}",
            put(schema::declare_field).patch(schema::patch_field),
        )
        .route("/write", post(crate::write::write))
        .route("/errors", get(errors::list))
        .route("/sql", post(sql::run))
        .route("/compact", post(cold::compact))
        .route("/status", get(cold::status));
    Router::new()
        .route("/health", get(health))
        .nest("/api/v1", api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read by our own limited readers (see body.rs), which answer with JSON.
        .layer(DefaultBodyLimit::disable())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
