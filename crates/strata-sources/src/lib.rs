//! Sources (issue 19): Strata consuming external queues and brokers for a tenant — a NATS
//! JetStream stream (`nats.rs`) and topics on an MQTT broker (`mqtt.rs`, the bridge) — through
//! the write library, with the same rules as `/api/v1/write`.
//!
//! A source is durable configuration in the catalog (`SourceRegistry`); [`Sources`], the
//! supervisor, runs one task per source: started at boot and on creation, stopped on deletion
//! and at shutdown, reconnecting with a capped exponential backoff, its status, counts, last
//! error and lag in memory. [`Source`] is the seam a new kind (Kafka) implements.
//!
//! The invariant every kind keeps: a message is acknowledged to its broker only after the
//! events it holds are durable (`EventSink::write_batch` returned), so a crash loses nothing,
//! and the broker's redelivery doubles nothing (identical events are stored once).
//!
//! Architecture invariant: this crate is a consumer of the write path, a peer of the front
//! doors; it never imports `strata-server`, `strata-pgwire`, `strata-mqtt` or `strata-node`.

mod backoff;
pub mod config;
mod error;
pub mod mqtt;
pub mod nats;
mod seam;
mod sink;
mod status;
mod supervisor;
mod tls;

use std::sync::Arc;

pub use backoff::{Backoff, BACKOFF_CAP, BACKOFF_FLOOR};
pub use config::SourceConfig;
pub use error::SourceError;
pub use seam::{Source, SourceContext, SourceFailure};
pub use sink::{BatchOutcome, EventSink, Payload, SinkError};
pub use status::{SourceState, SourceStatus, StatusReport};
pub use supervisor::{SourceFactory, SourceInfo, Sources, CLEAN_UP_TIMEOUT, STOP_GRACE};

/// The running source of a checked configuration (the built-in kinds).
pub fn build_source(id: &str, config: SourceConfig) -> Arc<dyn Source> {
    match config {
        SourceConfig::Nats(config) => Arc::new(nats::NatsSource::new(id, config)),
        SourceConfig::Mqtt(config) => Arc::new(mqtt::MqttSource::new(id, config)),
    }
}
