//! One client socket from accept to close. pgwire's `process_socket` is replaced by this loop
//! (built from pgwire's own `negotiate_tls`, `process_message` and `process_error`) so that the
//! door can:
//! - give the login (TLS handshake, startup, password) [`LOGIN_TIMEOUT`] and a login slot that
//!   a newer login may take ([`crate::limits::Logins`]);
//! - read client messages through [`FrameGuard`], which refuses oversized and malformed
//!   messages before pgwire buffers or decodes them;
//! - end a session whose key was revoked, before its next statement and while it is idle;
//! - turn a panic in decoding or in a handler into an ErrorResponse instead of a dropped
//!   connection.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ClientInfo, ErrorHandler, NoopHandler, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{
    negotiate_tls, process_error, process_message, MaybeTls, PgWireMessageServerCodec,
};
use pgwire::tokio::TlsAcceptor;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};
use tokio_util::codec::{Framed, FramedParts};

use crate::connection::Connection;
use crate::errors::{INTERNAL_ERROR, PROTOCOL_VIOLATION, QUERY_CANCELED};
use crate::frame::{FrameError, FrameGuard};
use crate::limits::{LoginSlot, LOGIN_TIMEOUT, TOO_MANY_CONNECTIONS};
use crate::startup::INVALID_AUTHORIZATION;

/// How often an idle session checks that its key is still valid.
pub const REVOCATION_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Longest wait for a final error message to reach a client that does not read.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(5);

type Socket<S> = Framed<FrameGuard<MaybeTls>, PgWireMessageServerCodec<S>>;

/// The handlers of a door, with their types named (pgwire's `PgWireServerHandlers` returns
/// `impl Trait`s, whose statement type generic code cannot name).
pub trait Handlers: Send + Sync + 'static {
    type Statement: Send + Sync + 'static;
    type Startup: StartupHandler;
    type Simple: SimpleQueryHandler;
    type Extended: ExtendedQueryHandler<Statement = Self::Statement>;
    type Cancel: CancelHandler;
    type Errors: ErrorHandler;

    fn startup(&self) -> Arc<Self::Startup>;
    fn simple(&self) -> Arc<Self::Simple>;
    fn extended(&self) -> Arc<Self::Extended>;
    fn cancel(&self) -> Arc<Self::Cancel>;
    fn errors(&self) -> Arc<Self::Errors>;
}

/// What woke the connection loop.
enum Event {
    Message(PgWireFrontendMessage),
    /// The stream ended or failed for a reason not worth telling the client.
    Gone,
    /// The client sent something unreadable (oversized, malformed, or the decoder panicked).
    Unreadable(String),
    LoginTimeout,
    Evicted,
    RevocationCheck,
}

/// Serves one accepted socket until it closes. `login` is the socket's login slot, held until
/// the login succeeds.
pub async fn serve_socket<H: Handlers>(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: Arc<H>,
    mut login: LoginSlot,
) {
    let deadline = Instant::now() + LOGIN_TIMEOUT;
    let negotiated = tokio::select! {
        negotiated = negotiate_tls(tcp, tls) => negotiated,
        _ = sleep_until(deadline) => return,
        _ = login.evicted() => return,
    };
    let socket = match negotiated {
        Ok(Some(socket)) => socket,
        // A direct TLS handshake without TLS configured.
        Ok(None) => return,
        Err(error) => {
            tracing::debug!(%error, "Postgres TLS negotiation failed");
            return;
        }
    };
    let old = socket.into_parts();
    // Bytes read during negotiation go through the guard like the rest.
    let mut parts = FramedParts::new(FrameGuard::new(old.io, old.read_buf), old.codec);
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);
    run(&mut socket, &*handlers, login, deadline).await;
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, socket.close()).await;
}

fn logging_in(state: PgWireConnectionState) -> bool {
    matches!(
        state,
        PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress
    )
}

async fn next_event<S>(
    socket: &mut Socket<S>,
    login: Option<&mut LoginSlot>,
    deadline: Instant,
    revocation: &mut tokio::time::Interval,
) -> Event {
    let read = AssertUnwindSafe(socket.next()).catch_unwind();
    let next = match login {
        Some(login) => tokio::select! {
            next = read => next,
            _ = sleep_until(deadline) => return Event::LoginTimeout,
            _ = login.evicted() => return Event::Evicted,
        },
        None => tokio::select! {
            next = read => next,
            _ = revocation.tick() => return Event::RevocationCheck,
        },
    };
    match next {
        Ok(Some(Ok(message))) => Event::Message(message),
        Ok(None) => Event::Gone,
        Ok(Some(Err(PgWireError::IoError(error)))) => match FrameError::of(&error) {
            Some(refused) => Event::Unreadable(refused.to_string()),
            None => Event::Gone,
        },
        Ok(Some(Err(error))) => Event::Unreadable(error.to_string()),
        Err(panic) => {
            tracing::error!(
                panic = strata_core::panic_text(&*panic),
                "Postgres message decoder panicked"
            );
            Event::Unreadable("malformed message".to_string())
        }
    }
}

