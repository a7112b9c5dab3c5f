//! Limits on what one statement may ask for, checked before the work they bound starts.
//!
//! - Text size ([`MAX_SQL_BYTES`]).
//! - Expression depth ([`MAX_EXPRESSION_DEPTH`]): parser, planner, optimizer and evaluator all
//!   recurse over the expression tree, and a 2,000-term `1=1 OR 1=1 OR ...` (about 20 KB) crashed
//!   the server with a stack overflow (issue 24 defect 1). The depth is bounded *before* parsing
//!   by counting the tokens that can deepen a tree: every operator and keyword (`OR`, `+`, `||`,
//!   `UNION ALL`, ...) plus the deepest parenthesis nesting. A parsed tree is never deeper than
//!   that count, and the count needs no recursion itself, so a 1 MiB statement cannot overflow
//!   even the check. Names, numbers, literals and commas do not count: an `IN` list of 100,000
//!   values is flat and stays allowed.
//! - Literal size ([`MAX_LITERAL_BYTES`]): a constant is repeated once per row of every batch
//!   it is projected into, outside the memory pool (a 1 MiB literal times 8,192 rows is 8 GiB).
//! - Result width ([`MAX_RESULT_COLUMNS`]).

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::QueryError;

/// Longest SQL text accepted.
pub const MAX_SQL_BYTES: usize = 1024 * 1024;

/// Most operators, keywords and nested parentheses in one statement. 2,000-term expressions
/// (which crashed the server before) plan and run; 4,096 fits the query threads' stack with room.
pub const MAX_EXPRESSION_DEPTH: usize = 4096;

/// Longest string literal. 64 KiB times the 8,192-row batch is the 512 MiB default memory limit.
pub const MAX_LITERAL_BYTES: usize = 64 * 1024;

/// Most columns one result may have. Planning cost grows with the square of the width in places
/// (`SELECT *` over 10,000 columns took 20 s, issue 24 defect 3); real answers are far narrower.
pub const MAX_RESULT_COLUMNS: usize = 1000;

/// Checks the statement text: its size, the bound on its expression depth, and its literals.
/// Text that does not tokenize is left to the parser, which reports it with its position.
pub fn check_text(sql: &str) -> Result<(), QueryError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(QueryError::Sql(format!(
            "statement is {} bytes; the limit is {MAX_SQL_BYTES}",
            sql.len()
        )));
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Ok(());
    };
    let mut nesting_tokens = 0usize;
    let mut parentheses = 0usize;
    let mut deepest_parentheses = 0usize;
    for token in &tokens {
        if let Some(length) = literal_length(token) {
            if length > MAX_LITERAL_BYTES {
                return Err(QueryError::Sql(format!(
                    "a string literal of {length} bytes exceeds the limit of \
                     {MAX_LITERAL_BYTES} bytes"
                )));
            }
            continue;
        }
        match token {
            Token::LParen => {
                parentheses += 1;
                deepest_parentheses = deepest_parentheses.max(parentheses);
            }
            Token::RParen => parentheses = parentheses.saturating_sub(1),
            token if can_nest(token) => nesting_tokens += 1,
            _ => {}
        }
    }
    let depth_bound = nesting_tokens + deepest_parentheses;
    if depth_bound > MAX_EXPRESSION_DEPTH {
        return Err(QueryError::Sql(format!(
            "statement too complex: {nesting_tokens} operators and keywords and parentheses \
             nested {deepest_parentheses} deep could nest {depth_bound} levels; the limit is \
             {MAX_EXPRESSION_DEPTH} (split the statement, or use IN (...) for long OR chains)"
        )));
    }
    Ok(())
}

/// Refuses a plan whose result is wider than [`MAX_RESULT_COLUMNS`].
pub fn check_result_width(columns: usize) -> Result<(), QueryError> {
    if columns > MAX_RESULT_COLUMNS {
        return Err(QueryError::Sql(format!(
            "the result would have {columns} columns; the limit is {MAX_RESULT_COLUMNS} \
             (name the columns you need instead of *)"
        )));
    }
    Ok(())
}

/// The byte length of a string literal token; `None` for any other token.
fn literal_length(token: &Token) -> Option<usize> {
    match token {
        Token::SingleQuotedString(text)
        | Token::NationalStringLiteral(text)
        | Token::EscapedStringLiteral(text)
        | Token::UnicodeStringLiteral(text)
        | Token::HexStringLiteral(text)
        | Token::SingleQuotedByteStringLiteral(text)
        | Token::DoubleQuotedByteStringLiteral(text) => Some(text.len()),
        Token::DollarQuotedString(quoted) => Some(quoted.value.len()),
        _ => None,
    }
}

/// Whether a token may add a level to a parsed tree: operators and keywords do; names, numbers,
/// placeholders and punctuation do not.
fn can_nest(token: &Token) -> bool {
    match token {
        Token::Word(word) => word.quote_style.is_none() && word.keyword != Keyword::NoKeyword,
        Token::Whitespace(_)
        | Token::Number(_, _)
        | Token::Comma
        | Token::Period
        | Token::SemiColon
        | Token::Placeholder(_)
        | Token::EOF => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(term: &str, separator: &str, count: usize) -> String {
        vec![term; count].join(separator)
    }

    #[test]
    fn long_flat_lists_pass_and_deep_chains_are_refused() {
        let in_list = format!("SELECT 1 WHERE 5 IN ({})", chain("1", ",", 100_000));
        assert!(check_text(&in_list).is_ok());
        let two_thousand = format!("SELECT 1 WHERE {}", chain("1=1", " OR ", 2000));
        assert!(check_text(&two_thousand).is_ok());
        let ten_thousand = format!("SELECT 1 WHERE {}", chain("1=1", " OR ", 10_000));
        let error = check_text(&ten_thousand).unwrap_err().to_string();
        assert!(error.contains("statement too complex"), "{error}");
        let unions = chain("SELECT 1", " UNION ALL ", 3000);
        assert!(check_text(&unions).is_err());
        let parens = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(check_text(&parens).is_err());
    }

    #[test]
    fn long_literals_are_refused_and_names_do_not_count() {
        let literal = format!("SELECT '{}'", "x".repeat(MAX_LITERAL_BYTES + 1));
        assert!(check_text(&literal)
            .unwrap_err()
            .to_string()
            .contains("string literal"));
        let columns = format!("SELECT {} FROM t", chain("\"select\"", ",", 10_000));
        assert!(check_text(&columns).is_ok());
        assert!(check_result_width(MAX_RESULT_COLUMNS).is_ok());
        assert!(check_result_width(MAX_RESULT_COLUMNS + 1).is_err());
    }
}
