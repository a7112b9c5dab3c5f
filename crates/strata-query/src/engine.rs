//! The query engine: builds per-tenant DataFusion sessions (memory pool, functions, metric
//! tables, system tables, `strata_raw`) from one read of the tenant's schema.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use strata_catalog::{
    AlertStore, ColdManifestStore, DynCatalog, RollupStore, SchemaRegistry, TenantSchema,
};
use strata_cold::ColdAccess;
use strata_core::TenantId;
use strata_format::model::{MetricModel, TableAliases};
use strata_storage::HotStore;

use crate::error::QueryError;
use crate::federated::{ColdContext, TierPreference};
use crate::rewrite::{AliasResolver, CATALOG_NAME, METRIC_SCHEMA};
use crate::rollup_table::{
    RollupRefresh, RollupRefreshSlot, RollupRouting, RollupRoutingSlot, RollupTable,
    RollupsSystemTable, RoutableRollup,
};
use crate::runtime::QueryRuntime;
use crate::session::{Planner, TenantSession};
use crate::system::{ErrorsTable, UnknownFieldsTable};
use crate::system_alerts::{AlertTable, AlertTableKind};
use crate::system_sources::{SourceListing, SourceListingSlot, SourcesTable};
use crate::table::{MetricTable, RawFunction};

/// Schema holding the system tables.
pub const SYSTEM_SCHEMA: &str = "strata";
pub use crate::limits::MAX_SQL_BYTES;

#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Memory one session's queries may hold at once (sorts, joins, aggregations). Spilling to
    /// disk is disabled, so a query needing more fails with `ResourcesExhausted`.
    pub memory_limit_bytes: usize,
    /// Wall-clock limit for planning plus the whole result stream.
    pub timeout: Duration,
    /// Rows per Arrow batch.
    pub batch_size: usize,
    /// How federated scans split a range between the tiers.
    pub tier_preference: TierPreference,
    /// Worker threads of the dedicated query runtime (`runtime.rs`).
    pub threads: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            memory_limit_bytes: 512 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            batch_size: 8192,
            tier_preference: TierPreference::Cost,
            // Every core: the query threads' lower priority, not their number, is what keeps
            // ingest responsive, and analytics on an idle server use the whole machine.
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// The catalog roles queries read, and no others: no keys, no settings, no writes.
#[derive(Clone)]
pub struct QueryCatalog {
    /// Each session's tables and alias rewrite come from one snapshot of this.
    pub schemas: Arc<dyn SchemaRegistry>,
    /// Cold files and watermarks, read once per metric scan.
    pub manifest: Arc<dyn ColdManifestStore>,
    /// Alert instances, history and notifications for the `strata.alert*` and
    /// `strata.notifications` tables; `None` leaves those tables out.
    pub alerts: Option<Arc<dyn AlertStore>>,
    /// Rollups, each a table of its served version, and `strata.rollups`; `None` leaves them
    /// out.
    pub rollups: Option<Arc<dyn RollupStore>>,
}

impl From<DynCatalog> for QueryCatalog {
    fn from(catalog: DynCatalog) -> Self {
        QueryCatalog {
            schemas: catalog.clone(),
            manifest: catalog.clone(),
            alerts: Some(catalog.clone()),
            rollups: Some(catalog),
        }
    }
}

/// Builds per-tenant sessions. Cheap to clone.
#[derive(Clone)]
pub struct QueryEngine {
    catalog: QueryCatalog,
    hot: Arc<HotStore>,
    cold: Option<ColdAccess>,
    config: QueryConfig,
    /// `None` only when the query threads could not be started; queries then run on the
    /// caller's runtime (logged at startup).
    runtime: Option<QueryRuntime>,
    /// Brings rollups up to date before a query reads one.
    rollup_refresh: RollupRefreshSlot,
    /// Answers queries over raw data from rollups where one gives the same answer.
    rollup_routing: RollupRoutingSlot,
    /// The sources' live status for `strata.sources`; unset, the table is left out.
    source_listing: SourceListingSlot,
    /// What queries read, filter on and failed to find (schema suggestions read it).
    usage: Arc<crate::usage::QueryUsage>,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine")
            .field("config", &self.config)
            .finish()
    }
}

