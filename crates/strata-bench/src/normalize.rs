//! Comparing query answers across engines and tiers. Rows are sorted (numbers by value, text
//! by bytes) and compared cell by cell; numbers are equal when they agree to a relative
//! [`RELATIVE_TOLERANCE`] (about 6 significant digits), so the order in which an engine adds up
//! floats does not count as a difference. Tolerance rather than rounding: an average of
//! one-decimal readings is often exactly a rounding tie (2933.925), where two engines' last-bit
//! differences round to different 6-digit texts.
//!
//! For reports, [`display_rows`] renders the cells as text with floats at 6 significant digits.

use std::cmp::Ordering;

use serde_json::Value;

/// Significant digits floats are shown with.
pub const SIGNIFICANT_DIGITS: usize = 6;
/// Two numbers are equal when they differ by at most this share of the larger magnitude.
pub const RELATIVE_TOLERANCE: f64 = 1e-6;
/// Whole floats below this print as integers (every integer up to 2^53 is exact in an f64).
const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0;

/// One answer cell, engine-independent: integers and floats are both numbers, so `2` from one
/// engine equals `2.0` from another.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Cell {
    pub fn from_json(value: &Value) -> Cell {
        match value {
            Value::Null => Cell::Null,
            Value::Bool(b) => Cell::Bool(*b),
            Value::Number(number) => number
                .as_f64()
                .map_or_else(|| Cell::Text(number.to_string()), Cell::Number),
            Value::String(text) => Cell::Text(text.clone()),
            other => Cell::Text(other.to_string()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Cell::Null => 0,
            Cell::Bool(_) => 1,
            Cell::Number(_) => 2,
            Cell::Text(_) => 3,
        }
    }

    /// A total order for sorting: by kind, then by value.
    fn order(&self, other: &Cell) -> Ordering {
        match (self, other) {
            (Cell::Bool(a), Cell::Bool(b)) => a.cmp(b),
            (Cell::Number(a), Cell::Number(b)) => a.total_cmp(b),
            (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }

    /// Equality with the numeric tolerance.
    pub fn matches(&self, other: &Cell) -> bool {
        match (self, other) {
            (Cell::Number(a), Cell::Number(b)) => {
                a == b || (a - b).abs() <= RELATIVE_TOLERANCE * a.abs().max(b.abs())
            }
            _ => self == other,
        }
    }

    pub fn display(&self) -> String {
        match self {
            Cell::Null => "NULL".to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Number(n) => normalize_float(*n),
            Cell::Text(text) => text.clone(),
        }
    }
}

/// A float as text: integers exactly, everything else at [`SIGNIFICANT_DIGITS`] in
/// scientific notation.
pub fn normalize_float(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value.fract() == 0.0 && value.abs() < EXACT_INTEGER_LIMIT {
        return format!("{}", value as i64);
    }
    format!("{:.*e}", SIGNIFICANT_DIGITS - 1, value)
}

/// Rows as cells, sorted.
pub fn canonical_rows(rows: &[Vec<Value>]) -> Vec<Vec<Cell>> {
    let mut cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|row| row.iter().map(Cell::from_json).collect())
        .collect();
    cells.sort_by(|a, b| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.order(y))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.len().cmp(&b.len()))
    });
    cells
}

/// Sorted rows as text for a report.
pub fn display_rows(rows: &[Vec<Cell>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|row| row.iter().map(Cell::display).collect())
        .collect()
}

/// The first difference between two canonical answers, in words; `None` when equal.
pub fn first_difference(left: &[Vec<Cell>], right: &[Vec<Cell>]) -> Option<String> {
    if left.len() != right.len() {
        return Some(format!("{} rows against {} rows", left.len(), right.len()));
    }
    left.iter()
        .zip(right)
        .position(|(a, b)| a.len() != b.len() || a.iter().zip(b).any(|(x, y)| !x.matches(y)))
        .map(|index| {
            format!(
                "row {index} (sorted): {:?} against {:?}",
                display_rows(&left[index..=index])[0],
                display_rows(&right[index..=index])[0]
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(values: Value) -> Vec<Vec<Cell>> {
        let rows: Vec<Vec<Value>> = serde_json::from_value(values).unwrap();
        canonical_rows(&rows)
    }

    #[test]
    fn floats_display_at_six_significant_digits_and_integers_exactly() {
        assert_eq!(normalize_float(1234.56789), "1.23457e3");
        assert_eq!(normalize_float(2.0), "2");
        assert_eq!(normalize_float(12_345_678.0), "12345678");
        assert_eq!(Cell::from_json(&json!(2)), Cell::from_json(&json!(2.0)));
        assert_eq!(Cell::Null.display(), "NULL");
        assert_eq!(
            Cell::from_json(&json!("2026-01-01")).display(),
            "2026-01-01"
        );
    }

    #[test]
    // The literals are the exact f64 values two engines printed; their precision is the point.
    #[allow(clippy::excessive_precision)]
    fn rounding_ties_and_summation_order_are_not_differences() {
        // Two engines' averages of the same one-decimal values, on either side of a 6-digit
        // rounding tie: rounding would call them different.
        let a = rows(json!([["South", 2933.9249999999997]]));
        let b = rows(json!([["South", 2933.9250000000002]]));
        assert_ne!(display_rows(&a), display_rows(&b));
        assert_eq!(first_difference(&a, &b), None);
        let sums = rows(json!([[0.1 + 0.2 + 0.3]]));
        assert_eq!(first_difference(&sums, &rows(json!([[0.6]]))), None);
        // A real difference in the 5th digit is one.
        let c = rows(json!([["South", 2933.8]]));
        assert!(first_difference(&a, &c).unwrap().contains("row 0"));
    }

    #[test]
    fn rows_compare_in_any_order() {
        let a = rows(json!([["b", 1.0], ["a", 2], [null, 3]]));
        let b = rows(json!([["a", 2.0], [null, 3], ["b", 1]]));
        assert_eq!(first_difference(&a, &b), None);
        let c = rows(json!([["a", 2.5], ["b", 1], [null, 3]]));
        assert!(first_difference(&a, &c).is_some());
        assert!(first_difference(&a, &c[..1])
            .unwrap()
            .contains("3 rows against 1"));
        assert_eq!(display_rows(&a)[0], ["NULL", "3"]);
    }
}
