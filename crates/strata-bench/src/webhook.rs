//! A webhook receiver inside the benchmark: a small HTTP/1.1 server on a local port that
//! answers every POST with 200 and hands each request's JSON body, stamped with the instant its
//! last byte arrived, to the scenario that waits for it ([`Inbox`]).
//!
//! Hand-rolled on `std::net` (one thread per connection, keep-alive honoured) so the benchmark
//! needs no server framework and never shares a runtime with the server it measures. It parses
//! only what a webhook sender sends: a request line, headers, and a `Content-Length` body.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use serde_json::Value;

use crate::BenchError;

/// Largest request body accepted; a notification is a few hundred bytes.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest request line or header line accepted.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 100;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// When its last byte was read (before the answer was written).
    pub at: Instant,
    /// The `X-Strata-Notification-Id` header, if any.
    pub id: Option<String>,
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub body: Value,
}

impl Delivery {
    /// The notification's rule (`alert`) and state (`firing`, `resolved`).
    pub fn alert_and_state(&self) -> (&str, &str) {
        (
            self.body["alert"].as_str().unwrap_or(""),
            self.body["state"].as_str().unwrap_or(""),
        )
    }

    /// The top-level label `name` of the notification.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.body["labels"][name].as_str()
    }
}

/// The listening receiver. Stopped (its socket closed) on drop.
pub struct WebhookReceiver {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    /// Listens on `bind` (`127.0.0.1:0` for an ephemeral port); every request is passed to the
    /// returned [`Inbox`].
    pub fn start(bind: &str) -> Result<(WebhookReceiver, Inbox), BenchError> {
        let listener = TcpListener::bind(bind)
            .map_err(|error| BenchError::Harness(format!("webhook receiver on {bind}: {error}")))?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = mpsc::channel();
        let stopping = Arc::clone(&stop);
        let accept = std::thread::Builder::new()
            .name("webhook-accept".to_string())
            .spawn(move || accept_loop(&listener, &stopping, &sender))?;
        let inbox = Inbox {
            receiver,
            pending: Vec::new(),
            seen_ids: HashSet::new(),
            duplicates: 0,
        };
        Ok((
            WebhookReceiver {
                address,
                stop,
                accept: Some(accept),
            },
            inbox,
        ))
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://ADDRESS{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so it sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, stop: &AtomicBool, sender: &Sender<Delivery>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let sender = sender.clone();
        // A connection lives until the sender closes it; nothing waits for it.
        let _ = std::thread::Builder::new()
            .name("webhook-conn".to_string())
            .spawn(move || serve_connection(stream, &sender));
    }
}

/// Answers requests on one connection until it closes, a request is malformed or asks to close.
fn serve_connection(stream: TcpStream, sender: &Sender<Delivery>) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(status) => {
                let _ = writer.write_all(answer(status).as_bytes());
                return;
            }
        };
        let at = Instant::now();
        let body = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let _ = sender.send(Delivery {
            at,
            id: request.id,
            body,
        });
        if writer.write_all(answer(200).as_bytes()).is_err() || request.close {
            return;
        }
    }
}

fn answer(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        411 => "Length Required",
        413 => "Payload Too Large",
        _ => "Bad Request",
    };
    format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n")
}

struct Request {
    id: Option<String>,
    body: Vec<u8>,
    /// `Connection: close` was asked for.
    close: bool,
}

/// One request, `None` at a clean end of the connection; an error is the status to answer.
fn read_request(reader: &mut impl BufRead) -> Result<Option<Request>, u16> {
    let Some(request_line) = read_line(reader)? else {
        return Ok(None);
    };
    if request_line.split_whitespace().count() != 3 {
        return Err(400);
    }
    let mut length = None;
    let mut id = None;
    let mut close = false;
    for _ in 0..=MAX_HEADERS {
        let line = read_line(reader)?.ok_or(400u16)?;
        if line.is_empty() {
            let length = length.ok_or(411u16)?;
            if length > MAX_BODY_BYTES {
                return Err(413);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).map_err(|_| 400u16)?;
            return Ok(Some(Request { id, body, close }));
        }
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = Some(value.parse::<usize>().map_err(|_| 400u16)?),
            "transfer-encoding" => return Err(411),
            "x-strata-notification-id" => id = Some(value.to_string()),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    Err(400)
}

/// One CRLF-terminated line without its terminator; `None` at end of input before any byte.
fn read_line(reader: &mut impl BufRead) -> Result<Option<String>, u16> {
    let mut line = Vec::new();
    let read = reader
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|_| 400u16)?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(400);
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line).map(Some).map_err(|_| 400)
}

