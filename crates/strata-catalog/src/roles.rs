//! The role traits a catalog backend implements, and [`Catalog`], their union.
//!
//! Each trait is one concern a consumer can depend on alone. What every backend must promise,
//! whatever it stores in:
//!
//! - **Errors.** `NotFound`, `Conflict` and `Invalid` carry a message for the end user;
//!   `Internal` is a storage failure whose details go to the log only (never a path).
//! - **Durability.** A method that changes state returns only after the change is committed
//!   durably (the SQLite backend runs `synchronous=FULL`): callers store data under returned ids
//!   and acknowledge writes on the strength of it.
//! - **Atomicity.** Every changing method is one transaction: it happens completely or not at
//!   all, and readers never see half of it.
//! - **Tenancy.** A method given a tenant never reads or changes another tenant's rows, and a
//!   metric id of another tenant is NotFound, exactly as an unknown one.

use std::collections::HashSet;
use std::sync::Arc;

use strata_core::{MetricId, NameId, Role, TenantId};

use crate::alerting::{
    AlertChanges, ChannelRow, DeliveryOutcome, InstanceRow, NewRule, NotificationRow, RuleRow,
    SilenceRow,
};
use crate::rollups::{Backfill, RollupCommit, RollupRow, RollupVersion};
use crate::sources::SourceRow;
use crate::{
    CatalogError, ColdFile, ColdManifest, CompactionCommit, CompactionRecord, DeletedMetric,
    IncomingStatsDelta, KeyInfo, Metric, NewKey, SchemaChange, SchemaVersion, SettingsPatch,
    Tenant, TenantSchema, TenantSettings,
};

/// Tenants, their API keys and the lookup from a presented secret to a tenant.
///
/// A backend stores only a hash of each secret. A revocation is seen by every later
/// `authenticate` of the same catalog handle (a cache must be invalidated before `revoke_key`
/// returns); `last_used_at` is bookkeeping and may lag or be lost.
#[async_trait::async_trait]
pub trait TenantDirectory: Send + Sync + 'static {
    /// Creates a tenant and its first admin key. Conflict if the name exists.
    async fn create_tenant(&self, name: &str) -> Result<(Tenant, NewKey), CatalogError>;
    async fn tenant(&self, id: TenantId) -> Result<Tenant, CatalogError>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>, CatalogError>;
    /// Every tenant, ordered by id.
    async fn list_tenants(&self) -> Result<Vec<Tenant>, CatalogError>;

    /// A new key; its secret is returned once and stored only as a SHA-256 hash.
    async fn create_key(&self, tenant: TenantId, role: Role) -> Result<NewKey, CatalogError>;
    /// Active keys of the tenant, without secrets.
    async fn list_keys(&self, tenant: TenantId) -> Result<Vec<KeyInfo>, CatalogError>;
    /// NotFound unless `key_id` is an active key of this tenant.
    async fn revoke_key(&self, tenant: TenantId, key_id: &str) -> Result<(), CatalogError>;
    /// `None` when the secret is unknown or revoked.
    async fn authenticate(&self, secret: &str) -> Result<Option<(Tenant, KeyInfo)>, CatalogError>;
}

/// Per-tenant settings (metric keys, timestamp patterns, cold retention).
///
/// An update appends one [`SchemaVersion`] to the tenant's history in the same transaction, and
/// the next [`SchemaRegistry::schema`] shows the new `cold_retention_days`.
#[async_trait::async_trait]
pub trait SettingsStore: Send + Sync + 'static {
    async fn settings(&self, tenant: TenantId) -> Result<TenantSettings, CatalogError>;
    async fn update_settings(
        &self,
        tenant: TenantId,
        patch: SettingsPatch,
    ) -> Result<TenantSettings, CatalogError>;
}

/// The live schema of each tenant, its changes and their history.
///
/// Changes of one tenant are serialized: history versions are dense from 1 and ordered as the
/// changes committed, and each check inside a change sees the state it changes. A snapshot is
/// read in one consistent read and is never older than a change committed through the same
/// handle before the call.
#[async_trait::async_trait]
pub trait SchemaRegistry: Send + Sync + 'static {
    /// A cached snapshot of the tenant's live schema; every mutation invalidates it.
    async fn schema(&self, tenant: TenantId) -> Result<Arc<TenantSchema>, CatalogError>;
    /// Applies one change; every successful one appends exactly one history version.
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
    /// Every version of the tenant's schema history, oldest first.
    async fn history(&self, tenant: TenantId) -> Result<Vec<SchemaVersion>, CatalogError>;
}

/// The keys devices sent for each metric (incoming names), their ids and statistics.
///
/// Ids are the storage identity of data: once returned they are durable, never change and are
/// never reused, even across a crash.
#[async_trait::async_trait]
pub trait IncomingNames: Send + Sync + 'static {
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
}

