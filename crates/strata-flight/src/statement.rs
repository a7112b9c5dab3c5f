//! Statements through the tenant's session, and their answers in Flight's shapes: a parsed
//! statement is described for a `FlightInfo` (schema and ticket) and executed for `DoGet`
//! (its batches as `FlightData`).

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{
    FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::parser::Statement as DfStatement;
use futures::{Stream, TryStreamExt};
use strata_query::{Described, TenantSession};
use tonic::Status;

use crate::errors::{query_status, stream_status};

/// What `DoGet` answers.
pub(crate) type FlightDataStream =
    Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// Parses exactly one statement, with the engine's text limits.
pub(crate) fn parse(sql: &str) -> Result<DfStatement, Status> {
    TenantSession::parse(sql).map_err(query_status)
}

/// Parameter and result types without running the statement (sandbox and alias rewrite
/// included).
pub(crate) async fn describe(
    session: &TenantSession,
    statement: DfStatement,
) -> Result<Described, Status> {
    session.describe(statement).await.map_err(query_status)
}

/// Runs `statement` and streams its batches; errors during the stream end it with their
/// status.
pub(crate) async fn execute(
    session: &TenantSession,
    statement: DfStatement,
) -> Result<FlightDataStream, Status> {
    let result = session
        .execute_statement(statement)
        .await
        .map_err(query_status)?;
    let batches = result
        .stream
        .map_err(|error| FlightError::Tonic(Box::new(stream_status(error))));
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(result.schema)
        .build(batches);
    Ok(Box::pin(encoded.map_err(Status::from)))
}

/// One finished batch (metadata answers) as a `DoGet` stream.
pub(crate) fn batch_stream(batch: RecordBatch) -> FlightDataStream {
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(futures::stream::iter([Ok(batch)]));
    Box::pin(encoded.map_err(Status::from))
}

/// A `FlightInfo` with one endpoint whose ticket is `ticket`, served by this server.
pub(crate) fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("encoding the result schema: {e}")))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor))
}

/// A schema as the IPC message Flight SQL carries in its results.
pub(crate) fn schema_bytes(schema: &Schema) -> Result<Bytes, Status> {
    let message: Result<IpcMessage, _> =
        SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    message
        .map(|IpcMessage(bytes)| bytes)
        .map_err(|e| Status::internal(format!("encoding a schema: {e}")))
}

/// `$1..$n` as a schema: each parameter's inferred type, or Null where planning could not
/// infer one.
pub(crate) fn parameter_schema(types: &[Option<DataType>]) -> SchemaRef {
    let fields: Vec<Field> = types
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            Field::new(
                format!("${}", i + 1),
                ty.clone().unwrap_or(DataType::Null),
                true,
            )
        })
        .collect();
    Arc::new(Schema::new(fields))
}
