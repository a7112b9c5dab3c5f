//! The server under test and the tenant a run uses: a server the benchmark spawns (with the
//! scenario's `strata serve` defaults) or one the user runs, its pid for the peak RSS, its data
//! directory for the size on disk and the free-disk check.

use std::path::PathBuf;

use serde::Serialize;
use strata_client::{ApiError, Client, StatusCode};

use super::server::{
    default_tenant_name, directory_bytes, operator_token, server_pid_from_data_dir, SpawnedServer,
};
use super::{refused, Context};
use crate::{peak_rss_kib, BenchError, BenchTarget};

/// `strata serve` arguments the cold-tier scenarios give a spawned server: compact everything
/// (the workload is in the past) and only when asked, so no background run races the
/// measurement; allow long analytic queries at large sizes. An argument the user passes with
/// --serve-arg wins.
pub const COLD_SERVE_ARGS: [(&str, &str); 3] = [
    ("--compact-after-secs", "0"),
    ("--compact-interval-secs", "0"),
    ("--query-timeout-secs", "600"),
];
/// `strata serve` arguments `bench ingest` and `bench recent` give a spawned server: no
/// background compaction, which would otherwise start during a long ingest (every 300 s by
/// default; the workload is older than the default hour) and depress the measured rate. An
/// argument the user passes with --serve-arg wins.
pub const INGEST_SERVE_ARGS: [(&str, &str); 1] = [("--compact-interval-secs", "0")];
/// `strata serve` arguments `bench isolation` gives a spawned server: a 10 s query time limit,
/// so the default 30 s under load sees about three cross joins end at the limit (with the
/// default 30 s, one). An argument the user passes with --serve-arg wins.
pub const ISOLATION_SERVE_ARGS: [(&str, &str); 1] = [("--query-timeout-secs", "10")];

/// `strata serve` arguments `bench alerts` gives a spawned server: no background compaction
/// (as `bench ingest`, for its ingest phases). It also gets the switch
/// [`ALERTS_SERVE_SWITCH`]. An argument the user passes with --serve-arg wins.
pub const ALERTS_SERVE_ARGS: [(&str, &str); 1] = [("--compact-interval-secs", "0")];
/// What `bench protocols` gives a spawned server: the MQTT listener on an ephemeral port.
pub const PROTOCOLS_SERVE_ARGS: [(&str, &str); 1] = [("--mqtt", "127.0.0.1:0")];
/// The switch `bench alerts` gives a spawned server: its webhook receiver listens on
/// 127.0.0.1, which a server refuses to notify without it.
pub const ALERTS_SERVE_SWITCH: &str = "--allow-private-webhooks";

/// Which server to measure and how to get a tenant on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Base URL of the server under test (ignored with `spawn`).
    pub url: String,
    /// The server's data directory: its operator.token creates the tenant (unless
    /// STRATA_OPERATOR_TOKEN is set) and the process holding it is the one whose RSS is read.
    pub data_dir: Option<PathBuf>,
    /// Start `strata serve` (the binary `exe`) on a temporary data directory.
    pub spawn: bool,
    /// The `strata` binary a spawned server runs.
    pub exe: PathBuf,
    /// Extra arguments for the spawned `strata serve`.
    pub serve_args: Vec<String>,
    /// Tenant to run in (default: a fresh `bench_<timestamp>` tenant).
    pub tenant: Option<String>,
    /// Admin key of an existing tenant, instead of creating one with the operator token.
    pub key: Option<String>,
    /// Pid of the server, for its peak RSS (found from the data directory or the spawn
    /// otherwise).
    pub server_pid: Option<u32>,
}

impl ServerOptions {
    /// A spawned server gets `defaults` (flag, value) unless the user passed the flag with
    /// --serve-arg; a server the user runs is left as it is.
    pub fn with_spawn_defaults(&self, defaults: &[(&str, &str)]) -> ServerOptions {
        let mut server = self.clone();
        if server.spawn {
            for (flag, value) in defaults {
                let given = server
                    .serve_args
                    .iter()
                    .any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")));
                if !given {
                    server.serve_args.push(format!("{flag}={value}"));
                }
            }
        }
        server
    }

