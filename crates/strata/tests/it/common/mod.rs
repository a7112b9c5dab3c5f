//! Test harness: runs the real `strata serve` binary on an ephemeral port with a temporary data
//! directory, and talks to it over real HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Method;
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_strata");

pub struct TestServer {
    dir: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    child: Option<Child>,
    url: String,
    pg_addr: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
    /// Where the current process's lines start in `log` (a restart appends).
    first_line: usize,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
    client: Client,
}

/// An address the server reported at startup.
enum Listening {
    Http(String),
    Postgres(SocketAddr),
}

/// One HTTP answer: status and parsed JSON body (Value::Null when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Compacts everything older than the current hour when asked (`POST /api/v1/compact`),
    /// never in the background; `tier` forces the federated plan (`cold`: files up to the
    /// watermark; `hot`: hot partitions) or lets the cost model choose (`cost`).
    pub fn compacting_on_demand(tier: &str) -> TestServer {
        Self::start_with(&[
            "--compact-after-secs",
            "0",
            "--compact-interval-secs",
            "0",
            "--plan-tier",
            tier,
        ])
    }

    /// Starts with extra `strata serve` arguments (limits, for example).
    pub fn start_with(extra_args: &[&str]) -> TestServer {
        Self::start_with_env(extra_args, &[])
    }

    /// Starts with extra arguments and environment variables (cloud store credentials).
    pub fn start_with_env(extra_args: &[&str], extra_env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let mut server = TestServer {
            dir: Some(dir),
            data_dir,
            child: None,
            url: String::new(),
            pg_addr: None,
            log: Arc::new(Mutex::new(Vec::new())),
            first_line: 0,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_env: extra_env
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        self.first_line = self.log.lock().unwrap().len();
        let mut command = Command::new(BIN);
        command.arg("serve").arg("--data-dir").arg(&self.data_dir);
        // A test may choose the HTTP address itself (another interface); by default it is an
        // ephemeral loopback port.
        if !self
            .extra_args
            .iter()
            .any(|a| a == "--http" || a.starts_with("--http="))
        {
            command.arg("--http").arg("127.0.0.1:0");
        }
        // A test may choose the Postgres address itself; by default it is an ephemeral port.
        if !self
            .extra_args
            .iter()
            .any(|a| a == "--pg" || a.starts_with("--pg="))
        {
            command.arg("--pg").arg("127.0.0.1:0");
        }
        command
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(key, value)| (key, value)))
            .env_remove("STRATA_OPERATOR_TOKEN")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn strata serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel::<Listening>();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let line = strip_ansi(&line);
                if let Some(pos) = line.find("listening on http://") {
                    let rest = &line[pos + "listening on ".len()..];
                    // Text logs end the address at a space, JSON logs (`--log-format json`) at
                    // the message's closing quote.
                    let url = rest.split([' ', '"']).next().unwrap_or("").to_string();
                    let _ = tx.send(Listening::Http(url));
                } else if let Some(pos) = line.find("listening on postgres://") {
                    let rest = &line[pos + "listening on postgres://".len()..];
                    let addr = rest.split([' ', '"']).next().unwrap_or("");
                    if let Ok(addr) = addr.parse::<SocketAddr>() {
                        let _ = tx.send(Listening::Postgres(addr));
                    }
                }
                log.lock().unwrap().push(line);
            }
        });
        // The server logs both addresses once both listeners are bound, HTTP first.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut url = None;
        let mut pg_addr = None;
        while url.is_none() || pg_addr.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Listening::Http(found)) => url = Some(found),
                Ok(Listening::Postgres(found)) => pg_addr = Some(found),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "strata serve did not report its addresses; log:\n{}",
                        self.log.lock().unwrap().join("\n")
                    );
                }
            }
        }
        self.url = url.unwrap_or_default();
        self.pg_addr = pg_addr;
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the Postgres wire protocol listens (from the server's startup log line).
    pub fn pg_addr(&self) -> SocketAddr {
        self.pg_addr
            .expect("the server reported its Postgres address")
    }

    /// Where `--mqtt` listens, from the current process's startup log line (logged just
    /// after the HTTP and Postgres lines, so it may need a moment).
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.logged_addr(&["MQTT listening on mqtt://"], "MQTT")
    }

    /// Where `--flight` listens (plain or TLS), from the current process's startup log line.
    pub fn flight_addr(&self) -> SocketAddr {
        self.logged_addr(
            &[
                "Flight SQL listening on grpc://",
                "Flight SQL listening on grpc+tls://",
            ],
            "Flight SQL",
        )
    }

    /// The address a startup log line of the current process gives after one of `marks`.
    fn logged_addr(&self, marks: &[&str], door: &str) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.log.lock().unwrap()[self.first_line..]
                .iter()
                .find_map(|line| {
                    marks.iter().find_map(|mark| {
                        line.split(mark)
                            .nth(1)?
                            .split_whitespace()
                            .next()?
                            .parse()
                            .ok()
                    })
                });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "no {door} address logged:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pg_port(&self) -> u16 {
        self.pg_addr().port()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn operator_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("operator.token"))
            .expect("operator.token")
            .trim()
            .to_string()
    }

    /// SIGTERM and wait: a graceful shutdown.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe_kill(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("strata serve did not stop within 30 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process exited by itself (after a graceful shutdown, with which status).
    pub fn stop_and_status(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe_kill(child.id(), "TERM");
        child.wait().expect("wait")
    }

    /// Drops the extra environment variables, so the next `restart` runs without them.
    pub fn clear_env(&mut self) {
        self.extra_env.clear();
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn request(&self, method: Method, path: &str, key: Option<&str>) -> RequestBuilder {
        let mut req = self.client.request(method, format!("{}{}", self.url, path));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req
    }

    pub fn send(&self, req: RequestBuilder) -> Answer {
        let resp: Response = req.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, text }
    }

    pub fn get(&self, path: &str, key: &str) -> Answer {
        self.send(self.request(Method::GET, path, Some(key)))
    }

    pub fn post(&self, path: &str, key: &str, body: &Value) -> Answer {
        self.send(self.request(Method::POST, path, Some(key)).json(body))
    }

    pub fn patch(&self, path: &str, key: &str, body: &Value) -> Answer {
        self.send(self.request(Method::PATCH, path, Some(key)).json(body))
    }

    pub fn put(&self, path: &str, key: &str, body: &Value) -> Answer {
        self.send(self.request(Method::PUT, path, Some(key)).json(body))
    }

    pub fn delete(&self, path: &str, key: &str) -> Answer {
        self.send(self.request(Method::DELETE, path, Some(key)))
    }

    /// POSTs raw bytes with a content type.
    pub fn post_raw(&self, path: &str, key: &str, content_type: &str, body: Vec<u8>) -> Answer {
        self.send(
            self.request(Method::POST, path, Some(key))
                .header("content-type", content_type)
                .body(body),
        )
    }

    /// Creates a tenant and returns its admin key.
    pub fn create_tenant(&self, name: &str) -> String {
        let answer = self.post(
            "/api/v1/tenants",
            &self.operator_token(),
            &serde_json::json!({ "name": name }),
        );
        assert_eq!(answer.status, 201, "create tenant {name}: {}", answer.text);
        let created: strata_client::TenantCreated =
            serde_json::from_value(answer.body).expect("the tenant answer");
        created.admin_key
    }

    /// Creates a key with `role` using the tenant's admin key.
    pub fn create_key(&self, admin_key: &str, role: &str) -> String {
        let answer = self.post(
            "/api/v1/keys",
            admin_key,
            &serde_json::json!({ "role": role }),
        );
        assert_eq!(answer.status, 201, "create key: {}", answer.text);
        let created: strata_client::KeyCreated =
            serde_json::from_value(answer.body).expect("the key answer");
        created.key
    }

    /// The typed client of the API (`strata-client`) for this server, keys passed per call.
    pub fn client(&self) -> strata_client::Client {
        strata_client::Client::with_timeout(&self.url, Duration::from_secs(60)).expect("client")
    }

    /// Runs a SQL query through `/api/v1/sql` (json format) and returns the answer.
    pub fn sql(&self, key: &str, sql: &str) -> Answer {
        self.post(
            "/api/v1/sql",
            key,
            &serde_json::json!({ "sql": sql, "format": "json" }),
        )
    }
}

