//! The HTTP door: the axum API (authentication, the write door over `strata_write::Writer`, the
//! SQL endpoint and its answer encoders, schema and admin routes) and the hyper accept loop
//! that serves it; the embedded web app (`web.rs`) and its cookie sessions (`session.rs`).
//! Process startup (stores, listeners, background jobs) is `strata-node`'s.
//!
//! Architecture invariant: this crate never imports the Postgres door (`strata-pgwire`) or the
//! node; they are peers or above.

mod auth;
mod body;
mod error;
mod http;
mod ingest_rate;
mod line_protocol;
mod routes;
mod scrape;
mod session;
mod state;
mod web;
mod write;

pub use error::ApiError;
pub use http::{serve, HttpConfig, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS};
pub use routes::router;
pub use state::{AppState, Engines};
