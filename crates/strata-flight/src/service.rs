//! The Flight SQL service: each command authenticates its caller ([`crate::auth`]), opens the
//! caller's tenant session and answers through the statement API. A statement's ticket is its
//! SQL text (no server state; `DoGet` re-checks the caller and runs it in the caller's own
//! session); a prepared statement's ticket is its handle.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{Stream, TryStreamExt};
use prost::Message;
use strata_catalog::TenantDirectory;
use strata_query::{QueryEngine, TenantSession};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Authenticator, Caller};
use crate::errors::query_status;
use crate::incoming::Peer;
use crate::metadata;
use crate::prepared::PreparedStatements;
use crate::statement::{
    batch_stream, describe, execute, flight_info, parameter_schema, parse, schema_bytes,
};

type DoGetStream = <StrataFlightSql as FlightService>::DoGetStream;
type HandshakeStream =
    Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send + 'static>>;

/// Strata's Flight SQL service.
pub struct StrataFlightSql {
    engine: QueryEngine,
    auth: Authenticator,
    prepared: PreparedStatements,
}

fn read_only() -> Status {
    Status::permission_denied("Strata SQL is read-only: updates and ingest are refused")
}

impl StrataFlightSql {
    pub fn new(engine: QueryEngine, catalog: Arc<dyn TenantDirectory>) -> Self {
        StrataFlightSql {
            engine,
            auth: Authenticator::new(catalog),
            prepared: PreparedStatements::default(),
        }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.auth.caller(request.metadata()).await
    }

    /// The caller's tenant session: its tables only, built from the current schema.
    async fn session<T>(&self, request: &Request<T>) -> Result<(Caller, TenantSession), Status> {
        let caller = self.caller(request).await?;
        let session = self
            .engine
            .session(caller.tenant)
            .await
            .map_err(query_status)?
            .for_door(strata_core::telemetry::door::FLIGHT);
        Ok((caller, session))
    }

    /// A `FlightInfo` whose ticket is the command itself, for metadata answers of `schema`.
    fn command_info(
        command: impl ProstMessageExt,
        schema: &datafusion::arrow::datatypes::Schema,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = command.as_any().encode_to_vec();
        flight_info(schema, ticket, request.into_inner()).map(Response::new)
    }

    fn batch_answer(batch: RecordBatch) -> Result<Response<DoGetStream>, Status> {
        Ok(Response::new(batch_stream(batch)))
    }
}

/// The parameter rows of a `DoPut`.
async fn parameter_batches(stream: PeekableFlightDataStream) -> Result<Vec<RecordBatch>, Status> {
    let mut batches = FlightRecordBatchStream::new_from_flight_data(
        stream.map_err(|status| FlightError::Tonic(Box::new(status))),
    );
    let mut collected = Vec::new();
    let mut rows = 0usize;
    while let Some(batch) = batches
        .try_next()
        .await
        .map_err(|e| Status::invalid_argument(format!("reading the parameters: {e}")))?
    {
        rows += batch.num_rows();
        // One row binds a statement; stop reading past it, and keep no empty batches, so a
        // client cannot make the server hold an endless stream of parameter batches.
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "bind exactly one row of parameters to a query ({rows} or more given)"
            )));
        }
        if batch.num_rows() > 0 {
            collected.push(batch);
        }
    }
    Ok(collected)
}

#[tonic::async_trait]
impl FlightSqlService for StrataFlightSql {
    type FlightService = StrataFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        let peer = request.extensions().get::<Peer>().map(|peer| peer.0);
        let token = match self.auth.handshake(request.metadata()).await {
            Ok(token) => token,
            Err(refused) => {
                tracing::info!(
                    ?peer,
                    reason = refused.message(),
                    "Flight SQL login refused"
                );
                return Err(refused);
            }
        };
        let header = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::internal("could not encode the token"))?;
        let answer = HandshakeResponse {
            protocol_version: 0,
            payload: token.into_bytes().into(),
        };
        let stream: HandshakeStream = Box::pin(futures::stream::iter([Ok(answer)]));
        let mut response = Response::new(stream);
        response.metadata_mut().insert("authorization", header);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (_, session) = self.session(&request).await?;
        let described = describe(&session, parse(&query.query)?).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        let ticket = ticket.as_any().encode_to_vec();
        flight_info(&described.schema, ticket, request.into_inner()).map(Response::new)
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let (_, session) = self.session(&request).await?;
        let sql = std::str::from_utf8(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("the ticket is not a statement"))?;
        let stream = execute(&session, parse(sql)?).await?;
        Ok(Response::new(stream))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let (caller, session) = self.session(&request).await?;
        let statement = parse(&query.query)?;
        let described = describe(&session, statement.clone()).await?;
        let handle = self.prepared.create(&caller, statement)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: schema_bytes(&described.schema)?,
            parameter_schema: schema_bytes(&parameter_schema(&described.parameter_types))?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = self.caller(&request).await?;
        let batches = parameter_batches(request.into_inner()).await?;
        let handle = &query.prepared_statement_handle;
        self.prepared.set_parameters(&caller, handle, &batches)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (caller, session) = self.session(&request).await?;
        let statement = self
            .prepared
            .bound(&caller, &query.prepared_statement_handle)?;
        let described = describe(&session, statement).await?;
        Self::command_info(query, &described.schema, request)
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let (caller, session) = self.session(&request).await?;
        let statement = self
            .prepared
            .bound(&caller, &query.prepared_statement_handle)?;
        Ok(Response::new(execute(&session, statement).await?))
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let caller = self.caller(&request).await?;
        self.prepared
            .close(&caller, &query.prepared_statement_handle)
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.into_builder().schema();
        Self::command_info(query, &schema, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let (_, session) = self.session(&request).await?;
        Self::batch_answer(metadata::get_catalogs(&session, query).await?)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.clone().into_builder().schema();
        Self::command_info(query, &schema, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let (_, session) = self.session(&request).await?;
        Self::batch_answer(metadata::get_schemas(&session, query).await?)
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.clone().into_builder().schema();
        Self::command_info(query, &schema, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let (_, session) = self.session(&request).await?;
        Self::batch_answer(metadata::get_tables(&session, query).await?)
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.into_builder().schema();
        Self::command_info(query, &schema, request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let (_, session) = self.session(&request).await?;
        Self::batch_answer(metadata::get_table_types(&session, query).await?)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let info = metadata::sql_info()?;
        let schema = query.clone().into_builder(&info).schema();
        Self::command_info(query, &schema, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request).await?;
        let info = metadata::sql_info()?;
        let batch = query
            .into_builder(&info)
            .build()
            .map_err(|e| Status::internal(format!("building the server information: {e}")))?;
        Self::batch_answer(batch)
    }

    async fn do_put_statement_update(
        &self,
        _query: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.caller(&request).await?;
        Err(read_only())
    }

    async fn do_put_statement_ingest(
        &self,
        _query: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.caller(&request).await?;
        Err(read_only())
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.caller(&request).await?;
        Err(read_only())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
