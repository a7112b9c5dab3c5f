use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use strata_advisor::Advisor;
use strata_alerts::AlertService;
use strata_catalog::{
    ColdManifestStore, DynCatalog, SchemaRegistry, SettingsStore, TenantDirectory,
};
use strata_cold::Compactor;
use strata_core::Limits;
use strata_query::QueryEngine;
use strata_sources::Sources;
use strata_storage::HotStore;
use strata_streaming::{LiveQueries, Rollups};
use strata_write::Writer;

use crate::ingest_rate::IngestRate;
use crate::session::SessionStore;

/// Shared by every request handler. Cheap to clone. Handlers reach the catalog only through
/// the role they need (`tenants`, `settings_store`, `schemas`, `manifest`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// The engines the front door calls, built by the node.
pub struct Engines {
    pub catalog: DynCatalog,
    pub hot: Arc<HotStore>,
    pub writer: Arc<Writer>,
    pub query: QueryEngine,
    pub compactor: Arc<Compactor>,
    pub alerts: AlertService,
    pub live: LiveQueries,
    pub rollups: Rollups,
    /// NATS JetStream consumers and MQTT bridges (issue 19).
    pub sources: Sources,
    /// The process's metrics recorder, rendered by `GET /metrics`; `None` when another
    /// recorder owns the process.
    pub telemetry: Option<PrometheusHandle>,
}

struct Inner {
    engines: Engines,
    /// Schema suggestions over the catalog and the query engine's usage.
    advisor: Advisor,
    operator_token: String,
    limits: Limits,
    /// The web app's signed-in browsers (`session.rs`).
    sessions: SessionStore,
    /// Events accepted per tenant over the last minute, for `GET /api/v1/status`.
    ingest_rate: IngestRate,
    /// When this state was built: the server's start, for `GET /metrics`.
    started_at_ms: i64,
}

impl AppState {
    pub fn new(engines: Engines, operator_token: String, limits: Limits) -> Self {
        AppState {
            inner: Arc::new(Inner {
                advisor: Advisor::new(engines.catalog.clone(), engines.query.usage().clone()),
                engines,
                operator_token,
                limits,
                sessions: SessionStore::default(),
                ingest_rate: IngestRate::default(),
                started_at_ms: strata_core::now_ms(),
            }),
        }
    }

    /// Tenants and keys: authentication and the admin routes.
    pub fn tenants(&self) -> &dyn TenantDirectory {
        self.inner.engines.catalog.as_ref()
    }
    /// Per-tenant settings.
    pub fn settings_store(&self) -> &dyn SettingsStore {
        self.inner.engines.catalog.as_ref()
    }
    /// Schema snapshots, changes and history.
    pub fn schemas(&self) -> &dyn SchemaRegistry {
        self.inner.engines.catalog.as_ref()
    }
    /// Cold files and compaction records.
    pub fn manifest(&self) -> &dyn ColdManifestStore {
        self.inner.engines.catalog.as_ref()
    }
    pub fn hot(&self) -> &Arc<HotStore> {
        &self.inner.engines.hot
    }
    pub fn query(&self) -> &QueryEngine {
        &self.inner.engines.query
    }
    pub fn compactor(&self) -> &Arc<Compactor> {
        &self.inner.engines.compactor
    }
    /// Alert rules, channels and silences.
    pub fn alerts(&self) -> &AlertService {
        &self.inner.engines.alerts
    }
    /// Live queries over the committed-event stream.
    pub fn live(&self) -> &LiveQueries {
        &self.inner.engines.live
    }
    /// Continuous aggregates.
    pub fn rollups(&self) -> &Rollups {
        &self.inner.engines.rollups
    }
    /// Sources: external queues and brokers consumed per tenant.
    pub fn sources(&self) -> &Sources {
        &self.inner.engines.sources
    }
    pub fn operator_token(&self) -> &str {
        &self.inner.operator_token
    }
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }
    pub fn writer(&self) -> &Writer {
        &self.inner.engines.writer
    }
    pub fn advisor(&self) -> &Advisor {
        &self.inner.advisor
    }
    pub fn sessions(&self) -> &SessionStore {
        &self.inner.sessions
    }
    pub fn ingest_rate(&self) -> &IngestRate {
        &self.inner.ingest_rate
    }
    pub fn telemetry(&self) -> Option<&PrometheusHandle> {
        self.inner.engines.telemetry.as_ref()
    }
    pub fn started_at_ms(&self) -> i64 {
        self.inner.started_at_ms
    }
}
