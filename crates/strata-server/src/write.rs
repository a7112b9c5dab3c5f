//! `POST /api/v1/write`, the HTTP door of the write path: authenticate, read the body (size
//! limit, gzip/zstd), call [`strata_write::Writer::write`], answer. The answer comes only after
//! the accepted events (and the rejected ones, in the error log) are durable.

use axum::extract::{Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::Uri;
use axum::Json;
use serde::Deserialize;
use strata_client::{WriteAnswer, WriteRejection};
use strata_core::Role;
use strata_ingest::BodyFormat;
use strata_write::{WriteError, WriteRequest};

use crate::auth::TenantCaller;
use crate::body::read_limited;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteQuery {
    metric: Option<String>,
}

fn body_format(content_type: Option<&str>) -> BodyFormat {
    let ndjson = content_type.is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        [
            "application/x-ndjson",
            "application/ndjson",
            "application/jsonl",
            "application/x-jsonlines",
        ]
        .iter()
        .any(|media| ct.starts_with(media))
    });
    if ndjson {
        BodyFormat::Ndjson
    } else {
        BodyFormat::Json
    }
}

pub async fn write(
    State(state): State<AppState>,
    caller: TenantCaller,
    uri: Uri,
    request: Request,
) -> Result<Json<WriteAnswer>, ApiError> {
    caller.require(Role::Write)?;
    let Query(query) = Query::<WriteQuery>::try_from_uri(&uri)
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    let tenant = caller.tenant.id;
    let writer = state.writer();
    let content_type = request.headers().get(CONTENT_TYPE);
    let format = body_format(content_type.and_then(|v| v.to_str().ok()));
    let body = match read_limited(request, writer.limits().write_body_bytes).await {
        Ok(body) => body,
        Err(err) => {
            writer
                .record_unreadable_body(tenant, "body", &err.message, b"")
                .await;
            return Err(err);
        }
    };
    let outcome = writer
        .write(WriteRequest {
            door: strata_core::telemetry::door::HTTP,
            tenant,
            body: &body,
            format,
            metric: query.metric.as_deref(),
            implied_fields: &[],
        })
        .await
        .map_err(api_error)?;
    state.ingest_rate().record(tenant, outcome.accepted as u64);
    let errors: Vec<WriteRejection> = outcome
        .rejections
        .into_iter()
        .map(|r| WriteRejection {
            index: r.index as u64,
            error: r.reason,
        })
        .collect();
    Ok(Json(WriteAnswer {
        accepted: outcome.accepted as u64,
        rejected: errors.len() as u64,
        errors,
    }))
}

pub(crate) fn api_error(err: WriteError) -> ApiError {
    match err {
        WriteError::Body(message) => ApiError::bad_request(message),
        WriteError::Catalog(err) => err.into(),
        WriteError::Storage(err) => err.into(),
        WriteError::Internal(message) => ApiError::internal(message),
    }
}
