use std::sync::Arc;

use strata_catalog::{
    ColdManifestStore, DynCatalog, SchemaRegistry, SettingsStore, TenantDirectory,
};
use strata_cold::Compactor;
use strata_core::Limits;
use strata_query::QueryEngine;
use strata_storage::HotStore;
use strata_write::Writer;

/// Shared by every request handler. Cheap to clone. Handlers reach the catalog only through
/// the role they need (`tenants`, `settings_store`, `schemas`, `manifest`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: DynCatalog,
    hot: Arc<HotStore>,
    writer: Arc<Writer>,
    query: QueryEngine,
    compactor: Arc<Compactor>,
    operator_token: String,
    limits: Limits,
}

impl AppState {
    pub fn new(
        catalog: DynCatalog,
        hot: Arc<HotStore>,
        writer: Arc<Writer>,
        query: QueryEngine,
        compactor: Arc<Compactor>,
        operator_token: String,
        limits: Limits,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                catalog,
                hot,
                writer,
                query,
                compactor,
                operator_token,
                limits,
            }),
        }
    }

    /// Tenants and keys: authentication and the admin routes.
    pub fn tenants(&self) -> &dyn TenantDirectory {
        self.inner.catalog.as_ref()
    }
    /// Per-tenant settings.
    pub fn settings_store(&self) -> &dyn SettingsStore {
        self.inner.catalog.as_ref()
    }
    /// Schema snapshots, changes and history.
    pub fn schemas(&self) -> &dyn SchemaRegistry {
        self.inner.catalog.as_ref()
    }
    /// Cold files and compaction records.
    pub fn manifest(&self) -> &dyn ColdManifestStore {
        self.inner.catalog.as_ref()
    }
    pub fn hot(&self) -> &Arc<HotStore> {
        &self.inner.hot
    }
    pub fn query(&self) -> &QueryEngine {
        &self.inner.query
    }
    pub fn compactor(&self) -> &Arc<Compactor> {
        &self.inner.compactor
    }
    pub fn operator_token(&self) -> &str {
        &self.inner.operator_token
    }
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }
    pub fn writer(&self) -> &Writer {
        &self.inner.writer
    }
}
