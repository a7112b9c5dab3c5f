mod admin;
mod alerts;
mod cold;
mod errors;
mod live;
mod ops;
mod rollups;
mod schema;
mod session;
mod sources;
mod sql;
mod suggestions;

use std::any::Any;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let api = tenant_routes()
        .merge(data_routes())
        .merge(alerting_routes());
    let app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/", get(crate::web::index))
        .route("/app/{version}/{*path}", get(crate::web::file))
        .nest("/api/v1", api)
        // InfluxDB line protocol, at the paths InfluxDB clients and Telegraf use (issue 19).
        .route("/api/v2/write", post(crate::line_protocol::write_v2))
        .route("/write", post(crate::line_protocol::write_v1))
        .route("/api/v3/write_lp", post(crate::line_protocol::write_v3))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read by our own limited readers (see body.rs), which answer with JSON.
        .layer(DefaultBodyLimit::disable())
        // Gzip for clients that ask (Accept-Encoding), over 32-byte bodies; never for
        // text/event-stream (tower-http's default predicate), so live answers are not held
        // in the encoder's buffer.
        .layer(CompressionLayer::new().gzip(true))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    with_panic_guard(app)
}

/// `/api/v1`: tenants, sessions, keys, settings and the schema.
fn tenant_routes() -> Router<AppState> {
    Router::new()
        .route("/tenants", post(admin::create_tenant))
        .route(
            "/session",
            post(session::create)
                .get(session::show)
                .delete(session::delete),
        )
        .route("/keys", post(admin::create_key).get(admin::list_keys))
        .route("/keys/{id}", delete(admin::revoke_key))
        .route(
            "/settings",
            get(admin::get_settings).patch(admin::patch_settings),
        )
        .route("/schema", get(schema::show))
        .route("/schema/history", get(schema::history))
        .route("/schema/suggestions", get(suggestions::list))
        .route("/schema/suggestions/{id}/apply", post(suggestions::apply))
        .route(
            "/schema/suggestions/{id}/dismiss",
            post(suggestions::dismiss),
        )
        .route("/schema/metrics", post(schema::create_metric))
        .route(
            "/schema/metrics/{metric}",
            patch(schema::patch_metric).delete(schema::delete_metric),
        )
        .route("/schema/metrics/{metric}/merge", post(schema::merge_metric))
        .route(
            "/schema/metrics/{metric}/fields/{field}",
            put(schema::declare_field)
                .patch(schema::patch_field)
                .delete(schema::drop_field),
        )
}

/// `/api/v1`: writes, queries, rollups, the cold tier and the sources that feed the tenant.
fn data_routes() -> Router<AppState> {
    Router::new()
        .route("/write", post(crate::write::write))
        .route("/errors", get(errors::list))
        .route("/sql", post(sql::run))
        .route("/sql/live", post(live::run))
        .route("/rollups", post(rollups::create).get(rollups::list))
        .route(
            "/rollups/{name}",
            get(rollups::show)
                .patch(rollups::alter)
                .delete(rollups::delete),
        )
        .route("/compact", post(cold::compact))
        .route("/status", get(cold::status))
        .route("/sources", post(sources::create).get(sources::list))
        .route("/sources/{id}", get(sources::show).delete(sources::delete))
}

/// `/api/v1`: channels, alert rules and silences.
fn alerting_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/channels",
            post(alerts::create_channel).get(alerts::list_channels),
        )
        .route("/channels/{name}", delete(alerts::delete_channel))
        .route("/channels/{name}/test", post(alerts::test_channel))
        .route("/alerts", post(alerts::create_rule).get(alerts::list_rules))
        .route(
            "/alerts/{name}",
            get(alerts::show_rule).delete(alerts::delete_rule),
        )
        .route("/alerts/{name}/test", post(alerts::test_rule))
        .route("/alerts/{name}/ack", post(alerts::acknowledge))
        .route(
            "/silences",
            post(alerts::create_silence).get(alerts::list_silences),
        )
        .route("/silences/{id}", delete(alerts::delete_silence))
}

/// A panic in any handler becomes a 500 with a JSON error instead of a dropped connection
/// (issue 24: two panics ended connections with no error). Outermost, so it also covers the
/// layers above. A panic while a streamed answer is being sent is past this point: the status
/// line is already out, and the stream ends with an error there.
fn with_panic_guard(app: Router) -> Router {
    app.layer(CatchPanicLayer::custom(panic_response))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = strata_core::panic_text(panic.as_ref());
    // The message can name internals (file paths, offsets); it goes to the log only.
    tracing::error!(panic = message, "a request handler panicked");
    ApiError::internal("internal error: the request failed unexpectedly; see the server log")
        .into_response()
}

/// Liveness, with what is running: monitoring and support ask which build answered.
async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "build": {
            "datafusion": datafusion::DATAFUSION_VERSION,
            "target": format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
            "debug_assertions": cfg!(debug_assertions),
        },
    }))
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        let parts: Vec<u8> = Vec::new();
        // The shape of issue 24's panics: an index past the end of a buffer.
        let _ = parts[usize::from(parts.is_empty())];
        "unreachable"
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_a_json_error() {
        let app = with_panic_guard(Router::new().route("/boom", get(boom)));
        let request = Request::get("/boom").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let error = json["error"].as_str().unwrap();
        assert!(error.contains("internal error"), "{error}");
        // The panic text (an index and a length) stays in the log.
        assert!(!error.contains("index out of bounds"), "{error}");
    }
}
