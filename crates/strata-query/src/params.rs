//! Bound parameters as SQL literals, for every door with prepared statements (Postgres,
//! Flight SQL).
//!
//! A prepared statement's `$n` placeholders are replaced, in the statement the door parsed, by
//! literals of the values the client bound; the bound statement then goes through the session's
//! sandbox and alias rewrite like any other. Each literal is built from the typed value
//! (strings quoted with `''` doubling, numbers from their binary value, timestamps cast from
//! ISO text), so no client text reaches the SQL unquoted.

use std::ops::ControlFlow;

use chrono::DateTime;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{visit_expressions_mut, Expr, Statement, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::limits::MAX_LITERAL_BYTES;
use crate::session::MAX_PARAMETERS;

/// Why bound values could not become literals. Messages are safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("too many parameters: {0} values, at most {MAX_PARAMETERS}")]
    TooMany(usize),
    #[error("parameter {name} was not bound ({given} values given)")]
    Unbound { name: String, given: usize },
    #[error("a bound parameter of {0} bytes exceeds the limit of {MAX_LITERAL_BYTES} bytes")]
    TooLarge(usize),
    #[error("parameters of type {0} are not supported")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(&'static str),
}

/// Replaces every `$n` in `statement` with the literal of `values[n - 1]`.
pub fn bind(statement: &mut Statement, values: &[ScalarValue]) -> Result<(), BindError> {
    if values.len() > MAX_PARAMETERS {
        return Err(BindError::TooMany(values.len()));
    }
    let literals = values
        .iter()
        .map(literal)
        .collect::<Result<Vec<Expr>, _>>()?;
    let mut failure = None;
    let _ = visit_expressions_mut(statement, |expr| {
        let Expr::Value(value) = expr else {
            return ControlFlow::Continue(());
        };
        let Value::Placeholder(name) = &value.value else {
            return ControlFlow::Continue(());
        };
        let index = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1));
        match index.and_then(|i| literals.get(i)) {
            Some(literal) => {
                *expr = literal.clone();
                ControlFlow::Continue(())
            }
            None => {
                failure = Some(BindError::Unbound {
                    name: name.clone(),
                    given: literals.len(),
                });
                ControlFlow::Break(())
            }
        }
    });
    failure.map_or(Ok(()), Err)
}

