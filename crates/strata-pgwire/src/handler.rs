//! Simple and extended query handling over the connection's tenant session.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{CloseCursor, DeclareType, Statement};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::{stream, Sink, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{MemPortalStore, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ErrorHandler, RandomPidSecretKeyGenerator, Type,
    METADATA_APPLICATION_NAME,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;
use strata_catalog::DynCatalog;
use strata_query::{QueryEngine, QueryError};
use tokio::sync::watch;

use crate::auth::{
    cancelled, CancelRegistry, Connection, StrataCancelHandler, StrataStartupHandler,
};
use crate::cursor::{cursor_key, fetch_count, Cursor, DUPLICATE_CURSOR, NO_ACTIVE_TRANSACTION};
use crate::errors::{
    cancelled as cancelled_error, pg_error, query_error, syntax_error, FEATURE_NOT_SUPPORTED,
    INTERNAL_ERROR, PROTOCOL_VIOLATION,
};
use crate::limits::Sessions;
use crate::params;
use crate::pg_catalog::PgCatalog;
use crate::socket::Handlers;

/// Statements in one simple-protocol query string.
pub const MAX_STATEMENTS_PER_QUERY: usize = 64;

/// Client settings accepted by `SET` and ignored: drivers send them at connect time and none
/// changes what a query returns here (results are UTC, UTF-8, ISO dates, schema `public`).
const HARMLESS_SETTINGS: [&str; 16] = [
    "client_encoding",
    "names",
    "datestyle",
    "extra_float_digits",
    "application_name",
    "search_path",
    "timezone",
    "time zone",
    "intervalstyle",
    "bytea_output",
    "client_min_messages",
    "standard_conforming_strings",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "session characteristics",
];

pub struct StrataHandlers {
    query: Arc<QueryService>,
    startup: Arc<StrataStartupHandler>,
    cancel: Arc<StrataCancelHandler>,
}

impl StrataHandlers {
    /// `allow_insecure`: accept connections without TLS from other hosts
    /// ([`crate::auth::may_send_password`]). Fails only if the static `pg_catalog` tables do
    /// not decode.
    pub fn new(
        engine: QueryEngine,
        catalog: DynCatalog,
        allow_insecure: bool,
    ) -> Result<Self, datafusion::error::DataFusionError> {
        let registry = Arc::new(CancelRegistry::default());
        Ok(StrataHandlers {
            query: Arc::new(QueryService {
                parser: Arc::new(StrataParser {
                    sql: PostgresCompatibilityParser::new(),
                }),
            }),
            startup: Arc::new(StrataStartupHandler {
                engine,
                catalog,
                registry: registry.clone(),
                keys: RandomPidSecretKeyGenerator::default(),
                allow_insecure,
                sessions: Arc::new(Sessions::default()),
                pg_catalog: PgCatalog::new()?,
            }),
            cancel: Arc::new(StrataCancelHandler { registry }),
        })
    }
}

impl Handlers for StrataHandlers {
    type Statement = Prepared;
    type Startup = StrataStartupHandler;
    type Simple = QueryService;
    type Extended = QueryService;
    type Cancel = StrataCancelHandler;
    type Errors = LoggingErrorHandler;

    fn startup(&self) -> Arc<StrataStartupHandler> {
        self.startup.clone()
    }

    fn simple(&self) -> Arc<QueryService> {
        self.query.clone()
    }

    fn extended(&self) -> Arc<QueryService> {
        self.query.clone()
    }

    fn cancel(&self) -> Arc<StrataCancelHandler> {
        self.cancel.clone()
    }

    fn errors(&self) -> Arc<LoggingErrorHandler> {
        Arc::new(LoggingErrorHandler)
    }
}

pub struct LoggingErrorHandler;

impl ErrorHandler for LoggingErrorHandler {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        tracing::debug!(%error, "Postgres error response");
    }
}

/// A statement answered without the SQL engine.
#[derive(Debug, Clone)]
pub enum Local {
    Begin,
    Commit,
    Rollback,
    /// `SAVEPOINT`, `RELEASE` and `ROLLBACK TO`: drivers nest transactions with them
    /// (psycopg's `conn.transaction()` inside a transaction); with nothing to undo they are
    /// no-ops.
    Savepoint,
    Release,
    RollbackToSavepoint,
    Set,
    Discard,
    Show {
        name: String,
        value: String,
    },
}

