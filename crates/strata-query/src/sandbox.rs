//! Which statements a tenant may run: queries, EXPLAIN of queries, SHOW TABLES / SHOW COLUMNS and
//! DESCRIBE. Everything else is refused before planning with a message naming the statement; the
//! plan is then checked again with DataFusion's `SQLOptions` (no DDL, DML or statements), so a
//! construct this check does not know (e.g. `SELECT ... INTO`) is still refused.

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;

use crate::error::QueryError;

pub fn check(statement: &DfStatement) -> Result<(), QueryError> {
    match statement {
        DfStatement::Statement(inner) => match inner.as_ref() {
            Statement::Query(_)
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ExplainTable { .. } => Ok(()),
            Statement::Explain { statement, .. } => {
                check(&DfStatement::Statement(statement.clone()))
            }
            other => Err(refused(&statement_kind(&other.to_string()))),
        },
        DfStatement::Explain(explain) => check(&explain.statement),
        DfStatement::CreateExternalTable(_) => Err(refused("CREATE EXTERNAL TABLE")),
        DfStatement::CopyTo(_) => Err(refused("COPY")),
        DfStatement::Reset(_) => Err(refused("RESET")),
    }
}

fn refused(kind: &str) -> QueryError {
    QueryError::Refused(format!(
        "statement not allowed: {kind} (Strata SQL is read-only)"
    ))
}

/// The statement's leading keywords, e.g. `CREATE TABLE`, `DROP VIEW`, `INSERT`, `SET`.
fn statement_kind(sql: &str) -> String {
    const OBJECTS: [&str; 10] = [
        "TABLE", "VIEW", "SCHEMA", "DATABASE", "FUNCTION", "INDEX", "CATALOG", "TYPE", "ROLE",
        "USER",
    ];
    const MODIFIERS: [&str; 7] = [
        "OR",
        "REPLACE",
        "EXTERNAL",
        "TEMPORARY",
        "TEMP",
        "MATERIALIZED",
        "UNBOUNDED",
    ];
    let words: Vec<String> = sql
        .split_whitespace()
        .take(6)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let Some(first) = words.first() else {
        return "empty statement".to_string();
    };
    let mut kind = vec![first.clone()];
    if matches!(first.as_str(), "CREATE" | "DROP" | "ALTER" | "TRUNCATE") {
        for word in &words[1..] {
            if OBJECTS.contains(&word.as_str()) {
                kind.push(word.clone());
                break;
            }
            if !MODIFIERS.contains(&word.as_str()) {
                break;
            }
            kind.push(word.clone());
        }
    }
    // Keywords only: never echo identifiers back.
    kind.retain(|w| w.chars().all(|c| c.is_ascii_alphabetic()));
    kind.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn outcome(sql: &str) -> Result<(), String> {
        let mut statements = DFParser::parse_sql(sql).unwrap();
        check(&statements.pop_front().unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn queries_pass_and_writes_are_refused_by_name() {
        assert!(outcome("SELECT 1").is_ok());
        assert!(outcome("EXPLAIN ANALYZE SELECT 1").is_ok());
        assert!(outcome("SHOW TABLES").is_ok());
        for (sql, kind) in [
            ("CREATE TABLE t (a INT)", "CREATE TABLE"),
            (
                "CREATE OR REPLACE VIEW v AS SELECT 1",
                "CREATE OR REPLACE VIEW",
            ),
            (
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("DROP TABLE t", "DROP TABLE"),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("DELETE FROM t", "DELETE"),
        ] {
            assert_eq!(
                outcome(sql),
                Err(format!(
                    "statement not allowed: {kind} (Strata SQL is read-only)"
                )),
                "{sql}"
            );
        }
    }
}
