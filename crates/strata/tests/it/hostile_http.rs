//! Hostile input at the HTTP door, against the real `strata serve` (issue 24): compressed bodies
//! (gzip and zstd decoded, a decompression bomb refused with 413, other encodings 415), sockets
//! that send half a request head or nothing at all (closed after the header-read timeout),
//! more idle sockets than the connection cap (a clear 503, and service once they are gone),
//! owner-only file modes, and the classes that already passed (malformed JSON, deep nesting, a
//! body over the limit). After each, `GET /health` answers. No timing is asserted beyond
//! generous "does not hang" bounds.

use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{TestServer, NDJSON};
use reqwest::Method;

/// 1 MiB: large enough for every legitimate body here, small enough that a bomb's decoded
/// size passes it at once.
const BODY_LIMIT: usize = 1 << 20;
/// The header-read timeout the socket tests run with, to stay fast.
const HEADER_TIMEOUT_SECS: u64 = 2;
/// "Does not hang": far above the 2 s timeout, far below the 150 s the issue measured.
const HANG_BOUND: Duration = Duration::from_secs(30);

fn assert_healthy(server: &TestServer) {
    let answer = server.send(server.request(Method::GET, "/health", None));
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["status"], "ok");
}

fn events(from: i64, n: i64) -> Vec<u8> {
    (from..from + n)
        .map(|ts| format!("{{\"metrictype\":\"m\",\"timestamp\":{ts},\"v\":{ts}}}\n"))
        .collect::<String>()
        .into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn post_encoded(server: &TestServer, key: &str, encoding: &str, body: Vec<u8>) -> common::Answer {
    server.send(
        server
            .request(Method::POST, "/api/v1/write", Some(key))
            .header("content-type", NDJSON)
            .header("content-encoding", encoding)
            .body(body),
    )
}

fn count(server: &TestServer, key: &str) -> u64 {
    let answer = server.sql(key, "SELECT count(*) FROM m");
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body["rows"][0][0].as_u64().unwrap()
}

#[test]
fn gzip_and_zstd_bodies_are_decoded_bombs_get_413_and_other_encodings_415() {
    let limit = BODY_LIMIT.to_string();
    let server = TestServer::start_with(&["--max-body-bytes", &limit]);
    let key = server.create_tenant("encodings");

    // Before: "malformed JSON at byte 0".
    let answer = post_encoded(&server, &key, "gzip", gzip(&events(1, 100)));
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["accepted"], 100);
    let zstd = zstd::encode_all(&events(101, 100)[..], 3).unwrap();
    let answer = post_encoded(&server, &key, "zstd", zstd);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["accepted"], 100);
    assert_eq!(count(&server, &key), 200);
    assert_healthy(&server);

    // 64 MiB of zeros: 64 KiB on the wire, 64 times the limit decoded.
    let zeros = vec![b' '; 64 << 20];
    for (encoding, bomb) in [
        ("gzip", gzip(&zeros)),
        ("zstd", zstd::encode_all(&zeros[..], 3).unwrap()),
    ] {
        assert!(bomb.len() < BODY_LIMIT / 4, "{encoding}: {}", bomb.len());
        let answer = post_encoded(&server, &key, encoding, bomb);
        assert_eq!(answer.status, 413, "{encoding}: {}", answer.text);
        assert!(answer.error().contains("decompressed"), "{}", answer.text);
        assert!(answer.error().contains(&limit), "{}", answer.text);
        assert_healthy(&server);
    }

    // Before: ignored, and the compressed bytes parsed as JSON.
    for encoding in ["br", "deflate", "gzip, br"] {
        let answer = post_encoded(&server, &key, encoding, events(500, 1));
        assert_eq!(answer.status, 415, "{encoding}: {}", answer.text);
        assert!(answer.error().contains("gzip or zstd"), "{}", answer.text);
        assert_healthy(&server);
    }
    let answer = post_encoded(&server, &key, "gzip", b"not gzip at all".to_vec());
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(answer.error().contains("not valid gzip"), "{}", answer.text);
    assert_eq!(count(&server, &key), 200, "nothing refused was stored");

    // The SQL endpoint reads its body the same way.
    let sql = gzip(br#"{"sql": "SELECT count(*) FROM m"}"#);
    let answer = server.send(
        server
            .request(Method::POST, "/api/v1/sql", Some(&key))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(sql),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["rows"][0][0], 200);
}

#[test]
fn malformed_deeply_nested_and_oversized_bodies_get_clear_errors() {
    let limit = BODY_LIMIT.to_string();
    let server = TestServer::start_with(&["--max-body-bytes", &limit]);
    let key = server.create_tenant("hostile");

    let answer = server.post_raw("/api/v1/write", &key, "application/json", b"[{,".to_vec());
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(!answer.error().is_empty(), "{}", answer.text);
    assert_healthy(&server);

    // 100,000 nested arrays: 200 KB that a recursive parser would follow off its stack.
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    let answer = server.post_raw("/api/v1/write", &key, "application/json", nested.clone());
    assert_refused(&answer);
    assert_healthy(&server);
    let mut event = b"{\"metrictype\":\"m\",\"timestamp\":1,\"deep\":".to_vec();
    event.extend_from_slice(&nested);
    event.extend_from_slice(b"}\n");
    let answer = server.post_raw("/api/v1/write", &key, NDJSON, event);
    assert_refused(&answer);
    assert_healthy(&server);
    let answer = server.post_raw("/api/v1/sql", &key, "application/json", nested);
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_healthy(&server);

    let huge = vec![b' '; BODY_LIMIT + 1];
    let answer = server.post_raw("/api/v1/write", &key, NDJSON, huge);
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert!(answer.error().contains(&limit), "{}", answer.text);
    assert_healthy(&server);
}

