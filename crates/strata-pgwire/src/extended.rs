//! The extended query protocol: Parse describes a statement through the tenant session (its
//! parameter and result types) without running it; Bind substitutes the parameters into the
//! parsed statement; Execute runs it. The statement is parsed once, at Parse.

use std::fmt::Debug;
use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, into_pg_type};
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::sql::sqlparser::ast::Statement;
use futures::Sink;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::PgWireBackendMessage;
use strata_query::TenantSession;

use crate::answers::{format_options, local_response, run, show_schema};
use crate::connection::{connection, Connection};
use crate::cursor_statements::{
    close_cursor, close_cursor_portals, declare_cursor, end_transaction, fetch_cursor,
    open_cursor_portal,
};
use crate::errors::{pg_error, query_error, syntax_error, FEATURE_NOT_SUPPORTED};
use crate::handlers::QueryService;
use crate::params;
use crate::statement::{classify, cursor_op, CursorOp, Local, Prepared, StrataParser};

/// The parameter and result types of `statement`, planned by the connection's session with
/// every check execution applies, without running it.
async fn describe(
    conn: &Connection,
    statement: &Statement,
) -> PgWireResult<(Vec<Option<DataType>>, SchemaRef)> {
    let described = conn
        .session
        .describe(TenantSession::statement(statement.clone()))
        .await
        .map_err(query_error)?;
    Ok((described.parameter_types, described.schema))
}

#[async_trait]
impl QueryParser for StrataParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let conn = connection(client)?;
        let mut statements = self.parse(sql)?;
        if statements.len() > 1 {
            return Err(syntax_error(
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        if let Some(local) = classify(&statement, client)? {
            return Ok(Some(Prepared::Local(local)));
        }
        match cursor_op(&statement, &self.sql)? {
            Some(CursorOp::Declare { name, hold, query }) => {
                let (param_types, _) = describe(&conn, &query).await?;
                return Ok(Some(Prepared::Declare {
                    name,
                    hold,
                    query,
                    param_types,
                }));
            }
            Some(CursorOp::Fetch { name, count }) => {
                // Like Postgres, a FETCH of a cursor that is not open yet describes as no data
                // and fails when executed.
                let schema = conn.cursors.schema(&name).await.ok();
                return Ok(Some(Prepared::Fetch {
                    name,
                    count,
                    schema,
                }));
            }
            Some(CursorOp::Close { name }) => return Ok(Some(Prepared::Close { name })),
            None => {}
        }
        // Planning only, to tell the client the parameter and result types; Execute runs the
        // statement through `execute` itself.
        let (param_types, schema) = describe(&conn, &statement).await?;
        Ok(Some(Prepared::Query {
            statement: Box::new(statement),
            param_types,
            schema,
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        match stmt {
            Prepared::Local(_)
            | Prepared::Fetch { .. }
            | Prepared::Close { .. }
            | Prepared::CursorPortal { .. } => Ok(Vec::new()),
            Prepared::Query { param_types, .. } | Prepared::Declare { param_types, .. } => {
                param_types
                    .iter()
                    .map(|ty| match ty {
                        Some(ty) => into_pg_type(ty),
                        None => Ok(Type::UNKNOWN),
                    })
                    .collect()
            }
        }
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let format = column_format.unwrap_or(&Format::UnifiedText);
        match stmt {
            Prepared::Local(Local::Show { name, .. }) => {
                arrow_schema_to_pg_fields(&show_schema(name), format, None)
            }
            Prepared::Query { schema, .. }
            | Prepared::CursorPortal { schema }
            | Prepared::Fetch {
                schema: Some(schema),
                ..
            } => arrow_schema_to_pg_fields(schema, format, None),
            Prepared::Local(_)
            | Prepared::Declare { .. }
            | Prepared::Fetch { schema: None, .. }
            | Prepared::Close { .. } => Ok(Vec::new()),
        }
    }
}

impl QueryService {
    /// `statement` with the portal's parameters as literals ([`params`]).
    fn bind(
        &self,
        portal: &Portal<Prepared>,
        statement: &Statement,
        param_types: &[Option<DataType>],
    ) -> PgWireResult<Statement> {
        let server_types = self
            .parser
            .get_parameter_types(&portal.statement.statement)?;
        let server_refs: Vec<Option<&Type>> = server_types.iter().map(Some).collect();
        let inferred: Vec<Option<&DataType>> = param_types.iter().map(|t| t.as_ref()).collect();
        let values = arrow_pg::datatypes::df::deserialize_parameters_with_server_types(
            portal,
            &inferred,
            &server_refs,
        )?;
        let mut bound = statement.clone();
        params::bind(&mut bound, &values)?;
        Ok(bound)
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryService {
    type Statement = Prepared;
    type QueryParser = StrataParser;

    fn query_parser(&self) -> Arc<StrataParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = connection(client)?;
        let options = format_options(client);
        match &portal.statement.statement {
            Prepared::Local(local) => {
                let closed = end_transaction(&conn, local);
                close_cursor_portals(client.portal_store().as_any(), &closed);
                local_response(local, &portal.result_column_format, options)
            }
            Prepared::Declare {
                name,
                hold,
                query,
                param_types,
            } => {
                let bound = self.bind(portal, query, param_types)?;
                let in_transaction = client.transaction_status() != TransactionStatus::Idle;
                let schema =
                    declare_cursor(&conn, name.clone(), *hold, bound, in_transaction).await?;
                open_cursor_portal(client.portal_store().as_any(), name, schema);
                Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
            }
            Prepared::Fetch { name, count, .. } => {
                fetch_cursor(&conn, name, *count, &portal.result_column_format, options).await
            }
            Prepared::Close { name } => {
                let closed = close_cursor(&conn, name.as_deref())?;
                close_cursor_portals(client.portal_store().as_any(), &closed);
                Ok(Response::Execution(Tag::new("CLOSE CURSOR")))
            }
            Prepared::CursorPortal { .. } => Err(pg_error(
                FEATURE_NOT_SUPPORTED,
                format!(
                    "read cursor \"{}\" with FETCH, not by executing its portal",
                    portal.name
                ),
            )),
            Prepared::Query {
                statement,
                param_types,
                schema,
            } => {
                let bound = self.bind(portal, statement, param_types)?;
                let response = run(
                    &conn,
                    bound,
                    &portal.result_column_format,
                    options,
                    Some(schema),
                )
                .await?;
                Ok(Response::Query(response))
            }
        }
    }
}