    /// A spawned server also gets the argument-less `switch` unless the user passed it.
    pub fn with_spawn_switch(&self, switch: &str) -> ServerOptions {
        let mut server = self.clone();
        if server.spawn && !server.serve_args.iter().any(|arg| arg == switch) {
            server.serve_args.push(switch.to_string());
        }
        server
    }

    /// `--spawn` for a cold-tier scenario: the spawned server gets [`COLD_SERVE_ARGS`] unless
    /// the user set them.
    pub fn for_cold_scenarios(&self) -> ServerOptions {
        if !self.spawn {
            eprintln!(
                "note: the server must run with --compact-after-secs 0 and --compact-interval-secs 0, \
                 or the benchmark cannot compact everything (or a background run races it)"
            );
        }
        self.with_spawn_defaults(&COLD_SERVE_ARGS)
    }
}

/// The server under test and the tenant the run uses.
pub struct Session {
    pub target: BenchTarget,
    pub pid: Option<u32>,
    /// The server's data directory, when known (for its size on disk).
    pub data_dir: Option<PathBuf>,
    spawned: Option<SpawnedServer>,
}

/// What the report says about the server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerFigures {
    pub url: String,
    pub pid: Option<u32>,
    pub spawned: bool,
    /// Extra `strata serve` arguments a spawned server ran with (the benchmark's defaults and
    /// --serve-arg).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub serve_args: Vec<String>,
    /// VmHWM since the server started, read at the end of the run.
    pub peak_rss_kib: Option<u64>,
    pub data_dir_bytes: Option<u64>,
}

impl Session {
    pub fn open(args: &ServerOptions) -> Result<Session, BenchError> {
        let (url, spawned) = if args.spawn {
            let server = SpawnedServer::start(&args.exe, &args.serve_args)?;
            (server.url.clone(), Some(server))
        } else {
            (args.url.clone(), None)
        };
        let data_dir = spawned
            .as_ref()
            .map(|server| server.data_dir.clone())
            .or_else(|| args.data_dir.clone());
        let pid = args
            .server_pid
            .or_else(|| spawned.as_ref().map(SpawnedServer::pid))
            .or_else(|| data_dir.as_deref().and_then(server_pid_from_data_dir));
        if pid.is_none() {
            eprintln!(
                "note: server pid unknown (pass --server-pid or --data-dir); peak RSS will not be reported"
            );
        }
        let client = Client::with_timeout(&url, crate::scenarios::DEFAULT_REQUEST_TIMEOUT)?;
        client
            .health()
            .context(|| format!("no Strata server answers at {url}"))?;
        let admin_key = match &args.key {
            // An existing tenant's key: the tenant name is implied by the key.
            Some(key) if !args.spawn && !key.is_empty() => key.clone(),
            _ => create_tenant(&client, args, data_dir.as_deref())?,
        };
        Ok(Session {
            target: BenchTarget::with_admin_key(&url, &admin_key),
            pid,
            data_dir,
            spawned,
        })
    }

    /// Tenant B of `bench isolation`: a fresh tenant beside the session's, named after it with
    /// a `_b` suffix, created with the operator token.
    pub fn second_tenant(&self, server: &ServerOptions) -> Result<BenchTarget, BenchError> {
        let token = operator_token(self.data_dir.as_deref())
            .context(|| "bench isolation creates a second tenant".to_string())?;
        let name = format!(
            "{}_b",
            server.tenant.clone().unwrap_or_else(default_tenant_name)
        );
        let key = self
            .target
            .client()?
            .create_tenant(&token, &name)
            .context(|| format!("creating tenant {name:?}"))?;
        Ok(BenchTarget::with_admin_key(&self.target.base_url, &key))
    }

    /// Where a spawned server's MQTT listener is (it must have been given `--mqtt`).
    pub fn spawned_mqtt_addr(&self) -> Option<std::net::SocketAddr> {
        self.spawned
            .as_ref()?
            .logged_address("MQTT listening on mqtt://")
    }

