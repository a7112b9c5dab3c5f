//! Test harness: a real SqliteCatalog and HotStore in a tempdir, a Postgres wire server on an
//! ephemeral loopback port, and real clients (psql, tokio-postgres).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::ops::Deref;
use std::process::Command;

use strata_core::{FieldType, Role, TenantId, Value};
use strata_pgwire::{serve, PgConfig};
use strata_query::{QueryConfig, QueryEngine};
use strata_testkit::Stores;
pub use strata_testkit::{s, MINUTE, T0};
use tokio::sync::oneshot;

pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub admin_key: String,
}

/// The stores (`strata_testkit::Stores`: catalog, hot store, tempdir, `write`) and a Postgres
/// wire server over them on an ephemeral loopback port.
pub struct Server {
    pub stores: Stores,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), strata_pgwire::PgError>>>,
}

impl Deref for Server {
    type Target = Stores;

    fn deref(&self) -> &Stores {
        &self.stores
    }
}

impl Server {
    pub async fn start(config: QueryConfig) -> Server {
        let stores = Stores::open().await;
        let engine = QueryEngine::new(stores.catalog.clone(), stores.hot.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            engine,
            stores.catalog.clone(),
            PgConfig {
                addr,
                allow_insecure: false,
                tls: None,
            },
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            stores,
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub async fn tenant(&self, name: &str) -> Tenant {
        let (id, admin_key) = self.stores.tenant(name).await;
        Tenant {
            id,
            name: name.to_string(),
            admin_key,
        }
    }

    pub async fn key(&self, tenant: TenantId, role: Role) -> String {
        self.stores.key(tenant, role).await
    }

    pub fn conninfo(&self, user: &str, password: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname=strata sslmode=disable",
            self.addr.port()
        )
    }

    pub async fn connect(
        &self,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) =
            tokio_postgres::connect(&self.conninfo(user, password), tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs psql with `args` (e.g. `["-c", "\\dt"]`); `None` when psql is not installed
    /// (a panic instead under `STRATA_REQUIRE_CLIENTS=1`).
    pub async fn psql(&self, user: &str, password: &str, args: &[&str]) -> Option<PsqlOutput> {
        let conninfo = self.conninfo(user, password);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let output = Command::new("psql")
                .arg(conninfo)
                .args(["-X", "-v", "ON_ERROR_STOP=1"])
                .args(&args)
                .env("PGCONNECT_TIMEOUT", "20")
                .output();
            let output = match output {
                Ok(output) => output,
                // CI installs the clients and sets STRATA_REQUIRE_CLIENTS=1, so a missing psql
                // there is a failure, not a silently skipped check.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    strata_testkit::available("psql", Err("it is not installed".to_string()));
                    return None;
                }
                Err(e) => panic!("running psql: {e}"),
            };
            Some(PsqlOutput {
                success: output.status.success(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        })
        .await
        .unwrap()
    }
}

#[derive(Debug)]
pub struct PsqlOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Tenant `acme` with metric `thermostat` (name: string, temperature: double with alias `temp`,
/// gallons: unknown) and three events; tenant `globex` with metric `secret_plant`.
pub async fn seeded() -> (Server, Tenant, Tenant) {
    seeded_with(QueryConfig::default()).await
}

pub async fn seeded_with(config: QueryConfig) -> (Server, Tenant, Tenant) {
    let server = Server::start(config).await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    server
        .declare(
            acme.id,
            "thermostat",
            "name",
            Some(FieldType::String),
            &[],
            false,
        )
        .await;
    server
        .declare(
            acme.id,
            "thermostat",
            "temperature",
            Some(FieldType::Double),
            &["temp"],
            false,
        )
        .await;
    server
        .declare(
            acme.id,
            "thermostat",
            "reading",
            Some(FieldType::Integer),
            &[],
            false,
        )
        .await;
    server
        .write(
            acme.id,
            "thermostat",
            &[
                (
                    T0,
                    vec![
                        ("name", s("kitchen")),
                        ("temperature", Value::Float(21.5)),
                        ("reading", Value::Int(10)),
                        ("gallons", s("3")),
                    ],
                ),
                (
                    T0 + MINUTE,
                    vec![
                        ("name", s("garage")),
                        ("temp", Value::Float(12.25)),
                        ("reading", Value::Int(20)),
                    ],
                ),
                (
                    T0 + 2 * MINUTE,
                    vec![
                        ("name", s("it's attic")),
                        ("temperature", Value::Float(30.0)),
                        ("reading", Value::Int(30)),
                    ],
                ),
            ],
        )
        .await;
    server
        .write(
            globex.id,
            "secret_plant",
            &[(T0, vec![("pressure", Value::Float(99.0))])],
        )
        .await;
    (server, acme, globex)
}

/// The SQLSTATE of a failed tokio-postgres call.
pub fn code(error: &tokio_postgres::Error) -> String {
    error
        .code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| panic!("no SQLSTATE in {error:?}"))
}
