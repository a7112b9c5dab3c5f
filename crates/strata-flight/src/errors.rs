//! Failures as gRPC statuses: SQL errors are `InvalidArgument` with the engine's message (already
//! safe to show the tenant), refused statement kinds `PermissionDenied` (Strata SQL is
//! read-only), the time and memory limits `ResourceExhausted`, and internal failures a generic
//! `Internal` whose details go to the log only.

use datafusion::error::DataFusionError;
use strata_query::params::BindError;
use strata_query::QueryError;
use tonic::Status;

pub(crate) fn query_status(error: QueryError) -> Status {
    match error {
        QueryError::Sql(message) => Status::invalid_argument(message),
        QueryError::Refused(message) => Status::permission_denied(message),
        QueryError::Timeout(_) | QueryError::ResourcesExhausted(_) => {
            Status::resource_exhausted(error.to_string())
        }
        QueryError::Internal(message) => {
            tracing::error!("Flight SQL query failed internally: {message}");
            Status::internal("internal error while running the query; see the server log")
        }
    }
}

/// An error of a running query's stream.
pub(crate) fn stream_status(error: DataFusionError) -> Status {
    query_status(QueryError::from(error))
}

pub(crate) fn bind_status(error: BindError) -> Status {
    match error {
        BindError::TooLarge(_) | BindError::TooMany(_) => {
            Status::resource_exhausted(error.to_string())
        }
        _ => Status::invalid_argument(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tonic::Code;

    #[test]
    fn each_query_error_has_its_code() {
        let cases = [
            (
                QueryError::Sql("no such column".into()),
                Code::InvalidArgument,
            ),
            (
                QueryError::Refused("read-only".into()),
                Code::PermissionDenied,
            ),
            (
                QueryError::Timeout(Duration::from_secs(1)),
                Code::ResourceExhausted,
            ),
            (
                QueryError::ResourcesExhausted("sort".into()),
                Code::ResourceExhausted,
            ),
            (QueryError::Internal("/var/lib/x".into()), Code::Internal),
        ];
        for (error, code) in cases {
            let status = query_status(error);
            assert_eq!(status.code(), code);
            assert!(!status.message().contains("/var/lib"));
        }
    }
}