/// The SQL literal of one typed value.
pub fn literal(value: &ScalarValue) -> Result<Expr, BindError> {
    let text = literal_text(value)?;
    // The same bound as a literal in SQL text: a bound value is a literal of the statement.
    if text.len() > MAX_LITERAL_BYTES {
        return Err(BindError::TooLarge(text.len()));
    }
    Parser::new(&GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|e| {
            tracing::error!(error = %e, "a parameter literal did not parse");
            BindError::Invalid("parameter value could not be used")
        })
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn float_literal(value: f64) -> String {
    if value.is_nan() {
        "CAST('NaN' AS DOUBLE)".to_string()
    } else if value.is_infinite() {
        let sign = if value > 0.0 { "" } else { "-" };
        format!("CAST('{sign}inf' AS DOUBLE)")
    } else {
        // Debug prints the shortest text that reads back as the same double.
        format!("CAST({value:?} AS DOUBLE)")
    }
}

fn timestamp_literal(value: i64, units_per_second: i64) -> Result<String, BindError> {
    let seconds = value.div_euclid(units_per_second);
    let nanos = value.rem_euclid(units_per_second) * (1_000_000_000 / units_per_second);
    let instant = u32::try_from(nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(seconds, nanos))
        .ok_or(BindError::Invalid("timestamp parameter out of range"))?;
    Ok(format!(
        "CAST('{}' AS TIMESTAMP)",
        instant.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f")
    ))
}

fn decimal_literal(value: &ScalarValue) -> Result<String, BindError> {
    // Display of a decimal scalar is its plain digits with the scale applied.
    let digits = value.to_string();
    if digits
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
    {
        Ok(digits)
    } else {
        Err(BindError::Invalid("invalid numeric parameter"))
    }
}

fn literal_text(value: &ScalarValue) -> Result<String, BindError> {
    use ScalarValue as S;
    if value.is_null() {
        return Ok("NULL".to_string());
    }
    Ok(match value {
        S::Boolean(Some(b)) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        S::Int8(Some(v)) => v.to_string(),
        S::Int16(Some(v)) => v.to_string(),
        S::Int32(Some(v)) => v.to_string(),
        S::Int64(Some(v)) => v.to_string(),
        S::UInt8(Some(v)) => v.to_string(),
        S::UInt16(Some(v)) => v.to_string(),
        S::UInt32(Some(v)) => v.to_string(),
        S::UInt64(Some(v)) => v.to_string(),
        S::Float32(Some(v)) => float_literal(f64::from(*v)),
        S::Float64(Some(v)) => float_literal(*v),
        S::Decimal128(Some(_), _, _) | S::Decimal256(Some(_), _, _) => decimal_literal(value)?,
        S::Utf8(Some(s)) | S::LargeUtf8(Some(s)) | S::Utf8View(Some(s)) => quote(s),
        S::Date32(Some(days)) => {
            let date = DateTime::from_timestamp(i64::from(*days) * 86_400, 0)
                .ok_or(BindError::Invalid("date parameter out of range"))?;
            format!("CAST('{}' AS DATE)", date.format("%Y-%m-%d"))
        }
        S::TimestampSecond(Some(v), _) => timestamp_literal(*v, 1)?,
        S::TimestampMillisecond(Some(v), _) => timestamp_literal(*v, 1_000)?,
        S::TimestampMicrosecond(Some(v), _) => timestamp_literal(*v, 1_000_000)?,
        S::TimestampNanosecond(Some(v), _) => timestamp_literal(*v, 1_000_000_000)?,
        other => return Err(BindError::Unsupported(other.data_type().to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::{DFParser, Statement as DfStatement};

    fn bound(sql: &str, values: Vec<ScalarValue>) -> Result<String, BindError> {
        let Some(DfStatement::Statement(mut statement)) =
            DFParser::parse_sql(sql).unwrap().pop_front()
        else {
            panic!("not a SQL statement: {sql}");
        };
        bind(&mut statement, &values)?;
        Ok(statement.to_string())
    }

    #[test]
    fn values_become_literals() {
        assert_eq!(
            bound(
                "SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $3 AND d = $1",
                vec![
                    ScalarValue::Int64(Some(-7)),
                    ScalarValue::Utf8(Some("it's; DROP TABLE x --".into())),
                    ScalarValue::Float64(Some(0.1)),
                ]
            )
            .unwrap(),
            "SELECT * FROM t WHERE a = -7 AND b = 'it''s; DROP TABLE x --' \
             AND c = CAST(0.1 AS DOUBLE) AND d = -7"
        );
        assert_eq!(
            bound(
                "SELECT $1, $2, $3",
                vec![
                    ScalarValue::TimestampMicrosecond(Some(1_421_057_535_000_001), None),
                    ScalarValue::Boolean(None),
                    ScalarValue::Float32(Some(f32::NAN)),
                ]
            )
            .unwrap(),
            "SELECT CAST('2015-01-12T10:12:15.000001' AS TIMESTAMP), NULL, CAST('NaN' AS DOUBLE)"
        );
    }

    #[test]
    fn missing_unsupported_and_oversized_values_are_errors() {
        assert_eq!(
            bound("SELECT $2", vec![ScalarValue::Int64(Some(1))]),
            Err(BindError::Unbound {
                name: "$2".into(),
                given: 1
            })
        );
        assert!(matches!(
            bound("SELECT $1", vec![ScalarValue::Binary(Some(vec![1, 2]))]),
            Err(BindError::Unsupported(_))
        ));
        let huge = "x".repeat(MAX_LITERAL_BYTES + 1);
        assert!(matches!(
            bound("SELECT $1", vec![ScalarValue::Utf8(Some(huge))]),
            Err(BindError::TooLarge(_))
        ));
    }
}
