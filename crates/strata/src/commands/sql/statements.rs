//! Where the shell's input ends a statement: a `;` outside string literals, quoted identifiers
//! and comments, as psql decides it.

/// What the scan is inside of at a given character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inside {
    Code,
    /// `'...'`; `''` is a quote inside it.
    Literal,
    /// `"..."`; `""` closes and reopens, which reads the same.
    Identifier,
    /// `-- ...` up to the end of the line.
    LineComment,
    /// `/* ... */`, nested as in PostgreSQL; the number is the depth.
    BlockComment(u32),
}

/// Splits `text` into the statements a `;` completes (trimmed, without their `;`, empty ones
/// dropped) and the text after the last such `;`, which continues on the next line.
pub(super) fn complete_statements(text: &str) -> (Vec<String>, String) {
    let bytes = text.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut inside = Inside::Code;
    let mut i = 0;
    while i < bytes.len() {
        let next = bytes.get(i + 1).copied();
        let (now, step) = advance(inside, bytes[i], next);
        if inside == Inside::Code && now == Inside::Code && bytes[i] == b';' {
            push_statement(&mut statements, &text[start..i]);
            start = i + 1;
        }
        inside = now;
        i += step;
    }
    (statements, text[start..].to_string())
}

/// The state after the byte `at` (and how many bytes it consumed: 2 for `--`, `/*`, `*/`, `''`).
/// Every delimiter is ASCII, so stepping by bytes never splits a character.
fn advance(inside: Inside, at: u8, next: Option<u8>) -> (Inside, usize) {
    match (inside, at, next) {
        (Inside::Code, b'\'', _) => (Inside::Literal, 1),
        (Inside::Code, b'"', _) => (Inside::Identifier, 1),
        (Inside::Code, b'-', Some(b'-')) => (Inside::LineComment, 2),
        (Inside::Code, b'/', Some(b'*')) => (Inside::BlockComment(1), 2),
        (Inside::Literal, b'\'', Some(b'\'')) => (Inside::Literal, 2),
        (Inside::Literal, b'\'', _) => (Inside::Code, 1),
        (Inside::Identifier, b'"', _) => (Inside::Code, 1),
        (Inside::LineComment, b'\n', _) => (Inside::Code, 1),
        (Inside::BlockComment(depth), b'/', Some(b'*')) => (Inside::BlockComment(depth + 1), 2),
        (Inside::BlockComment(1), b'*', Some(b'/')) => (Inside::Code, 2),
        (Inside::BlockComment(depth), b'*', Some(b'/')) => (Inside::BlockComment(depth - 1), 2),
        (state, _, _) => (state, 1),
    }
}

fn push_statement(statements: &mut Vec<String>, text: &str) {
    let statement = text.trim();
    if !statement.is_empty() {
        statements.push(statement.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(statements: &[&str]) -> Vec<String> {
        statements.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_semicolon_in_a_literal_identifier_or_comment_does_not_end_the_statement() {
        assert_eq!(
            complete_statements("SELECT 'a;b';"),
            (owned(&["SELECT 'a;b'"]), String::new())
        );
        assert_eq!(
            complete_statements("SELECT 'it''s;';"),
            (owned(&["SELECT 'it''s;'"]), String::new())
        );
        assert_eq!(
            complete_statements("SELECT \"odd;name\" FROM t;"),
            (owned(&["SELECT \"odd;name\" FROM t"]), String::new())
        );
        assert_eq!(
            complete_statements("-- a note; not the end\nSELECT 1;"),
            (owned(&["-- a note; not the end\nSELECT 1"]), String::new())
        );
        assert_eq!(
            complete_statements("SELECT /* one; /* two; */ still; */ 1;"),
            (
                owned(&["SELECT /* one; /* two; */ still; */ 1"]),
                String::new()
            )
        );
        assert_eq!(
            complete_statements("SELECT 'open;"),
            (owned(&[]), "SELECT 'open;".to_string())
        );
    }

    #[test]
    fn several_statements_on_a_line_run_in_order_and_the_rest_waits() {
        assert_eq!(
            complete_statements("SELECT 1; SELECT 'é;'; ;SELECT"),
            (owned(&["SELECT 1", "SELECT 'é;'"]), "SELECT".to_string())
        );
        assert_eq!(complete_statements(";;"), (owned(&[]), String::new()));
    }
}
