//! Test harness: a real SqliteCatalog and HotStore in a tempdir, a Postgres wire server on an
//! ephemeral loopback port, and real clients (psql, tokio-postgres).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use strata_catalog::{DynCatalog, SchemaChange, SqliteCatalog};
use strata_core::{FieldType, Role, TenantId, Value};
use strata_pgwire::{serve, PgConfig};
use strata_query::{QueryConfig, QueryEngine};
use strata_storage::{HotEvent, HotOptions, HotStore, HotWrite};
use tokio::sync::oneshot;

/// 2015-01-12T10:12:15Z.
pub const T0: i64 = 1_421_057_535_000;
pub const MINUTE: i64 = 60_000;

pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub admin_key: String,
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub catalog: DynCatalog,
    pub hot: Arc<HotStore>,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), strata_pgwire::PgError>>>,
}

impl Server {
    pub async fn start(config: QueryConfig) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let catalog: DynCatalog = Arc::new(
            SqliteCatalog::open(&dir.path().join("catalog.db"))
                .await
                .unwrap(),
        );
        let hot = HotStore::open(
            &dir.path().join("hot"),
            HotOptions {
                sync: false,
                ..HotOptions::default()
            },
        )
        .unwrap();
        let engine = QueryEngine::new(catalog.clone(), hot.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            engine,
            catalog.clone(),
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
            dir,
            catalog,
            hot,
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
        let (tenant, key) = self.catalog.create_tenant(name).await.unwrap();
        Tenant {
            id: tenant.id,
            name: name.to_string(),
            admin_key: key.secret,
        }
    }

    pub async fn key(&self, tenant: TenantId, role: Role) -> String {
        self.catalog.create_key(tenant, role).await.unwrap().secret
    }

    pub async fn declare(
        &self,
        tenant: TenantId,
        metric: &str,
        field: &str,
        field_type: Option<FieldType>,
        aliases: &[&str],
    ) {
        self.catalog.ensure_metric(tenant, metric).await.unwrap();
        self.catalog
            .apply(
                tenant,
                SchemaChange::DeclareField {
                    metric: metric.into(),
                    field: field.into(),
                    field_type,
                    aliases: aliases.iter().map(|a| a.to_string()).collect(),
                    hidden: false,
                },
            )
            .await
            .unwrap();
    }

    /// Writes events the way ingest would: names registered, values stored under name ids.
    pub async fn write(
        &self,
        tenant: TenantId,
        metric: &str,
        events: &[(i64, Vec<(&str, Value)>)],
    ) {
        let m = self.catalog.ensure_metric(tenant, metric).await.unwrap();
        let mut hot_events = Vec::new();
        for (index, (timestamp_ms, values)) in events.iter().enumerate() {
            let names: Vec<String> = values.iter().map(|(n, _)| n.to_string()).collect();
            let ids = self
                .catalog
                .register_incoming_names(tenant, m.id, &names)
                .await
                .unwrap();
            hot_events.push(HotEvent {
                metric: m.id,
                timestamp_ms: *timestamp_ms,
                series: strata_ingest::series_hash(&[]),
                content_hash: (index as u64 + 1) * 7919 + *timestamp_ms as u64,
                values: ids
                    .into_iter()
                    .zip(values.iter().map(|(_, v)| v.clone()))
                    .collect(),
            });
        }
        self.hot
            .write(HotWrite {
                tenant,
                events: hot_events,
                errors: Vec::new(),
            })
            .await
            .unwrap();
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
            let output = match Command::new("psql")
                .arg(conninfo)
                .args(["-X", "-v", "ON_ERROR_STOP=1"])
                .args(&args)
                .env("PGCONNECT_TIMEOUT", "20")
                .output()
            {
                Ok(output) => output,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // CI installs the clients and sets STRATA_REQUIRE_CLIENTS=1, so a missing
                    // psql there is a failure, not a silently skipped check.
                    if std::env::var("STRATA_REQUIRE_CLIENTS").is_ok_and(|v| v == "1") {
                        panic!("psql is required (STRATA_REQUIRE_CLIENTS=1) but not installed");
                    }
                    eprintln!("psql is not installed; skipping the psql part of this test");
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

pub fn s(text: &str) -> Value {
    Value::Str(text.to_string())
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
        .declare(acme.id, "thermostat", "name", Some(FieldType::String), &[])
        .await;
    server
        .declare(
            acme.id,
            "thermostat",
            "temperature",
            Some(FieldType::Double),
            &["temp"],
        )
        .await;
    server
        .declare(
            acme.id,
            "thermostat",
            "reading",
            Some(FieldType::Integer),
            &[],
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
