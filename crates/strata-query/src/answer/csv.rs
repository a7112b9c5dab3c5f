//! CSV answers with `arrow-csv`: a header line (even for no rows), then one line per row in
//! Arrow's display text; nulls are empty. Nested columns, which `arrow-csv` refuses, are sent as
//! their display text, as JSON answers send them.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::AnswerError;

pub struct CsvEncoder {
    /// The answer's schema with nested columns as text.
    schema: SchemaRef,
}

impl CsvEncoder {
    pub(super) fn new(schema: SchemaRef) -> Self {
        CsvEncoder {
            schema: Arc::new(text_for_nested(&schema)),
        }
    }

    /// The header line: what `arrow-csv` writes before the first rows of a batch, here of an
    /// empty one so that an answer without rows still names its columns.
    pub(super) fn begin(&mut self) -> Result<Vec<u8>, AnswerError> {
        let mut out = Vec::new();
        let mut writer = WriterBuilder::new().with_header(true).build(&mut out);
        writer.write(&RecordBatch::new_empty(self.schema.clone()))?;
        drop(writer);
        Ok(out)
    }

    pub(super) fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, AnswerError> {
        let batch = nested_as_text(batch, &self.schema)?;
        let mut out = Vec::with_capacity(batch.num_rows() * 32);
        let mut writer = WriterBuilder::new().with_header(false).build(&mut out);
        writer.write(&batch)?;
        drop(writer);
        Ok(out)
    }
}

fn text_for_nested(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| match field.data_type().is_nested() {
            true => Field::new(field.name(), DataType::Utf8, true),
            false => field.as_ref().clone(),
        })
        .collect();
    Schema::new(fields)
}

/// `batch` with each nested column replaced by its display text.
fn nested_as_text(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, AnswerError> {
    if !batch.columns().iter().any(|c| c.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let columns = batch
        .columns()
        .iter()
        .map(|column| {
            if !column.data_type().is_nested() {
                return Ok(column.clone());
            }
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let mut text = StringBuilder::new();
            for row in 0..column.len() {
                match column.is_null(row) {
                    true => text.append_null(),
                    false => text.append_value(formatter.value(row).to_string()),
                }
            }
            Ok(Arc::new(text.finish()) as ArrayRef)
        })
        .collect::<Result<Vec<_>, AnswerError>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