/// The connection loop; returns when the connection should close.
async fn run<H: Handlers>(
    socket: &mut Socket<H::Statement>,
    handlers: &H,
    login: LoginSlot,
    deadline: Instant,
) {
    let mut login = Some(login);
    let mut revocation = tokio::time::interval(REVOCATION_CHECK_INTERVAL);
    // After a long statement, one check is enough, not one per missed tick.
    revocation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = next_event(socket, login.as_mut(), deadline, &mut revocation).await;
        let message = match event {
            Event::Message(message) => message,
            Event::Gone => return,
            Event::Unreadable(why) => {
                tracing::info!(peer = %socket.socket_addr(), why, "unreadable Postgres message");
                return farewell(
                    socket,
                    PROTOCOL_VIOLATION,
                    &format!("protocol violation: {why}"),
                )
                .await;
            }
            Event::LoginTimeout => {
                return end_login(
                    socket,
                    QUERY_CANCELED,
                    "canceling authentication due to timeout",
                )
                .await
            }
            Event::Evicted => {
                return end_login(
                    socket,
                    TOO_MANY_CONNECTIONS,
                    "too many connections are logging in",
                )
                .await
            }
            Event::RevocationCheck => match key_revoked(socket).await {
                Some(true) => return revoked(socket).await,
                _ => continue,
            },
        };
        if !handle(socket, handlers, message, login.is_some()).await {
            return;
        }
        if login.is_some() && !logging_in(socket.state()) {
            // Logged in: the login slot is free for the next socket.
            login = None;
            revocation.reset();
        }
    }
}

/// Handles one message; `false` when the connection should close.
async fn handle<H: Handlers>(
    socket: &mut Socket<H::Statement>,
    handlers: &H,
    message: PgWireFrontendMessage,
    logging_in: bool,
) -> bool {
    match &message {
        // The client is leaving; some clients wait for the server to close first.
        PgWireFrontendMessage::Terminate(_) => return false,
        // Each statement checks the key first, so a revoked key runs nothing more.
        PgWireFrontendMessage::Query(_)
        | PgWireFrontendMessage::Parse(_)
        | PgWireFrontendMessage::Execute(_) => match key_revoked(socket).await {
            Some(true) => {
                revoked(socket).await;
                return false;
            }
            None if !logging_in => {
                let error = crate::errors::pg_error(INTERNAL_ERROR, "could not check the key");
                return answer_error(socket, handlers, error, message.is_extended_query()).await;
            }
            _ => {}
        },
        _ => {}
    }
    let cancel = matches!(message, PgWireFrontendMessage::CancelRequest(_));
    let extended = match socket.state() {
        PgWireConnectionState::CopyInProgress(extended) => extended,
        _ => message.is_extended_query(),
    };
    let processed = AssertUnwindSafe(process_message(
        message,
        socket,
        handlers.startup(),
        handlers.simple(),
        handlers.extended(),
        // COPY is refused by the SQL sandbox; pgwire's no-op handler answers the protocol.
        Arc::new(NoopHandler),
        handlers.cancel(),
    ))
    .catch_unwind()
    .await;
    let error = match processed {
        Ok(Ok(())) => return !cancel,
        Ok(Err(error)) => error,
        Err(panic) => {
            tracing::error!(
                panic = strata_core::panic_text(&*panic),
                "Postgres handler panicked"
            );
            // Before login the session is in an unknown state; after, only the statement failed.
            let severity = if logging_in { "FATAL" } else { "ERROR" };
            PgWireError::UserError(Box::new(ErrorInfo::new(
                severity.to_string(),
                INTERNAL_ERROR.to_string(),
                "internal error while handling the message".to_string(),
            )))
        }
    };
    answer_error(socket, handlers, error, extended).await && !cancel
}

/// Sends `error` as pgwire would; `false` when it was fatal (the connection should close).
async fn answer_error<H: Handlers>(
    socket: &mut Socket<H::Statement>,
    handlers: &H,
    mut error: PgWireError,
    extended: bool,
) -> bool {
    handlers.errors().on_error(socket, &mut error);
    let info: ErrorInfo = error.into();
    let fatal = info.is_fatal();
    if let Err(error) =
        process_error(socket, PgWireError::UserError(Box::new(info)), extended).await
    {
        tracing::debug!(%error, "sending a Postgres error response");
        return false;
    }
    !fatal
}

/// `Some(true)` when the session's key was revoked; `None` when that could not be checked.
/// Sockets that have not logged in have no key yet: `Some(false)`.
async fn key_revoked<S>(socket: &Socket<S>) -> Option<bool> {
    let Some(connection) = socket.session_extensions().get::<Connection>() else {
        return Some(false);
    };
    match connection.key_still_valid().await {
        Ok(valid) => Some(!valid),
        Err(error) => {
            tracing::warn!(%error, "checking a Postgres session's key");
            None
        }
    }
}

