//! The node: what `strata serve` runs. It opens the stores under the data directory, builds the
//! writer and the query engine, starts the front doors (HTTP and Postgres, and MQTT and Flight
//! SQL when asked; peers over the same engines) and the background jobs (compaction, statistics flushing), and closes
//! everything in order at shutdown.
//!
//! Architecture invariant: only the binary imports this crate.

mod bootstrap;
mod sources;
mod stats;
mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_catalog::{DynCatalog, SqliteCatalog};
use strata_core::Limits;
use strata_query::QueryEngine;
use strata_server::AppState;
use strata_storage::{HotOptions, HotStore};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use strata_alerts::{AlertConfig, SmsConfig, SmtpConfig};
pub use strata_cold::CompactorConfig;
pub use strata_pgwire::TlsPaths;
pub use strata_query::{QueryConfig, TierPreference};
pub use strata_server::{HttpConfig, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS};
pub use strata_streaming::RollupConfig;

/// Default `--mqtt-max-connections`.
pub const MQTT_MAX_CONNECTIONS: usize = strata_mqtt::DEFAULT_MAX_CONNECTIONS;

/// Default `--flight-max-connections`.
pub const FLIGHT_MAX_CONNECTIONS: usize = strata_flight::DEFAULT_MAX_CONNECTIONS;

/// Where and how the Arrow Flight SQL door listens.
#[derive(Debug, Clone)]
pub struct FlightListen {
    pub addr: SocketAddr,
    pub allow_insecure: bool,
    pub max_connections: usize,
}

/// Where and how the MQTT door listens.
#[derive(Debug, Clone)]
pub struct MqttListen {
    pub addr: SocketAddr,
    pub allow_insecure: bool,
    pub max_connections: usize,
}

/// Default `--hot-flush-rows` (see `strata_storage::HotOptions::flush_rows`).
pub const HOT_FLUSH_ROWS: u64 = strata_storage::FLUSH_ROWS as u64;
/// Default `--hot-flush-secs`.
pub const HOT_FLUSH_INTERVAL: std::time::Duration = strata_storage::FLUSH_INTERVAL;

