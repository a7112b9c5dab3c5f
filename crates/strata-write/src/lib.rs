//! The write path as a library: every ingest protocol (HTTP today; MQTT, line protocol and NATS
//! later) is a front door that decodes its transport and calls [`Writer::write`].
//!
//! A write splits a body into events, resolves (and auto-creates) their metrics, normalizes each
//! event, registers new incoming names durably before any data uses them, hashes series and
//! content, stores everything in the hot tier with one group-committed fsync, merges the
//! request's name statistics only after that, and publishes the committed rows on the
//! [`EventStream`]. Each event is accepted or rejected on its own; only a body that cannot be
//! split into events is refused whole.
//!
//! Architecture invariant: this crate never imports the query engine, the cold tier or any
//! front door (HTTP, Postgres); they import it.

mod error_log;
mod names;
mod outcome;
pub mod series;
mod stats;
mod stream;
mod writer;

pub use outcome::{Rejection, WriteError, WriteOutcome};
pub use stream::{CommittedBatch, EventStream, REREAD_CHUNK_ROWS};
pub use writer::{WriteRequest, Writer, WriterCatalog};
