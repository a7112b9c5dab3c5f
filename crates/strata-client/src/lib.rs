//! The blocking HTTP client of Strata's API, written once for every caller: the `strata` CLI's
//! client commands, the benchmark harness and the integration tests. It holds the base URL
//! rules, bearer authentication, the mapping of `{"error": "..."}` answers to [`ApiError`],
//! and the answer types of the calls those callers decode (write, SQL, compaction, tenant and
//! key creation).

mod answers;
mod client;
mod error;

pub use answers::{
    CompactAnswer, KeyCreated, MetricCompactAnswer, SqlAnswer, SqlColumn, TenantCreated,
    WriteAnswer, WriteRejection,
};
pub use client::Client;
pub use error::{error_message, ApiError};
/// The HTTP vocabulary of [`Client`]'s signatures, so callers use the same reqwest version.
pub use reqwest::{Method, StatusCode, Url};

/// Where client commands look for a server when neither `--url` nor `STRATA_URL` is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8686";