async fn revoked<S>(socket: &mut Socket<S>) {
    tracing::info!(peer = %socket.socket_addr(), "Postgres session ended: its key was revoked");
    farewell(
        socket,
        INVALID_AUTHORIZATION,
        "terminating connection: the key of this session was revoked",
    )
    .await
}

/// Ends a login that did not finish: clients that sent their startup message get a FATAL
/// error first; others (still in TLS, or silent) are closed.
async fn end_login<S>(socket: &mut Socket<S>, code: &str, message: &str) {
    tracing::debug!(peer = %socket.socket_addr(), message, "Postgres login ended");
    if matches!(
        socket.state(),
        PgWireConnectionState::AuthenticationInProgress
    ) {
        farewell(socket, code, message).await;
    }
}

/// Sends a FATAL ErrorResponse (bounded in time: the client may not be reading).
async fn farewell<S>(socket: &mut Socket<S>, code: &str, message: &str) {
    let info = ErrorInfo::new("FATAL".to_string(), code.to_string(), message.to_string());
    let send = socket.send(PgWireBackendMessage::ErrorResponse(info.into()));
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, send).await;
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use async_trait::async_trait;
    use futures::Sink;
    use pgwire::api::results::Response;
    use pgwire::api::store::PortalStore;
    use pgwire::api::ClientPortalStore;
    use pgwire::error::PgWireResult;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::limits::Logins;

    /// Panics on any query that mentions "panic".
    struct Panicky;

    #[async_trait]
    impl SimpleQueryHandler for Panicky {
        async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
        where
            C: ClientInfo + ClientPortalStore + futures::Sink<PgWireBackendMessage>,
            C: Unpin + Send + Sync,
            C::PortalStore: PortalStore,
            C::Error: Debug,
            PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
        {
            assert!(!query.contains("panic"), "a handler bug");
            Ok(vec![Response::EmptyQuery])
        }
    }

    struct TestDoor;

    impl Handlers for TestDoor {
        type Statement = String;
        type Startup = NoopHandler;
        type Simple = Panicky;
        type Extended = NoopHandler;
        type Cancel = NoopHandler;
        type Errors = NoopHandler;

        fn startup(&self) -> Arc<NoopHandler> {
            Arc::new(NoopHandler)
        }
        fn simple(&self) -> Arc<Panicky> {
            Arc::new(Panicky)
        }
        fn extended(&self) -> Arc<NoopHandler> {
            Arc::new(NoopHandler)
        }
        fn cancel(&self) -> Arc<NoopHandler> {
            Arc::new(NoopHandler)
        }
        fn errors(&self) -> Arc<NoopHandler> {
            Arc::new(NoopHandler)
        }
    }

    /// Message types up to ReadyForQuery, and the SQLSTATE of any error.
    async fn until_ready(stream: &mut TcpStream) -> (Vec<u8>, Option<String>) {
        let (mut kinds, mut code) = (Vec::new(), None);
        loop {
            let kind = stream.read_u8().await.unwrap();
            let len = stream.read_i32().await.unwrap() as usize;
            let mut body = vec![0u8; len - 4];
            stream.read_exact(&mut body).await.unwrap();
            kinds.push(kind);
            if kind == b'E' {
                code = body
                    .split(|b| *b == 0)
                    .find(|field| field.first() == Some(&b'C'))
                    .map(|field| String::from_utf8_lossy(&field[1..]).into_owned());
            }
            if kind == b'Z' {
                return (kinds, code);
            }
        }
    }

    async fn query(stream: &mut TcpStream, sql: &str) -> (Vec<u8>, Option<String>) {
        let mut message = vec![b'Q'];
        message.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
        message.extend_from_slice(sql.as_bytes());
        message.push(0);
        stream.write_all(&message).await.unwrap();
        until_ready(stream).await
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_xx000_and_the_session_goes_on() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let logins = Arc::new(Logins::default());
            serve_socket(tcp, None, Arc::new(TestDoor), logins.start()).await;
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let startup = b"\x00\x03\x00\x00user\x00t\x00\x00";
        client
            .write_all(&((startup.len() + 4) as i32).to_be_bytes())
            .await
            .unwrap();
        client.write_all(startup).await.unwrap();
        until_ready(&mut client).await;

        let (kinds, code) = query(&mut client, "SELECT 'panic'").await;
        assert_eq!(kinds, b"EZ");
        assert_eq!(code.as_deref(), Some(INTERNAL_ERROR));
        let (kinds, code) = query(&mut client, "SELECT 1").await;
        assert_eq!((kinds.as_slice(), code), (&b"IZ"[..], None));
        client.write_all(b"X\x00\x00\x00\x04").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the connection ends on Terminate")
            .unwrap();
    }
}