/// What the receiver got, for a scenario to wait on: deliveries are matched in any order,
/// and a notification delivered twice (a retry) is kept once.
pub struct Inbox {
    receiver: Receiver<Delivery>,
    /// Received, not yet matched.
    pending: Vec<Delivery>,
    seen_ids: HashSet<String>,
    duplicates: u64,
}

impl Inbox {
    /// The first delivery `matches` accepts, waiting until `deadline`; `None` when none came.
    pub fn wait_for(
        &mut self,
        deadline: Instant,
        matches: impl Fn(&Delivery) -> bool,
    ) -> Option<Delivery> {
        if let Some(index) = self.pending.iter().position(&matches) {
            return Some(self.pending.remove(index));
        }
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let delivery = match self.receiver.recv_timeout(left) {
                Ok(delivery) => delivery,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            };
            if !self.is_new(&delivery) {
                continue;
            }
            if matches(&delivery) {
                return Some(delivery);
            }
            self.pending.push(delivery);
        }
    }

    /// Everything received so far and not matched yet (waits for nothing).
    pub fn drain(&mut self) -> Vec<Delivery> {
        while let Ok(delivery) = self.receiver.try_recv() {
            if self.is_new(&delivery) {
                self.pending.push(delivery);
            }
        }
        std::mem::take(&mut self.pending)
    }

    /// Deliveries dropped because their notification id had been received before.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    fn is_new(&mut self, delivery: &Delivery) -> bool {
        let Some(id) = &delivery.id else {
            return true;
        };
        if self.seen_ids.insert(id.clone()) {
            true
        } else {
            self.duplicates += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn post(stream: &mut TcpStream, id: &str, body: &str) -> String {
        let request = format!(
            "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             X-Strata-Notification-Id: {id}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = [0u8; 256];
        let read = stream.read(&mut answer).unwrap();
        String::from_utf8_lossy(&answer[..read]).into_owned()
    }

    #[test]
    fn receives_keep_alive_requests_in_any_order_and_drops_repeated_ids() {
        let (receiver, mut inbox) = WebhookReceiver::start("127.0.0.1:0").unwrap();
        let mut stream = TcpStream::connect(receiver.address()).unwrap();
        let first = r#"{"alert":"hot","state":"firing","labels":{"name":"a"}}"#;
        let second = r#"{"alert":"hot","state":"resolved","labels":{"name":"a"}}"#;
        assert!(post(&mut stream, "1", first).starts_with("HTTP/1.1 200 OK"));
        // The same connection, twice the same id (a retry), then another notification.
        assert!(post(&mut stream, "1", first).starts_with("HTTP/1.1 200 OK"));
        assert!(post(&mut stream, "2", second).starts_with("HTTP/1.1 200 OK"));
        let deadline = Instant::now() + Duration::from_secs(5);
        let resolved = inbox
            .wait_for(deadline, |d| d.alert_and_state().1 == "resolved")
            .unwrap();
        assert_eq!(resolved.label("name"), Some("a"));
        assert_eq!(resolved.id.as_deref(), Some("2"));
        let firing = inbox
            .wait_for(deadline, |d| d.alert_and_state() == ("hot", "firing"))
            .unwrap();
        assert_eq!(firing.id.as_deref(), Some("1"));
        assert!(inbox
            .wait_for(Instant::now() + Duration::from_millis(50), |_| true)
            .is_none());
        assert_eq!(inbox.duplicates(), 1);
        assert!(receiver.url("/hook").starts_with("http://127.0.0.1:"));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let cases: [(&[u8], u16); 3] = [
            (b"POST /hook HTTP/1.1\r\n\r\n", 411),
            (b"garbage\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\ncontent-length: 99999999\r\n\r\n", 413),
        ];
        for (input, status) in cases {
            let mut reader = BufReader::new(input);
            assert_eq!(read_request(&mut reader).err(), Some(status));
        }
        let mut empty = BufReader::new(&b""[..]);
        assert!(read_request(&mut empty).unwrap().is_none());
    }
}
