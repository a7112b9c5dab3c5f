//! Postgres wire protocol for Strata: psql, JDBC/libpq drivers and BI tools talk to a tenant's
//! SQL session. A front door beside the HTTP one, over the same statement API.
//!
//! - [`startup`]: login with user = tenant name, password = one of its keys with the `read`
//!   role or above. Every connection ([`connection`]) gets its own
//!   [`strata_query::TenantSession`] built after authentication from one schema snapshot, so a
//!   connection sees only its tenant's tables, `pg_catalog` and `information_schema` included.
//! - [`statement`] sorts what arrives: answered locally (transaction control, harmless client
//!   `SET`s, `SHOW`), cursor statements, or queries. Queries are parsed once and handed to the
//!   session as statements (`describe` at Parse, `execute_statement` at Execute), so the
//!   read-only sandbox, alias rewrite, timeout and memory limit hold on the wire exactly as
//!   over HTTP. The simple protocol is `simple.rs`, the extended one `extended.rs`; answers are
//!   encoded in `answers.rs`.
//! - Bound parameters are type-checked by `arrow-pg`, then substituted into the parsed statement
//!   as literals ([`params`]), so the sandbox sees the statement that runs.
//! - Cancel requests ([`cancel`]) end the running statement's stream, which drops (frees) the
//!   query.
//! - SQL cursors (`DECLARE ... CURSOR FOR`, `FETCH`, `CLOSE`) keep a query's stream open and
//!   return it in pieces ([`cursor`]); drivers' server-side cursors use them.
//! - Without TLS, only loopback is served ([`check_bind_policy`]); with TLS, a client from
//!   another host that does not use it is refused before it sends its password
//!   ([`startup::may_send_password`]).
//! - Each socket runs through [`socket::serve_socket`]: a login timeout and a bounded number of
//!   logins in progress, session caps in all and per tenant answered with SQLSTATE 53300
//!   ([`limits`]), messages checked from their header before pgwire reads them ([`frame`]),
//!   sessions ended when their key is revoked, and panics answered as errors.

mod answers;
pub mod cancel;
pub mod connection;
pub mod cursor;
mod cursor_statements;
pub mod errors;
mod extended;
pub mod frame;
pub mod handlers;
pub mod limits;
pub mod params;
pub mod pg_catalog;
mod search_path;
mod simple;
pub mod socket;
pub mod startup;
pub mod statement;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use strata_catalog::TenantDirectory;
use strata_query::QueryEngine;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::handlers::StrataHandlers;
use crate::limits::Logins;
pub use crate::limits::{
    LOGIN_TIMEOUT, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_TENANT, MAX_LOGINS_IN_PROGRESS,
    MAX_MESSAGE_BYTES,
};

/// Where the server's TLS certificate chain and private key (PEM) are.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct PgConfig {
    pub addr: SocketAddr,
    /// Serve cleartext passwords on a non-loopback address without TLS.
    pub allow_insecure: bool,
    pub tls: Option<TlsPaths>,
}

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "refusing to serve the Postgres wire protocol on {0} without TLS: passwords would cross \
         the network in clear text; give a TLS certificate and key, bind a loopback address, or \
         allow it explicitly (--pg-allow-insecure)"
    )]
    InsecureBind(SocketAddr),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("pg_catalog setup failed: {0}")]
    PgCatalog(String),
    #[error("Postgres listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Without TLS, passwords (tenant keys) travel in clear text, so only a loopback address is
/// served unless the operator explicitly allows it.
pub fn check_bind_policy(
    addr: &SocketAddr,
    tls: bool,
    allow_insecure: bool,
) -> Result<(), PgError> {
    if strata_core::net::cleartext_bind_allowed(addr, tls, allow_insecure) {
        Ok(())
    } else {
        Err(PgError::InsecureBind(*addr))
    }
}

/// Serves Postgres wire connections from `listener` until `shutdown` completes; then stops
/// accepting and ends the open connections.
pub async fn serve(
    listener: TcpListener,
    engine: QueryEngine,
    catalog: Arc<dyn TenantDirectory>,
    config: PgConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), PgError> {
    let local = listener.local_addr()?;
    check_bind_policy(&local, config.tls.is_some(), config.allow_insecure)?;
    let tls = config.tls.as_ref().map(load_tls).transpose()?;
    let handlers = StrataHandlers::new(engine, catalog, config.allow_insecure)
        .map_err(|e| PgError::PgCatalog(e.to_string()))?;
    let handlers = Arc::new(handlers);
    let logins = Arc::new(Logins::default());
    let mut connections = JoinSet::new();
    tracing::info!(addr = %local, tls = tls.is_some(), "serving the Postgres wire protocol");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let socket = match accepted {
                    Ok((socket, _peer)) => socket,
                    Err(error) => {
                        // Usually out of file descriptors; back off instead of spinning.
                        tracing::warn!(%error, "accepting a Postgres connection");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Counted as a login until it logs in; the session caps apply then
                // ([`limits`]).
                let login = logins.start();
                let (tls, handlers) = (tls.clone(), handlers.clone());
                connections.spawn(socket::serve_socket(socket, tls, handlers, login));
            }
        }
    }
    tracing::info!(addr = %local, "Postgres wire server stopping");
    connections.shutdown().await;
    Ok(())
}

/// Reads and checks the certificate chain and key; `serve` calls it, and the server calls it
/// before binding so a bad TLS setup fails at startup.
pub fn load_tls(paths: &TlsPaths) -> Result<TlsAcceptor, PgError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| PgError::Tls(format!("reading {}: {e}", path.display())))
    };
    let cert_pem = read(&paths.cert)?;
    let key_pem = read(&paths.key)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PgError::Tls(format!("parsing {}: {e}", paths.cert.display())))?;
    if certs.is_empty() {
        return Err(PgError::Tls(format!(
            "{} holds no PEM certificate",
            paths.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            PgError::Tls(format!("{} holds no PEM private key", paths.key.display()))
        }
        e => PgError::Tls(format!("parsing {}: {e}", paths.key.display())),
    })?;
    // An explicit provider instead of the process-wide default, which another crate may have
    // installed differently (or not at all).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| PgError::Tls(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_policy_refuses_cleartext_on_the_network() {
        let public: SocketAddr = "0.0.0.0:5433".parse().unwrap();
        let lan: SocketAddr = "192.168.1.4:5433".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:5433".parse().unwrap();
        let loopback6: SocketAddr = "[::1]:5433".parse().unwrap();
        assert!(matches!(
            check_bind_policy(&public, false, false),
            Err(PgError::InsecureBind(_))
        ));
        assert!(check_bind_policy(&lan, false, false).is_err());
        assert!(check_bind_policy(&public, true, false).is_ok());
        assert!(check_bind_policy(&public, false, true).is_ok());
        assert!(check_bind_policy(&loopback, false, false).is_ok());
        assert!(check_bind_policy(&loopback6, false, false).is_ok());
    }

    #[test]
    fn tls_setup_reports_missing_files() {
        let missing = TlsPaths {
            cert: PathBuf::from("/nonexistent/cert.pem"),
            key: PathBuf::from("/nonexistent/key.pem"),
        };
        assert!(matches!(load_tls(&missing), Err(PgError::Tls(_))));
    }
}
