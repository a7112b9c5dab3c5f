//! The seam every kind of source implements (NATS JetStream and the MQTT bridge today, Kafka
//! later): [`Source::run`] is one connection's life, and the supervisor owns everything around
//! it (start, stop, backoff between attempts, status).

use std::sync::Arc;

use strata_catalog::{SettingsStore, TenantSettings};
use strata_core::TenantId;
use tokio::sync::watch;

use crate::sink::EventSink;
use crate::status::{SourceState, SourceStatus};

/// Why a connection ended before it was asked to stop. The supervisor records it as the
/// source's last error and tries again after a backoff.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SourceFailure(pub String);

impl SourceFailure {
    /// `what` failed because of `error`, as the status shows it.
    pub fn of(what: &str, error: impl std::fmt::Display) -> Self {
        SourceFailure(format!("{what}: {error}"))
    }
}

/// A kind of source.
///
/// The one rule an implementation keeps: **a message is acknowledged to its broker only after
/// [`EventSink::write_batch`] returned `Ok` for it** (every accepted event fsync'd, every
/// rejection in the error log). A crash before the acknowledgement makes the broker redeliver,
/// and the writer stores an identical event once, so nothing is lost and nothing doubles.
#[async_trait::async_trait]
pub trait Source: Send + Sync + 'static {
    /// Connects, then consumes, writes and acknowledges until `context` asks it to stop
    /// (`Ok`) or the connection fails (`Err`, retried by the supervisor). Calls
    /// [`SourceContext::connected`] once it is ready to consume.
    async fn run(&self, context: &mut SourceContext) -> Result<(), SourceFailure>;

    /// Removes from the broker what the source kept there under the name Strata chose for it
    /// (a JetStream consumer, an MQTT session), once the source is deleted and its connection
    /// closed, so the broker stops keeping messages for a consumer that will never come back.
    /// A name the user gave is theirs and is left alone. Best effort: the supervisor bounds it
    /// by [`crate::CLEAN_UP_TIMEOUT`] and logs a failure; the deletion stands either way.
    async fn clean_up(&self) -> Result<(), SourceFailure> {
        Ok(())
    }
}

/// What a source's connection gets from the supervisor.
pub struct SourceContext {
    id: String,
    tenant: TenantId,
    settings: Arc<dyn SettingsStore>,
    sink: EventSink,
    stop: watch::Receiver<bool>,
    connected: bool,
}

impl SourceContext {
    pub(crate) fn new(
        id: String,
        tenant: TenantId,
        settings: Arc<dyn SettingsStore>,
        sink: EventSink,
        stop: watch::Receiver<bool>,
    ) -> Self {
        SourceContext {
            id,
            tenant,
            settings,
            sink,
            stop,
            connected: false,
        }
    }

    /// The tenant's settings now (the MQTT bridge maps topics by its templates).
    pub async fn tenant_settings(&self) -> Result<TenantSettings, SourceFailure> {
        self.settings
            .settings(self.tenant)
            .await
            .map_err(|e| SourceFailure::of("reading the tenant's settings", e))
    }

    /// The source's id (default consumer and client names derive from it).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn sink(&self) -> &EventSink {
        &self.sink
    }

    pub fn status(&self) -> &Arc<SourceStatus> {
        self.sink.status()
    }

    /// The connection is up and consuming: status `running`, and the next failure waits the
    /// shortest backoff again.
    pub fn connected(&mut self) {
        self.connected = true;
        self.status().set_state(SourceState::Running);
    }

    /// Whether [`SourceContext::connected`] was called since the last call of this.
    pub(crate) fn take_connected(&mut self) -> bool {
        std::mem::take(&mut self.connected)
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Completes once the source is asked to stop (deleted, or the server shuts down).
    pub async fn stopped(&self) {
        let mut stop = self.stop.clone();
        // An error means the supervisor is gone: stop as well.
        let _ = stop.wait_for(|stop| *stop).await;
    }
}