impl QueryEngine {
    pub fn new(catalog: impl Into<QueryCatalog>, hot: Arc<HotStore>, config: QueryConfig) -> Self {
        let runtime = QueryRuntime::start(config.threads)
            .inspect_err(|error| {
                tracing::error!(%error, "queries will share the request threads");
            })
            .ok();
        QueryEngine {
            catalog: catalog.into(),
            hot,
            cold: None,
            config,
            runtime,
            rollup_refresh: RollupRefreshSlot::default(),
            rollup_routing: RollupRoutingSlot::default(),
            source_listing: SourceListingSlot::default(),
            usage: Arc::default(),
        }
    }

    /// How this engine's queries used each tenant's fields since the process started.
    pub fn usage(&self) -> &Arc<crate::usage::QueryUsage> {
        &self.usage
    }

    /// Called once by the rollup service: from then on a scan of a rollup first asks it to
    /// reflect every acknowledged write. A second call changes nothing.
    pub fn set_rollup_refresh(&self, refresh: Arc<dyn RollupRefresh>) {
        let _ = self.rollup_refresh.set(refresh);
    }

    /// Called once by the rollup service: from then on queries (not live queries or rollup
    /// maintenance, which must read raw rows) are routed to rollups that answer them exactly.
    pub fn set_rollup_routing(&self, routing: Arc<dyn RollupRouting>) {
        let _ = self.rollup_routing.set(routing);
    }

    /// Called once by the node: from then on sessions have `strata.sources`. A second call
    /// changes nothing.
    pub fn set_source_listing(&self, listing: Arc<dyn SourceListing>) {
        let _ = self.source_listing.set(listing);
    }

