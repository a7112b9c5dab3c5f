//! `POST /api/v1/sql/live`: a live query as Server-Sent Events. The first event is
//! `snapshot` (the answer now); then `rows` (rows appended to a tail), `update` (the groups a
//! batch changed) or `snapshot` again (a re-run); `error` ends the stream with its cause. Each
//! `data:` is the JSON answer shape of `/sql`, `{"columns": [...], "rows": [...]}`, plus
//! `"mode"` (`tail`, `buckets` or `rerun`) and, on snapshots, `"truncated"`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use serde::Deserialize;
use strata_core::Role;
use strata_query::answer::{AnswerEncoder, AnswerFormat};
use strata_streaming::live::MIN_INTERVAL_RANGE_MS;
use strata_streaming::{LiveEvent, LiveMode, LiveQuery, StreamingError};

use crate::auth::TenantCaller;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::state::AppState;

/// Comment lines sent while nothing happens, so proxies keep the stream open and a client
/// that went away is noticed: the first write after it left succeeds, the next fails, so its
/// live-query slot is free within two intervals.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveRequest {
    sql: String,
    /// Least time between two re-runs of a query that is not a tail.
    #[serde(default)]
    min_interval_ms: Option<u64>,
}

impl From<StreamingError> for ApiError {
    fn from(err: StreamingError) -> Self {
        match err {
            StreamingError::Query(err) => err.into(),
            StreamingError::TooManyLiveQueries { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, err.to_string())
            }
            StreamingError::InvalidRollup(_) => ApiError::bad_request(err.to_string()),
            StreamingError::Catalog(err) => err.into(),
            StreamingError::Timeout(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            StreamingError::SourceChanged(m) | StreamingError::Internal(m) => {
                tracing::error!("streaming failure: {m}");
                ApiError::internal("internal streaming error; see the server log")
            }
        }
    }
}

pub async fn run(
    State(state): State<AppState>,
    caller: TenantCaller,
    JsonBody(request): JsonBody<LiveRequest>,
) -> Result<Response, ApiError> {
    caller.require(Role::Read)?;
    let min_interval = request.min_interval_ms.map(checked_interval).transpose()?;
    let live = state
        .live()
        .start(caller.tenant.id, &request.sql, min_interval)
        .await?;
    let events = futures::stream::unfold(live, |mut live: LiveQuery| async move {
        let event = live.next().await?;
        Some((Ok::<Event, Infallible>(encode(&event)), live))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL))
        .into_response())
}

fn checked_interval(ms: u64) -> Result<Duration, ApiError> {
    let (least, most) = MIN_INTERVAL_RANGE_MS;
    if !(least..=most).contains(&ms) {
        return Err(ApiError::bad_request(format!(
            "min_interval_ms: {ms} is outside {least}..={most}"
        )));
    }
    Ok(Duration::from_millis(ms))
}

fn encode(event: &LiveEvent) -> Event {
    let encoded = match event {
        LiveEvent::Snapshot {
            mode,
            schema,
            batches,
            truncated,
        } => answer(*mode, schema, batches, Some(*truncated)).map(|d| ("snapshot", d)),
        LiveEvent::Rows { schema, batches } => {
            answer(LiveMode::Tail, schema, batches, None).map(|d| ("rows", d))
        }
        LiveEvent::Update { schema, batches } => {
            answer(LiveMode::Buckets, schema, batches, None).map(|d| ("update", d))
        }
        LiveEvent::Error(message) => Ok(("error", error_data(message))),
    };
    let (name, data) = encoded.unwrap_or_else(|message| ("error", error_data(&message)));
    Event::default().event(name).data(data)
}

fn error_data(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// The `/sql` JSON answer of `batches` with the live fields in front.
fn answer(
    mode: LiveMode,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    truncated: Option<bool>,
) -> Result<String, String> {
    let mut encoder =
        AnswerEncoder::new(AnswerFormat::Json, schema.clone()).map_err(|e| e.to_string())?;
    let mut body = encoder.begin().map_err(|e| e.to_string())?;
    for batch in batches {
        body.extend(encoder.batch(batch).map_err(|e| e.to_string())?);
    }
    body.extend(encoder.finish().map_err(|e| e.to_string())?);
    let body = String::from_utf8(body).map_err(|e| e.to_string())?;
    // The JSON answer is an object; its members follow ours.
    let rest = body
        .strip_prefix('{')
        .ok_or("the JSON answer is not an object")?;
    let truncated = truncated.map_or(String::new(), |t| format!(",\"truncated\":{t}"));
    Ok(format!("{{\"mode\":\"{}\"{truncated},{rest}", mode.name()))
}