/// Sends a signal by name ("KILL", "TERM") to a process.
pub fn signal(pid: u32, signal: &str) {
    unsafe_kill(pid, signal)
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        // Keep the data directory when a test failed, for post-mortem.
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("kept data dir of failed test: {}", kept.display());
            }
        }
    }
}

/// Runs `strata bench ARGS` with no ambient credentials and waits for it.
pub fn bench(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .env_remove("STRATA_OPERATOR_TOKEN")
        .env_remove("STRATA_KEY")
        .env_remove("STRATA_URL")
        .env("NO_COLOR", "1")
        .output()
        .expect("run strata bench")
}

/// A command's standard output parsed as JSON; panics with both streams when it is not.
pub fn json_stdout(output: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

// Cold-tier fixtures: one `reading` metric with a device and an integer value.

pub const NDJSON: &str = "application/x-ndjson";
/// 2015-01-12T00:00:00Z: far below any watermark, so compaction takes it at once.
pub const DAY0: i64 = 1_421_020_800_000;
pub const DAY_MS: i64 = 86_400_000;

/// Writes `events` as NDJSON; every one must be accepted. Returns the answer's body.
pub fn write_events(server: &TestServer, key: &str, events: &[Value]) -> Value {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let answer = server.post_raw("/api/v1/write", key, NDJSON, body.into_bytes());
    assert_eq!(answer.status, 200, "write failed: {}", answer.text);
    assert_eq!(answer.body["rejected"], 0, "{}", answer.text);
    answer.body
}

pub fn reading(device: &str, ts: i64, value: i64) -> Value {
    serde_json::json!({"metrictype": "reading", "timestamp": ts, "device": device, "value": value})
}

/// The two integers of a query's single row.
pub fn int_pair(server: &TestServer, key: &str, sql: &str) -> (i64, i64) {
    let answer = server.sql(key, sql);
    assert_eq!(answer.status, 200, "{sql}: {}", answer.text);
    let row = &answer.body["rows"][0];
    (
        row[0].as_i64().expect("first column"),
        row[1].as_i64().expect("second column"),
    )
}

/// (count, sum of value) over the whole `reading` metric.
pub fn totals(server: &TestServer, key: &str) -> (i64, i64) {
    int_pair(
        server,
        key,
        "SELECT count(*), CAST(coalesce(sum(CAST(value AS BIGINT)), 0) AS BIGINT) FROM reading",
    )
}

/// Every Parquet file below `dir` (none when it does not exist yet), sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A tenant with `thermostat`: `name` (string, the series key), `temp` (double, alias `tmp`).
pub fn thermostat_tenant(server: &TestServer, name: &str) -> String {
    let key = server.create_tenant(name);
    let created = server.post(
        "/api/v1/schema/metrics",
        &key,
        &json!({"name": "thermostat"}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    for (field, body) in [
        ("name", json!({"type": "string"})),
        ("temp", json!({"type": "double", "aliases": ["tmp"]})),
    ] {
        let path = format!("/api/v1/schema/metrics/thermostat/fields/{field}");
        let answer = server.put(&path, &key, &body);
        assert_eq!(answer.status, 200, "{field}: {}", answer.text);
    }
    let keys = server.patch(
        "/api/v1/schema/metrics/thermostat",
        &key,
        &json!({"series_keys": ["name"]}),
    );
    assert_eq!(keys.status, 200, "{}", keys.text);
    key
}

pub fn have_openssl() -> bool {
    strata_testkit::available(
        "openssl",
        strata_testkit::probe(Path::new("openssl"), &["version"], None),
    )
}

/// A self-signed certificate (and key) for localhost and 127.0.0.1 in `dir`.
pub fn self_signed(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A private CA in `dir` and a certificate it signed for 127.0.0.1 and localhost: returns the
/// CA's certificate, then the leaf's certificate and key (rustls refuses a self-signed CA
/// certificate presented as a server's own).
pub fn ca_signed(dir: &Path, stem: &str) -> (PathBuf, PathBuf, PathBuf) {
    let path = |suffix: &str| dir.join(format!("{stem}{suffix}"));
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (ca, ca_key) = (format!("{stem}-ca.crt"), format!("{stem}-ca.key"));
    let (cert, key, csr) = (
        format!("{stem}.crt"),
        format!("{stem}.key"),
        format!("{stem}.csr"),
    );
    let ext = format!("{stem}.ext");
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("extensions file");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-subj",
        "/CN=Strata test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &cert,
        "-days",
        "2",
        "-extfile",
        &ext,
    ]);
    (path("-ca.crt"), path(".crt"), path(".key"))
}

/// A conjunct that keeps every row and that rollup routing never takes (a strict bound is never
/// on a bucket boundary rule): with it, a rollup's own SQL reads raw rows.
pub const RAW_ONLY: &str = "timestamp > '1970-01-01T00:00:00Z'";

/// `sql` (one `GROUP BY` query) with [`RAW_ONLY`] added to its `WHERE`, so it reads raw rows
/// even where a rollup answers it (issue 16's query routing).
pub fn raw_only(sql: &str) -> String {
    match sql.find(" WHERE ") {
        Some(at) => format!("{} WHERE {RAW_ONLY} AND {}", &sql[..at], &sql[at + 7..]),
        None => match sql.find(" GROUP BY ") {
            Some(at) => format!("{} WHERE {RAW_ONLY}{}", &sql[..at], &sql[at..]),
            None => panic!("raw_only takes a GROUP BY query: {sql}"),
        },
    }
}

/// `raw_only(sql)` after checking that its plan reads no rollup named `rollup`.
pub fn raw_only_checked(server: &TestServer, key: &str, sql: &str, rollup: &str) -> String {
    let raw = raw_only(sql);
    let plan = server.sql(key, &format!("EXPLAIN {raw}"));
    assert_eq!(plan.status, 200, "EXPLAIN {raw}: {}", plan.text);
    assert!(
        !plan.text.contains(rollup),
        "{raw} reads the rollup: {}",
        plan.text
    );
    raw
}
