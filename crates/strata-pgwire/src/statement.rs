//! What a Postgres statement is before it runs: answered locally (transaction control, `SET`,
//! `SHOW`, `DISCARD`), a cursor statement, or a query for the tenant session; and the parser
//! that checks the text limits before parsing.

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::sql::sqlparser::ast::{CloseCursor, Declare, DeclareType, Statement};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use pgwire::api::{ClientInfo, METADATA_APPLICATION_NAME};
use pgwire::error::PgWireResult;

use crate::cursor::{cursor_key, fetch_count};
use crate::errors::{pg_error, query_error, syntax_error, FEATURE_NOT_SUPPORTED};

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
pub(crate) enum CursorOp {
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
    pub(crate) sql: PostgresCompatibilityParser,
}

impl StrataParser {
    pub(crate) fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        // Size, expression depth and literal limits before the parser sees the text: a deep
        // statement must be refused here, not overflow this thread's stack (issue 24 defect 1).
        strata_query::limits::check_text(sql).map_err(query_error)?;
        let mut statements = self.sql.parse(sql).map_err(syntax_error)?;
        crate::search_path::restore_search_path(&mut statements);
        Ok(statements)
    }
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
    if name == "application_name" {
        return Some(
            client
                .metadata()
                .get(METADATA_APPLICATION_NAME)
                .cloned()
                .unwrap_or_default(),
        );
    }
    strata_query::server_info::setting(name).map(str::to_string)
}

/// Transaction control, `SET`, `SHOW` and `DISCARD` are answered here: Strata is read-only with
/// no transactions to keep, and DataFusion must not see client settings.
pub(crate) fn classify(
    statement: &Statement,
    client: &dyn ClientInfo,
) -> PgWireResult<Option<Local>> {
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

/// Recognizes `DECLARE ... CURSOR FOR`, `FETCH` and `CLOSE`, which are answered from the
/// connection's cursors ([`crate::cursor`]) rather than by the SQL engine.
pub(crate) fn cursor_op(
    statement: &Statement,
    parser: &PostgresCompatibilityParser,
) -> PgWireResult<Option<CursorOp>> {
    Ok(Some(match statement {
        Statement::Declare { stmts } => declare_op(stmts, parser)?,
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

/// `DECLARE name CURSOR [WITH HOLD] FOR query`, one cursor per statement: the only form
/// Strata's forward-only, non-binary cursors serve.
fn declare_op(stmts: &[Declare], parser: &PostgresCompatibilityParser) -> PgWireResult<CursorOp> {
    let [declare] = stmts else {
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
    Ok(CursorOp::Declare {
        name: cursor_key(name),
        hold: declare.hold == Some(true),
        query,
    })
}
