//! The schema registry: tenants, API keys, per-tenant settings, metrics, fields, aliases,
//! incoming names with their statistics, and the versioned schema history.
//!
//! Callers depend on the [`Catalog`] trait only, so a PostgreSQL implementation can replace the
//! embedded [`SqliteCatalog`] without touching them.

pub mod cold;
mod error;
mod model;
mod sqlite;
mod validate;

use std::collections::HashSet;
use std::sync::Arc;

use strata_core::{FieldType, MetricId, NameId, Role, TenantId};

pub use cold::{
    ColdColumn, ColdFile, ColdManifest, CompactionCommit, CompactionRecord, DeletedMetric,
    NewColdFile, Watermark,
};
pub use error::CatalogError;
pub use model::{
    Field, IncomingName, IncomingStatsDelta, KeyInfo, Metric, NewKey, SchemaVersion, Tenant,
    TenantSchema, TenantSettings,
};
pub use sqlite::SqliteCatalog;
pub use validate::{
    MAX_COLD_RETENTION_DAYS, MAX_INCOMING_SAMPLES, MAX_METRIC_KEYS, MAX_NAMES_PER_FIELD,
    MAX_NAMES_PER_METRIC, MAX_PATTERN_BYTES, MAX_SAMPLE_BYTES, MAX_SERIES_KEYS,
    MAX_TIMESTAMP_ALIASES, MAX_TIMESTAMP_PATTERNS,
};

/// The catalog as callers hold it.
pub type DynCatalog = Arc<dyn Catalog>;

/// The metric key every tenant starts with: events name their metric under this key.
pub const DEFAULT_METRIC_KEY: &str = "metrictype";

/// A partial update of [`TenantSettings`]; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsPatch {
    pub metric_keys: Option<Vec<String>>,
    pub timestamp_patterns: Option<Vec<String>>,
    /// Days of cold data to keep; 0 keeps it forever.
    pub cold_retention_days: Option<u32>,
}

/// One schema mutation. Every successful one appends exactly one [`SchemaVersion`].
#[derive(Debug, Clone)]
pub enum SchemaChange {
    CreateMetric {
        name: String,
        aliases: Vec<String>,
    },
    /// `metric` is any live name of the metric. Renaming keeps the old display name as an alias.
    UpdateMetric {
        metric: String,
        rename_to: Option<String>,
        add_aliases: Vec<String>,
        remove_aliases: Vec<String>,
        timestamp_aliases: Option<Vec<String>>,
        timestamp_patterns: Option<Vec<String>>,
        series_keys: Option<Vec<String>>,
    },
    /// Tombstones the metric: its names become free, its rows and data stay.
    DeleteMetric {
        metric: String,
    },
    /// PUT semantics: creates the field, or sets type/hidden on the field already named `field`
    /// and appends aliases it does not have yet.
    DeclareField {
        metric: String,
        field: String,
        field_type: Option<FieldType>,
        aliases: Vec<String>,
        hidden: bool,
    },
    /// Rename changes only the display name; precedence of names never changes.
    UpdateField {
        metric: String,
        field: String,
        rename_to: Option<String>,
        field_type: Option<FieldType>,
        add_aliases: Vec<String>,
        remove_aliases: Vec<String>,
        hidden: Option<bool>,
    },
}

#[async_trait::async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Creates a tenant and its first admin key. Conflict if the name exists.
    async fn create_tenant(&self, name: &str) -> Result<(Tenant, NewKey), CatalogError>;
    async fn tenant(&self, id: TenantId) -> Result<Tenant, CatalogError>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, CatalogError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, CatalogError>;

    /// A new key; its secret is returned once and stored only as a SHA-256 hash.
    async fn create_key(&self, tenant: TenantId, role: Role) -> Result<NewKey, CatalogError>;
    /// Active keys of the tenant, without secrets.
    async fn list_keys(&self, tenant: TenantId) -> Result<Vec<KeyInfo>, CatalogError>;
    /// NotFound unless `key_id` is an active key of this tenant.
    async fn revoke_key(&self, tenant: TenantId, key_id: &str) -> Result<(), CatalogError>;
    /// `None` when the secret is unknown or revoked.
    async fn authenticate(&self, secret: &str) -> Result<Option<(Tenant, KeyInfo)>, CatalogError>;

    async fn settings(&self, tenant: TenantId) -> Result<TenantSettings, CatalogError>;
    async fn update_settings(
        &self,
        tenant: TenantId,
        patch: SettingsPatch,
    ) -> Result<TenantSettings, CatalogError>;

    /// A cached snapshot of the tenant's live schema; every mutation invalidates it.
    async fn schema(&self, tenant: TenantId) -> Result<Arc<TenantSchema>, CatalogError>;
    async fn apply(
        &self,
        tenant: TenantId,
        change: SchemaChange,
    ) -> Result<SchemaVersion, CatalogError>;
    /// The live metric named `name` (display name or alias), created on first sight.
    async fn ensure_metric(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Arc<Metric>, CatalogError>;
    async fn history(&self, tenant: TenantId) -> Result<Vec<SchemaVersion>, CatalogError>;

    /// Ids of the keys devices sent, in input order; idempotent, durable before return, dense
    /// from 1 per metric.
    async fn register_incoming_names(
        &self,
        tenant: TenantId,
        metric: MetricId,
        names: &[String],
    ) -> Result<Vec<NameId>, CatalogError>;
    /// Merges the deltas in one transaction.
    async fn record_incoming_stats(
        &self,
        tenant: TenantId,
        deltas: Vec<IncomingStatsDelta>,
    ) -> Result<(), CatalogError>;

    /// A metric's live cold files and watermark, from one consistent read.
    async fn cold_manifest(
        &self,
        tenant: TenantId,
        metric: MetricId,
    ) -> Result<ColdManifest, CatalogError>;
    /// Adds files, retires files and moves the watermark in one transaction. The watermark never
    /// moves backwards, and a file to retire must still be live (else Conflict).
    async fn commit_compaction(&self, commit: CompactionCommit) -> Result<(), CatalogError>;
    /// Every path the catalog knows, live or retired and not yet forgotten: anything else under
    /// the cold root is an orphan.
    async fn cold_paths(&self) -> Result<HashSet<String>, CatalogError>;
    /// Files retired before `retired_before_ms`, whose objects may now be deleted.
    async fn retired_cold_files(
        &self,
        retired_before_ms: i64,
    ) -> Result<Vec<ColdFile>, CatalogError>;
    /// Drops retired files from the catalog once their objects are deleted.
    async fn forget_cold_files(&self, ids: &[i64]) -> Result<(), CatalogError>;
    /// Retires a metric's live files of days before `before_day_ms` (cold retention, purges).
    async fn retire_cold_files(
        &self,
        tenant: TenantId,
        metric: MetricId,
        before_day_ms: i64,
    ) -> Result<u64, CatalogError>;
    /// Metrics deleted at or before `deleted_before_ms` whose data is not purged yet.
    async fn metrics_to_purge(
        &self,
        deleted_before_ms: i64,
    ) -> Result<Vec<DeletedMetric>, CatalogError>;
    /// After the hot rows of a deleted metric are gone: retires all its cold files and marks it
    /// purged, in one transaction. NotFound unless the metric is deleted and not yet purged.
    async fn mark_metric_purged(
        &self,
        tenant: TenantId,
        metric: MetricId,
    ) -> Result<u64, CatalogError>;
    async fn record_compaction(&self, record: CompactionRecord) -> Result<(), CatalogError>;
    async fn last_compaction(
        &self,
        tenant: TenantId,
    ) -> Result<Option<CompactionRecord>, CatalogError>;
}
