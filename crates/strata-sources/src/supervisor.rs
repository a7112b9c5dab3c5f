//! The supervisor: [`Sources`] keeps one task per configured source, started at boot from the
//! catalog and on creation, stopped on deletion and at shutdown. Each task runs its source's
//! connections one after another with a capped exponential backoff between failed ones.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use serde_json::Value;
use strata_catalog::sources::SourceRow;
use strata_catalog::{SettingsStore, SourceRegistry};
use strata_core::TenantId;
use strata_write::Writer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::config::{redacted, SourceConfig};
use crate::seam::{Source, SourceContext, SourceFailure};
use crate::sink::EventSink;
use crate::status::{SourceState, SourceStatus, StatusReport};
use crate::SourceError;

/// How long a stopping source may take to finish the batch it is writing and acknowledge it
/// before its task is aborted (nothing is lost then: the batch is redelivered).
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The longest a deletion waits for the source to clean up on its broker (connect, one
/// request); a broker that is down or slow only leaves its consumer or session behind.
pub const CLEAN_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the running source of a checked configuration; `id` names its default consumer.
pub type SourceFactory = fn(&str, SourceConfig) -> Arc<dyn Source>;

/// Every source of every tenant. Cheap to clone.
#[derive(Clone)]
pub struct Sources {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<dyn SourceRegistry>,
    settings: Arc<dyn SettingsStore>,
    writer: Arc<Writer>,
    factory: SourceFactory,
    running: Mutex<HashMap<String, Running>>,
}

struct Running {
    /// `None` for a stored configuration that no longer parses (nothing ran).
    source: Option<Arc<dyn Source>>,
    status: Arc<SourceStatus>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A source as the API and `strata.sources` show it.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub id: String,
    pub tenant: TenantId,
    pub kind: String,
    /// The configuration without its secrets.
    pub config: Value,
    pub created_at_ms: i64,
    pub status: StatusReport,
}

impl Sources {
    /// Starts every stored source, with the built-in kinds.
    pub async fn start(
        registry: Arc<dyn SourceRegistry>,
        settings: Arc<dyn SettingsStore>,
        writer: Arc<Writer>,
    ) -> Result<Sources, SourceError> {
        Self::start_with(registry, settings, writer, crate::build_source).await
    }

    /// Starts every stored source, built by `factory`.
    pub async fn start_with(
        registry: Arc<dyn SourceRegistry>,
        settings: Arc<dyn SettingsStore>,
        writer: Arc<Writer>,
        factory: SourceFactory,
    ) -> Result<Sources, SourceError> {
        let rows = registry.all_sources().await?;
        let sources = Sources {
            inner: Arc::new(Inner {
                registry,
                settings,
                writer,
                factory,
                running: Mutex::new(HashMap::new()),
            }),
        };
        for row in &rows {
            sources.launch(row);
        }
        if !rows.is_empty() {
            tracing::info!(sources = rows.len(), "sources started");
        }
        Ok(sources)
    }

    /// Checks `body`, stores it and starts consuming. The answer is the new source.
    pub async fn create(&self, tenant: TenantId, body: &Value) -> Result<SourceInfo, SourceError> {
        let config = SourceConfig::parse(body)?;
        let row = self
            .inner
            .registry
            .create_source(tenant, config.kind(), body.clone())
            .await?;
        let status = self.launch(&row);
        tracing::info!(tenant = %tenant, id = %row.id, kind = %row.kind, "source created");
        Ok(info(&row, status.report()))
    }

    /// The tenant's sources with their live status, oldest first.
    pub async fn list(&self, tenant: TenantId) -> Result<Vec<SourceInfo>, SourceError> {
        let rows = self.inner.registry.sources(tenant).await?;
        Ok(rows
            .iter()
            .map(|row| info(row, self.report(&row.id)))
            .collect())
    }

    /// One source of the tenant; another tenant's id is NotFound.
    pub async fn get(&self, tenant: TenantId, id: &str) -> Result<SourceInfo, SourceError> {
        let row = self.inner.registry.source(tenant, id).await?;
        Ok(info(&row, self.report(&row.id)))
    }

    /// Forgets the source, stops its consumer and cleans up what it left on its broker under
    /// a default name ([`Source::clean_up`]); it is not restarted at the next boot.
    pub async fn delete(&self, tenant: TenantId, id: &str) -> Result<(), SourceError> {
        self.inner.registry.delete_source(tenant, id).await?;
        let running = self.lock().remove(id);
        if let Some(mut running) = running {
            let source = running.source.take();
            stop(id, running).await;
            if let Some(source) = source {
                clean_up(id, source.as_ref()).await;
            }
        }
        tracing::info!(tenant = %tenant, id, "source deleted");
        Ok(())
    }

    /// Stops every source (server shutdown): each finishes and acknowledges its batch first.
    pub async fn shutdown(&self) {
        let all: Vec<(String, Running)> = self.lock().drain().collect();
        for (_, running) in &all {
            let _ = running.stop.send(true);
        }
        for (id, running) in all {
            stop(&id, running).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        // Map updates are single inserts and removes: a panic cannot leave one half-done.
        self.inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn report(&self, id: &str) -> StatusReport {
        match self.lock().get(id) {
            Some(running) => running.status.report(),
            None => SourceStatus::stopped().report(),
        }
    }

    /// Starts the task of a stored source; a configuration that no longer parses is shown as
    /// stopped with the reason.
    fn launch(&self, row: &SourceRow) -> Arc<SourceStatus> {
        let status = Arc::new(SourceStatus::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let sink = EventSink::new(self.inner.writer.clone(), row.tenant, status.clone());
        let settings = self.inner.settings.clone();
        let context = SourceContext::new(row.id.clone(), row.tenant, settings, sink, stop_rx);
        let (source, task) = match SourceConfig::parse(&row.config) {
            Ok(config) => {
                let source = (self.inner.factory)(&row.id, config);
                let task = tokio::spawn(supervise(source.clone(), context));
                (Some(source), task)
            }
            Err(error) => {
                status.fail(&format!("stored configuration is invalid: {error}"));
                status.set_state(SourceState::Stopped);
                (None, tokio::spawn(async {}))
            }
        };
        let running = Running {
            source,
            status: status.clone(),
            stop: stop_tx,
            task,
        };
        if let Some(previous) = self.lock().insert(row.id.clone(), running) {
            previous.task.abort();
        }
        status
    }
}

fn info(row: &SourceRow, status: StatusReport) -> SourceInfo {
    SourceInfo {
        id: row.id.clone(),
        tenant: row.tenant,
        kind: row.kind.clone(),
        config: redacted(&row.config),
        created_at_ms: row.created_at_ms,
        status,
    }
}

/// Asks a source to stop and waits for it, at most [`STOP_GRACE`].
async fn stop(id: &str, mut running: Running) {
    let _ = running.stop.send(true);
    if tokio::time::timeout(STOP_GRACE, &mut running.task)
        .await
        .is_err()
    {
        tracing::warn!(id, "source did not stop in time; aborted");
        running.task.abort();
    }
    running.status.set_state(SourceState::Stopped);
}

/// Runs a deleted source's [`Source::clean_up`], at most [`CLEAN_UP_TIMEOUT`]; a failure is
/// logged, never returned (the source is already deleted).
async fn clean_up(id: &str, source: &dyn Source) {
    match tokio::time::timeout(CLEAN_UP_TIMEOUT, source.clean_up()).await {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => {
            tracing::warn!(id, error = %failure, "could not clean up the deleted source's broker state");
        }
        Err(_) => tracing::warn!(
            id,
            timeout = ?CLEAN_UP_TIMEOUT,
            "cleaning up the deleted source's broker state timed out"
        ),
    }
}

/// One source's task: connection after connection until asked to stop, waiting a growing
/// backoff after each failure (reset once a connection got going).
async fn supervise(source: Arc<dyn Source>, mut context: SourceContext) {
    let mut backoff = Backoff::default();
    // The state stays `connecting` until the first connection, and `failed` from a failure
    // until a connection works again.
    while !context.stopping() {
        let result = AssertUnwindSafe(source.run(&mut context))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let text = strata_core::panic_text(panic.as_ref());
                Err(SourceFailure(format!("internal error: {text}")))
            });
        if context.take_connected() {
            backoff.reset();
        }
        let Err(failure) = result else { break };
        if context.stopping() {
            break;
        }
        let wait = backoff.next_wait();
        tracing::warn!(id = context.id(), error = %failure, ?wait, "source failed; retrying");
        context.status().fail(&failure.0);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = context.stopped() => break,
        }
    }
    context.status().set_state(SourceState::Stopped);
}
