//! The HTTP accept loop: hyper's HTTP/1.1 connection builder with a header-read timeout (which
//! is also the idle keep-alive timeout), TCP_NODELAY, a cap on open connections, and graceful
//! shutdown. `axum::serve` offers none of the timeouts or the cap: half-sent headers stayed open
//! over 150 s and 16,000 idle sockets were held (issue 24).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, Response, StatusCode};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use strata_core::telemetry::HTTP_OPEN_CONNECTIONS;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How the HTTP port treats connections. `strata serve` flags set these.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Longest time a connection may take to send a complete request head. hyper starts this
    /// clock whenever a connection waits for a request, so it is also how long an idle
    /// keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Most connections served at once; one more gets a 503 and is closed.
    pub max_connections: usize,
    /// Whether `GET /metrics` answers clients on other hosts. Off, only loopback peers get
    /// it: it has no key, and it names every tenant's metrics.
    pub allow_remote_metrics: bool,
}

/// 10 s for a request head: a client on a slow mobile link sends a few hundred bytes of
/// headers in well under a second; a slowloris client is cut after 10.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// 4,096 connections: each idle one costs an 8 KiB read buffer plus a task (about 40 MiB in
/// all); a half-sent head can grow its buffer to hyper's 400 KiB maximum (1.6 GiB in all,
/// bounded in time by the header-read timeout). Far above the benchmark's 64 clients.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4_096;

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            allow_remote_metrics: false,
        }
    }
}

/// Connections over the cap that are answered with a 503 at the same time; more are closed
/// without an answer, so a flood cannot make the refusals themselves unbounded.
const REFUSAL_SLOTS: usize = 64;
/// A refused connection gets this long to send its request head before it is closed.
const REFUSAL_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// At most one warning per minute about the cap, however many connections are refused.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// After an accept error other than a per-connection one (EMFILE: out of file descriptors),
/// wait before accepting again instead of spinning; axum::serve waits the same 1 s.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// open connections to finish their current request (idle ones close at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSAL_SLOTS));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let mut last_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without TCP_NODELAY a small streamed answer can wait for the client's delayed ACK
        // (40 ms): the benchmark's recent-window p99 was 52 ms with it off, 2.5 ms with it on.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if last_warning.is_none_or(|at| at.elapsed() >= CAP_WARNING_INTERVAL) {
                tracing::warn!(
                    cap = config.max_connections,
                    "HTTP connection cap reached; refusing new connections with 503"
                );
                last_warning = Some(Instant::now());
            }
            refuse(stream, &refusals, config.max_connections);
            continue;
        };
        let service = TowerToHyperService::new(with_connection_info(app.clone(), peer, &config));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        metrics::gauge!(HTTP_OPEN_CONNECTIONS).increment(1.0);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // Timeouts and resets by the peer land here; they are the client's business.
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
            metrics::gauge!(HTTP_OPEN_CONNECTIONS).decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

type IncomingRequest = hyper::Request<hyper::body::Incoming>;

/// What a handler may know of the connection a request came on: carried as a request extension.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionInfo {
    /// Whether `GET /metrics` may answer: a loopback peer, or `allow_remote_metrics`.
    pub(crate) may_read_metrics: bool,
}

/// `app` with every request of one connection carrying its [`ConnectionInfo`].
fn with_connection_info(
    app: Router,
    peer: SocketAddr,
    config: &HttpConfig,
) -> tower::util::MapRequest<Router, impl FnMut(IncomingRequest) -> IncomingRequest + Clone> {
    use tower::ServiceExt;
    let info = ConnectionInfo {
        may_read_metrics: config.allow_remote_metrics || strata_core::net::is_local(peer.ip()),
    };
    app.map_request(move |mut request: IncomingRequest| {
        request.extensions_mut().insert(info);
        request
    })
}

/// Per-connection accept errors (the peer gave up) are skipped; others (out of file
/// descriptors) are logged and retried after a pause.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting an HTTP connection failed; retrying in 1 s");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

/// Answers one request on a connection over the cap with 503 and closes it, or closes it at
/// once when [`REFUSAL_SLOTS`] refusals are already under way.
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>, cap: usize) {
    let Ok(slot) = Arc::clone(refusals).try_acquire_owned() else {
        return;
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_HEADER_TIMEOUT)
        .keep_alive(false);
    let service = hyper::service::service_fn(move |_request| async move {
        Ok::<_, Infallible>(over_capacity(cap))
    });
    tokio::spawn(async move {
        let _ = builder
            .serve_connection(TokioIo::new(stream), service)
            .await;
        drop(slot);
    });
}

fn over_capacity(cap: usize) -> Response<String> {
    let body = serde_json::json!({
        "error": format!(
            "the server holds its limit of {cap} open HTTP connections; retry shortly"
        )
    });
    let mut response = Response::new(body.to_string());
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
