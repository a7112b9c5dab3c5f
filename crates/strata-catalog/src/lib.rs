//! The schema registry: tenants, API keys, per-tenant settings, metrics, fields, aliases,
//! incoming names with their statistics, the versioned schema history and the cold manifest.
//!
//! Callers depend on role traits only, so a PostgreSQL implementation can replace the embedded
//! [`SqliteCatalog`] without touching them. A backend implements all six; [`Catalog`] is their
//! union and comes for free:
//!
//! | role trait | concern | what a backend promises beyond the shared rules |
//! | --- | --- | --- |
//! | [`TenantDirectory`] | tenants, API keys, secret lookup | secrets stored only as hashes; a revocation is seen by the next `authenticate` |
//! | [`SettingsStore`] | per-tenant settings | an update appends one history version and shows in the next schema snapshot |
//! | [`SchemaRegistry`] | schema snapshots, changes, history | changes serialized per tenant, one dense history version each; snapshots consistent and never older than the caller's own last change |
//! | [`IncomingNames`] | incoming names, their ids and statistics | ids durable before return, dense from 1 per metric, idempotent, never reused |
//! | [`ProfileStore`] | ingest profiles per metric, dismissed schema suggestions | a stored profile is replaced whole |
//! | [`ColdManifestStore`] | cold files, watermarks, purges, compaction log | files and watermark change in one transaction; the watermark never moves backwards |
//! | [`AlertStore`] | alert channels, rules, instance states, history, outbox, silences | a state change and the notifications it calls for commit together |
//! | [`SourceRegistry`] | sources: the external queues and brokers consumed per tenant (issue 19) | ids unguessable and unique across tenants; another tenant's id is NotFound |
//!
//! The shared rules (errors, durability, atomicity, tenancy) are in the [`roles`] module.
//!
//! A consumer holds a [`DynCatalog`] today. To depend on one role only, it narrows the handle by
//! trait upcasting (Rust 1.86+): `let names: Arc<dyn IncomingNames> = catalog.clone();`. Role
//! methods are callable on a `dyn Catalog` without importing the role trait; on a concrete
//! backend such as [`SqliteCatalog`] the role trait must be in scope.

pub mod alerting;
mod error;
pub mod manifest;
mod merge;
mod model;
pub mod roles;
pub mod rollups;
pub mod sources;
mod sqlite;
mod validate;

use std::sync::Arc;

use strata_core::{FieldType, TimestampUnit};

pub use error::CatalogError;
pub use manifest::{
    ColdColumn, ColdFile, ColdManifest, CompactionCommit, CompactionRecord, DeletedMetric,
    NewColdFile, Watermark,
};
pub use model::{
    Field, IncomingName, IncomingStatsDelta, KeyInfo, Metric, NewKey, SchemaVersion, Tenant,
    TenantSchema, TenantSettings,
};
pub use roles::{
    AlertStore, Catalog, ColdManifestStore, IncomingNames, ProfileStore, RollupStore,
    SchemaRegistry, SettingsStore, SourceRegistry, TenantDirectory,
};
pub use sqlite::SqliteCatalog;
pub use validate::{
    MAX_COLD_RETENTION_DAYS, MAX_EXPRESSION_BYTES, MAX_INCOMING_SAMPLES, MAX_METRIC_KEYS,
    MAX_NAMES_PER_FIELD, MAX_NAMES_PER_METRIC, MAX_PATTERN_BYTES, MAX_SAMPLE_BYTES,
    MAX_SERIES_KEYS, MAX_TIMESTAMP_ALIASES, MAX_TIMESTAMP_PATTERNS,
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
    /// MQTT topic templates; an empty list restores the defaults.
    pub mqtt_topics: Option<Vec<String>>,
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
        /// Days of raw data kept (`Some(0)` clears it: the tenant's cold retention alone).
        retention_days: Option<u32>,
        /// How numeric timestamps of later events are read; stored data is not touched.
        timestamp_unit: Option<TimestampUnit>,
    },
    /// Tombstones the metric: its names become free, its rows and data stay.
    DeleteMetric {
        metric: String,
    },
    /// `from` joins `metric` with no data rewrite: its names become aliases of `metric`, its
    /// fields join `metric`'s fields of the same names (or are added), and `metric`'s table reads
    /// the rows and files of both. Conflict, with the clash named, when names would clash.
    MergeMetric {
        metric: String,
        from: String,
    },
    /// PUT semantics: creates the field, or sets type/hidden on the field already named `field`
    /// and appends aliases it does not have yet.
    DeclareField {
        metric: String,
        field: String,
        field_type: Option<FieldType>,
        aliases: Vec<String>,
        hidden: bool,
        /// A derived field: the SQL expression over other fields it is computed from on read
        /// (`None`: a stored field; redeclaring without one makes a derived field stored).
        /// The query engine checks that it plans before the change is applied.
        expression: Option<String>,
        /// Name of the field -> the SQL expression its values are converted by on read. The
        /// whole set: names not listed carry none. The query engine checks each before the
        /// change is applied.
        conversions: std::collections::BTreeMap<String, String>,
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
    /// Drops a field (or an unknown field's incoming name): hidden at once with no undo window,
    /// so the compactor purges its data at its next run. Declaring it visible again shows only
    /// what is sent afterwards.
    DropField {
        metric: String,
        field: String,
    },
}