    /// Makes every session read the cold tier too (compacted rows, federated plans).
    pub fn with_cold(mut self, cold: ColdAccess) -> Self {
        self.cold = Some(cold);
        self
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// A fresh session that sees only `tenant`: catalog `strata`, schema `public` with every
    /// metric under its display name and each alias, schema `strata` with the system tables,
    /// `information_schema`, and the `strata_raw` table function. Built from one read of the
    /// catalog's current schema (tables and alias rewrite alike), so every schema change is
    /// visible to the next session.
    pub async fn session(&self, tenant: TenantId) -> Result<TenantSession, QueryError> {
        self.session_upto(tenant, None).await
    }

    /// [`QueryEngine::session`] whose metric tables leave out hot rows committed after
    /// `upto_seq` (all rows with `None`): a live query's first answer ends exactly where the
    /// committed-event stream it follows begins.
    pub async fn session_upto(
        &self,
        tenant: TenantId,
        upto_seq: Option<u64>,
    ) -> Result<TenantSession, QueryError> {
        let schema = self.catalog.schemas.schema(tenant).await.map_err(|e| {
            tracing::error!(error = %e, "reading the tenant schema for a query session");
            QueryError::Internal("could not read the tenant's schema".to_string())
        })?;
        let runtime = self.runtime_env()?;
        let cold = self.cold.as_ref().map(|access| {
            runtime.register_object_store(access.url.as_ref(), access.store.clone());
            ColdContext {
                manifest: self.catalog.manifest.clone(),
                access: access.clone(),
                preference: self.config.tier_preference,
                retention_days: schema.cold_retention_days,
            }
        });
        let mut ctx = self.context(runtime);
        let (mut resolver, by_name) =
            self.register_metrics(&mut ctx, tenant, &schema, &cold, upto_seq)?;
        let routable = self.register_rollups(&ctx, &mut resolver, tenant).await?;
        self.register_system_tables(&ctx, tenant, &schema)?;
        let usage = crate::usage::SessionUsage {
            usage: self.usage.clone(),
            tenant,
            metrics: by_name
                .iter()
                .map(|(name, model)| (name.clone(), model.id))
                .collect(),
        };
        ctx.register_udtf(
            crate::rewrite::RAW_FUNCTION,
            Arc::new(RawFunction::new(tenant, by_name, self.hot.clone(), cold)),
        );
        // Live queries and maintenance read up to a sequence number: raw rows, never a rollup.
        let routing = match (upto_seq, self.rollup_routing.get()) {
            (None, Some(router)) if !routable.is_empty() => Some(crate::session::Routing {
                tenant,
                router: router.clone(),
                rollups: routable,
            }),
            _ => None,
        };
        let planner = Planner {
            ctx,
            resolver: Arc::new(resolver),
            usage: Some(usage),
            routing,
        };
        Ok(TenantSession::new(
            planner,
            self.config.timeout,
            self.runtime.clone(),
        ))
    }

    /// Whether `expression` may define field `field` of `metric` (declared as `field_type`): it
    /// parses, every name in it resolves, it plans over the metric's columns, and no derived
    /// fields read each other in a cycle. The schema path calls this before applying the
    /// declaration; the error names the place (`QueryError::Sql`, HTTP 400).
    pub async fn check_derived(
        &self,
        tenant: TenantId,
        metric: &str,
        field: &str,
        field_type: Option<strata_core::FieldType>,
        expression: &str,
    ) -> Result<(), QueryError> {
        let schema = self.catalog.schemas.schema(tenant).await.map_err(|e| {
            tracing::error!(error = %e, "reading the tenant schema for a derived field");
            QueryError::Internal("could not read the tenant's schema".to_string())
        })?;
        // An unknown metric is the catalog's 404, which the declaration itself reports.
        let Some(found) = schema.metric(metric) else {
            return Ok(());
        };
        let mut changed = found.as_ref().clone();
        let display = crate::derived::define(&mut changed, field, field_type, expression);
        let members: Vec<&strata_catalog::Metric> =
            schema.merged_into(found.id).map(|m| m.as_ref()).collect();
        let (mut model, _) = strata_format::merged::merged_models(&changed, &members);
        let ctx = self.context(self.runtime_env()?);
        let (_, failures) = crate::derived::resolve(&mut model, &ctx.state());
        match failures
            .into_iter()
            .find(|failure| failure.field == display)
        {
            Some(failure) => Err(QueryError::Sql(failure.to_string())),
            None => Ok(()),
        }
    }

    /// The session's memory pool (the per-session limit) with spilling disabled.
    fn runtime_env(&self) -> Result<Arc<RuntimeEnv>, QueryError> {
        let limit = self.config.memory_limit_bytes.max(1);
        let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
            GreedyMemoryPool::new(limit),
            NonZeroUsize::MIN.saturating_add(2),
        ));
        Ok(RuntimeEnvBuilder::new()
            .with_memory_pool(pool)
            // No temp files: a query that does not fit in memory fails instead of spilling.
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()?)
    }

    /// A DataFusion context with Strata's configuration, functions and rewrites.
    fn context(&self, runtime: Arc<RuntimeEnv>) -> SessionContext {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG_NAME, METRIC_SCHEMA)
            .with_create_default_catalog_and_schema(true)
            .with_information_schema(true)
            .with_batch_size(self.config.batch_size.max(1));
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(crate::yielding::YieldingJoins))
            .build();
        let mut ctx = SessionContext::new_with_state(state);
        for function in crate::utc_time::utc_fast_path_functions() {
            ctx.register_udf(function);
        }
        for function in crate::server_info::server_info_functions() {
            ctx.register_udf(function);
        }
        let output_limit = output_limit_bytes(self.config.memory_limit_bytes.max(1));
        for function in crate::bounded::output_bounded_functions(output_limit) {
            ctx.register_udf(function);
        }
        // Only fails if the analyzer lacks its function-rewrite rule, which the default
        // features always include; without it, date casts keep their slower exact path.
        if let Err(err) = datafusion::execution::FunctionRegistry::register_function_rewrite(
            &mut ctx,
            Arc::new(crate::utc_time::UtcDateCast::default()),
        ) {
            tracing::warn!("UTC date-cast rewrite not registered: {err}");
        }
        ctx
    }

    /// Registers each metric under its display name and aliases; returns the alias rewrite of
    /// the same snapshot and the metrics by table name (for `strata_raw`).
    fn register_metrics(
        &self,
        ctx: &mut SessionContext,
        tenant: TenantId,
        schema: &TenantSchema,
        cold: &Option<ColdContext>,
        upto_seq: Option<u64>,
    ) -> Result<(AliasResolver, HashMap<String, Arc<MetricModel>>), QueryError> {
        let mut resolver = AliasResolver::new();
        let mut by_name: HashMap<String, Arc<MetricModel>> = HashMap::new();
        for metric in schema.tables() {
            let members: Vec<&strata_catalog::Metric> = schema
                .merged_into(metric.id)
                .map(|member| member.as_ref())
                .collect();
            let (mut model, members) = strata_format::merged::merged_models(metric, &members);
            let derived = Arc::new(resolve_derived(&mut model, ctx, tenant));
            let model = Arc::new(model);
            let members = members
                .into_iter()
                .map(|mut member| {
                    compile_member_conversions(&mut member, ctx, tenant);
                    Arc::new(member)
                })
                .collect();
            let aliases = Arc::new(model.alias_map());
            // The metric's own retention, when shorter, replaces the tenant's.
            let cold = cold.clone().map(|cold| ColdContext {
                retention_days: schema.retention_days_of(metric),
                ..cold
            });
            let table = Arc::new(
                MetricTable::new(tenant, model.clone(), self.hot.clone())
                    .with_cold(cold)
                    .with_upto_seq(upto_seq)
                    .with_usage(Some(self.usage.clone()))
                    .with_members(members)
                    .with_derived(derived),
            );
            let raw_columns = Arc::new(raw_column_names(&model));
            for name in &model.table_names {
                resolver.add_raw_columns(name, raw_columns.clone());
                if by_name.insert(name.clone(), model.clone()).is_some() {
                    tracing::warn!(metric = %name, "two live metrics share a name; the later wins");
                }
                resolver.add_table(name, aliases.clone());
                ctx.register_table(
                    TableReference::partial(METRIC_SCHEMA, name.as_str()),
                    table.clone(),
                )?;
            }
        }
        Ok((resolver, by_name))
    }

    /// Each rollup with a served version, under its name (a metric never shares it: the
    /// catalog refuses such names). Its columns have no aliases. Returns the rollups queries
    /// may be routed to.
    async fn register_rollups(
        &self,
        ctx: &SessionContext,
        resolver: &mut AliasResolver,
        tenant: TenantId,
    ) -> Result<Vec<RoutableRollup>, QueryError> {
        let Some(store) = &self.catalog.rollups else {
            return Ok(Vec::new());
        };
        let rows = store.rollups(tenant).await.map_err(|e| {
            tracing::error!(error = %e, "reading the tenant's rollups for a query session");
            QueryError::Internal("could not read the tenant's rollups".to_string())
        })?;
        for row in &rows {
            let Some(table) = RollupTable::served(row, store.clone(), self.rollup_refresh.clone())?
            else {
                continue;
            };
            let table_schema = table.schema();
            let aliases = TableAliases {
                columns: table_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect(),
                aliases: HashMap::new(),
            };
            resolver.add_table(&row.name, Arc::new(aliases));
            ctx.register_table(
                TableReference::partial(METRIC_SCHEMA, row.name.as_str()),
                Arc::new(table),
            )?;
        }
        Ok(rows.iter().filter_map(RoutableRollup::of).collect())
    }

    /// Schema `strata`: the error log and the unknown fields of this tenant.
    fn register_system_tables(
        &self,
        ctx: &SessionContext,
        tenant: TenantId,
        schema: &Arc<TenantSchema>,
    ) -> Result<(), QueryError> {
        let system = Arc::new(MemorySchemaProvider::new());
        system.register_table(
            "errors".to_string(),
            Arc::new(ErrorsTable::new(tenant, self.hot.clone())),
        )?;
        system.register_table(
            "unknown_fields".to_string(),
            Arc::new(UnknownFieldsTable::new(schema.clone())),
        )?;
        if let Some(store) = &self.catalog.alerts {
            for (name, kind) in [
                ("alerts", AlertTableKind::Alerts),
                ("alert_history", AlertTableKind::History),
                ("notifications", AlertTableKind::Notifications),
            ] {
                system.register_table(
                    name.to_string(),
                    Arc::new(AlertTable::new(kind, tenant, store.clone())),
                )?;
            }
        }
        if let Some(store) = &self.catalog.rollups {
            system.register_table(
                "rollups".to_string(),
                Arc::new(RollupsSystemTable::new(tenant, store.clone())),
            )?;
        }
        if let Some(listing) = self.source_listing.get() {
            system.register_table(
                "sources".to_string(),
                Arc::new(SourcesTable::new(tenant, listing.clone())),
            )?;
        }
        let catalog = ctx
            .catalog(CATALOG_NAME)
            .ok_or_else(|| QueryError::Internal("session catalog was not created".to_string()))?;
        catalog.register_schema(SYSTEM_SCHEMA, system)?;
        Ok(())
    }
}

