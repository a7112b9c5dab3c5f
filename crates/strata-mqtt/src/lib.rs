//! The MQTT front door (issue 19): devices connect with MQTT 3.1.1 or 5 (username = tenant,
//! password = a write key) and publish JSON events; each publish is written through
//! `strata_write::Writer::write` and a QoS 1 PUBACK (QoS 2 PUBREC) is sent only after the
//! write returned, which is after fsync. QoS 0 is accepted and written the same way.
//!
//! What this door is not: a broker. Subscriptions are refused (SUBACK failure), nothing is
//! retained (a retained publish is stored as events like any other), and no message is routed
//! to another client.
//!
//! Architecture invariant: a peer of the HTTP and Postgres doors; it imports the write library
//! and the catalog's role traits, never `strata-server`, `strata-pgwire` or `strata-node`.

mod connection;
mod door;
mod protocol;
mod v4;
mod v5;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
pub use tokio_rustls::TlsAcceptor;

pub use door::MqttDoor;

use connection::{serve_connection, ConnectionLimits};

/// Default `--mqtt-max-connections`: devices hold their connection open, so a fleet needs many.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// A client must send its CONNECT this soon after connecting.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Publishes of one connection whose writes may be under way at once. Writes of concurrent
/// publishes share fsyncs (group commit), so a client that pipelines its QoS 1 publishes is
/// not held to one fsync per message.
pub const MAX_INFLIGHT_PER_CONNECTION: usize = 64;

#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Serve a network (non-loopback) address without TLS: passwords are tenant keys.
    pub allow_insecure: bool,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            allow_insecure: false,
        }
    }
}

#[derive(Debug, Error)]
pub enum MqttError {
    #[error(
        "refusing to serve MQTT on {0} without TLS: passwords are tenant keys. Pass \
         --tls-cert/--tls-key, bind a loopback address, or pass --mqtt-allow-insecure"
    )]
    InsecureBind(SocketAddr),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Refuses a plain-text listener on a network address unless the operator allowed it, as the
/// Postgres door does.
pub fn check_bind_policy(
    addr: &SocketAddr,
    tls: bool,
    allow_insecure: bool,
) -> Result<(), MqttError> {
    if strata_core::net::cleartext_bind_allowed(addr, tls, allow_insecure) {
        Ok(())
    } else {
        Err(MqttError::InsecureBind(*addr))
    }
}

/// Serves MQTT connections from `listener` until `shutdown` completes; then stops accepting.
/// Open connections end with the process (their unacknowledged publishes are re-sent by the
/// clients and stored once).
pub async fn serve(
    listener: TcpListener,
    door: MqttDoor,
    tls: Option<TlsAcceptor>,
    config: MqttConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MqttError> {
    let local = listener.local_addr()?;
    check_bind_policy(&local, tls.is_some(), config.allow_insecure)?;
    let door = Arc::new(door);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let limits = ConnectionLimits {
        connect_timeout: CONNECT_TIMEOUT,
        max_inflight: MAX_INFLIGHT_PER_CONNECTION,
    };
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "MQTT accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = config.max_connections, "MQTT connection refused: at the connection limit");
            continue;
        };
        let door = door.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            accept(socket, peer, door, tls, limits).await;
            drop(slot);
        });
    }
}

async fn accept(
    socket: TcpStream,
    peer: SocketAddr,
    door: Arc<MqttDoor>,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
) {
    let _ = socket.set_nodelay(true);
    match tls {
        None => serve_connection(socket, peer, door, limits).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.connect_timeout, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => serve_connection(stream, peer, door, limits).await,
                Ok(Err(error)) => tracing::info!(%peer, %error, "MQTT TLS handshake failed"),
                Err(_) => tracing::info!(%peer, "MQTT TLS handshake timed out"),
            }
        }
    }
}
