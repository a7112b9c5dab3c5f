//! Bound parameters as SQL literals: the Postgres door's side of
//! [`strata_query::params`], which builds the literals (shared with the Flight SQL door). The
//! values were decoded and type-checked by `arrow-pg` first; this maps the list to the shared
//! binder and its refusals to SQLSTATEs.

use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::Statement;
use pgwire::error::PgWireError;
use strata_query::params::BindError;

use crate::errors::{
    pg_error, FEATURE_NOT_SUPPORTED, INVALID_PARAMETER_VALUE, PROGRAM_LIMIT_EXCEEDED,
    PROTOCOL_VIOLATION,
};

/// Most parameters one statement may bind (the protocol's own limit).
pub const MAX_PARAMETERS: usize = strata_query::session::MAX_PARAMETERS;

/// Replaces every `$n` in `statement` with the n-th bound value.
pub fn bind(statement: &mut Statement, values: &ParamValues) -> Result<(), PgWireError> {
    let values: Vec<ScalarValue> = match values {
        ParamValues::List(list) => list.iter().map(|v| v.value.clone()).collect(),
        ParamValues::Map(_) => {
            return Err(pg_error(
                FEATURE_NOT_SUPPORTED,
                "named parameters are not supported; use $1, $2, ...",
            ))
        }
    };
    strata_query::params::bind(statement, &values).map_err(bind_error)
}

/// The SQLSTATE of each refusal.
fn bind_error(error: BindError) -> PgWireError {
    let code = match &error {
        BindError::TooMany(_) | BindError::Unbound { .. } => PROTOCOL_VIOLATION,
        BindError::TooLarge(_) => PROGRAM_LIMIT_EXCEEDED,
        BindError::Unsupported(_) => FEATURE_NOT_SUPPORTED,
        BindError::Invalid(_) => INVALID_PARAMETER_VALUE,
    };
    pg_error(code, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::metadata::ScalarAndMetadata;
    use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    fn bound(sql: &str, values: Vec<ScalarValue>) -> String {
        let mut statement = PostgresCompatibilityParser::new()
            .parse(sql)
            .unwrap()
            .remove(0);
        let values = ParamValues::List(
            values
                .into_iter()
                .map(|v| ScalarAndMetadata::new(v, None))
                .collect(),
        );
        bind(&mut statement, &values).unwrap();
        statement.to_string()
    }

    #[test]
    fn values_are_bound_into_the_statement() {
        // Each value type's literal is strata_query::params' to test; this is the door's wiring.
        assert_eq!(
            bound("SELECT $1", vec![ScalarValue::Utf8(Some("it's".into()))]),
            "SELECT 'it''s'"
        );
    }

    #[test]
    fn a_missing_value_is_an_error() {
        let mut statement = PostgresCompatibilityParser::new()
            .parse("SELECT $2")
            .unwrap()
            .remove(0);
        let values = ParamValues::List(vec![ScalarAndMetadata::new(
            ScalarValue::Int64(Some(1)),
            None,
        )]);
        assert!(bind(&mut statement, &values).is_err());
    }
}