/// A parsed (prepared) statement.
#[derive(Debug, Clone)]
pub enum Prepared {
    Local(Local),
    Query {
        statement: Box<Statement>,
        /// `$1..$n` in order, as far as planning could infer them.
        param_types: Vec<Option<DataType>>,
        schema: SchemaRef,
    },
    /// `DECLARE name CURSOR FOR query`: runs `query` and keeps its stream open ([`cursor`]).
    Declare {
        name: String,
        hold: bool,
        query: Box<Statement>,
        param_types: Vec<Option<DataType>>,
    },
    /// `FETCH n FROM name`; `schema` is the cursor's, when it was open at Parse time.
    Fetch {
        name: String,
        count: Option<u64>,
        schema: Option<SchemaRef>,
    },
    /// `CLOSE name`, or `CLOSE ALL` for `None`.
    Close {
        name: Option<String>,
    },
    /// The portal a `DECLARE` opens under the cursor's name, as in Postgres, so that a client
    /// can Describe it (psycopg learns a server-side cursor's columns this way).
    CursorPortal {
        schema: SchemaRef,
    },
}

/// A cursor statement, recognized before planning.
enum CursorOp {
    Declare {
        name: String,
        hold: bool,
        query: Box<Statement>,
    },
    Fetch {
        name: String,
        count: Option<u64>,
    },
    Close {
        name: Option<String>,
    },
}

pub struct StrataParser {
    sql: PostgresCompatibilityParser,
}

impl StrataParser {
    fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        // Size, expression depth and literal limits before the parser sees the text: a deep
        // statement must be refused here, not overflow this thread's stack (issue 24 defect 1).
        strata_query::limits::check_text(sql).map_err(query_error)?;
        self.sql.parse(sql).map_err(syntax_error)
    }
}

fn connection<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<Connection>> {
    client
        .session_extensions()
        .get::<Connection>()
        .ok_or_else(|| pg_error(PROTOCOL_VIOLATION, "not authenticated"))
}

/// The setting a `SET` statement names, lower-cased (`SET SESSION TIME ZONE 'x'` -> `time zone`).
fn set_target(sql: &str) -> String {
    let mut words = sql
        .split(|c: char| c.is_whitespace() || c == '=')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase());
    let _set = words.next();
    let mut name = words.next().unwrap_or_default();
    if name == "session" || name == "local" {
        name = words.next().unwrap_or_default();
    }
    match name.as_str() {
        "time" => "time zone".to_string(),
        "session" => "session characteristics".to_string(),
        _ => name.trim_matches('"').to_string(),
    }
}

fn show_value(name: &str, client: &dyn ClientInfo) -> Option<String> {
    let value = match name {
        "server_version" => "16.6",
        "server_encoding" | "client_encoding" => "UTF8",
        "datestyle" => "ISO, MDY",
        "timezone" | "time zone" => "UTC",
        "intervalstyle" => "postgres",
        "transaction_isolation" | "transaction isolation level" => "read committed",
        "default_transaction_isolation" => "read committed",
        "transaction_read_only" | "default_transaction_read_only" => "on",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "search_path" => "public",
        "max_identifier_length" => "63",
        "bytea_output" => "hex",
        "extra_float_digits" => "1",
        "lc_collate" | "lc_ctype" => "C",
        "application_name" => {
            return Some(
                client
                    .metadata()
                    .get(METADATA_APPLICATION_NAME)
                    .cloned()
                    .unwrap_or_default(),
            )
        }
        _ => return None,
    };
    Some(value.to_string())
}

/// Transaction control, `SET`, `SHOW` and `DISCARD` are answered here: Strata is read-only with
/// no transactions to keep, and DataFusion must not see client settings.
fn classify(statement: &Statement, client: &dyn ClientInfo) -> PgWireResult<Option<Local>> {
    Ok(Some(match statement {
        Statement::StartTransaction { .. } => Local::Begin,
        Statement::Commit { .. } => Local::Commit,
        Statement::Rollback {
            savepoint: None, ..
        } => Local::Rollback,
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Local::RollbackToSavepoint,
        Statement::Savepoint { .. } => Local::Savepoint,
        Statement::ReleaseSavepoint { .. } => Local::Release,
        Statement::Discard { .. } => Local::Discard,
        Statement::Set(_) => {
            let name = set_target(&statement.to_string());
            if !HARMLESS_SETTINGS.contains(&name.as_str()) {
                return Err(pg_error(
                    FEATURE_NOT_SUPPORTED,
                    format!("SET {name} is not supported"),
                ));
            }
            Local::Set
        }
        Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            let value = show_value(&name, client).ok_or_else(|| {
                pg_error(
                    "42704",
                    format!("unrecognized configuration parameter \"{name}\""),
                )
            })?;
            Local::Show { name, value }
        }
        _ => return Ok(None),
    }))
}