/// The whole body refused (400), or its one event rejected with a reason (200).
fn assert_refused(answer: &common::Answer) {
    match answer.status {
        400 => assert!(!answer.error().is_empty(), "{}", answer.text),
        200 => {
            assert_eq!(answer.body["accepted"], 0, "{}", answer.text);
            assert_eq!(answer.body["rejected"], 1, "{}", answer.text);
            let reason = answer.body["errors"][0]["error"].as_str().unwrap_or("");
            assert!(!reason.is_empty(), "{}", answer.text);
        }
        _ => panic!("{} {}", answer.status, answer.text),
    }
}

/// A raw TCP connection to the server's HTTP port.
fn connect(server: &TestServer) -> TcpStream {
    let address = server.url().trim_start_matches("http://");
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(HANG_BOUND)).unwrap();
    stream
}

/// Reads until the server closes the connection; panics if it is still open after
/// [`HANG_BOUND`]. Returns what was read and how long it took.
fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => break,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => panic!(
                "still open after {:?} ({error}); got {:?}",
                started.elapsed(),
                String::from_utf8_lossy(&received)
            ),
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn half_sent_heads_and_idle_sockets_are_closed_after_the_header_timeout() {
    let timeout = HEADER_TIMEOUT_SECS.to_string();
    let server = TestServer::start_with(&["--http-header-timeout-secs", &timeout]);

    // Before: open after 150 s.
    let mut half = connect(&server);
    half.write_all(b"POST /api/v1/write HTTP/1.1\r\nHost: strata\r\nContent-Le")
        .unwrap();
    let (received, waited) = read_until_closed(&mut half);
    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 408"),
        "{received:?}"
    );
    assert!(waited >= Duration::from_secs(1), "closed after {waited:?}");

    // A socket that never sends a byte.
    let mut silent = connect(&server);
    read_until_closed(&mut silent);

    // An idle keep-alive connection after one answered request.
    let mut kept = connect(&server);
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: strata\r\n\r\n")
        .unwrap();
    let (received, _) = read_until_closed(&mut kept);
    assert!(received.starts_with("HTTP/1.1 200"), "{received:?}");
    assert_healthy(&server);
}

#[test]
fn idle_sockets_beyond_the_cap_get_a_clear_503_and_service_resumes() {
    let timeout = HEADER_TIMEOUT_SECS.to_string();
    let server = TestServer::start_with(&[
        "--http-header-timeout-secs",
        &timeout,
        "--http-max-connections",
        "8",
    ]);
    // Fill the cap with sockets that send nothing.
    let mut idle: Vec<TcpStream> = (0..8).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut refused = connect(&server);
    refused
        .write_all(b"GET /health HTTP/1.1\r\nHost: strata\r\n\r\n")
        .unwrap();
    let (received, _) = read_until_closed(&mut refused);
    assert!(received.starts_with("HTTP/1.1 503"), "{received:?}");
    assert!(
        received.contains("limit of 8 open HTTP connections"),
        "{received:?}"
    );

    // The issue's 300 idle sockets. Those over the cap are refused or closed; the held ones
    // time out, and a normal request is then served while the client still holds all 300.
    idle.extend((8..300).map(|_| connect(&server)));
    let started = Instant::now();
    loop {
        let mut probe = connect(&server);
        probe
            .write_all(b"GET /health HTTP/1.1\r\nHost: strata\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (received, _) = read_until_closed(&mut probe);
        if received.starts_with("HTTP/1.1 200") {
            break;
        }
        // Refused with a 503, or closed unanswered while 64 refusals are already under way.
        assert!(
            received.is_empty() || received.starts_with("HTTP/1.1 503"),
            "{received:?}"
        );
        assert!(
            started.elapsed() < HANG_BOUND,
            "still refused: {received:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(idle);
    assert_healthy(&server);
}

#[cfg(unix)]
#[test]
fn the_catalog_is_0600_and_the_data_directories_0700_also_after_an_upgrade() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let mut server = TestServer::start();
    server.create_tenant("modes");
    let data = server.data_dir().to_path_buf();
    let check = |data: &std::path::Path| {
        assert_eq!(mode(data), 0o700);
        assert_eq!(mode(&data.join("hot")), 0o700);
        assert_eq!(mode(&data.join("cold")), 0o700);
        assert_eq!(mode(&data.join("catalog.sqlite")), 0o600);
        assert_eq!(mode(&data.join("operator.token")), 0o600);
        for side in ["catalog.sqlite-wal", "catalog.sqlite-shm"] {
            if data.join(side).exists() {
                assert_eq!(mode(&data.join(side)), 0o600, "{side}");
            }
        }
    };
    check(&data);

    // An installation made by an older version: 0755 directories, a 0644 catalog.
    server.stop();
    for (path, loose) in [
        (data.clone(), 0o755),
        (data.join("hot"), 0o755),
        (data.join("cold"), 0o755),
        (data.join("catalog.sqlite"), 0o644),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
    }
    server.restart();
    check(&data);
    assert_healthy(&server);
}