/// What ingest profiled of each metric, the schema suggestions an admin dismissed, and how
/// queries used each tenant's fields.
///
/// A profile is an opaque document to the catalog: the write path decodes, merges and encodes
/// it, and it is the only writer, so a read-merge-store needs no transaction around it.
#[async_trait::async_trait]
pub trait ProfileStore: Send + Sync + 'static {
    /// One metric's stored profile, if any.
    async fn metric_profile(
        &self,
        tenant: TenantId,
        metric: MetricId,
    ) -> Result<Option<String>, CatalogError>;
    /// Every stored profile of the tenant's metrics, deleted ones included.
    async fn metric_profiles(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<(MetricId, String)>, CatalogError>;
    /// Replaces one metric's profile.
    async fn store_metric_profile(
        &self,
        tenant: TenantId,
        metric: MetricId,
        profile: String,
    ) -> Result<(), CatalogError>;
    /// Records that a suggestion was dismissed for good; idempotent.
    async fn dismiss_suggestion(&self, tenant: TenantId, id: &str) -> Result<(), CatalogError>;
    /// Every suggestion id the tenant dismissed.
    async fn dismissed_suggestions(&self, tenant: TenantId) -> Result<Vec<String>, CatalogError>;
    /// Every tenant's saved query usage (an opaque document the query engine encodes).
    async fn query_usages(&self) -> Result<Vec<(TenantId, String)>, CatalogError>;
    /// Replaces one tenant's saved query usage.
    async fn store_query_usage(&self, tenant: TenantId, usage: String) -> Result<(), CatalogError>;
}

/// The cold tier's bookkeeping: live and retired files, each metric's watermark, purges of
/// deleted metrics and the compaction log.
///
/// Files and watermark change together in one transaction, so a reader sees a manifest from
/// before or after a commit, never a mix; the watermark never moves backwards.
#[async_trait::async_trait]
pub trait ColdManifestStore: Send + Sync + 'static {
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
    /// The tenant's most recently recorded compaction.
    async fn last_compaction(
        &self,
        tenant: TenantId,
    ) -> Result<Option<CompactionRecord>, CatalogError>;
}

