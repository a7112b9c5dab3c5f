//! The real receivers of the alert tests (`alerts.rs`): where `strata serve` delivers
//! notifications.
//!
//! - [`Receiver::webhook`]: a real HTTP/1.1 server on 127.0.0.1 and an ephemeral port, in
//!   background threads, that records every request (method, path, headers, body bytes) and
//!   answers 200, or 503 while it is [`Receiver::set_down`]. [`Receiver::stop`] closes its
//!   socket (connections are refused) and [`Receiver::start`] listens again on the same port:
//!   an outage as a sender sees it.
//! - [`Receiver::twilio`]: the same server answering `POST .../Messages.json` the way Twilio's
//!   Messages API does (201 and a JSON message resource), so the form-encoded `To`, `From` and
//!   `Body` of each SMS can be read back. It is the only double among the receivers: no SMS
//!   network is reachable here, and an operator's gateway speaks exactly this API.
//! - [`SmtpSink`]: a real SMTP server, Python's `aiosmtpd` from PyPI (`tests/clients/
//!   smtp_sink.py`), started as a subprocess; each message it accepts is read back with its
//!   envelope, subject and headers.
//!
//! And [`hmac_sha256`], to check the webhook signature header.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::cloud::{available, clients_dir, probe, python};

/// One request a receiver got, with the status it answered.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub status: u16,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn notification_id(&self) -> Option<&str> {
        self.header("x-strata-notification-id")
    }

    /// The body parsed as JSON (Value::Null when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as `application/x-www-form-urlencoded` pairs, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(key), form_decode(value))
            })
            .collect()
    }

    /// One form field's value.
    pub fn form_value(&self, key: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn delivered(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Decodes one component of a form body: `+` is a space, `%XX` a byte.
pub fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Clone, Copy, PartialEq)]
enum Flavor {
    Webhook,
    Twilio,
}

struct Shared {
    flavor: Flavor,
    requests: Mutex<Vec<Request>>,
    down: AtomicBool,
}

