use std::time::Duration;

use datafusion::error::DataFusionError;

/// Why a query failed. Messages are safe to show the tenant: no file paths, no internal ids, no
/// other tenant's names.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The statement is not valid SQL for this tenant's tables (HTTP 400).
    #[error("{0}")]
    Sql(String),
    /// The statement kind is not allowed: Strata SQL is read-only (HTTP 400).
    #[error("{0}")]
    Refused(String),
    #[error("query exceeded its time limit of {0:?}")]
    Timeout(Duration),
    #[error("query exceeded its memory limit: {0}")]
    ResourcesExhausted(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Marks a stream error produced by the query deadline, so it maps back to [`QueryError::Timeout`].
#[derive(Debug, thiserror::Error)]
#[error("query exceeded its time limit of {0:?}")]
pub(crate) struct DeadlineExceeded(pub Duration);

/// A storage or catalog failure inside execution; reported as internal without details.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BackendFailure(pub String);

impl From<crate::rewrite::AmbiguousName> for QueryError {
    fn from(error: crate::rewrite::AmbiguousName) -> Self {
        QueryError::Sql(error.to_string())
    }
}

impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> Self {
        classify(error)
    }
}

fn classify(error: DataFusionError) -> QueryError {
    match error {
        DataFusionError::Context(_, inner) => classify(*inner),
        DataFusionError::Shared(shared) => match &*shared {
            DataFusionError::ResourcesExhausted(m) => {
                QueryError::ResourcesExhausted(clean_message(m))
            }
            other => classify_message(other),
        },
        DataFusionError::ResourcesExhausted(message) => {
            QueryError::ResourcesExhausted(clean_message(&message))
        }
        DataFusionError::External(external) => {
            let external = match external.downcast::<QueryError>() {
                Ok(failure) => return *failure,
                Err(other) => other,
            };
            if let Some(deadline) = external.downcast_ref::<DeadlineExceeded>() {
                return QueryError::Timeout(deadline.0);
            }
            if let Some(failure) = external.downcast_ref::<BackendFailure>() {
                tracing::error!(error = %failure.0, "storage failure during query");
                return QueryError::Internal("storage read failed".to_string());
            }
            match external.downcast::<DataFusionError>() {
                Ok(inner) => classify(*inner),
                Err(other) => QueryError::Internal(clean_message(&other.to_string())),
            }
        }
        DataFusionError::Internal(message) => {
            tracing::error!(error = %message, "datafusion internal error");
            QueryError::Internal(clean_message(&message))
        }
        other => classify_message(&other),
    }
}

fn classify_message(error: &DataFusionError) -> QueryError {
    if let DataFusionError::ResourcesExhausted(m) = error.find_root() {
        return QueryError::ResourcesExhausted(clean_message(m));
    }
    QueryError::Sql(clean_message(&error.strip_backtrace()))
}

/// Strips DataFusion's error-kind prefixes and anything that looks like a file path.
pub(crate) fn clean_message(message: &str) -> String {
    const PREFIXES: [&str; 9] = [
        "DataFusion error: ",
        "Error during planning: ",
        "Schema error: ",
        "Arrow error: ",
        "Execution error: ",
        "This feature is not implemented: ",
        "SQL error: ",
        "Resources exhausted: ",
        "External error: ",
    ];
    let mut text = message.trim();
    loop {
        let before = text;
        for prefix in PREFIXES {
            text = text.strip_prefix(prefix).unwrap_or(text);
        }
        if before == text {
            break;
        }
    }
    text.split(' ')
        .map(|word| {
            let bare = word.trim_matches(|c: char| "'\"`(),;".contains(c));
            let looks_like_path = bare
                .find('/')
                .is_some_and(|first| bare[first + 1..].contains('/'));
            if looks_like_path || bare.contains("file:") {
                "<path>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_lose_prefixes_and_paths() {
        assert_eq!(
            clean_message(
                "Error during planning: table 'x' not found at /var/lib/strata/x.parquet"
            ),
            "table 'x' not found at <path>"
        );
        assert_eq!(clean_message("a / b"), "a / b");
        assert_eq!(
            clean_message("table 'strata.public./etc/passwd' not found"),
            "table <path> not found"
        );
        let timeout = DataFusionError::External(Box::new(DeadlineExceeded(Duration::from_secs(1))));
        assert!(matches!(QueryError::from(timeout), QueryError::Timeout(_)));
        let oom = DataFusionError::Context(
            "sort".into(),
            Box::new(DataFusionError::ResourcesExhausted(
                "Failed to allocate".into(),
            )),
        );
        assert!(matches!(
            QueryError::from(oom),
            QueryError::ResourcesExhausted(_)
        ));
    }
}
