//! Hostile clients on the Postgres port of the real `strata serve` binary: repeated logins
//! (memory), idle sockets and connection caps, oversized and malformed messages, and keys
//! revoked while their sessions are open. The client here speaks the wire protocol by hand so
//! a test can send exactly what an attacker would.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::TestServer;

/// The server's limits (crates/strata-pgwire/src/limits.rs), restated so a change is deliberate.
const MAX_CONNECTIONS: usize = 256;
const MAX_CONNECTIONS_PER_TENANT: usize = 64;
const MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// An error or notice from the server: severity, SQLSTATE and message.
#[derive(Debug, Clone)]
struct PgError {
    severity: String,
    code: String,
    message: String,
}

/// How a request ended when it did not succeed.
#[derive(Debug)]
enum Failure {
    /// The server answered with an ErrorResponse.
    Error(PgError),
    /// The connection closed (or reset) without an ErrorResponse.
    Closed(String),
}

impl Failure {
    fn error(self) -> PgError {
        match self {
            Failure::Error(error) => error,
            Failure::Closed(why) => panic!("connection closed without an ErrorResponse: {why}"),
        }
    }
}

/// A raw Postgres connection (protocol 3.0, no TLS).
#[derive(Debug)]
struct Raw {
    stream: TcpStream,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect to the Postgres port");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        Raw { stream }
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    fn startup(&mut self, user: &str) {
        let mut body = Vec::new();
        body.extend_from_slice(&196_608i32.to_be_bytes());
        for (name, value) in [("user", user), ("database", "strata")] {
            cstring(&mut body, name);
            cstring(&mut body, value);
        }
        body.push(0);
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        self.send(&packet).expect("send startup");
    }

    /// The next message: type byte and body. `Err` when the connection ended.
    fn read(&mut self) -> Result<(u8, Vec<u8>), String> {
        let mut header = [0u8; 5];
        self.stream
            .read_exact(&mut header)
            .map_err(|e| format!("{:?}: {e}", e.kind()))?;
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let mut body = vec![0u8; (len as usize).saturating_sub(4)];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| format!("{:?}: {e}", e.kind()))?;
        Ok((header[0], body))
    }

    /// Reads until ReadyForQuery; collects data rows, fails on the first ErrorResponse.
    fn until_ready(&mut self) -> Result<Vec<Vec<Option<String>>>, Failure> {
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (kind, body) = self.read().map_err(|why| match &error {
                Some(error) => Failure::Error(PgError::clone(error)),
                None => Failure::Closed(why),
            })?;
            match kind {
                b'D' => rows.push(data_row(&body)),
                b'E' => {
                    let parsed = error_fields(&body);
                    if parsed.severity == "FATAL" {
                        return Err(Failure::Error(parsed));
                    }
                    error = Some(parsed);
                }
                b'Z' => {
                    return match error {
                        Some(error) => Err(Failure::Error(error)),
                        None => Ok(rows),
                    }
                }
                _ => {}
            }
        }
    }

    /// Startup and cleartext password; `Ok` once the server is ready for queries.
    fn login(addr: SocketAddr, user: &str, password: &str) -> Result<Raw, Failure> {
        let mut raw = Raw::connect(addr);
        raw.startup(user);
        let (kind, body) = raw.read().map_err(Failure::Closed)?;
        if kind == b'E' {
            return Err(Failure::Error(error_fields(&body)));
        }
        assert_eq!(
            (kind, &body[..]),
            (b'R', &3i32.to_be_bytes()[..]),
            "cleartext"
        );
        let mut password_body = Vec::new();
        cstring(&mut password_body, password);
        raw.send(&message(b'p', &password_body))
            .map_err(|e| Failure::Closed(e.to_string()))?;
        raw.until_ready()?;
        Ok(raw)
    }

    fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, Failure> {
        let mut body = Vec::new();
        cstring(&mut body, sql);
        self.send(&message(b'Q', &body))
            .map_err(|e| Failure::Closed(e.to_string()))?;
        self.until_ready()
    }

    fn terminate(mut self) {
        let _ = self.send(&message(b'X', &[]));
    }

    /// Whether the server closed the connection (EOF or reset) within `within`, skipping any
    /// messages it sent first.
    fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}

fn cstring(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
}

/// A typed frontend message: type byte, length, body.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn error_fields(body: &[u8]) -> PgError {
    let mut error = PgError {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
    };
    for field in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let value = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'S' => error.severity = value,
            b'C' => error.code = value,
            b'M' => error.message = value,
            _ => {}
        }
    }
    error
}

