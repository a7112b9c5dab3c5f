//! `strata serve` started by the benchmark (`--spawn`) on a temporary data directory and
//! ephemeral ports, stopped with SIGTERM so it shuts down gracefully; and what the harness reads
//! about a server from outside (its operator token, its pid, its data size).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::{refused, Context};
use crate::BenchError;

/// How long a spawned server may take to report its address.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a spawned server may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// Server log lines kept to explain a failed start.
const SERVER_LOG_LINES: usize = 200;

/// `strata serve` started by the benchmark.
pub struct SpawnedServer {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    log: Arc<Mutex<VecDeque<String>>>,
    /// The extra arguments it was started with.
    pub args: Vec<String>,
    /// Removed when the server is dropped, after it stopped.
    _dir: tempfile::TempDir,
}

impl SpawnedServer {
    /// Runs `exe serve` (the `strata` binary) with `extra_args` and waits for its address.
    pub fn start(exe: &Path, extra_args: &[String]) -> Result<SpawnedServer, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("strata-bench-")
            .tempdir()
            .context(|| "creating a temporary data directory".to_string())?;
        let data_dir = dir.path().join("data");
        let mut child = Command::new(exe)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--http", "127.0.0.1:0", "--pg", "127.0.0.1:0"])
            .args(extra_args)
            // The token is generated into the data directory and read from there.
            .env_remove("STRATA_OPERATOR_TOKEN")
            // The address is read from the `info` log line, without colour codes.
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context(|| format!("starting {} serve", exe.display()))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (address_tx, address_rx) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            // Keeps draining stderr for the server's whole life: a full pipe would block it.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(url) = listening_url(&line) {
                        let _ = address_tx.send(url);
                    }
                    if let Ok(mut log) = log.lock() {
                        if log.len() == SERVER_LOG_LINES {
                            log.pop_front();
                        }
                        log.push_back(line);
                    }
                }
            });
        }
        let mut server = SpawnedServer {
            child,
            url: String::new(),
            data_dir,
            log,
            args: extra_args.to_vec(),
            _dir: dir,
        };
        server.wait_for_address(&address_rx)?;
        Ok(server)
    }

    fn wait_for_address(&mut self, address: &mpsc::Receiver<String>) -> Result<(), BenchError> {
        match address.recv_timeout(SPAWN_TIMEOUT) {
            Ok(url) => {
                eprintln!(
                    "spawned strata serve (pid {}) at {url}, data in {}",
                    self.child.id(),
                    self.data_dir.display()
                );
                self.url = url;
                Ok(())
            }
            Err(_) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                Err(refused(format!(
                    "the spawned server did not report its address within {} s; its log:\n{}",
                    SPAWN_TIMEOUT.as_secs(),
                    self.log_tail()
                )))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address after `mark` in the server's log (`"MQTT listening on mqtt://"`), waiting
    /// up to 10 s for the line: listeners after the HTTP one log a moment later.
    pub fn logged_address(&self, mark: &str) -> Option<SocketAddr> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.log.lock().ok().and_then(|log| {
                log.iter().find_map(|line| {
                    line.split(mark)
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
            });
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|log| log.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// SIGTERM, then wait for the graceful shutdown; SIGKILL only if it hangs.
    pub fn stop(&mut self) -> Result<(), BenchError> {
        if self.child.try_wait()?.is_some() {
            return Err(refused(format!(
                "the spawned server exited early; its log:\n{}",
                self.log_tail()
            )));
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .map_err(std::io::Error::from)
            .context(|| "sending SIGTERM to the spawned server".to_string())?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    return Err(refused(format!(
                        "the spawned server stopped with {status}; its log:\n{}",
                        self.log_tail()
                    )));
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(refused(format!(
                    "the spawned server did not stop within {} s of SIGTERM and was killed",
                    STOP_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SpawnedServer {
    /// On an error path the server must not outlive the benchmark.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The URL in the server's "HTTP API listening on http://ADDR" log line.
fn listening_url(line: &str) -> Option<String> {
    const MARKER: &str = "HTTP API listening on ";
    let start = line.find(MARKER)? + MARKER.len();
    let url = line[start..].split_whitespace().next()?;
    url.starts_with("http://").then(|| url.to_string())
}

/// STRATA_OPERATOR_TOKEN, else DIR/operator.token.
pub fn operator_token(data_dir: Option<&Path>) -> Result<String, BenchError> {
    if let Some(token) = std::env::var("STRATA_OPERATOR_TOKEN")
        .ok()
        .filter(|token| !token.is_empty())
    {
        return Ok(token);
    }
    let Some(dir) = data_dir else {
        return Err(refused(
            "creating the benchmark tenant needs the operator token: set STRATA_OPERATOR_TOKEN, \
             pass --data-dir DIR (reads DIR/operator.token), or use --spawn; or pass an existing \
             tenant's admin key with --key",
        ));
    };
    let path = dir.join("operator.token");
    let token = std::fs::read_to_string(&path)
        .context(|| format!("reading the operator token from {}", path.display()))?;
    Ok(token.trim().to_string())
}

/// `bench_<epoch ms>`: a fresh tenant name for each run.
pub fn default_tenant_name() -> String {
    format!("bench_{}", strata_core::now_ms())
}

/// The process that has a file open inside `data_dir` and is a `strata` binary: the server
/// holds its catalog and hot-tier files open for its whole life.
pub fn server_pid_from_data_dir(data_dir: &Path) -> Option<u32> {
    let data_dir = data_dir.canonicalize().ok()?;
    let own = std::process::id();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let is_strata = std::fs::read_to_string(entry.path().join("comm"))
            .is_ok_and(|comm| comm.trim() == "strata");
        if pid == own || !is_strata {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds_data = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| target.starts_with(&data_dir))
        });
        if holds_data {
            return Some(pid);
        }
    }
    None
}

/// Bytes of the regular files under `dir` (0 for what cannot be read).
pub fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |meta| meta.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_gives_the_url() {
        assert_eq!(
            listening_url(
                "2026-01-01T00:00:00Z  INFO strata_server: HTTP API listening on http://127.0.0.1:40123"
            )
            .as_deref(),
            Some("http://127.0.0.1:40123")
        );
        assert_eq!(
            listening_url("Postgres wire protocol listening on postgres://127.0.0.1:5433"),
            None
        );
    }

    #[test]
    fn directory_size_counts_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("b"), [0u8; 5]).unwrap();
        assert_eq!(directory_bytes(dir.path()), 15);
    }
}
