//! The Arrow IPC stream format: the schema message, then one record batch message per batch.

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;

use super::AnswerError;

pub struct ArrowEncoder {
    writer: StreamWriter<Vec<u8>>,
}

impl ArrowEncoder {
    /// Writes the schema message into the buffer [`ArrowEncoder::take_bytes`] hands out.
    pub(super) fn new(schema: &Schema) -> Result<Self, AnswerError> {
        Ok(ArrowEncoder {
            writer: StreamWriter::try_new(Vec::new(), schema)?,
        })
    }

    pub(super) fn take_bytes(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.get_mut())
    }

    pub(super) fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, AnswerError> {
        self.writer.write(batch)?;
        Ok(self.take_bytes())
    }

    pub(super) fn finish(&mut self) -> Result<Vec<u8>, AnswerError> {
        self.writer.finish()?;
        Ok(self.take_bytes())
    }
}
