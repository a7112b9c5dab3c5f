//! Input rules and explicit limits for everything the catalog stores.

use std::collections::HashSet;

use chrono::format::{Item, StrftimeItems};
use strata_core::{validate_name, RESERVED_FIELD_NAME};

use crate::CatalogError;

/// Most names (display name + aliases) one metric may have.
pub const MAX_NAMES_PER_METRIC: usize = 64;
/// Most names (display name + aliases) one field may have.
pub const MAX_NAMES_PER_FIELD: usize = 64;
/// Most timestamp aliases one metric may have.
pub const MAX_TIMESTAMP_ALIASES: usize = 16;
/// Most timestamp patterns per metric or per tenant.
pub const MAX_TIMESTAMP_PATTERNS: usize = 16;
/// Longest timestamp pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 128;
/// Most metric keys a tenant may configure.
pub const MAX_METRIC_KEYS: usize = 16;
/// Most series keys per metric.
pub const MAX_SERIES_KEYS: usize = 16;
/// Distinct sample values kept per incoming name.
pub const MAX_INCOMING_SAMPLES: usize = 5;
/// Longest sample value kept; longer ones are cut at a character boundary.
pub const MAX_SAMPLE_BYTES: usize = 256;

pub(crate) fn name(kind: &'static str, value: &str) -> Result<(), CatalogError> {
    validate_name(kind, value).map_err(|e| CatalogError::Invalid(e.to_string()))
}

/// A name that becomes part of a field or a timestamp alias: `timestamp` already names the
/// event-time column of every metric.
pub(crate) fn field_level_name(kind: &'static str, value: &str) -> Result<(), CatalogError> {
    name(kind, value)?;
    if value == RESERVED_FIELD_NAME {
        return Err(CatalogError::Invalid(format!(
            "{kind} name {RESERVED_FIELD_NAME:?} is reserved for the event time"
        )));
    }
    Ok(())
}

/// Longest derived-field expression, in bytes: a formula, not a program.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

pub(crate) fn expression(field: &str, expression: &str) -> Result<(), CatalogError> {
    if expression.trim().is_empty() {
        return Err(CatalogError::Invalid(format!(
            "the expression of field {field:?} is empty"
        )));
    }
    if expression.len() > MAX_EXPRESSION_BYTES {
        return Err(CatalogError::Invalid(format!(
            "the expression of field {field:?} is {} bytes; the limit is {MAX_EXPRESSION_BYTES}",
            expression.len()
        )));
    }
    Ok(())
}

pub(crate) fn no_duplicates(what: &str, values: &[String]) -> Result<(), CatalogError> {
    let mut seen = HashSet::new();
    for v in values {
        if !seen.insert(v.as_str()) {
            return Err(CatalogError::Invalid(format!("{what} lists {v:?} twice")));
        }
    }
    Ok(())
}

pub(crate) fn timestamp_patterns(patterns: &[String]) -> Result<(), CatalogError> {
    if patterns.len() > MAX_TIMESTAMP_PATTERNS {
        return Err(CatalogError::Invalid(format!(
            "{} timestamp patterns given; the limit is {MAX_TIMESTAMP_PATTERNS}",
            patterns.len()
        )));
    }
    no_duplicates("timestamp_patterns", patterns)?;
    for p in patterns {
        if p.trim().is_empty() {
            return Err(CatalogError::Invalid(
                "timestamp pattern is empty".to_string(),
            ));
        }
        if p.len() > MAX_PATTERN_BYTES {
            return Err(CatalogError::Invalid(format!(
                "timestamp pattern is {} bytes; the limit is {MAX_PATTERN_BYTES}",
                p.len()
            )));
        }
        if StrftimeItems::new(p).any(|item| matches!(item, Item::Error)) {
            return Err(CatalogError::Invalid(format!(
                "timestamp pattern {p:?} is not a valid strftime pattern"
            )));
        }
    }
    Ok(())
}

pub(crate) fn metric_keys(keys: &[String]) -> Result<(), CatalogError> {
    if keys.is_empty() {
        return Err(CatalogError::Invalid(
            "metric_keys must name at least one key".to_string(),
        ));
    }
    if keys.len() > MAX_METRIC_KEYS {
        return Err(CatalogError::Invalid(format!(
            "{} metric keys given; the limit is {MAX_METRIC_KEYS}",
            keys.len()
        )));
    }
    for k in keys {
        field_level_name("metric key", k)?;
    }
    no_duplicates("metric_keys", keys)
}

/// Longest cold retention: about 100 years, so `days * DAY_MS` never overflows.
pub const MAX_COLD_RETENTION_DAYS: u32 = 36_500;

pub(crate) fn metric_retention_days(days: u32) -> Result<(), CatalogError> {
    if days > MAX_COLD_RETENTION_DAYS {
        return Err(CatalogError::Invalid(format!(
            "retention_days is {days}; the limit is {MAX_COLD_RETENTION_DAYS} (0 follows the tenant's cold retention)"
        )));
    }
    Ok(())
}

pub(crate) fn cold_retention_days(days: u32) -> Result<(), CatalogError> {
    if days > MAX_COLD_RETENTION_DAYS {
        return Err(CatalogError::Invalid(format!(
            "cold_retention_days is {days}; the limit is {MAX_COLD_RETENTION_DAYS} (0 keeps cold data forever)"
        )));
    }
    Ok(())
}

/// Cuts `value` to at most [`MAX_SAMPLE_BYTES`] without splitting a character.
pub(crate) fn truncate_sample(value: &str) -> String {
    if value.len() <= MAX_SAMPLE_BYTES {
        return value.to_string();
    }
    let mut end = MAX_SAMPLE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_checked() {
        assert!(timestamp_patterns(&["%d/%m/%Y %H:%M".to_string()]).is_ok());
        assert!(matches!(
            timestamp_patterns(&["%Q".to_string()]),
            Err(CatalogError::Invalid(_))
        ));
        assert!(matches!(
            timestamp_patterns(&[" ".to_string()]),
            Err(CatalogError::Invalid(_))
        ));
    }

    #[test]
    fn samples_cut_at_char_boundary() {
        let long = "é".repeat(200);
        let cut = truncate_sample(&long);
        assert!(cut.len() <= MAX_SAMPLE_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate_sample("abc"), "abc");
    }

    #[test]
    fn reserved_name_is_refused() {
        assert!(matches!(
            field_level_name("field", "timestamp"),
            Err(CatalogError::Invalid(m)) if m.contains("reserved")
        ));
        assert!(field_level_name("field", "ts").is_ok());
    }
}
