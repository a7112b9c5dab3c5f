//! A byte-stream layer between the (decrypted) socket and pgwire's decoder that checks each
//! client message before pgwire sees it.
//!
//! pgwire 0.41 buffers a message of up to 1 GiB before any handler can look at it, and its
//! decoders read fields without checking them against the message's length (a Bind declaring a
//! 2,000,000,000-byte parameter panicked in `split_to`). This layer reads the 5-byte header,
//! refuses a length above [`MAX_MESSAGE_BYTES`] before buffering the body, and hands a message
//! on only once it is complete and, for the messages whose decoders trust their contents, well
//! formed. A refusal is an I/O error carrying a [`FrameError`], which the connection loop turns
//! into an ErrorResponse.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use crate::limits::MAX_MESSAGE_BYTES;

/// pgwire's own limit for the untyped first message (startup or cancel request).
pub const MAX_STARTUP_BYTES: usize = 10_000;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message of {declared} bytes exceeds the limit of {limit} bytes")]
    TooLarge { declared: usize, limit: usize },
    #[error("invalid message length {0}")]
    InvalidLength(i32),
    #[error("malformed {kind} message: {what}")]
    Malformed { kind: char, what: &'static str },
}

impl FrameError {
    /// The frame error behind an I/O error of this layer, if it is one.
    pub fn of(error: &io::Error) -> Option<&FrameError> {
        error.get_ref()?.downcast_ref::<FrameError>()
    }
}

/// Wraps a stream so that only checked, complete messages are read from it.
#[derive(Debug)]
pub struct FrameGuard<S> {
    inner: S,
    /// Bytes read from `inner` that do not yet form a complete message.
    pending: BytesMut,
    /// Checked messages not yet read.
    ready: BytesMut,
    /// Whether the untyped first message (startup or cancel request) has passed.
    started: bool,
    limit: usize,
    /// Set once a message was refused: nothing more is read.
    failed: Option<FrameError>,
}

impl<S> FrameGuard<S> {
    /// `leftover`: bytes already read from `inner` (during TLS negotiation), checked like the
    /// rest.
    pub fn new(inner: S, leftover: BytesMut) -> Self {
        FrameGuard {
            inner,
            pending: leftover,
            ready: BytesMut::new(),
            started: false,
            limit: MAX_MESSAGE_BYTES,
            failed: None,
        }
    }

    /// Moves the next complete, checked message from `pending` to `ready`; `Ok(false)` when
    /// more bytes are needed.
    fn take_message(&mut self) -> Result<bool, FrameError> {
        let (header, max) = if self.started {
            (5, self.limit)
        } else {
            (4, MAX_STARTUP_BYTES)
        };
        if self.pending.len() < header {
            return Ok(false);
        }
        let at = header - 4;
        let length = i32::from_be_bytes([
            self.pending[at],
            self.pending[at + 1],
            self.pending[at + 2],
            self.pending[at + 3],
        ]);
        let declared = usize::try_from(length)
            .ok()
            .filter(|n| *n >= 4)
            .ok_or(FrameError::InvalidLength(length))?;
        if declared > max {
            return Err(FrameError::TooLarge {
                declared,
                limit: max,
            });
        }
        let total = at + declared;
        if self.pending.len() < total {
            // Room for the rest of this message only, so a read never overshoots by much.
            self.pending.reserve(total - self.pending.len());
            return Ok(false);
        }
        let message = self.pending.split_to(total);
        if self.started {
            check_body(message[0], &message[5..])?;
        }
        self.started = true;
        self.ready.unsplit(message);
        Ok(true)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if let Some(error) = &this.failed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    error.clone(),
                )));
            }
            match this.take_message() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => {
                    this.failed = Some(error);
                    continue;
                }
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of stream; a partial message is dropped like a half-sent one.
                return Poll::Ready(Ok(()));
            }
            this.pending.extend_from_slice(read.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Reads a message body field by field, never past its end.
struct Body<'a> {
    bytes: &'a [u8],
    kind: char,
}

