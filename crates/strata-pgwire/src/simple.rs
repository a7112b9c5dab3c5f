//! The simple query protocol: a query string of up to [`MAX_STATEMENTS_PER_QUERY`] statements,
//! each answered locally, from the cursors, or by the tenant session, in order; the statements
//! after a failed one are not run.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::sql::sqlparser::ast::Statement;
use futures::Sink;
use pgwire::api::portal::Format;
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::{Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use crate::answers::{format_options, local_response, run};
use crate::connection::{connection, Connection};
use crate::cursor_statements::{
    close_cursor, close_cursor_portals, declare_cursor, end_transaction, fetch_cursor,
    open_cursor_portal,
};
use crate::errors::{pg_error, PROTOCOL_VIOLATION};
use crate::handlers::QueryService;
use crate::statement::{classify, cursor_op, CursorOp, Local, MAX_STATEMENTS_PER_QUERY};

#[async_trait]
impl SimpleQueryHandler for QueryService {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = connection(client)?;
        let statements = self.parser.parse(query)?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        if statements.len() > MAX_STATEMENTS_PER_QUERY {
            return Err(pg_error(
                PROTOCOL_VIOLATION,
                format!("more than {MAX_STATEMENTS_PER_QUERY} statements in one query"),
            ));
        }
        let options = format_options(client);
        // pgwire updates the transaction status after the whole string ran, so track it here
        // for `BEGIN; DECLARE ...` in one query.
        let mut in_transaction = client.transaction_status() != TransactionStatus::Idle;
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            let outcome = self
                .run_one(client, &conn, statement, &mut in_transaction, &options)
                .await;
            match outcome {
                Ok(response) => responses.push(response),
                // Like Postgres: the statements after a failed one are not run.
                Err(PgWireError::UserError(info)) => {
                    responses.push(Response::Error(info));
                    break;
                }
                Err(other) => return Err(other),
            }
        }
        Ok(responses)
    }
}

impl QueryService {
    /// One statement of a simple query: answered locally, from the cursors, or by the session.
    /// `in_transaction` follows `BEGIN`/`COMMIT`/`ROLLBACK` within the query string.
    async fn run_one<C>(
        &self,
        client: &C,
        conn: &Connection,
        statement: Statement,
        in_transaction: &mut bool,
        options: &Arc<FormatOptions>,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore,
        C::PortalStore: PortalStore,
    {
        if let Some(local) = classify(&statement, client)? {
            match local {
                Local::Begin => *in_transaction = true,
                Local::Commit | Local::Rollback => *in_transaction = false,
                _ => {}
            }
            let closed = end_transaction(conn, &local);
            close_cursor_portals(client.portal_store().as_any(), &closed);
            return local_response(&local, &Format::UnifiedText, options.clone());
        }
        match cursor_op(&statement, &self.parser.sql)? {
            Some(CursorOp::Declare { name, hold, query }) => {
                let schema =
                    declare_cursor(conn, name.clone(), hold, *query, *in_transaction).await?;
                open_cursor_portal(client.portal_store().as_any(), &name, schema);
                Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
            }
            Some(CursorOp::Fetch { name, count }) => {
                fetch_cursor(conn, &name, count, &Format::UnifiedText, options.clone()).await
            }
            Some(CursorOp::Close { name }) => {
                let closed = close_cursor(conn, name.as_deref())?;
                close_cursor_portals(client.portal_store().as_any(), &closed);
                Ok(Response::Execution(Tag::new("CLOSE CURSOR")))
            }
            None => run(conn, statement, &Format::UnifiedText, options.clone(), None)
                .await
                .map(Response::Query),
        }
    }
}
