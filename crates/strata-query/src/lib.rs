//! SQL over dynamic schema: per-tenant DataFusion sessions over the hot tier.
//!
//! - [`QueryEngine::session`] builds a session that sees one tenant only.
//! - [`TenantSession`] is the statement API both front doors call: `parse` once, then
//!   `describe` or `execute_statement` (`execute` parses and executes). Both refuse anything but
//!   queries ([`sandbox`]), rewrite field aliases to display names ([`rewrite`]) and plan on the
//!   query runtime; execution streams the result under a deadline.
//! - [`table::MetricTable`] scans the hot tier with time-range and series pushdown
//!   ([`pushdown`], [`scan`]) and recombines incoming names into typed columns
//!   (`strata_format::recombine`).
//! - [`derived`]: derived fields, SQL expressions over other fields computed on read.
//! - [`runtime`]: planning and execution run on a dedicated, lower-priority runtime with large
//!   stacks; [`limits`] bounds statement size, expression depth, literal size and result width;
//!   [`bounded`] refuses size-amplifying function calls (`repeat`, `lpad`, ...) over the memory
//!   limit before they allocate.
//! - [`answer`]: the answer encoders (json, csv, ndjson, Arrow IPC), one file per format, used
//!   by the HTTP door and the benchmark.
//! - [`federated`]: a metric with compacted rows is planned over cold files, the late index and
//!   the hot partitions, cut where the estimated cost is lowest.
//! - [`params`]: bound parameters of prepared statements as SQL literals (the Postgres and
//!   Flight SQL doors).
//! - [`utc_time`]: `date_trunc`, `date_part` and `date_bin` on UTC timestamps without the
//!   built-ins' per-value time-zone conversion.

pub mod answer;
pub mod bounded;
pub mod derived;
pub mod engine;
pub mod error;
pub mod federated;
pub mod limits;
mod meter;
pub mod params;
pub mod pushdown;
mod result_stream;
pub mod rewrite;
pub mod rollup_table;
pub mod runtime;
pub mod sandbox;
pub mod scan;
pub mod server_info;
pub mod session;
pub mod system;
pub mod system_alerts;
pub mod system_sources;
pub mod table;
pub mod usage;
pub mod utc_time;
pub mod yielding;

pub use engine::{QueryCatalog, QueryConfig, QueryEngine, SYSTEM_SCHEMA};
pub use error::QueryError;
pub use federated::{ColdContext, TierPreference};
pub use session::{Described, QueryResult, TenantSession};
pub use strata_cold::ColdAccess;
/// The metric model is part of this crate's API (sessions hand it out); it lives below both
/// tiers, in `strata-format`.
pub use strata_format::model;
pub use usage::{FieldUse, QueryUsage, UsageSnapshot};
