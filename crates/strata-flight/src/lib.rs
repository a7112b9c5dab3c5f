//! The Arrow Flight SQL front door (issue 20): ADBC, JDBC and other Flight SQL clients query a
//! tenant's sealed SQL session over gRPC, a peer of the HTTP and Postgres doors over the same
//! statement API (`strata_query::TenantSession`: parse once, describe, execute).
//!
//! - [`auth`]: a handshake with HTTP Basic credentials (username = tenant name, password = one
//!   of its keys with the `read` role or above) answers a bearer token; later calls carry it
//!   (or the key itself as the bearer). Every call checks the key again, so revoking it ends
//!   its tokens at once.
//! - [`service`]: the Flight SQL commands: statement queries, prepared statements with `$n`
//!   parameters bound through `DoPut`, `GetCatalogs`/`GetDbSchemas`/`GetTables`/
//!   `GetTableTypes` (the session's `information_schema`, so only the tenant's own tables) and
//!   `GetSqlInfo`. Everything else (updates, ingest, transactions, Substrait) is refused.
//! - [`incoming`]: the accept loop: connection cap, TLS (only TLS when a certificate is
//!   given), and the bind policy shared with the Postgres and MQTT doors.
//!
//! Architecture invariant: a peer of the other doors; it imports the query engine's statement
//! API and the catalog's `TenantDirectory` role, never `strata-server`, `strata-pgwire`,
//! `strata-mqtt`, `strata-node`, the write path or the storage tiers.

pub mod auth;
mod errors;
mod incoming;
mod metadata;
mod prepared;
pub mod service;
mod statement;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use strata_catalog::TenantDirectory;
use strata_query::QueryEngine;
use thiserror::Error;
use tokio::net::TcpListener;
pub use tokio_rustls::TlsAcceptor;

pub use auth::{MAX_TOKENS, TOKEN_LIFETIME};
pub use prepared::{MAX_PREPARED, MAX_PREPARED_PER_TENANT, PREPARED_IDLE};
pub use service::StrataFlightSql;

/// Default `--flight-max-connections`: query clients, like the Postgres door's sessions.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// A TLS handshake must finish this soon after the connection is accepted.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls one connection may have under way at once (HTTP/2 streams).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 64;
/// Largest gRPC message a client may send (SQL text is limited to 1 MiB by the engine; the
/// rest leaves room for bound parameters).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct FlightConfig {
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Serve a network (non-loopback) address without TLS: passwords are tenant keys.
    pub allow_insecure: bool,
}

impl Default for FlightConfig {
    fn default() -> Self {
        FlightConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            allow_insecure: false,
        }
    }
}

#[derive(Debug, Error)]
pub enum FlightError {
    #[error(
        "refusing to serve Flight SQL on {0} without TLS: passwords are tenant keys. Pass \
         --tls-cert/--tls-key, bind a loopback address, or pass --flight-allow-insecure"
    )]
    InsecureBind(SocketAddr),
    #[error("Flight SQL listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("Flight SQL server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Refuses a plain-text listener on a network address unless the operator allowed it: the
/// rule of the Postgres and MQTT doors.
pub fn check_bind_policy(
    addr: &SocketAddr,
    tls: bool,
    allow_insecure: bool,
) -> Result<(), FlightError> {
    if strata_core::net::cleartext_bind_allowed(addr, tls, allow_insecure) {
        Ok(())
    } else {
        Err(FlightError::InsecureBind(*addr))
    }
}

/// Serves Flight SQL from `listener` until `shutdown` completes; then stops accepting and lets
/// the calls under way finish.
pub async fn serve(
    listener: TcpListener,
    engine: QueryEngine,
    catalog: Arc<dyn TenantDirectory>,
    tls: Option<TlsAcceptor>,
    config: FlightConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), FlightError> {
    let local = listener.local_addr()?;
    check_bind_policy(&local, tls.is_some(), config.allow_insecure)?;
    let service = FlightServiceServer::new(StrataFlightSql::new(engine, catalog))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let incoming = incoming::accept(
        listener,
        tls.map(incoming::grpc_tls),
        config.max_connections,
    );
    tracing::info!(addr = %local, "serving Arrow Flight SQL");
    tonic::transport::Server::builder()
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    tracing::info!(addr = %local, "Flight SQL server stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_policy_refuses_cleartext_on_the_network() {
        let public: SocketAddr = "0.0.0.0:8687".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:8687".parse().unwrap();
        let loopback6: SocketAddr = "[::1]:8687".parse().unwrap();
        assert!(matches!(
            check_bind_policy(&public, false, false),
            Err(FlightError::InsecureBind(_))
        ));
        assert!(check_bind_policy(&public, true, false).is_ok());
        assert!(check_bind_policy(&public, false, true).is_ok());
        assert!(check_bind_policy(&loopback, false, false).is_ok());
        assert!(check_bind_policy(&loopback6, false, false).is_ok());
    }
}