/// Alert channels, rules, instance states, history, the notification outbox and silences.
///
/// A rule's channels must exist, and a channel named by a rule cannot be deleted (Conflict).
/// [`AlertStore::commit_alert_changes`] writes state changes, their history and the
/// notifications they call for in one transaction, so a crash never leaves a state change
/// without its notification (DESIGN.md invariant 8).
#[async_trait::async_trait]
pub trait AlertStore: Send + Sync + 'static {
    /// Conflict if the name exists; Invalid over the tenant's channel limit.
    async fn create_channel(&self, channel: ChannelRow) -> Result<(), CatalogError>;
    async fn channels(&self, tenant: TenantId) -> Result<Vec<ChannelRow>, CatalogError>;
    /// NotFound if unknown; Conflict while a rule names it.
    async fn delete_channel(&self, tenant: TenantId, name: &str) -> Result<(), CatalogError>;

    /// Conflict if the name exists; Invalid for an unknown channel or over the rule limit.
    async fn create_rule(&self, tenant: TenantId, rule: NewRule) -> Result<RuleRow, CatalogError>;
    /// Every tenant's rules (startup), ordered by id.
    async fn all_rules(&self) -> Result<Vec<RuleRow>, CatalogError>;
    /// Deletes the rule and its instances; its outbox rows stay and are still delivered.
    async fn delete_rule(&self, tenant: TenantId, name: &str) -> Result<(), CatalogError>;
    /// Every instance of every rule (startup).
    async fn all_instances(&self) -> Result<Vec<InstanceRow>, CatalogError>;
    /// The tenant's instances with their rule's name and kind, ordered by rule then labels.
    async fn tenant_instances(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<(String, String, InstanceRow)>, CatalogError>;
    /// One evaluation's changes in one transaction. A notification with a group window joins
    /// the open pending row of the same rule, channel and state instead of adding one.
    async fn commit_alert_changes(&self, changes: AlertChanges) -> Result<(), CatalogError>;
    /// The tenant's latest transitions, newest last, at most `limit`.
    async fn alert_history(
        &self,
        tenant: TenantId,
        limit: u32,
    ) -> Result<Vec<crate::alerting::HistoryRow>, CatalogError>;

    /// Pending deliveries whose time has come (group window closed, backoff elapsed), in the
    /// order they were written; a row waits while an older transition of the same rule and
    /// channel is still pending, so receivers see each rule's transitions in order.
    async fn due_notifications(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, CatalogError>;
    async fn finish_delivery(
        &self,
        id: &str,
        channel: &str,
        outcome: DeliveryOutcome,
    ) -> Result<(), CatalogError>;
    /// The tenant's latest notifications, newest last, at most `limit`.
    async fn notifications(
        &self,
        tenant: TenantId,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, CatalogError>;

    /// Invalid over the tenant's silence limit.
    async fn create_silence(&self, silence: SilenceRow) -> Result<(), CatalogError>;
    /// Every tenant's silences that have not ended before `now_ms`.
    async fn live_silences(&self, now_ms: i64) -> Result<Vec<SilenceRow>, CatalogError>;
    async fn silences(&self, tenant: TenantId) -> Result<Vec<SilenceRow>, CatalogError>;
    /// NotFound if unknown.
    async fn delete_silence(&self, tenant: TenantId, id: &str) -> Result<(), CatalogError>;
}

/// Rollups: definitions, versions, backfill positions, watermarks and buckets.
///
/// A name is unique among the tenant's rollups and metric names alike: creating a metric (or an
/// alias) under a rollup's name is a Conflict, so writes never reach a rollup. A commit for a
/// version that is no longer maintained (altered or deleted meanwhile) is NotFound and changes
/// nothing.
#[async_trait::async_trait]
pub trait RollupStore: Send + Sync + 'static {
    /// A new rollup whose first version is pending with `backfill`. Conflict if the name is a
    /// rollup's or a metric's; Invalid past [`crate::rollups::MAX_ROLLUPS_PER_TENANT`].
    async fn create_rollup(
        &self,
        tenant: TenantId,
        name: &str,
        version: RollupVersion,
        backfill: Backfill,
    ) -> Result<RollupRow, CatalogError>;
    /// NotFound if unknown.
    async fn rollup(&self, tenant: TenantId, name: &str) -> Result<RollupRow, CatalogError>;
    /// The tenant's rollups by name.
    async fn rollups(&self, tenant: TenantId) -> Result<Vec<RollupRow>, CatalogError>;
    /// Every tenant's rollups (for maintenance at startup).
    async fn all_rollups(&self) -> Result<Vec<RollupRow>, CatalogError>;
    /// Starts a new pending version (`version` is ignored: the next number is taken), dropping
    /// an unfinished one; the served version stays what queries read until it completes.
    async fn restart_rollup(
        &self,
        tenant: TenantId,
        name: &str,
        version: RollupVersion,
        backfill: Backfill,
    ) -> Result<RollupRow, CatalogError>;
    /// NotFound if unknown; removes its buckets too.
    async fn delete_rollup(&self, tenant: TenantId, name: &str) -> Result<(), CatalogError>;
    /// NotFound (and nothing changes) if one of its versions is neither served nor pending.
    async fn commit_rollup(&self, commit: RollupCommit) -> Result<(), CatalogError>;
    /// Records (or clears) why maintenance stopped.
    async fn set_rollup_error(
        &self,
        rollup: i64,
        error: Option<String>,
    ) -> Result<(), CatalogError>;
    /// The buckets of one version starting in `[from_ms, to_ms)`, in time order.
    async fn rollup_buckets(
        &self,
        rollup: i64,
        version: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, CatalogError>;
}

/// Sources (issue 19): the external queues and brokers a tenant's events are consumed from.
/// Only configuration is kept here; a consumer's status and counts live with the consumer.
///
/// Ids are random and unique across tenants; another tenant's id is NotFound, exactly as an
/// unknown one.
#[async_trait::async_trait]
pub trait SourceRegistry: Send + Sync + 'static {
    /// A new source with a fresh id. Invalid past [`crate::sources::MAX_SOURCES_PER_TENANT`].
    async fn create_source(
        &self,
        tenant: TenantId,
        kind: &str,
        config: serde_json::Value,
    ) -> Result<SourceRow, CatalogError>;
    /// NotFound if unknown to this tenant.
    async fn source(&self, tenant: TenantId, id: &str) -> Result<SourceRow, CatalogError>;
    /// The tenant's sources, oldest first.
    async fn sources(&self, tenant: TenantId) -> Result<Vec<SourceRow>, CatalogError>;
    /// Every tenant's sources (started at boot), oldest first.
    async fn all_sources(&self) -> Result<Vec<SourceRow>, CatalogError>;
    /// NotFound if unknown to this tenant.
    async fn delete_source(&self, tenant: TenantId, id: &str) -> Result<(), CatalogError>;
}

/// The whole catalog: every role at once. Implemented for anything that implements all the
/// roles, so a backend implements the role traits and never this one.
///
/// A consumer that needs one role can narrow a [`crate::DynCatalog`] by trait upcasting
/// (Rust 1.86+): `let cold: Arc<dyn ColdManifestStore> = catalog.clone();`.
pub trait Catalog:
    TenantDirectory
    + SettingsStore
    + SchemaRegistry
    + IncomingNames
    + ProfileStore
    + ColdManifestStore
    + AlertStore
    + RollupStore
    + SourceRegistry
{
}

impl<T> Catalog for T where
    T: TenantDirectory
        + SettingsStore
        + SchemaRegistry
        + IncomingNames
        + ProfileStore
        + ColdManifestStore
        + AlertStore
        + RollupStore
        + SourceRegistry
        + ?Sized
{
}
