//! `POST /api/v1/sql`: runs one read-only statement in the caller's tenant session and streams
//! the result as json, csv, ndjson or Arrow IPC. Nothing is materialized whole: each Arrow batch
//! is encoded and sent as it arrives.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use strata_core::Role;
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Ndjson,
    Arrow,
}

impl Format {
    fn parse(text: Option<&str>) -> Result<Format, ApiError> {
        match text.unwrap_or("json") {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "ndjson" => Ok(Format::Ndjson),
            "arrow" => Ok(Format::Arrow),
            other => Err(ApiError::bad_request(format!(
                "format: {other:?} is not one of json, csv, ndjson, arrow"
            ))),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
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
/// with an error the format can carry (see [`Encoder::fail`]).
const BUFFERED_ANSWER_BYTES: usize = 1024 * 1024;

pub async fn run(
    State(state): State<AppState>,
    caller: TenantCaller,
    JsonBody(request): JsonBody<SqlRequest>,
) -> Result<Response, ApiError> {
    caller.require(Role::Read)?;
    let format = Format::parse(request.format.as_deref())?;
    let session = state.query().session(caller.tenant.id).await?;
    let result = session.execute(&request.sql).await?;
    let mut stream = result.stream;
    let mut encoder = Encoder::new(format, result.schema.clone())?;
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

fn answer(format: Format, body: Body) -> Response {
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// Encodes the rest of the result stream. An error after the first bytes were sent can no longer
/// change the status: JSON answers end with an `"error"` member after `"rows"`, NDJSON answers
/// with a last line `{"error": ...}`; CSV and Arrow, which cannot carry one, are cut off (the
/// chunked body never ends, so the client reports an incomplete transfer, never a short answer
/// that looks whole).
fn async_stream(
    stream: datafusion::execution::SendableRecordBatchStream,
    encoder: Encoder,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(
        (stream, Some(encoder)),
        |(mut stream, encoder)| async move {
            let mut encoder = encoder?;
            let failure = match stream.next().await {
                Some(Ok(batch)) => match encoder.batch(&batch) {
                    Ok(bytes) => return Some((Ok(Bytes::from(bytes)), (stream, Some(encoder)))),
                    Err(err) => err.message,
                },
                Some(Err(err)) => QueryError::from(err).to_string(),
                None => match encoder.finish() {
                    Ok(bytes) => return Some((Ok(Bytes::from(bytes)), (stream, None))),
                    Err(err) => err.message,
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

struct Encoder {
    format: Format,
    schema: SchemaRef,
    rows_written: usize,
    arrow: Option<datafusion::arrow::ipc::writer::StreamWriter<Vec<u8>>>,
}

impl Encoder {
    fn new(format: Format, schema: SchemaRef) -> Result<Self, ApiError> {
        let arrow = if format == Format::Arrow {
            Some(
                datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema)
                    .map_err(|e| ApiError::internal(format!("arrow encoder: {e}")))?,
            )
        } else {
            None
        };
        Ok(Encoder {
            format,
            schema,
            rows_written: 0,
            arrow,
        })
    }

    fn begin(&mut self) -> Result<Vec<u8>, ApiError> {
        match self.format {
            Format::Json => {
                let columns: Vec<Value> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| json!({ "name": f.name(), "type": type_name(f.data_type()) }))
                    .collect();
                let columns = serde_json::to_string(&columns)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                Ok(format!("{{\"columns\":{columns},\"rows\":[").into_bytes())
            }
            Format::Csv => {
                let mut out = Vec::new();
                let mut writer = csv_writer(&mut out);
                let names: Vec<&str> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                writer
                    .write_record(&names)
                    .and_then(|_| writer.flush().map_err(Into::into))
                    .map_err(|e| ApiError::internal(format!("csv encoder: {e}")))?;
                drop(writer);
                Ok(out)
            }
            Format::Ndjson => Ok(Vec::new()),
            Format::Arrow => Ok(self.take_arrow_bytes()),
        }
    }

    fn take_arrow_bytes(&mut self) -> Vec<u8> {
        self.arrow
            .as_mut()
            .map(|w| std::mem::take(w.get_mut()))
            .unwrap_or_default()
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ApiError> {
        let encode_err = |e: String| ApiError::internal(format!("result encoder: {e}"));
        match self.format {
            Format::Arrow => {
                if let Some(writer) = self.arrow.as_mut() {
                    writer.write(batch).map_err(|e| encode_err(e.to_string()))?;
                }
                Ok(self.take_arrow_bytes())
            }
            Format::Json => {
                let mut out = Vec::with_capacity(batch.num_rows() * 32);
                let cells = column_cells(batch).map_err(encode_err)?;
                for row in 0..batch.num_rows() {
                    if self.rows_written > 0 {
                        out.push(b',');
                    }
                    let values: Vec<&Value> = cells.iter().map(|col| &col[row]).collect();
                    serde_json::to_writer(&mut out, &values)
                        .map_err(|e| encode_err(e.to_string()))?;
                    self.rows_written += 1;
                }
                Ok(out)
            }
            Format::Ndjson => {
                let mut out = Vec::with_capacity(batch.num_rows() * 48);
                let cells = column_cells(batch).map_err(encode_err)?;
                for row in 0..batch.num_rows() {
                    let mut object = serde_json::Map::with_capacity(cells.len());
                    for (field, col) in self.schema.fields().iter().zip(&cells) {
                        object.insert(field.name().clone(), col[row].clone());
                    }
                    serde_json::to_writer(&mut out, &object)
                        .map_err(|e| encode_err(e.to_string()))?;
                    out.push(b'\n');
                }
                Ok(out)
            }
            Format::Csv => {
                let mut out = Vec::new();
                {
                    let mut writer = csv_writer(&mut out);
                    let formatters = text_formatters(batch).map_err(encode_err)?;
                    for row in 0..batch.num_rows() {
                        let record: Vec<String> = batch
                            .columns()
                            .iter()
                            .zip(&formatters)
                            .map(|(col, fmt)| {
                                if col.is_null(row) {
                                    String::new()
                                } else {
                                    fmt.value(row).to_string()
                                }
                            })
                            .collect();
                        writer
                            .write_record(&record)
                            .map_err(|e| encode_err(e.to_string()))?;
                    }
                    writer.flush().map_err(|e| encode_err(e.to_string()))?;
                }
                Ok(out)
            }
        }
    }

    /// The bytes that end an answer after a failure, for the formats that can say so.
    fn fail(&self, message: &str) -> Option<Vec<u8>> {
        let message = serde_json::to_string(message).ok()?;
        match self.format {
            Format::Json => Some(format!("],\"error\":{message}}}").into_bytes()),
            Format::Ndjson => Some(format!("{{\"error\":{message}}}\n").into_bytes()),
            Format::Csv | Format::Arrow => None,
        }
    }

    fn finish(&mut self) -> Result<Vec<u8>, ApiError> {
        match self.format {
            Format::Json => Ok(b"]}".to_vec()),
            Format::Arrow => {
                if let Some(writer) = self.arrow.as_mut() {
                    writer
                        .finish()
                        .map_err(|e| ApiError::internal(format!("arrow encoder: {e}")))?;
                }
                Ok(self.take_arrow_bytes())
            }
            Format::Csv | Format::Ndjson => Ok(Vec::new()),
        }
    }
}

fn csv_writer(out: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out)
}

fn text_formatters(batch: &RecordBatch) -> Result<Vec<ArrayFormatter<'_>>, String> {
    let options = FormatOptions::default();
    batch
        .columns()
        .iter()
        .map(|col| ArrayFormatter::try_new(col.as_ref(), &options).map_err(|e| e.to_string()))
        .collect()
}

/// Each column's values as JSON: numbers and booleans stay JSON numbers and booleans; strings
/// stay strings; everything else (timestamps, binary, nested) uses Arrow's display text.
fn column_cells(batch: &RecordBatch) -> Result<Vec<Vec<Value>>, String> {
    let formatters = text_formatters(batch)?;
    batch
        .columns()
        .iter()
        .zip(&formatters)
        .map(|(col, fmt)| {
            Ok((0..batch.num_rows())
                .map(|row| strata_query::json::cell(col, fmt, row))
                .collect())
        })
        .collect()
}

/// The SQL-facing name of an Arrow type in the `columns` header.
fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            "bigint unsigned".into()
        }
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        other => other.to_string().to_lowercase(),
    }
}
