//! Simple and extended query handling over the connection's tenant session.

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
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::{stream, Sink, StreamExt};
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ErrorHandler, PgWireServerHandlers, RandomPidSecretKeyGenerator,
    Type, METADATA_APPLICATION_NAME,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;
use strata_catalog::DynCatalog;
use strata_query::{QueryEngine, QueryError};
use tokio::sync::watch;

use crate::auth::{
    cancelled, CancelRegistry, Connection, StrataCancelHandler, StrataStartupHandler,
};
use crate::errors::{
    cancelled as cancelled_error, pg_error, query_error, syntax_error, FEATURE_NOT_SUPPORTED,
    INTERNAL_ERROR, PROTOCOL_VIOLATION,
};
use crate::params;

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
    pub fn new(engine: QueryEngine, catalog: DynCatalog) -> Self {
        let registry = Arc::new(CancelRegistry::default());
        StrataHandlers {
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
            }),
            cancel: Arc::new(StrataCancelHandler { registry }),
        }
    }
}

impl PgWireServerHandlers for StrataHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.query.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.query.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LoggingErrorHandler)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

struct LoggingErrorHandler;

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
    Set,
    Discard,
    Show { name: String, value: String },
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
}

pub struct StrataParser {
    sql: PostgresCompatibilityParser,
}

impl StrataParser {
    fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        if sql.len() > strata_query::engine::MAX_SQL_BYTES {
            return Err(query_error(QueryError::Sql(format!(
                "statement is {} bytes; the limit is {}",
                sql.len(),
                strata_query::engine::MAX_SQL_BYTES
            ))));
        }
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
    let batches = cancellable(result.stream, cancel);
    let encoded_fields = fields.clone();
    let rows = batches
        .map(move |batch| {
            let rows: Box<dyn Iterator<Item = PgWireResult<_>> + Send + Sync> =
                match batch.and_then(|b| conform(b, &target)) {
                    Ok(batch) => Box::new(encode_recordbatch(encoded_fields.clone(), batch)),
                    Err(error) => Box::new(std::iter::once(Err(error))),
                };
            stream::iter(rows)
        })
        .flatten();
    Ok(QueryResponse::new(fields, rows))
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
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            let outcome = match classify(&statement, client) {
                Ok(Some(local)) => local_response(&local, &Format::UnifiedText, options.clone()),
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
        // Planning only, with the checks and rewrite `execute` applies, to tell the client the
        // parameter and result types; Execute runs the statement through `execute` itself.
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
        Ok(Some(Prepared::Query {
            statement: Box::new(statement),
            param_types,
            schema: Arc::new(plan.schema().as_arrow().clone()),
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        match stmt {
            Prepared::Local(_) => Ok(Vec::new()),
            Prepared::Query { param_types, .. } => param_types
                .iter()
                .map(|ty| match ty {
                    Some(ty) => into_pg_type(ty),
                    None => Ok(Type::UNKNOWN),
                })
                .collect(),
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
            Prepared::Local(_) => Ok(Vec::new()),
            Prepared::Query { schema, .. } => arrow_schema_to_pg_fields(schema, format, None),
        }
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
            Prepared::Local(local) => local_response(local, &portal.result_column_format, options),
            Prepared::Query {
                statement,
                param_types,
                schema,
            } => {
                let server_types = self
                    .parser
                    .get_parameter_types(&portal.statement.statement)?;
                let server_refs: Vec<Option<&Type>> = server_types.iter().map(Some).collect();
                let inferred: Vec<Option<&DataType>> =
                    param_types.iter().map(|t| t.as_ref()).collect();
                let values = arrow_pg::datatypes::df::deserialize_parameters_with_server_types(
                    portal,
                    &inferred,
                    &server_refs,
                )?;
                let mut bound = statement.as_ref().clone();
                params::bind(&mut bound, &values)?;
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
