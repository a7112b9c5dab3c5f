//! Errors as Postgres error responses with the SQLSTATE a driver expects.

use pgwire::error::{ErrorInfo, PgWireError};
use strata_query::QueryError;

pub const INVALID_PASSWORD: &str = "28P01";
pub const UNDEFINED_TABLE: &str = "42P01";
pub const UNDEFINED_COLUMN: &str = "42703";
pub const UNDEFINED_FUNCTION: &str = "42883";
pub const SYNTAX_ERROR: &str = "42601";
pub const SYNTAX_OR_ACCESS_RULE: &str = "42000";
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub const QUERY_CANCELED: &str = "57014";
pub const OUT_OF_MEMORY: &str = "53200";
pub const INTERNAL_ERROR: &str = "XX000";
pub const PROTOCOL_VIOLATION: &str = "08P01";
pub const INVALID_PARAMETER_VALUE: &str = "22023";
/// SQLSTATE 54000 program_limit_exceeded (a bound parameter over the literal limit).
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
/// Postgres's code for a statement nested too deeply (`strata_query::limits`).
pub const STATEMENT_TOO_COMPLEX: &str = "54001";

pub fn pg_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message.into(),
    )))
}

/// The one answer to every failed login: which of user or password was wrong is not said.
pub fn auth_failed() -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        INVALID_PASSWORD.to_string(),
        "password authentication failed".to_string(),
    )))
}

pub fn cancelled() -> PgWireError {
    pg_error(QUERY_CANCELED, "canceling statement due to user request")
}

/// Query errors are already safe to show the tenant (no paths, no other tenants); only the
/// SQLSTATE is derived here, from the kind and, for SQL errors, the message DataFusion wrote.
pub fn query_error(error: QueryError) -> PgWireError {
    match error {
        QueryError::Sql(message) => pg_error(sql_state_of(&message), message),
        QueryError::Refused(message) => pg_error(INSUFFICIENT_PRIVILEGE, message),
        QueryError::Timeout(limit) => pg_error(
            QUERY_CANCELED,
            format!("canceling statement due to statement timeout ({limit:?})"),
        ),
        QueryError::ResourcesExhausted(message) => pg_error(
            OUT_OF_MEMORY,
            format!("query exceeded its memory limit: {message}"),
        ),
        QueryError::Internal(message) => pg_error(INTERNAL_ERROR, message),
    }
}

pub fn syntax_error(message: impl std::fmt::Display) -> PgWireError {
    pg_error(SYNTAX_ERROR, format!("syntax error: {message}"))
}

fn sql_state_of(message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    if lower.contains("statement too complex") {
        STATEMENT_TOO_COMPLEX
    } else if lower.contains("parsererror")
        || lower.contains("tokenizererror")
        || lower.contains("syntax")
    {
        SYNTAX_ERROR
    } else if lower.contains("table") && lower.contains("not found") {
        UNDEFINED_TABLE
    } else if lower.contains("no field named")
        || lower.contains("column") && lower.contains("not found")
    {
        UNDEFINED_COLUMN
    } else if lower.contains("invalid function")
        || lower.contains("function") && lower.contains("not found")
    {
        UNDEFINED_FUNCTION
    } else if lower.contains("not supported") || lower.contains("not implemented") {
        FEATURE_NOT_SUPPORTED
    } else {
        SYNTAX_OR_ACCESS_RULE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(error: PgWireError) -> String {
        match error {
            PgWireError::UserError(info) => info.code.clone(),
            other => panic!("not a user error: {other}"),
        }
    }

    #[test]
    fn query_errors_get_their_sqlstate() {
        let sql = |m: &str| code(query_error(QueryError::Sql(m.to_string())));
        assert_eq!(sql("table 'strata.public.nope' not found"), UNDEFINED_TABLE);
        assert_eq!(
            sql("No field named nope. Valid fields are thermostat.temperature."),
            UNDEFINED_COLUMN
        );
        assert_eq!(
            sql("ParserError(\"Expected: an expression, found: EOF\")"),
            SYNTAX_ERROR
        );
        assert_eq!(sql("Invalid function 'nope'"), UNDEFINED_FUNCTION);
        assert_eq!(
            code(query_error(QueryError::Refused(
                "statement not allowed: DROP TABLE".into()
            ))),
            INSUFFICIENT_PRIVILEGE
        );
        assert_eq!(
            code(query_error(QueryError::Timeout(
                std::time::Duration::from_secs(1)
            ))),
            QUERY_CANCELED
        );
        assert_eq!(
            code(query_error(QueryError::ResourcesExhausted("sort".into()))),
            OUT_OF_MEMORY
        );
        assert_eq!(code(auth_failed()), INVALID_PASSWORD);
    }
}