/// Everything `strata serve` can be told. The binary maps flags and env vars onto this.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    pub pg_addr: SocketAddr,
    /// Serve the Postgres wire protocol without TLS on a non-loopback address.
    pub pg_allow_insecure: bool,
    /// TLS certificate and key for the Postgres wire protocol (and MQTT).
    pub pg_tls: Option<strata_pgwire::TlsPaths>,
    /// The MQTT listener (`--mqtt`); `None` leaves it off.
    pub mqtt: Option<MqttListen>,
    /// The Arrow Flight SQL listener (`--flight`); `None` leaves it off.
    pub flight: Option<FlightListen>,
    /// Overrides the generated operator token (env `STRATA_OPERATOR_TOKEN`).
    pub operator_token: Option<String>,
    pub limits: Limits,
    /// fsync before acknowledging writes. Only benchmarks turn this off.
    pub sync: bool,
    /// Profile incoming values for schema suggestions (`--profiling`).
    pub profiling: bool,
    /// The hot tier's write buffer is flushed into fjall at this many rows ...
    pub hot_flush_rows: usize,
    /// ... or when its oldest row is this old.
    pub hot_flush_interval: std::time::Duration,
    /// Per-query memory limit, timeout and batch size.
    pub query: QueryConfig,
    /// Where cold files go: `None` = `<data_dir>/cold`; else a directory or object-store URL.
    pub cold_location: Option<String>,
    /// Compaction age, file size, hot retention.
    pub compaction: CompactorConfig,
    /// How often the background compactor runs; `None` disables it (on demand only).
    pub compact_interval: Option<Duration>,
    /// Header-read (and idle keep-alive) timeout and connection cap of the HTTP port.
    pub http: HttpConfig,
    /// Alerting: tick, SMTP relay, SMS gateway, private webhooks. An empty `public_url` becomes
    /// the bound HTTP address.
    pub alerts: AlertConfig,
    /// Rollup maintenance: cycle interval, backfill step.
    pub rollups: strata_streaming::RollupConfig,
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("catalog: {0}")]
    Catalog(#[from] strata_catalog::CatalogError),
    #[error("hot tier: {0}")]
    Storage(#[from] strata_storage::StorageError),
    #[error(transparent)]
    Cold(#[from] strata_cold::ColdError),
    #[error("operator token: {0}")]
    OperatorToken(String),
    #[error(transparent)]
    Postgres(#[from] strata_pgwire::PgError),
    #[error(transparent)]
    Mqtt(#[from] strata_mqtt::MqttError),
    #[error(transparent)]
    Flight(#[from] strata_flight::FlightError),
    #[error("http server: {0}")]
    Serve(std::io::Error),
    #[error("alerts: {0}")]
    Alerts(#[from] strata_alerts::AlertError),
    #[error("rollups: {0}")]
    Rollups(String),
    #[error("sources: {0}")]
    Sources(String),
}

/// How often batched unknown-field statistics are written to the catalog.
const STATS_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long startup waits for a cloud cold store to answer a listing before refusing to start.
const COLD_STORE_STARTUP_CHECK: Duration = Duration::from_secs(30);

/// Opens the stores under `config.data_dir`, serves HTTP until `shutdown` resolves, then drains
/// in-flight requests, flushes statistics and closes the stores.
pub async fn run(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    bootstrap::secure_data_dir(&config.data_dir, config.cold_location.is_none())?;
    let operator_token =
        bootstrap::operator_token(&config.data_dir, config.operator_token.as_deref())?;
    let recorder = telemetry::recorder();
    let (catalog, hot, cold) = open_stores(&config).await?;
    let query = QueryEngine::new(catalog.clone(), hot.clone(), config.query.clone())
        .with_cold(cold.access());
    let usage = query.usage().clone();
    stats::restore_usage(&usage, catalog.as_ref()).await;
    let compactor = Arc::new(strata_cold::Compactor::new(
        catalog.clone(),
        hot.clone(),
        cold,
        config.compaction.clone(),
    ));
    let writer = Arc::new(
        strata_write::Writer::new(catalog.clone(), hot.clone(), config.limits.clone())
            .with_profiling(config.profiling),
    );
    let (listener, pg_listener) = bind_listeners(&config).await?;
    let mqtt_bound = bind_mqtt(&config).await?;
    let flight_bound = bind_flight(&config).await?;
    let alerts = start_alerts(&config, &catalog, &query, &writer, &listener).await?;
    let rollups = start_rollups(&config, &catalog, &query, &hot, &writer).await?;
    // After the stream's subscribers (alerts, rollups), so they see every consumed event.
    let sources = sources::start(&catalog, &writer, &query).await?;
    let engines = strata_server::Engines {
        catalog: catalog.clone(),
        hot: hot.clone(),
        writer: writer.clone(),
        query: query.clone(),
        compactor: compactor.clone(),
        alerts: alerts.clone(),
        live: live_queries(&query, &catalog, &hot, &writer),
        rollups,
        sources: sources.clone(),
        telemetry: recorder,
    };
    let state = AppState::new(engines, operator_token, config.limits.clone());
    let stop = fan_out(shutdown);
    let doors = spawn_peer_doors(
        &config,
        pg_listener,
        (mqtt_bound, flight_bound),
        (&query, &catalog, &writer),
        &stop,
    )?;
    let flushed = stats::Flushed {
        writer: writer.clone(),
        usage: usage.clone(),
        catalog: catalog.clone(),
    };
    let flusher = stats::spawn_flusher(flushed.clone(), STATS_FLUSH_INTERVAL);
    let background = spawn_compaction(compactor.clone(), config.compact_interval);
    let app = strata_server::router(state.clone());
    strata_server::serve(listener, app, config.http.clone(), stopped(stop)).await;
    join_doors(doors).await;
    tracing::info!("shutting down: flushing statistics and closing the hot tier");
    alerts.stop();
    // Before the hot tier closes: each source finishes and acknowledges its batch.
    sources.shutdown().await;
    flusher.abort();
    background.abort();
    flushed.flush().await;
    hot.close();
    Ok(())
}

/// Live queries over the writer's committed-event stream, with the default buffer bounds.
fn live_queries(
    query: &QueryEngine,
    catalog: &DynCatalog,
    hot: &Arc<HotStore>,
    writer: &strata_write::Writer,
) -> strata_streaming::LiveQueries {
    strata_streaming::LiveQueries::new(
        query.clone(),
        catalog.clone(),
        hot.clone(),
        writer.events().clone(),
        strata_streaming::LiveConfig::default(),
    )
}

/// Starts the alert rules, subscribed to the writer's committed-event stream before the doors
/// accept any write.
async fn start_alerts(
    config: &ServeConfig,
    catalog: &DynCatalog,
    query: &QueryEngine,
    writer: &strata_write::Writer,
    listener: &TcpListener,
) -> Result<strata_alerts::AlertService, ServerError> {
    let mut alerts = config.alerts.clone();
    if alerts.public_url.is_empty() {
        let bound = listener.local_addr().map_err(ServerError::Serve)?;
        alerts.public_url = format!("http://{bound}");
    }
    Ok(strata_alerts::AlertService::start(
        catalog.clone(),
        catalog.clone(),
        query.clone(),
        writer.events(),
        alerts,
    )
    .await?)
}

/// Starts rollup maintenance before compaction starts and before the doors take writes: its
/// first cycle re-reads the hot rows above each rollup's watermark.
async fn start_rollups(
    config: &ServeConfig,
    catalog: &DynCatalog,
    query: &QueryEngine,
    hot: &Arc<HotStore>,
    writer: &strata_write::Writer,
) -> Result<strata_streaming::Rollups, ServerError> {
    strata_streaming::Rollups::start(
        query.clone(),
        catalog.clone(),
        catalog.clone(),
        hot.clone(),
        writer.events().clone(),
        config.rollups.clone(),
    )
    .await
    .map_err(|e| ServerError::Rollups(e.to_string()))
}

/// The catalog, the hot tier and the cold store (checked reachable, so a wrong URL or missing
/// credentials fail at startup).
async fn open_stores(
    config: &ServeConfig,
) -> Result<(DynCatalog, Arc<HotStore>, strata_cold::ColdStore), ServerError> {
    let catalog: DynCatalog =
        Arc::new(SqliteCatalog::open(&config.data_dir.join(bootstrap::CATALOG_FILE)).await?);
    // SQLite created -wal and -shm with the catalog's mode; this covers any it found.
    bootstrap::secure_catalog_files(&config.data_dir)?;
    let hot = HotStore::open(
        &config.data_dir.join("hot"),
        HotOptions {
            sync: config.sync,
            flush_rows: config.hot_flush_rows,
            flush_interval: config.hot_flush_interval,
            ..HotOptions::default()
        },
    )?;
    let cold = strata_cold::ColdStore::open(&config.data_dir, config.cold_location.as_deref())?;
    cold.check_reachable(COLD_STORE_STARTUP_CHECK).await?;
    tracing::info!(location = cold.location(), "cold tier ready");
    Ok((catalog, hot, cold))
}

/// Binds the HTTP and Postgres listeners and logs their addresses. An insecure Postgres or
/// MQTT setup is refused before binding anything, so a misconfigured server fails at startup instead of
/// serving HTTP alone.
async fn bind_listeners(config: &ServeConfig) -> Result<(TcpListener, TcpListener), ServerError> {
    strata_pgwire::check_bind_policy(
        &config.pg_addr,
        config.pg_tls.is_some(),
        config.pg_allow_insecure,
    )?;
    if let Some(mqtt) = &config.mqtt {
        strata_mqtt::check_bind_policy(&mqtt.addr, config.pg_tls.is_some(), mqtt.allow_insecure)?;
    }
    if let Some(flight) = &config.flight {
        strata_flight::check_bind_policy(
            &flight.addr,
            config.pg_tls.is_some(),
            flight.allow_insecure,
        )?;
    }
    if let Some(tls) = &config.pg_tls {
        strata_pgwire::load_tls(tls)?;
    }
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })
    };
    let listener = bind(config.http_addr).await?;
    let pg_listener = bind(config.pg_addr).await?;
    let bound = listener.local_addr().map_err(ServerError::Serve)?;
    let pg_bound = pg_listener.local_addr().map_err(ServerError::Serve)?;
    // Tests and scripts parse these lines to find ephemeral ports; keep their shape stable.
    tracing::info!("HTTP API listening on http://{bound}");
    tracing::info!("Postgres wire protocol listening on postgres://{pg_bound}");
    tracing::info!("web app at http://{bound}/ (sign in with a tenant key)");
    Ok((listener, pg_listener))
}

/// Binds a peer door's socket, with the Postgres port's certificate when one is configured (a
/// certificate that does not load fails startup here, as it does for Postgres).
async fn bind_with_tls(
    addr: SocketAddr,
    config: &ServeConfig,
) -> Result<(TcpListener, SocketAddr, Option<strata_mqtt::TlsAcceptor>), ServerError> {
    let tls = config
        .pg_tls
        .as_ref()
        .map(strata_pgwire::load_tls)
        .transpose()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(ServerError::Serve)?;
    Ok((listener, bound, tls))
}

/// The MQTT door's socket and its TLS acceptor, ready before any door serves.
struct MqttBound {
    listener: TcpListener,
    tls: Option<strata_mqtt::TlsAcceptor>,
    config: strata_mqtt::MqttConfig,
}

/// Binds the MQTT listener when `--mqtt` is given, with the Postgres port's certificate (a
/// certificate that does not load fails startup here, as it does for Postgres).
async fn bind_mqtt(config: &ServeConfig) -> Result<Option<MqttBound>, ServerError> {
    let Some(mqtt) = &config.mqtt else {
        return Ok(None);
    };
    let (listener, bound, tls) = bind_with_tls(mqtt.addr, config).await?;
    // Tests parse this line to find an ephemeral port; keep its shape stable.
    tracing::info!("MQTT listening on mqtt://{bound}");
    let config = strata_mqtt::MqttConfig {
        max_connections: mqtt.max_connections,
        allow_insecure: mqtt.allow_insecure,
    };
    Ok(Some(MqttBound {
        listener,
        tls,
        config,
    }))
}

/// The Flight SQL door's socket and its TLS acceptor, ready before any door serves.
struct FlightBound {
    listener: TcpListener,
    tls: Option<strata_flight::TlsAcceptor>,
    config: strata_flight::FlightConfig,
}

/// Binds the Flight SQL listener when `--flight` is given, with the Postgres port's
/// certificate (the door adds the ALPN protocol gRPC needs).
async fn bind_flight(config: &ServeConfig) -> Result<Option<FlightBound>, ServerError> {
    let Some(flight) = &config.flight else {
        return Ok(None);
    };
    let (listener, bound, tls) = bind_with_tls(flight.addr, config).await?;
    // Tests parse this line to find an ephemeral port; keep its shape stable.
    let scheme = if tls.is_some() { "grpc+tls" } else { "grpc" };
    tracing::info!("Flight SQL listening on {scheme}://{bound}");
    let config = strata_flight::FlightConfig {
        max_connections: flight.max_connections,
        allow_insecure: flight.allow_insecure,
    };
    Ok(Some(FlightBound {
        listener,
        tls,
        config,
    }))
}

/// Starts the Postgres and (when bound) MQTT and Flight SQL doors; HTTP is served by `run`
/// itself.
fn spawn_peer_doors(
    config: &ServeConfig,
    pg_listener: TcpListener,
    (mqtt, flight): (Option<MqttBound>, Option<FlightBound>),
    engines: (&QueryEngine, &DynCatalog, &Arc<strata_write::Writer>),
    stop: &watch::Receiver<bool>,
) -> Result<Vec<(&'static str, DoorTask)>, ServerError> {
    let (query, catalog, writer) = engines;
    let pg_config = strata_pgwire::PgConfig {
        addr: pg_listener.local_addr().map_err(ServerError::Serve)?,
        allow_insecure: config.pg_allow_insecure,
        tls: config.pg_tls.clone(),
    };
    let pg = strata_pgwire::serve(
        pg_listener,
        query.clone(),
        catalog.clone(),
        pg_config,
        stopped(stop.clone()),
    );
    let mut doors: Vec<(&'static str, DoorTask)> = vec![(
        "Postgres wire server",
        tokio::spawn(async move { pg.await.map_err(|e| e.to_string()) }),
    )];
    if let Some(mqtt) = mqtt {
        let door = strata_mqtt::MqttDoor::new(writer.clone(), catalog.clone(), catalog.clone());
        let serve = strata_mqtt::serve(
            mqtt.listener,
            door,
            mqtt.tls,
            mqtt.config,
            stopped(stop.clone()),
        );
        doors.push((
            "MQTT listener",
            tokio::spawn(async move { serve.await.map_err(|e| e.to_string()) }),
        ));
    }
    if let Some(flight) = flight {
        let serve = strata_flight::serve(
            flight.listener,
            query.clone(),
            catalog.clone(),
            flight.tls,
            flight.config,
            stopped(stop.clone()),
        );
        doors.push((
            "Flight SQL server",
            tokio::spawn(async move { serve.await.map_err(|e| e.to_string()) }),
        ));
    }
    Ok(doors)
}

/// A door's task; its error as text, since each door has its own error type.
type DoorTask = tokio::task::JoinHandle<Result<(), String>>;

/// Waits for each door to end after the shutdown signal, logging how it ended.
async fn join_doors(doors: Vec<(&'static str, DoorTask)>) {
    for (name, door) in doors {
        match door.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "{name} failed"),
            Err(error) => tracing::error!(%error, "{name} panicked"),
        }
    }
}

/// One shutdown signal, fanned out to both listeners.
fn fan_out(shutdown: impl Future<Output = ()> + Send + 'static) -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    stop_rx
}

/// Completes when the shutdown signal has fired.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Collects garbage left by a crash at once, then compacts every tenant and collects garbage on
/// every tick of `interval` (when set).
fn spawn_compaction(
    compactor: Arc<strata_cold::Compactor>,
    interval: Option<Duration>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match compactor.collect_garbage().await {
            Ok(report) if report.orphans_deleted > 0 => {
                tracing::info!(
                    orphans = report.orphans_deleted,
                    "collected orphan cold files"
                )
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cold-tier garbage collection failed"),
        }
        let Some(interval) = interval else {
            return;
        };
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            compactor.compact_everything().await;
            if let Err(error) = compactor.collect_garbage().await {
                tracing::warn!(%error, "cold-tier garbage collection failed");
            }
        }
    })
}