/// A recording HTTP/1.1 server (see the module's doc). Stopped on drop.
pub struct Receiver {
    port: u16,
    shared: Arc<Shared>,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Receiver {
    /// A webhook receiver, listening.
    pub fn webhook() -> Receiver {
        Self::new(Flavor::Webhook)
    }

    /// The Twilio-compatible SMS gateway double, listening.
    pub fn twilio() -> Receiver {
        Self::new(Flavor::Twilio)
    }

    fn new(flavor: Flavor) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
        let port = listener.local_addr().expect("local addr").port();
        let mut receiver = Receiver {
            port,
            shared: Arc::new(Shared {
                flavor,
                requests: Mutex::new(Vec::new()),
                down: AtomicBool::new(false),
            }),
            running: None,
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let shared = self.shared.clone();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let shared = shared.clone();
                        std::thread::spawn(move || handle(stream, &shared));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            // The listener drops here: new connections are refused.
        });
        self.running = Some((stop, thread));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// While down, every request is recorded and answered 503.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Closes the listening socket: connections are refused until [`Receiver::start`].
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = thread.join();
        }
    }

    /// Listens again on the same port.
    pub fn start(&mut self) {
        if self.running.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => break listener,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot listen again on port {}: {e}",
                        self.port
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        self.serve(listener);
    }

    /// Every request so far, answered or not, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The requests answered with 2xx.
    pub fn delivered(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::delivered)
            .collect()
    }

    /// Waits until at least `count` requests were delivered (2xx); returns all delivered ones.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Request> {
        self.wait_for_matching(count, timeout, |_| true)
    }

    /// Waits until at least `count` delivered requests satisfy `matches`; returns those.
    pub fn wait_for_matching(
        &self,
        count: usize,
        timeout: Duration,
        matches: impl Fn(&Request) -> bool,
    ) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<Request> = self
                .delivered()
                .into_iter()
                .filter(|r| matches(r))
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} matching deliveries within {timeout:?}, got {}; all requests:\n{}",
                found.len(),
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until at least `count` requests arrived, whatever the answer.
    pub fn wait_for_attempts(&self, count: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.requests();
            if all.len() >= count {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} requests within {timeout:?}, got {}",
                all.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every request, one per line, for failure messages.
    pub fn describe(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} -> {}",
                    r.method,
                    r.path,
                    String::from_utf8_lossy(&r.body),
                    r.status
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves one connection: one request, one answer, then close.
fn handle(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(mut request) = read_request(&mut stream) else {
        return;
    };
    let (status, content_type, body) = if shared.down.load(Ordering::SeqCst) {
        (503, "text/plain", "down for the test".to_string())
    } else {
        match shared.flavor {
            Flavor::Webhook => (200, "text/plain", "ok".to_string()),
            Flavor::Twilio => twilio_answer(&request),
        }
    };
    request.status = status;
    shared.requests.lock().unwrap().push(request);
    let reason = match status {
        200 => "OK",
        201 => "Created",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes());
    let _ = stream.flush();
}

/// What Twilio answers to `POST /2010-04-01/Accounts/{sid}/Messages.json`: 201 and the queued
/// message resource.
fn twilio_answer(request: &Request) -> (u16, &'static str, String) {
    if request.method != "POST" || !request.path.ends_with("/Messages.json") {
        let body = json!({"code": 20404, "message": "The requested resource was not found", "status": 404});
        return (404, "application/json", body.to_string());
    }
    let account = request
        .path
        .split('/')
        .skip_while(|part| *part != "Accounts")
        .nth(1)
        .unwrap_or("")
        .to_string();
    let sid = format!("SM{:032x}", request.body.len() as u128 + 1);
    let body = json!({
        "sid": sid,
        "account_sid": account,
        "to": request.form_value("To"),
        "from": request.form_value("From"),
        "body": request.form_value("Body"),
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json"),
    });
    (201, "application/json", body.to_string())
}

/// Reads a request line, headers and a body (Content-Length or chunked).
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = find("content-length") {
        let mut chunk = vec![0; length.parse().ok()?];
        reader.read_exact(&mut chunk).ok()?;
        body = chunk;
    }
    Some(Request {
        method,
        path,
        headers,
        body,
        status: 0,
    })
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn hmac_sha256_matches_rfc_4231() {
    // Test cases 2 and 6 of RFC 4231 (a short key, and a key longer than the block).
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex(&hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

/// One message the SMTP server accepted.
#[derive(Clone, Debug)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub raw: String,
    /// Whether the session had started TLS when the message came.
    pub tls: bool,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn notification_id(&self) -> Option<&str> {
        self.header("X-Strata-Notification-Id")
    }
}

/// `aiosmtpd` as a subprocess on an ephemeral port, killed on drop.
pub struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    /// `None` (a loud skip) when aiosmtpd is not installed and CI does not require it.
    pub fn start() -> Option<SmtpSink> {
        Self::start_with(&[])
    }

    /// A sink that offers STARTTLS with `cert` and `key` and takes mail only after it.
    pub fn start_tls(cert: &Path, key: &Path) -> Option<SmtpSink> {
        Self::start_with(&[cert, key])
    }

    fn start_with(tls: &[&Path]) -> Option<SmtpSink> {
        if !available(
            "aiosmtpd (pip install -r crates/strata/tests/clients/requirements.txt)",
            probe(&python(), &["-c", "import aiosmtpd"], None),
        ) {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mail_dir = dir.path().join("mail");
        std::fs::create_dir(&mail_dir).expect("mail dir");
        let log = std::fs::File::create(dir.path().join("smtp.log")).expect("smtp log");
        let mut child = Command::new(python())
            .arg("-u")
            .arg(clients_dir().join("smtp_sink.py"))
            .arg(&mail_dir)
            .args(tls)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn the SMTP server (smtp_sink.py)");
        // Its first line is the port it bound.
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Ok(port) = line.trim().parse::<u16>() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the SMTP server did not report its port (got {line:?}):\n{}",
                std::fs::read_to_string(dir.path().join("smtp.log")).unwrap_or_default()
            );
        };
        Some(SmtpSink { child, port, dir })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `--smtp-url` for it: plain SMTP on loopback.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Every message accepted so far, in arrival order.
    pub fn messages(&self) -> Vec<Mail> {
        read_mails(&self.mail_dir())
    }

    /// Waits until at least `count` messages arrived; returns all of them.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let mails = self.messages();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} mails within {timeout:?}, got {}: {mails:#?}\nserver log:\n{}",
                mails.len(),
                std::fs::read_to_string(self.dir.path().join("smtp.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_mails(dir: &Path) -> Vec<Mail> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("a mail file");
            let v: Value = serde_json::from_str(&text).expect("a mail record");
            let text_of = |key: &str| v[key].as_str().unwrap_or("").to_string();
            Mail {
                mail_from: text_of("mail_from"),
                rcpt_tos: v["rcpt_tos"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                subject: text_of("subject"),
                headers: v["headers"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|h| {
                                (
                                    h[0].as_str().unwrap_or("").to_string(),
                                    h[1].as_str().unwrap_or("").to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                body: text_of("body"),
                raw: text_of("raw"),
                tls: v["tls"] == true,
            }
        })
        .collect()
}

#[test]
fn the_receivers_record_requests_answer_like_their_service_and_go_down() {
    let client = reqwest::blocking::Client::new();
    let mut hook = Receiver::webhook();
    let sent = client
        .post(hook.url("/hook"))
        .header("X-Strata-Notification-Id", "n1")
        .json(&json!({"state": "firing"}))
        .send()
        .expect("send");
    assert_eq!(sent.status().as_u16(), 200);
    let got = hook.wait_for(1, Duration::from_secs(5));
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(got[0].notification_id(), Some("n1"));
    assert_eq!(got[0].json()["state"], "firing");

    hook.set_down(true);
    let down = client
        .post(hook.url("/hook"))
        .body("x")
        .send()
        .expect("send");
    assert_eq!(down.status().as_u16(), 503);
    assert_eq!((hook.requests().len(), hook.delivered().len()), (2, 1));
    hook.stop();
    assert!(client.post(hook.url("/hook")).body("x").send().is_err());
    hook.start();
    hook.set_down(false);
    let back = client
        .post(hook.url("/hook"))
        .body("x")
        .send()
        .expect("send");
    assert_eq!(back.status().as_u16(), 200);

    let sms = Receiver::twilio();
    let form = [
        ("To", "+15550100"),
        ("From", "+15550000"),
        ("Body", "hot firing: a=b & c"),
    ];
    let sent = client
        .post(sms.url("/2010-04-01/Accounts/AC1/Messages.json"))
        .basic_auth("AC1", Some("token"))
        .form(&form)
        .send()
        .expect("send");
    assert_eq!(sent.status().as_u16(), 201);
    let answer: Value = sent.json().expect("json");
    assert_eq!(
        (&answer["status"], &answer["to"]),
        (&json!("queued"), &json!("+15550100"))
    );
    let got = sms.wait_for(1, Duration::from_secs(5));
    assert_eq!(
        got[0].form_value("Body").as_deref(),
        Some("hot firing: a=b & c")
    );
    assert_eq!(got[0].header("authorization"), Some("Basic QUMxOnRva2Vu"));
}

#[test]
fn the_smtp_sink_reads_back_what_it_accepted() {
    let Some(smtp) = SmtpSink::start() else {
        return;
    };
    let mut stream = TcpStream::connect(("127.0.0.1", smtp.port())).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut expect_code = |code: &str| loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a reply");
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    expect_code("220");
    let dialogue = [
        ("EHLO test\r\n", "250"),
        ("MAIL FROM:<strata@localhost>\r\n", "250"),
        ("RCPT TO:<oncall@example.com>\r\n", "250"),
        ("DATA\r\n", "354"),
        (
            "Subject: [Strata] hot firing: name=d1\r\nX-Strata-Notification-Id: n1\r\n\r\nd1 is hot\r\n.\r\n",
            "250",
        ),
        ("QUIT\r\n", "221"),
    ];
    for (line, code) in dialogue {
        stream.write_all(line.as_bytes()).expect("write");
        expect_code(code);
    }
    let mails = smtp.wait_for(1, Duration::from_secs(10));
    assert_eq!(mails[0].subject, "[Strata] hot firing: name=d1");
    assert_eq!(mails[0].rcpt_tos, ["oncall@example.com"]);
    assert_eq!(mails[0].mail_from, "strata@localhost");
    assert_eq!(mails[0].notification_id(), Some("n1"));
    assert!(mails[0].body.contains("d1 is hot"), "{:?}", mails[0].body);
}
