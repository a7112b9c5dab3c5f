//! `POST /api/v1/sql`: runs one read-only statement in the caller's tenant session and streams
//! the result as json, csv, ndjson or Arrow IPC (`strata_query::answer`). Nothing is materialized
//! whole: each Arrow batch is encoded and sent as it arrives.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use strata_core::Role;
use strata_query::answer::{AnswerEncoder, AnswerError, AnswerFormat, FORMAT_NAMES};
use strata_query::QueryError;

use crate::auth::TenantCaller;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    sql: String,
    #[serde(default)]
    format: Option<String>,
}

fn parse_format(name: Option<&str>) -> Result<AnswerFormat, ApiError> {
    let name = name.unwrap_or("json");
    AnswerFormat::parse(name).ok_or_else(|| {
        ApiError::bad_request(format!("format: {name:?} is not one of {FORMAT_NAMES}"))
    })
}

impl From<AnswerError> for ApiError {
    fn from(err: AnswerError) -> Self {
        ApiError::internal(err.to_string())
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> Self {
        match err {
            QueryError::Sql(m) | QueryError::Refused(m) => ApiError::bad_request(m),
            QueryError::Timeout(_) | QueryError::ResourcesExhausted(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
            }
            QueryError::Internal(m) => {
                tracing::error!("query failed internally: {m}");
                ApiError::internal("internal error while running the query; see the server log")
            }
        }
    }
}

/// Bytes of an answer held back before the status line is sent, so an error within them (most
/// errors, and every answer up to this size) gets its proper 4xx/5xx status and a plain
/// `{"error": ...}` body. Larger answers stream; an error after the first bytes ends the body
/// with an error the format can carry (see [`AnswerEncoder::fail`]).
const BUFFERED_ANSWER_BYTES: usize = 1024 * 1024;

pub async fn run(
    State(state): State<AppState>,
    caller: TenantCaller,
    JsonBody(request): JsonBody<SqlRequest>,
) -> Result<Response, ApiError> {
    caller.require(Role::Read)?;
    let format = parse_format(request.format.as_deref())?;
    let session = state
        .query()
        .session(caller.tenant.id)
        .await?
        .for_door(strata_core::telemetry::door::HTTP);
    let result = session.execute(&request.sql).await?;
    let mut stream = result.stream;
    let mut encoder = AnswerEncoder::new(format, result.schema.clone())?;
    let mut buffered = encoder.begin()?;
    while buffered.len() < BUFFERED_ANSWER_BYTES {
        match stream.next().await {
            Some(Ok(batch)) => buffered.extend(encoder.batch(&batch)?),
            Some(Err(err)) => return Err(QueryError::from(err).into()),
            None => {
                buffered.extend(encoder.finish()?);
                return Ok(answer(format, Body::from(buffered)));
            }
        }
    }
    let head = futures::stream::iter([Ok::<Bytes, std::io::Error>(Bytes::from(buffered))]);
    Ok(answer(
        format,
        Body::from_stream(head.chain(async_stream(stream, encoder))),
    ))
}

fn answer(format: AnswerFormat, body: Body) -> Response {
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// Encodes the rest of the result stream. An error after the first bytes were sent can no longer
/// change the status: JSON answers end with an `"error"` member after `"rows"`, NDJSON answers
/// with a last line `{"error": ...}`; CSV and Arrow, which cannot carry one, are cut off (the
/// chunked body never ends, so the client reports an incomplete transfer, never a short answer
/// that looks whole).
fn async_stream(
    stream: datafusion::execution::SendableRecordBatchStream,
    encoder: AnswerEncoder,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(
        (stream, Some(encoder)),
        |(mut stream, encoder)| async move {
            let mut encoder = encoder?;
            let failure = match stream.next().await {
                Some(Ok(batch)) => match encoder.batch(&batch) {
                    Ok(bytes) => return Some((Ok(Bytes::from(bytes)), (stream, Some(encoder)))),
                    Err(err) => err.to_string(),
                },
                Some(Err(err)) => QueryError::from(err).to_string(),
                None => match encoder.finish() {
                    Ok(bytes) => return Some((Ok(Bytes::from(bytes)), (stream, None))),
                    Err(err) => err.to_string(),
                },
            };
            tracing::warn!("query failed while streaming: {failure}");
            let end = match encoder.fail(&failure) {
                Some(bytes) => Ok(Bytes::from(bytes)),
                None => Err(std::io::Error::other(failure)),
            };
            Some((end, (stream, None)))
        },
    )
}