fn data_row(body: &[u8]) -> Vec<Option<String>> {
    let count = u16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2;
    (0..count)
        .map(|_| {
            let len = i32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
            at += 4;
            if len < 0 {
                return None;
            }
            let value = String::from_utf8_lossy(&body[at..at + len as usize]).into_owned();
            at += len as usize;
            Some(value)
        })
        .collect()
}

/// VmRSS of the server process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

fn assert_healthy(server: &TestServer) {
    let answer = server.send(server.request(reqwest::Method::GET, "/health", None));
    assert_eq!(answer.status, 200, "health: {}", answer.text);
}

/// A tenant and a read key; returns the key.
fn tenant(server: &TestServer, name: &str) -> String {
    let admin = server.create_tenant(name);
    server.create_key(&admin, "read")
}

fn one_value(raw: &mut Raw, sql: &str) -> String {
    let rows = raw.query(sql).unwrap_or_else(|f| panic!("{sql}: {f:?}"));
    rows[0][0].clone().expect("a value")
}

// ---------------------------------------------------------------------------------------------
// Defect 6: every login leaked about 5 MB.

#[test]
fn a_thousand_logins_do_not_grow_the_server() {
    const LOGINS: usize = 1000;
    const ALLOWED_GROWTH: u64 = 50 * 1024 * 1024;
    let server = TestServer::start();
    let key = tenant(&server, "logins");
    let addr = server.pg_addr();
    let login = |i: usize| {
        let mut raw =
            Raw::login(addr, "logins", &key).unwrap_or_else(|f| panic!("login {i}: {f:?}"));
        assert_eq!(one_value(&mut raw, "SELECT 1"), "1");
        raw.terminate();
    };
    // Warm-up: allocator pools, lazily built statics and the catalog's key cache.
    for i in 0..50 {
        login(i);
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_bytes(server.pid());
    for i in 0..LOGINS {
        login(i);
        // Fail as soon as the bound is crossed rather than exhaust the machine.
        if i % 100 == 99 {
            let grown = rss_bytes(server.pid()).saturating_sub(before);
            assert!(
                grown <= ALLOWED_GROWTH,
                "RSS grew by {} MB after {} logins",
                grown / (1024 * 1024),
                i + 1
            );
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = rss_bytes(server.pid()).saturating_sub(before);
    eprintln!(
        "RSS before {} MB, growth after {LOGINS} logins: {} MB",
        before / (1024 * 1024),
        grown / (1024 * 1024)
    );
    assert!(grown <= ALLOWED_GROWTH, "RSS grew by {grown} bytes");
    assert_healthy(&server);
}

// ---------------------------------------------------------------------------------------------
// Defect 7: idle sockets took every connection slot, and a full server reset connections.

#[test]
fn idle_sockets_do_not_lock_tenants_out() {
    let server = TestServer::start();
    let key = tenant(&server, "idle");
    let addr = server.pg_addr();
    // A login that stalls after its startup message, opened before the flood.
    let mut stalled = Raw::connect(addr);
    stalled.startup("idle");
    assert_eq!(stalled.read().expect("password request").0, b'R');
    let started = Instant::now();
    let flood: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(addr).expect("idle socket"))
        .collect();
    for i in 0..5 {
        let mut raw = Raw::login(addr, "idle", &key)
            .unwrap_or_else(|f| panic!("login {i} beside 300 idle sockets: {f:?}"));
        assert_eq!(one_value(&mut raw, "SELECT 1"), "1");
        raw.terminate();
    }
    assert_healthy(&server);
    // The stalled login was dropped by the flood (the oldest goes first) or by the login
    // timeout; either way it is told why before the socket closes.
    let error = stalled.until_ready().unwrap_err().error();
    assert_eq!(error.severity, "FATAL");
    assert!(
        ["53300", "57014"].contains(&error.code.as_str()),
        "{error:?}"
    );
    assert!(stalled.closed_within(Duration::from_secs(5)));
    // Silent sockets are closed by the login timeout (10 s) at the latest.
    for socket in flood.into_iter().rev().take(3) {
        let mut raw = Raw { stream: socket };
        assert!(
            raw.closed_within(Duration::from_secs(20)),
            "an idle socket stayed open"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_healthy(&server);
}

#[test]
fn a_login_that_never_finishes_times_out() {
    let server = TestServer::start();
    let mut stalled = Raw::connect(server.pg_addr());
    stalled.startup("nobody");
    assert_eq!(stalled.read().expect("password request").0, b'R');
    let started = Instant::now();
    let error = stalled.until_ready().unwrap_err().error();
    assert_eq!(
        (error.severity.as_str(), error.code.as_str()),
        ("FATAL", "57014")
    );
    assert!(stalled.closed_within(Duration::from_secs(5)));
    // The login timeout is 10 s; generous bounds, not a measurement.
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(25));
    assert_healthy(&server);
}

/// Logs in, retrying while a just-closed session's slot is being freed.
fn login_soon(addr: SocketAddr, user: &str, key: &str) -> Raw {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Raw::login(addr, user, key) {
            Ok(raw) => return raw,
            Err(failure) if Instant::now() > deadline => panic!("login {user}: {failure:?}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn session_caps_answer_53300_per_tenant_and_in_all() {
    let server = TestServer::start();
    let addr = server.pg_addr();
    let tenants = MAX_CONNECTIONS / MAX_CONNECTIONS_PER_TENANT + 1;
    let keys: Vec<String> = (0..tenants)
        .map(|i| tenant(&server, &format!("cap{i}")))
        .collect();
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS_PER_TENANT {
        held.push(Raw::login(addr, "cap0", &keys[0]).expect("login within the tenant cap"));
    }
    let refused = Raw::login(addr, "cap0", &keys[0]).unwrap_err().error();
    assert_eq!(
        (refused.severity.as_str(), refused.code.as_str()),
        ("FATAL", "53300")
    );
    assert!(refused.message.contains("tenant"), "{refused:?}");
    // Other tenants fill the server up to its cap.
    for (i, key) in keys.iter().enumerate().take(tenants - 1).skip(1) {
        for _ in 0..MAX_CONNECTIONS_PER_TENANT {
            let user = format!("cap{i}");
            held.push(Raw::login(addr, &user, key).expect("login within the server cap"));
        }
    }
    assert_eq!(held.len(), MAX_CONNECTIONS);
    let last = format!("cap{}", tenants - 1);
    let refused = Raw::login(addr, &last, &keys[tenants - 1])
        .unwrap_err()
        .error();
    assert_eq!(
        (refused.severity.as_str(), refused.code.as_str()),
        ("FATAL", "53300")
    );
    assert_healthy(&server);
    // Ending a session frees its slot.
    held.pop().expect("a session").terminate();
    let mut raw = login_soon(addr, &last, &keys[tenants - 1]);
    assert_eq!(one_value(&mut raw, "SELECT 1"), "1");
    assert_eq!(one_value(&mut held[0], "SELECT 2"), "2");
}

// ---------------------------------------------------------------------------------------------
// Defect 8: messages up to 1 GiB were buffered before any check.

/// The header of a message declaring `declared` bytes, and a little of its body.
fn oversized(kind: u8, declared: i32) -> Vec<u8> {
    let mut bytes = vec![kind];
    bytes.extend_from_slice(&declared.to_be_bytes());
    bytes.extend_from_slice(&[b' '; 1024]);
    bytes
}

fn assert_refused_as_protocol_violation(raw: &mut Raw) {
    let error = raw.until_ready().unwrap_err().error();
    assert_eq!(
        (error.severity.as_str(), error.code.as_str()),
        ("FATAL", "08P01")
    );
    assert!(error.message.contains("exceeds"), "{error:?}");
    assert!(raw.closed_within(Duration::from_secs(5)));
}

#[test]
fn oversized_messages_are_refused_from_their_header() {
    let server = TestServer::start();
    let key = tenant(&server, "big");
    let addr = server.pg_addr();
    let before = rss_bytes(server.pid());
    for _ in 0..3 {
        let mut raw = Raw::login(addr, "big", &key).expect("login");
        raw.send(&oversized(b'Q', 900_000_000))
            .expect("send header");
        assert_refused_as_protocol_violation(&mut raw);
    }
    // Just over the limit is refused too, and before login (a password message).
    let mut raw = Raw::login(addr, "big", &key).expect("login");
    let just_over = (MAX_MESSAGE_BYTES + 1) as i32;
    raw.send(&oversized(b'P', just_over)).expect("send header");
    assert_refused_as_protocol_violation(&mut raw);
    let mut raw = Raw::connect(addr);
    raw.startup("big");
    assert_eq!(raw.read().expect("password request").0, b'R');
    raw.send(&oversized(b'p', 900_000_000))
        .expect("send header");
    assert_refused_as_protocol_violation(&mut raw);
    let grown = rss_bytes(server.pid()).saturating_sub(before);
    assert!(grown < 50 * 1024 * 1024, "RSS grew by {grown} bytes");
    // Under the message limit, SQL over its own 1 MiB limit is an ordinary error.
    let mut raw = Raw::login(addr, "big", &key).expect("login");
    let long = format!("SELECT '{}'", "x".repeat(1_200_000));
    let error = raw.query(&long).unwrap_err().error();
    assert_eq!(error.severity, "ERROR");
    assert!(error.message.contains("limit"), "{error:?}");
    assert_eq!(one_value(&mut raw, "SELECT 1"), "1");
    assert_healthy(&server);
}

// ---------------------------------------------------------------------------------------------
// Defect 11 (second half): a Bind declaring a 2,000,000,000-byte parameter panicked pgwire's
// decoder and dropped the connection without a word.

fn parse(statement: &str, sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstring(&mut body, statement);
    cstring(&mut body, sql);
    body.extend_from_slice(&0u16.to_be_bytes());
    message(b'P', &body)
}

fn bind_one(declared: i32, value: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0]; // portal "", statement ""
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&declared.to_be_bytes());
    body.extend_from_slice(value);
    body.extend_from_slice(&0u16.to_be_bytes());
    message(b'B', &body)
}

#[test]
fn a_bind_declaring_a_huge_parameter_gets_a_protocol_violation() {
    let server = TestServer::start();
    let key = tenant(&server, "bind");
    let addr = server.pg_addr();
    let mut raw = Raw::login(addr, "bind", &key).expect("login");
    let mut messages = parse("", "SELECT $1::text");
    messages.extend(bind_one(2_000_000_000, b"abc"));
    messages.extend(message(b'S', &[]));
    raw.send(&messages).expect("send");
    let error = raw.until_ready().unwrap_err().error();
    assert_eq!(
        (error.severity.as_str(), error.code.as_str()),
        ("FATAL", "08P01")
    );
    assert!(raw.closed_within(Duration::from_secs(5)));
    // A well-formed Bind of the same statement works.
    let mut raw = Raw::login(addr, "bind", &key).expect("login");
    let mut messages = parse("", "SELECT $1::text");
    messages.extend(bind_one(3, b"abc"));
    messages.extend(message(b'E', b"\0\0\0\0\0"));
    messages.extend(message(b'S', &[]));
    raw.send(&messages).expect("send");
    let rows = raw.until_ready().expect("bound statement");
    assert_eq!(rows, vec![vec![Some("abc".to_string())]]);
    assert_healthy(&server);
}

// ---------------------------------------------------------------------------------------------
// Defect 10: revoking a key left its Postgres sessions open.

#[test]
fn revoking_a_key_ends_its_open_sessions() {
    let server = TestServer::start();
    let addr = server.pg_addr();
    let admin = server.create_tenant("rev");
    let created = server.post(
        "/api/v1/keys",
        &admin,
        &serde_json::json!({ "role": "read" }),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["id"].as_str().expect("key id").to_string();
    let key = created.body["key"].as_str().expect("key").to_string();
    let mut busy = Raw::login(addr, "rev", &key).expect("login");
    let mut idle = Raw::login(addr, "rev", &key).expect("login");
    let mut other = Raw::login(addr, "rev", &admin).expect("login with another key");
    assert_eq!(one_value(&mut busy, "SELECT 1"), "1");

    let revoked = server.delete(&format!("/api/v1/keys/{id}"), &admin);
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    // The next statement is refused and the session ends.
    let error = busy.query("SELECT 1").unwrap_err().error();
    assert_eq!(
        (error.severity.as_str(), error.code.as_str()),
        ("FATAL", "28000")
    );
    assert!(error.message.contains("revoked"), "{error:?}");
    assert!(busy.closed_within(Duration::from_secs(5)));
    // A session that sends nothing is ended too, without waiting for its next statement.
    idle.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (kind, body) = idle.read().expect("an error for the idle session");
    assert_eq!(kind, b'E');
    assert_eq!(error_fields(&body).code, "28000");
    assert!(idle.closed_within(Duration::from_secs(5)));
    // Sessions of other keys go on; the revoked key cannot log in again.
    assert_eq!(one_value(&mut other, "SELECT 1"), "1");
    let refused = Raw::login(addr, "rev", &key).unwrap_err().error();
    assert_eq!(refused.code, "28P01");
    assert_healthy(&server);
}