impl<'a> Body<'a> {
    fn malformed(&self, what: &'static str) -> FrameError {
        FrameError::Malformed {
            kind: self.kind,
            what,
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FrameError> {
        if self.bytes.len() < n {
            return Err(self.malformed(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn cstring(&mut self, what: &'static str) -> Result<(), FrameError> {
        let end = self
            .bytes
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| self.malformed(what))?;
        self.take(end + 1, what).map(|_| ())
    }

    fn u16(&mut self, what: &'static str) -> Result<usize, FrameError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, FrameError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn end(&self) -> Result<(), FrameError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.malformed("bytes after the last field"))
        }
    }
}

/// Checks the fields of the messages whose pgwire decoders read them unchecked (Bind, Parse,
/// Execute, Describe, Close, Query). Others pass as they are.
fn check_body(kind: u8, bytes: &[u8]) -> Result<(), FrameError> {
    let mut body = Body {
        bytes,
        kind: kind as char,
    };
    match kind {
        b'B' => check_bind(&mut body)?,
        b'P' => {
            body.cstring("statement name")?;
            body.cstring("query")?;
            let types = body.u16("parameter type count")?;
            body.take(types.saturating_mul(4), "parameter types")?;
        }
        b'E' => {
            body.cstring("portal name")?;
            body.i32("row limit")?;
        }
        b'D' | b'C' => {
            body.take(1, "target type")?;
            body.cstring("name")?;
        }
        b'Q' => body.cstring("query")?,
        _ => return Ok(()),
    }
    body.end()
}

fn check_bind(body: &mut Body<'_>) -> Result<(), FrameError> {
    body.cstring("portal name")?;
    body.cstring("statement name")?;
    let formats = body.u16("parameter format count")?;
    body.take(formats.saturating_mul(2), "parameter formats")?;
    let parameters = body.u16("parameter count")?;
    for _ in 0..parameters {
        match body.i32("parameter length")? {
            -1 => {}
            length => {
                let length = usize::try_from(length)
                    .map_err(|_| body.malformed("negative parameter length"))?;
                body.take(length, "a parameter longer than the message")?;
            }
        }
    }
    let results = body.u16("result format count")?;
    body.take(results.saturating_mul(2), "result formats")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn startup() -> Vec<u8> {
        let body = b"\x00\x03\x00\x00user\x00t\x00\x00";
        let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// What a reader of the guarded `input` gets: the bytes passed, then the refusal if any.
    async fn read_all(input: Vec<u8>) -> (Vec<u8>, Option<FrameError>) {
        let mut guard = FrameGuard::new(&input[..], BytesMut::new());
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            match guard.read(&mut buf).await {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(error) => return (out, FrameError::of(&error).cloned()),
            }
        }
    }

    fn bind(parameter_length: i32, parameter: &[u8]) -> Vec<u8> {
        let mut body = b"\x00\x00\x00\x00\x00\x01".to_vec();
        body.extend_from_slice(&parameter_length.to_be_bytes());
        body.extend_from_slice(parameter);
        body.extend_from_slice(&[0, 0]);
        message(b'B', &body)
    }

    #[tokio::test]
    async fn well_formed_messages_pass_unchanged() {
        let mut input = startup();
        input.extend(message(b'Q', b"SELECT 1\0"));
        input.extend(bind(3, b"abc"));
        input.extend(bind(-1, b""));
        input.extend(message(b'S', b""));
        let (out, error) = read_all(input.clone()).await;
        assert_eq!(error, None);
        assert_eq!(out, input);
    }

    #[tokio::test]
    async fn an_oversized_header_is_refused_before_its_body() {
        let mut input = startup();
        input.push(b'Q');
        input.extend_from_slice(&900_000_000i32.to_be_bytes());
        input.extend_from_slice(&[b'x'; 100]);
        let (out, error) = read_all(input).await;
        assert_eq!(out, startup());
        assert_eq!(
            error,
            Some(FrameError::TooLarge {
                declared: 900_000_000,
                limit: MAX_MESSAGE_BYTES
            })
        );
    }

    #[tokio::test]
    async fn bad_lengths_are_refused() {
        for length in [-5, 0, 3] {
            let mut input = startup();
            input.push(b'S');
            input.extend_from_slice(&i32::to_be_bytes(length));
            let (_, error) = read_all(input).await;
            assert_eq!(error, Some(FrameError::InvalidLength(length)));
        }
        let mut huge_startup = 20_000i32.to_be_bytes().to_vec();
        huge_startup.extend_from_slice(&[0; 20]);
        assert!(matches!(
            read_all(huge_startup).await.1,
            Some(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn a_bind_parameter_longer_than_its_message_is_refused() {
        let mut input = startup();
        input.extend(bind(2_000_000_000, b"abc"));
        let (out, error) = read_all(input).await;
        assert_eq!(out, startup());
        assert!(matches!(
            error,
            Some(FrameError::Malformed { kind: 'B', .. })
        ));
        let mut negative = startup();
        negative.extend(bind(-7, b""));
        assert!(read_all(negative).await.1.is_some());
    }

    #[tokio::test]
    async fn truncated_fields_are_refused() {
        for bad in [
            message(b'P', b"s\0SELECT 1\0\x00\x05\x00\x00\x00\x17"),
            message(b'E', b"\0\x00"),
            message(b'D', b"S"),
            message(b'Q', b"SELECT 1"),
            message(b'B', b"\0\0\x00\x02\x00"),
        ] {
            let mut input = startup();
            input.extend(bad);
            assert!(read_all(input).await.1.is_some());
        }
    }
}
