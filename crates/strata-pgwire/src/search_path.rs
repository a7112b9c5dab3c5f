//! Grafana's schema constraint, `quote_ident(table_schema) IN (<the search_path's schemas>)`,
//! which its query builder puts in the table and column lists (issue 20).
//! datafusion-pg-catalog 0.19 has no `current_setting` and replaces the search_path subquery
//! with `''`, so the constraint matched nothing and both lists were empty. A tenant's session
//! has one schema on its search path, `public` (what `current_setting('search_path')`
//! answers), so the empty string is replaced by it, in exactly that shape and nowhere else.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{visit_expressions_mut, Expr, Statement, Value};

/// The schema on every session's search path.
const SEARCH_PATH_SCHEMA: &str = "public";

pub(crate) fn restore_search_path(statements: &mut [Statement]) {
    for statement in statements {
        let _ = visit_expressions_mut(statement, |expr| {
            if let Expr::InList {
                expr: tested,
                list,
                negated: false,
            } = expr
            {
                if is_grafana_constraint(tested, list) {
                    list[0] =
                        Expr::Value(Value::SingleQuotedString(SEARCH_PATH_SCHEMA.into()).into());
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
}

/// `quote_ident(table_schema) IN ('')`: what the replacement left of Grafana's constraint.
fn is_grafana_constraint(tested: &Expr, list: &[Expr]) -> bool {
    let [only] = list else {
        return false;
    };
    only.to_string() == "''"
        && tested
            .to_string()
            .eq_ignore_ascii_case("quote_ident(table_schema)")
}

#[cfg(test)]
mod tests {
    use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statements = PostgresCompatibilityParser::new().parse(sql).unwrap();
        restore_search_path(&mut statements);
        statements[0].to_string()
    }

    #[test]
    fn only_the_emptied_grafana_constraint_gets_the_search_path() {
        let grafana = "SELECT table_name FROM information_schema.tables \
            WHERE quote_ident(table_schema) IN (SELECT CASE WHEN trim(s[i]) = '\"$user\"' \
            THEN user ELSE trim(s[i]) END FROM generate_series(\
            array_lower(string_to_array(current_setting('search_path'),','),1), \
            array_upper(string_to_array(current_setting('search_path'),','),1)) as i, \
            string_to_array(current_setting('search_path'),',') s)";
        assert!(
            rewritten(grafana).ends_with("quote_ident(table_schema) IN ('public')"),
            "{}",
            rewritten(grafana)
        );
        let own = "SELECT a FROM t WHERE quote_ident(b) IN ('') AND c IN ('')";
        assert_eq!(rewritten(own), own);
    }
}
