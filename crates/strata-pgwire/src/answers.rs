//! Answers in the Postgres wire format: local answers (`SHOW`, transaction tags) and query
//! results streamed row by row, conformed to the types the client was told at Describe, and
//! ended by a cancel request.

use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::sqlparser::ast::Statement;
use futures::{stream, StreamExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::ClientInfo;
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;
use strata_query::{QueryError, TenantSession};
use tokio::sync::watch;

use crate::cancel::cancelled;
use crate::connection::Connection;
use crate::errors::{cancelled as cancelled_error, pg_error, query_error, INTERNAL_ERROR};
use crate::statement::Local;

pub(crate) fn show_schema(name: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]))
}

pub(crate) fn format_options(client: &dyn ClientInfo) -> Arc<FormatOptions> {
    Arc::new(FormatOptions::from_client_metadata(client.metadata()))
}

pub(crate) fn local_response(
    local: &Local,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<Response> {
    Ok(match local {
        Local::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        Local::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
        Local::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
        Local::Savepoint => Response::Execution(Tag::new("SAVEPOINT")),
        Local::Release => Response::Execution(Tag::new("RELEASE")),
        Local::RollbackToSavepoint => Response::Execution(Tag::new("ROLLBACK")),
        Local::Set => Response::Execution(Tag::new("SET")),
        Local::Discard => Response::Execution(Tag::new("DISCARD ALL")),
        Local::Show { name, value } => {
            let schema = show_schema(name);
            let fields = Arc::new(arrow_schema_to_pg_fields(&schema, format, Some(options))?);
            let column: ArrayRef = Arc::new(StringArray::from(vec![value.clone()]));
            let batch = RecordBatch::try_new(schema, vec![column])
                .map_err(|e| pg_error(INTERNAL_ERROR, e.to_string()))?;
            let rows: Vec<_> = encode_recordbatch(fields.clone(), batch).collect();
            Response::Query(QueryResponse::new(fields, stream::iter(rows)))
        }
    })
}

/// Runs `statement` through the tenant session (sandbox, alias rewrite, limits) and streams its rows
/// in `format`. A cancel request ends the stream with 57014 and drops the query. When the
/// statement was described before (extended protocol), columns are cast to the described types
/// so the rows match the RowDescription the client already has.
pub(crate) async fn run(
    conn: &Connection,
    statement: Statement,
    format: &Format,
    options: Arc<FormatOptions>,
    described: Option<&SchemaRef>,
) -> PgWireResult<QueryResponse> {
    let mut cancel = conn.cancel.subscribe();
    let result = tokio::select! {
        result = conn.session.execute_statement(TenantSession::statement(statement)) => result.map_err(query_error)?,
        _ = cancelled(&mut cancel) => return Err(cancelled_error()),
    };
    let target = match described {
        Some(schema) if schema.fields().len() == result.schema.fields().len() => schema.clone(),
        _ => result.schema.clone(),
    };
    let fields = Arc::new(arrow_schema_to_pg_fields(&target, format, Some(options))?);
    let batches =
        cancellable(result.stream, cancel).map(move |b| b.and_then(|b| conform(b, &target)));
    let rows = encode(fields.clone(), batches);
    Ok(QueryResponse::new(fields, rows))
}

/// The data rows of `batches`, encoded as `fields` say, batch by batch.
pub(crate) fn encode(
    fields: Arc<Vec<FieldInfo>>,
    batches: impl futures::Stream<Item = PgWireResult<RecordBatch>> + Send + 'static,
) -> impl futures::Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    batches
        .map(move |batch| {
            let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = match batch {
                Ok(batch) => Box::new(encode_recordbatch(fields.clone(), batch)),
                Err(error) => Box::new(std::iter::once(Err(error))),
            };
            stream::iter(rows)
        })
        .flatten()
}

/// `batch` with the columns of `schema` (cast where the types differ).
fn conform(batch: RecordBatch, schema: &SchemaRef) -> PgWireResult<RecordBatch> {
    if batch.schema().fields().len() != schema.fields().len() {
        return Err(pg_error(INTERNAL_ERROR, "result shape changed"));
    }
    let same = batch
        .schema()
        .fields()
        .iter()
        .zip(schema.fields())
        .all(|(a, b)| a.data_type() == b.data_type());
    if same {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| cast(column, field.data_type()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pg_error(INTERNAL_ERROR, format!("result column cast: {e}")))?;
    let relaxed = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(relaxed, columns).map_err(|e| pg_error(INTERNAL_ERROR, e.to_string()))
}

/// The record batches until the stream ends, fails, or a cancel request arrives.
pub(crate) fn cancellable(
    inner: SendableRecordBatchStream,
    cancel: watch::Receiver<u64>,
) -> impl futures::Stream<Item = PgWireResult<RecordBatch>> + Send {
    stream::unfold(Some((inner, cancel)), |state| async move {
        let (mut inner, mut cancel) = state?;
        tokio::select! {
            biased;
            _ = cancelled(&mut cancel) => Some((Err(cancelled_error()), None)),
            item = inner.next() => match item {
                None => None,
                Some(Ok(batch)) => Some((Ok(batch), Some((inner, cancel)))),
                Some(Err(error)) => Some((Err(query_error(QueryError::from(error))), None)),
            },
        }
    })
}
