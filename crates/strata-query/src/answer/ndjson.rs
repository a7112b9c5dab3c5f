//! NDJSON answers: one JSON object per row and line, keys in column order, nulls written, values
//! shaped as in JSON answers ([`super::json`]).

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use super::json::{column_encoders, encoder_options, write_value};
use super::AnswerError;

pub struct NdjsonEncoder {
    /// Each column's key, quoted and followed by a colon, once per answer.
    keys: Vec<Vec<u8>>,
}

impl NdjsonEncoder {
    pub(super) fn new(schema: SchemaRef) -> Self {
        let keys = schema
            .fields()
            .iter()
            .map(|field| {
                let mut key = serde_json::to_vec(field.name()).unwrap_or_else(|_| b"\"\"".to_vec());
                key.push(b':');
                key
            })
            .collect();
        NdjsonEncoder { keys }
    }

    pub(super) fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, AnswerError> {
        let options = encoder_options();
        let mut encoders = column_encoders(batch, &options)?;
        let mut out = Vec::with_capacity(batch.num_rows() * 48);
        for row in 0..batch.num_rows() {
            out.push(b'{');
            for (i, (encoder, key)) in encoders.iter_mut().zip(&self.keys).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(key);
                write_value(encoder, row, &mut out);
            }
            out.extend_from_slice(b"}\n");
        }
        Ok(out)
    }
}
