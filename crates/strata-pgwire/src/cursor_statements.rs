//! `DECLARE ... CURSOR FOR`, `FETCH` and `CLOSE` over the connection's cursors
//! ([`crate::cursor`]), and the cursor portals that let a client Describe a cursor.

use std::any::Any;
use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::sql::sqlparser::ast::Statement;
use futures::{stream, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{QueryResponse, Response};
use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::{MemPortalStore, PortalStore};
use pgwire::error::PgWireResult;
use pgwire::types::format::FormatOptions;
use strata_query::TenantSession;

use crate::answers::{cancellable, encode};
use crate::cancel::cancelled;
use crate::connection::Connection;
use crate::cursor::{Cursor, DUPLICATE_CURSOR, NO_ACTIVE_TRANSACTION};
use crate::errors::{cancelled as cancelled_error, pg_error, query_error};
use crate::statement::{Local, Prepared};

/// Runs the cursor's query and keeps its stream. Like Postgres, a cursor without `WITH HOLD`
/// needs a transaction block, which ends it.
pub(crate) async fn declare_cursor(
    conn: &Connection,
    name: String,
    hold: bool,
    statement: Statement,
    in_transaction: bool,
) -> PgWireResult<SchemaRef> {
    if !hold && !in_transaction {
        return Err(pg_error(
            NO_ACTIVE_TRANSACTION,
            "DECLARE CURSOR can only be used in transaction blocks",
        ));
    }
    // Checked before running the query so a duplicate costs nothing.
    if conn.cursors.get(&name).is_ok() {
        return Err(pg_error(
            DUPLICATE_CURSOR,
            format!("cursor \"{name}\" already exists"),
        ));
    }
    let mut cancel = conn.cancel.subscribe();
    let result = tokio::select! {
        result = conn.session.execute_statement(TenantSession::statement(statement)) => result.map_err(query_error)?,
        _ = cancelled(&mut cancel) => return Err(cancelled_error()),
    };
    let schema = result.schema.clone();
    conn.cursors.declare(
        name,
        Cursor::new(result.schema, result.stream, hold, in_transaction),
    )?;
    Ok(schema)
}

/// The next rows of a cursor, encoded in `format`, tagged `FETCH n`.
pub(crate) async fn fetch_cursor(
    conn: &Connection,
    name: &str,
    count: Option<u64>,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<Response> {
    let cursor = conn.cursors.get(name)?;
    let mut cursor = cursor.lock().await;
    // Subscribed now: a cancel request sent while no statement ran does not cancel this one.
    let mut cancel = conn.cancel.subscribe();
    let fields = Arc::new(arrow_schema_to_pg_fields(
        cursor.schema(),
        format,
        Some(options),
    )?);
    let mut response = match count {
        // FETCH ALL streams the rest, like a plain query, rather than buffering it.
        None => {
            let (pending, rest) = cursor.take_rest();
            let head = stream::iter(pending.map(Ok));
            let rows = match rest {
                Some(rest) => encode(
                    fields.clone(),
                    head.chain(cancellable(rest, cancel)).boxed(),
                ),
                None => encode(fields.clone(), head.boxed()),
            };
            QueryResponse::new(fields, rows)
        }
        Some(_) => {
            let batches = cursor.fetch(count, &mut cancel).await?;
            let rows: Vec<_> = batches
                .into_iter()
                .flat_map(|batch| encode_recordbatch(fields.clone(), batch))
                .collect();
            QueryResponse::new(fields, stream::iter(rows))
        }
    };
    response.set_command_tag("FETCH");
    Ok(Response::Query(response))
}

/// The connection's portal store, where cursor portals are registered for Describe.
pub(crate) fn cursor_portals(store: &dyn Any) -> Option<&MemPortalStore<Prepared>> {
    store.downcast_ref::<MemPortalStore<Prepared>>()
}

pub(crate) fn open_cursor_portal(store: &dyn Any, name: &str, schema: SchemaRef) {
    if let Some(store) = cursor_portals(store) {
        let statement = StoredStatement::new(
            name.to_string(),
            Prepared::CursorPortal { schema },
            Vec::new(),
        );
        store.put_portal(Arc::new(Portal::new_cursor(
            name.to_string(),
            Arc::new(statement),
        )));
    }
}

pub(crate) fn close_cursor_portals(store: &dyn Any, names: &[String]) {
    if let Some(store) = cursor_portals(store) {
        for name in names {
            store.rm_portal(name);
        }
    }
}

/// `CLOSE name` / `CLOSE ALL`: returns the names closed.
pub(crate) fn close_cursor(conn: &Connection, name: Option<&str>) -> PgWireResult<Vec<String>> {
    match name {
        Some(name) => {
            conn.cursors.close(name)?;
            Ok(vec![name.to_string()])
        }
        None => Ok(conn.cursors.close_all()),
    }
}

/// COMMIT and ROLLBACK end the transaction's cursors; returns the names closed.
pub(crate) fn end_transaction(conn: &Connection, local: &Local) -> Vec<String> {
    match local {
        Local::Commit => conn.cursors.end_transaction(true),
        Local::Rollback => conn.cursors.end_transaction(false),
        _ => Vec::new(),
    }
}