/// The largest output one call of a size-amplifying function may produce (`bounded.rs`): the
/// session's memory limit, and never more than 1 GiB, below the 2 GiB where Arrow's 32-bit string
/// offsets overflow (a panic, issue 24 defect 11).
fn output_limit_bytes(memory_limit_bytes: usize) -> usize {
    memory_limit_bytes.min(1024 * 1024 * 1024)
}

/// The columns `strata_raw` shows for `model`: `timestamp`, then its incoming names.
fn raw_column_names(model: &MetricModel) -> Vec<String> {
    let mut names = vec![strata_core::RESERVED_FIELD_NAME.to_string()];
    names.extend(
        model
            .incoming
            .iter()
            .filter(|source| source.name != strata_core::RESERVED_FIELD_NAME)
            .map(|source| source.name.clone()),
    );
    names
}

/// A merged member's conversions (its columns are the target's, derived ones unread).
fn compile_member_conversions(member: &mut MetricModel, ctx: &SessionContext, tenant: TenantId) {
    if !member.columns.iter().any(|c| c.has_conversions()) {
        return;
    }
    for failure in crate::derived::compile_conversions(member, &ctx.state()) {
        tracing::warn!(%tenant, metric = %member.name, "{failure}; it reads NULL");
    }
}

/// The model's derived columns; one that does not resolve reads NULL and is logged (declaration
/// refuses such definitions, so this is a schema that changed under one).
fn resolve_derived(
    model: &mut MetricModel,
    ctx: &SessionContext,
    tenant: TenantId,
) -> crate::derived::DerivedColumns {
    if !model
        .columns
        .iter()
        .any(|c| c.is_derived() || c.has_conversions())
    {
        // Most metrics: no session state to copy.
        return crate::derived::DerivedColumns::default();
    }
    let state = ctx.state();
    let mut failures = crate::derived::compile_conversions(model, &state);
    let derived = if model.columns.iter().any(|c| c.is_derived()) {
        let (derived, derived_failures) = crate::derived::resolve(model, &state);
        failures.extend(derived_failures);
        derived
    } else {
        crate::derived::DerivedColumns::default()
    };
    for failure in failures {
        tracing::warn!(%tenant, metric = %model.name, "{failure}; it reads NULL");
    }
    derived
}
