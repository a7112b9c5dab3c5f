//! The real brokers the source tests consume from (issue 19): Debian's `nats-server` with
//! JetStream and `mosquitto`, each started on a free loopback port with its storage in a
//! temporary directory, stopped on drop; and polling helpers. A missing broker skips its test,
//! or fails it under `STRATA_REQUIRE_CLIENTS=1`.
#![allow(dead_code)]

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_testkit::{available, probe};

use crate::cloud::{clients_dir, free_port, python};
use crate::common::TestServer;

const NATS_SERVER: &str = "/usr/sbin/nats-server";
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A broker process on `127.0.0.1:port`, its files in `dir`.
pub struct Broker {
    name: &'static str,
    command: Vec<String>,
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Broker {
    /// `nats-server -js` with its JetStream store in a temporary directory; `None` (a skip)
    /// when it is not installed and not required.
    pub fn nats() -> Option<Broker> {
        Broker::nats_with(&[])
    }

    /// `nats-server -js` with `extra` arguments (`--user`/`--pass`, `--auth`, `--tls ...`).
    pub fn nats_with(extra: &[&str]) -> Option<Broker> {
        let installed = probe(Path::new(NATS_SERVER), &["--version"], None);
        if !available("nats-server", installed) {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let store = dir.path().join("jetstream");
        let mut command = vec![
            NATS_SERVER.to_string(),
            "-js".into(),
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-sd".into(),
            store.display().to_string(),
        ];
        command.extend(extra.iter().map(|arg| arg.to_string()));
        Some(Broker::spawned("nats-server", command, port, dir))
    }

    /// `mosquitto` with anonymous access and persistence (so a restart keeps sessions and
    /// queued messages); `None` (a skip) when it or `mosquitto_pub` is not installed.
    pub fn mosquitto() -> Option<Broker> {
        Broker::mosquitto_with("")
    }

    /// `mosquitto` with `options` after its defaults, so they win (`certfile`/`keyfile`: its
    /// one listener speaks only TLS; `allow_anonymous false` and `password_file`: logins).
    pub fn mosquitto_with(options: &str) -> Option<Broker> {
        // `mosquitto -h` exits 3 after its usage, so its presence is the probe.
        let broker = if Path::new(MOSQUITTO).is_file() {
            Ok(())
        } else {
            Err(format!("{MOSQUITTO} is not installed"))
        };
        if !available("mosquitto", broker) || !available("mosquitto_pub", mosquitto_pub_probe()) {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("mosquitto.conf");
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nmax_queued_messages 100000\n{options}\n",
            dir.path().display()
        );
        std::fs::write(&config, text).expect("mosquitto.conf");
        let command = vec![
            MOSQUITTO.to_string(),
            "-c".into(),
            config.display().to_string(),
        ];
        Some(Broker::spawned("mosquitto", command, port, dir))
    }

    fn spawned(
        name: &'static str,
        command: Vec<String>,
        port: u16,
        dir: tempfile::TempDir,
    ) -> Self {
        let mut broker = Broker {
            name,
            command,
            child: None,
            port,
            dir,
        };
        broker.start();
        broker
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.name))
    }

    /// Starts the process and waits until its port accepts connections.
    pub fn start(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("broker log");
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.name));
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        wait_until(
            Duration::from_secs(30),
            &format!("{} to listen", self.name),
            || TcpStream::connect(&address).is_ok(),
        );
    }

    /// SIGTERM and wait: the broker saves its state (Mosquitto's persistence file).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::common::signal(child.id(), "TERM");
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{} log:\n{}", self.name, self.log());
        }
    }
}

fn mosquitto_pub_probe() -> Result<(), String> {
    match Command::new("mosquitto_pub").arg("--help").output() {
        // It prints its usage and exits 1: it ran.
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("mosquitto_pub") => Ok(()),
        Ok(_) => Err("mosquitto_pub --help printed no usage".to_string()),
        Err(e) => Err(format!("cannot run mosquitto_pub: {e}")),
    }
}

/// Whether Python with nats-py can run the NATS helper script.
pub fn have_nats_py() -> bool {
    available(
        "python3 with nats-py",
        probe(&python(), &["-c", "import nats"], None),
    )
}

/// Runs `tests/clients/nats_tool.py ARGS` and returns its JSON line.
pub fn nats_tool(args: &[&str]) -> Value {
    nats_tool_with(&[], args)
}

/// [`nats_tool`] with the script's environment: `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`,
/// `NATS_CA` (for a server with authentication or TLS).
pub fn nats_tool_with(env: &[(&str, &str)], args: &[&str]) -> Value {
    let out = nats_tool_command(args)
        .envs(env.iter().copied())
        .output()
        .expect("run nats_tool.py");
    assert!(
        out.status.success(),
        "nats_tool.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

/// The command that runs `nats_tool.py ARGS` (to spawn it in the background).
pub fn nats_tool_command(args: &[&str]) -> Command {
    let mut command = Command::new(python());
    command
        .arg(clients_dir().join("nats_tool.py"))
        .args(args)
        .stdin(Stdio::null());
    command
}

/// Polls `check` every 100 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `count(*)` of a query (0 while the metric does not exist yet).
pub fn count(server: &TestServer, key: &str, sql: &str) -> i64 {
    let answer = server.sql(key, sql);
    if answer.status != 200 {
        return 0;
    }
    answer.body["rows"][0][0].as_i64().unwrap_or(0)
}

/// The tenant's one source as `GET /api/v1/sources/{id}` shows it.
pub fn source(server: &TestServer, key: &str, id: &str) -> Value {
    let answer = server.get(&format!("/api/v1/sources/{id}"), key);
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body
}
