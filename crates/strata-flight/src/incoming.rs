//! The door's connections: an accept task that holds one slot of the connection cap per
//! connection, finishes TLS handshakes off the accept loop (bounded by a timeout), and hands
//! ready connections to the gRPC server as a stream.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::Connected;

use crate::HANDSHAKE_TIMEOUT;

/// Connections accepted and ready but not yet taken by the server.
const READY_BACKLOG: usize = 64;

/// gRPC over TLS needs ALPN `h2` (gRPC clients refuse a server that does not offer it); the
/// certificate and key are the ones the node loaded for the Postgres port.
pub(crate) fn grpc_tls(acceptor: TlsAcceptor) -> TlsAcceptor {
    let mut config = (**acceptor.config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// The accepted connections of `listener`, at most `max_connections` open at once; the accept
/// task ends when the stream is dropped (the server stopped).
pub(crate) fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
) -> impl Stream<Item = Result<Connection, io::Error>> {
    let (ready, received) = mpsc::channel(READY_BACKLOG);
    let slots = Arc::new(Semaphore::new(max_connections));
    let task = tokio::spawn(accept_loop(listener, tls, slots, ready));
    futures::stream::unfold(
        (received, AbortOnDrop(task)),
        |(mut received, task)| async move {
            let connection = received.recv().await?;
            Some((Ok(connection), (received, task)))
        },
    )
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    slots: Arc<Semaphore>,
    ready: mpsc::Sender<Connection>,
) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%error, "Flight SQL accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "Flight SQL connection refused: at the connection limit");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let (tls, ready) = (tls.clone(), ready.clone());
        tokio::spawn(async move {
            if let Some(connection) = open(socket, peer, tls, slot).await {
                let _ = ready.send(connection).await;
            }
        });
    }
}

async fn open(
    socket: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    slot: OwnedSemaphorePermit,
) -> Option<Connection> {
    let io = match tls {
        None => Io::Plain(socket),
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => Io::Tls(Box::new(stream)),
                Ok(Err(error)) => {
                    tracing::info!(%peer, %error, "Flight SQL TLS handshake failed");
                    return None;
                }
                Err(_) => {
                    tracing::info!(%peer, "Flight SQL TLS handshake timed out");
                    return None;
                }
            }
        }
    };
    Some(Connection {
        io,
        peer,
        _slot: slot,
    })
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// One accepted connection; its slot of the connection cap is freed when the server drops it.
pub(crate) struct Connection {
    io: Io,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
}

/// What the server knows of a connection's peer, in each request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected for Connection {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        Peer(self.peer)
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