fn show_schema(name: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]))
}

fn format_options(client: &dyn ClientInfo) -> Arc<FormatOptions> {
    Arc::new(FormatOptions::from_client_metadata(client.metadata()))
}

fn local_response(
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

/// Runs `sql` through the tenant session (sandbox, alias rewrite, limits) and streams its rows
/// in `format`. A cancel request ends the stream with 57014 and drops the query. When the
/// statement was described before (extended protocol), columns are cast to the described types
/// so the rows match the RowDescription the client already has.
async fn run(
    conn: &Connection,
    sql: &str,
    format: &Format,
    options: Arc<FormatOptions>,
    described: Option<&SchemaRef>,
) -> PgWireResult<QueryResponse> {
    let mut cancel = conn.cancel.subscribe();
    let result = tokio::select! {
        result = conn.session.execute(sql) => result.map_err(query_error)?,
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
fn encode(
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
fn cancellable(
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

/// Recognizes `DECLARE ... CURSOR FOR`, `FETCH` and `CLOSE`, which are answered from the
/// connection's cursors ([`crate::cursor`]) rather than by the SQL engine.
fn cursor_op(
    statement: &Statement,
    parser: &PostgresCompatibilityParser,
) -> PgWireResult<Option<CursorOp>> {
    Ok(Some(match statement {
        Statement::Declare { stmts } => {
            let [declare] = stmts.as_slice() else {
                return Err(pg_error(
                    FEATURE_NOT_SUPPORTED,
                    "declare one cursor per statement",
                ));
            };
            let [name] = declare.names.as_slice() else {
                return Err(pg_error(
                    FEATURE_NOT_SUPPORTED,
                    "declare one cursor per statement",
                ));
            };
            if declare.declare_type != Some(DeclareType::Cursor) {
                return Err(pg_error(
                    FEATURE_NOT_SUPPORTED,
                    "only DECLARE name CURSOR FOR query is supported",
                ));
            }
            if declare.binary == Some(true) {
                return Err(pg_error(
                    FEATURE_NOT_SUPPORTED,
                    "BINARY cursors are not supported; ask for binary results in the extended \
                     protocol instead",
                ));
            }
            if declare.scroll == Some(true) {
                return Err(pg_error(
                    FEATURE_NOT_SUPPORTED,
                    "SCROLL cursors are not supported: Strata cursors only move forward",
                ));
            }
            let Some(query) = &declare.for_query else {
                return Err(syntax_error("DECLARE CURSOR needs FOR <query>"));
            };
            // The compatibility rewrites apply to top-level queries only; give the cursor's
            // query the same treatment as a plain SELECT.
            let query = Box::new(parser.rewrite(Statement::Query(query.clone())));
            CursorOp::Declare {
                name: cursor_key(name),
                hold: declare.hold == Some(true),
                query,
            }
        }
        Statement::Fetch {
            name,
            direction,
            into,
            ..
        } => {
            if into.is_some() {
                return Err(pg_error(
                    FEATURE_NOT_SUPPORTED,
                    "FETCH ... INTO is not supported",
                ));
            }
            CursorOp::Fetch {
                name: cursor_key(name),
                count: fetch_count(direction)?,
            }
        }
        Statement::Close { cursor } => CursorOp::Close {
            name: match cursor {
                CloseCursor::All => None,
                CloseCursor::Specific { name } => Some(cursor_key(name)),
            },
        },
        _ => return Ok(None),
    }))
}

/// Runs the cursor's query and keeps its stream. Like Postgres, a cursor without `WITH HOLD`
/// needs a transaction block, which ends it.
async fn declare_cursor(
    conn: &Connection,
    name: String,
    hold: bool,
    sql: &str,
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
        result = conn.session.execute(sql) => result.map_err(query_error)?,
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
async fn fetch_cursor(
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
fn cursor_portals(store: &dyn Any) -> Option<&MemPortalStore<Prepared>> {
    store.downcast_ref::<MemPortalStore<Prepared>>()
}

fn open_cursor_portal(store: &dyn Any, name: &str, schema: SchemaRef) {
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

fn close_cursor_portals(store: &dyn Any, names: &[String]) {
    if let Some(store) = cursor_portals(store) {
        for name in names {
            store.rm_portal(name);
        }
    }
}

/// `CLOSE name` / `CLOSE ALL`: returns the names closed.
fn close_cursor(conn: &Connection, name: Option<&str>) -> PgWireResult<Vec<String>> {
    match name {
        Some(name) => {
            conn.cursors.close(name)?;
            Ok(vec![name.to_string()])
        }
        None => Ok(conn.cursors.close_all()),
    }
}

/// COMMIT and ROLLBACK end the transaction's cursors; returns the names closed.
fn end_transaction(conn: &Connection, local: &Local) -> Vec<String> {
    match local {
        Local::Commit => conn.cursors.end_transaction(true),
        Local::Rollback => conn.cursors.end_transaction(false),
        _ => Vec::new(),
    }
}

/// Plans `statement` (with the checks and rewrite `execute` applies) to learn its parameter
/// and result types without running it.
async fn describe(
    conn: &Connection,
    statement: &Statement,
) -> PgWireResult<(Vec<Option<DataType>>, SchemaRef)> {
    let mut planned = DfStatement::Statement(Box::new(statement.clone()));
    strata_query::sandbox::check(&planned).map_err(query_error)?;
    if let DfStatement::Statement(inner) = &mut planned {
        conn.resolver.rewrite(inner.as_mut());
    }
    let plan = conn
        .session
        .context()
        .state()
        .statement_to_plan(planned)
        .await
        .map_err(|e| query_error(QueryError::from(e)))?;
    let types = plan
        .get_parameter_types()
        .map_err(|e| query_error(QueryError::from(e)))?;
    let mut numbered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(name, ty)| {
            let n = name.strip_prefix('$')?.parse::<usize>().ok()?;
            Some((n, ty))
        })
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    let count = numbered.last().map_or(0, |(n, _)| *n);
    if count > params::MAX_PARAMETERS {
        return Err(pg_error(PROTOCOL_VIOLATION, "too many parameters"));
    }
    let mut param_types = vec![None; count];
    for (n, ty) in numbered {
        if let Some(slot) = n.checked_sub(1).and_then(|i| param_types.get_mut(i)) {
            *slot = ty;
        }
    }
    Ok((param_types, Arc::new(plan.schema().as_arrow().clone())))
}

pub struct QueryService {
    parser: Arc<StrataParser>,
}

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
            let outcome = match classify(&statement, client) {
                Ok(Some(local)) => {
                    match local {
                        Local::Begin => in_transaction = true,
                        Local::Commit | Local::Rollback => in_transaction = false,
                        _ => {}
                    }
                    let closed = end_transaction(&conn, &local);
                    close_cursor_portals(client.portal_store().as_any(), &closed);
                    local_response(&local, &Format::UnifiedText, options.clone())
                }
                Ok(None) => match cursor_op(&statement, &self.parser.sql) {
                    Ok(Some(CursorOp::Declare { name, hold, query })) => {
                        let sql = query.to_string();
                        match declare_cursor(&conn, name.clone(), hold, &sql, in_transaction).await
                        {
                            Ok(schema) => {
                                open_cursor_portal(client.portal_store().as_any(), &name, schema);
                                Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
                            }
                            Err(error) => Err(error),
                        }
                    }
                    Ok(Some(CursorOp::Fetch { name, count })) => {
                        fetch_cursor(&conn, &name, count, &Format::UnifiedText, options.clone())
                            .await
                    }
                    Ok(Some(CursorOp::Close { name })) => {
                        match close_cursor(&conn, name.as_deref()) {
                            Ok(closed) => {
                                close_cursor_portals(client.portal_store().as_any(), &closed);
                                Ok(Response::Execution(Tag::new("CLOSE CURSOR")))
                            }
                            Err(error) => Err(error),
                        }
                    }
                    Ok(None) => run(
                        &conn,
                        &statement.to_string(),
                        &Format::UnifiedText,
                        options.clone(),
                        None,
                    )
                    .await
                    .map(Response::Query),
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            };
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
                let schema = declare_cursor(
                    &conn,
                    name.clone(),
                    *hold,
                    &bound.to_string(),
                    in_transaction,
                )
                .await?;
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
                    &bound.to_string(),
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