    /// Peak RSS and data size now; call before [`Session::stop`].
    pub fn server_figures(&self) -> ServerFigures {
        ServerFigures {
            url: self.target.base_url.clone(),
            pid: self.pid,
            spawned: self.spawned.is_some(),
            serve_args: self
                .spawned
                .as_ref()
                .map(|server| server.args.clone())
                .unwrap_or_default(),
            peak_rss_kib: self.pid.and_then(|pid| match peak_rss_kib(pid) {
                Ok(rss) => Some(rss),
                Err(error) => {
                    eprintln!("note: cannot read the peak RSS of pid {pid}: {error}");
                    None
                }
            }),
            data_dir_bytes: self.data_dir.as_deref().map(directory_bytes),
        }
    }

    /// Stops a spawned server gracefully; nothing to do for an external one.
    pub fn stop(&mut self) -> Result<(), BenchError> {
        match self.spawned.take() {
            Some(mut server) => server.stop(),
            None => Ok(()),
        }
    }
}

/// The run's tenant, created with the operator token; an existing name is refused with advice.
fn create_tenant(
    client: &Client,
    args: &ServerOptions,
    data_dir: Option<&std::path::Path>,
) -> Result<String, BenchError> {
    let token = operator_token(data_dir)?;
    let tenant = args.tenant.clone().unwrap_or_else(default_tenant_name);
    match client.create_tenant(&token, &tenant) {
        Ok(key) => Ok(key),
        Err(ApiError::Status { status, .. }) if status == StatusCode::CONFLICT => {
            Err(refused(format!(
                "tenant {tenant:?} already exists; pass its admin key with --key (or \
             STRATA_KEY), or choose another --tenant"
            )))
        }
        Err(error) => Err(error).context(|| format!("creating tenant {tenant:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawning(serve_args: &[&str]) -> ServerOptions {
        ServerOptions {
            url: "http://127.0.0.1:8686".to_string(),
            data_dir: None,
            spawn: true,
            exe: PathBuf::from("strata"),
            serve_args: serve_args.iter().map(|arg| arg.to_string()).collect(),
            tenant: None,
            key: None,
            server_pid: None,
        }
    }

    #[test]
    fn cold_scenarios_give_a_spawned_server_their_flags_unless_set() {
        let args = spawning(&["--compact-after-secs=5"])
            .for_cold_scenarios()
            .serve_args;
        assert_eq!(
            args,
            [
                "--compact-after-secs=5",
                "--compact-interval-secs=0",
                "--query-timeout-secs=600"
            ]
        );
    }

    #[test]
    fn alerts_allow_private_webhooks_on_a_spawned_server_once() {
        let server = spawning(&["--allow-private-webhooks"]);
        assert_eq!(
            server.with_spawn_switch(ALERTS_SERVE_SWITCH).serve_args,
            ["--allow-private-webhooks"]
        );
        let server = spawning(&[]).with_spawn_defaults(&ALERTS_SERVE_ARGS);
        assert_eq!(
            server.with_spawn_switch(ALERTS_SERVE_SWITCH).serve_args,
            ["--compact-interval-secs=0", "--allow-private-webhooks"]
        );
        let mut external = spawning(&[]);
        external.spawn = false;
        assert!(external
            .with_spawn_switch(ALERTS_SERVE_SWITCH)
            .serve_args
            .is_empty());
    }

    #[test]
    fn ingest_scenarios_turn_background_compaction_off_unless_set() {
        let mut server = spawning(&["--unsafe-no-fsync"]);
        assert_eq!(
            server.with_spawn_defaults(&INGEST_SERVE_ARGS).serve_args,
            ["--unsafe-no-fsync", "--compact-interval-secs=0"]
        );
        // Given as two words (--serve-arg=--compact-interval-secs --serve-arg=60): kept.
        server.serve_args = vec!["--compact-interval-secs".to_string(), "60".to_string()];
        assert_eq!(
            server.with_spawn_defaults(&INGEST_SERVE_ARGS).serve_args,
            ["--compact-interval-secs", "60"]
        );
        // A server the user runs is not touched.
        server.spawn = false;
        server.serve_args.clear();
        assert!(server
            .with_spawn_defaults(&INGEST_SERVE_ARGS)
            .serve_args
            .is_empty());
    }
}
