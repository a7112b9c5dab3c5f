//! The integration tests of the `strata` binary, one test binary for all of them: each module
//! was once its own binary, and linking sixteen copies of the server's dependency tree cost
//! minutes and gigabytes. Every test runs the real `strata serve` (`common`); nothing here may
//! set process-global state (environment variables, the working directory), because the tests
//! of all modules share one process and run in parallel threads.
//!
//! Run one module with `cargo test -p strata --test it <module>` (a name filter).

/// The real brokers the sources consume from (nats-server, mosquitto), used by `sources_*`.
#[path = "common/brokers.rs"]
mod brokers;
/// The object-store emulators' harness, used by the `api_object_store*` modules.
#[path = "common/object_store.rs"]
mod cloud;
mod common;
/// The real receivers of alert notifications (webhook, SMTP, the SMS gateway), used by `alerts`.
#[path = "common/receivers.rs"]
mod receivers;

mod alerts;
mod api_cold;
mod api_foundation;
mod api_object_store;
mod api_object_store_azure;
mod api_object_store_gcs;
mod api_sql;
mod api_write;
mod bench_harness;
mod bench_quick;
mod cli;
mod cold_crash;
mod conversions;
mod derived_fields;
mod flight_sql;
mod hostile_http;
mod hostile_ingest;
mod hostile_pg;
mod hostile_query;
mod late_schema;
mod line_protocol;
mod live;
mod metric_merge;
mod mqtt;
mod ops;
mod pg_clients;
mod rollup_routing;
mod rollups;
mod shell;
mod sources_api;
mod sources_mqtt;
mod sources_nats;
mod suggestions;
mod suggestions_quality;
mod web_app;
