//! Answer encoders: a query result as the bytes of one output format, batch by batch, one file
//! per format. The HTTP door streams them and the benchmark renders other engines' answers with
//! the JSON one, so both compare like for like.
//!
//! Every encoder is used the same way: [`AnswerEncoder::begin`] once, [`AnswerEncoder::batch`]
//! per record batch, then [`AnswerEncoder::finish`], or [`AnswerEncoder::fail`] when the result
//! stream fails after bytes were sent.

mod arrow_ipc;
mod csv;
pub mod json;
mod ndjson;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

/// An answer's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFormat {
    /// `{"columns": [{"name", "type"}], "rows": [[...], ...]}`.
    Json,
    /// A header line, then one line per row; nulls are empty.
    Csv,
    /// One JSON object per row and line.
    Ndjson,
    /// The Arrow IPC stream format.
    Arrow,
}

/// The names [`AnswerFormat::parse`] accepts, for error messages.
pub const FORMAT_NAMES: &str = "json, csv, ndjson, arrow";

impl AnswerFormat {
    /// The format named `name`; `None` for an unknown name.
    pub fn parse(name: &str) -> Option<AnswerFormat> {
        match name {
            "json" => Some(AnswerFormat::Json),
            "csv" => Some(AnswerFormat::Csv),
            "ndjson" => Some(AnswerFormat::Ndjson),
            "arrow" => Some(AnswerFormat::Arrow),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            AnswerFormat::Json => "application/json",
            AnswerFormat::Csv => "text/csv; charset=utf-8",
            AnswerFormat::Ndjson => "application/x-ndjson",
            AnswerFormat::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// A result could not be encoded (an Arrow type without a text form, an IPC write failure).
#[derive(Debug, thiserror::Error)]
#[error("result encoder: {0}")]
pub struct AnswerError(String);

impl From<ArrowError> for AnswerError {
    fn from(error: ArrowError) -> Self {
        AnswerError(error.to_string())
    }
}

/// One answer's encoder, holding what the format carries between batches.
pub enum AnswerEncoder {
    Json(json::JsonEncoder),
    Csv(csv::CsvEncoder),
    Ndjson(ndjson::NdjsonEncoder),
    // Boxed: the IPC writer is several hundred bytes, the other encoders a few words.
    Arrow(Box<arrow_ipc::ArrowEncoder>),
}

impl AnswerEncoder {
    pub fn new(format: AnswerFormat, schema: SchemaRef) -> Result<Self, AnswerError> {
        Ok(match format {
            AnswerFormat::Json => AnswerEncoder::Json(json::JsonEncoder::new(schema)),
            AnswerFormat::Csv => AnswerEncoder::Csv(csv::CsvEncoder::new(schema)),
            AnswerFormat::Ndjson => AnswerEncoder::Ndjson(ndjson::NdjsonEncoder::new(schema)),
            AnswerFormat::Arrow => {
                AnswerEncoder::Arrow(Box::new(arrow_ipc::ArrowEncoder::new(&schema)?))
            }
        })
    }

    /// The bytes before the first row (a JSON header, the CSV header line, the IPC schema).
    pub fn begin(&mut self) -> Result<Vec<u8>, AnswerError> {
        match self {
            AnswerEncoder::Json(encoder) => encoder.begin(),
            AnswerEncoder::Csv(encoder) => encoder.begin(),
            AnswerEncoder::Ndjson(_) => Ok(Vec::new()),
            AnswerEncoder::Arrow(encoder) => Ok(encoder.take_bytes()),
        }
    }

    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, AnswerError> {
        match self {
            AnswerEncoder::Json(encoder) => encoder.batch(batch),
            AnswerEncoder::Csv(encoder) => encoder.batch(batch),
            AnswerEncoder::Ndjson(encoder) => encoder.batch(batch),
            AnswerEncoder::Arrow(encoder) => encoder.batch(batch),
        }
    }

    /// The bytes after the last row.
    pub fn finish(&mut self) -> Result<Vec<u8>, AnswerError> {
        match self {
            AnswerEncoder::Json(_) => Ok(b"]}".to_vec()),
            AnswerEncoder::Csv(_) | AnswerEncoder::Ndjson(_) => Ok(Vec::new()),
            AnswerEncoder::Arrow(encoder) => encoder.finish(),
        }
    }

    /// The bytes that end an answer after a failure, for the formats that can say so: JSON ends
    /// with an `"error"` member after `"rows"`, NDJSON with a last line `{"error": ...}`. CSV
    /// and Arrow cannot carry one (`None`).
    pub fn fail(&self, message: &str) -> Option<Vec<u8>> {
        let message = serde_json::to_string(message).ok()?;
        match self {
            AnswerEncoder::Json(_) => Some(format!("],\"error\":{message}}}").into_bytes()),
            AnswerEncoder::Ndjson(_) => Some(format!("{{\"error\":{message}}}\n").into_bytes()),
            AnswerEncoder::Csv(_) | AnswerEncoder::Arrow(_) => None,
        }
    }
}
