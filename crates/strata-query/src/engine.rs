//! Per-tenant DataFusion sessions and statement execution.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::{Stream, StreamExt, TryStreamExt};
use strata_catalog::DynCatalog;
use strata_core::TenantId;
use strata_storage::HotStore;
use tokio::time::{Instant, Sleep};

use crate::cold::{ColdAccess, ColdContext, TierPreference};
use crate::error::{DeadlineExceeded, QueryError};
use crate::model::MetricModel;
use crate::rewrite::{AliasResolver, CATALOG_NAME, METRIC_SCHEMA};
use crate::sandbox;
use crate::system::{ErrorsTable, UnknownFieldsTable};
use crate::table::{MetricTable, RawFunction};

/// Schema holding the system tables.
pub const SYSTEM_SCHEMA: &str = "strata";
/// Longest SQL text accepted.
pub const MAX_SQL_BYTES: usize = 1024 * 1024;

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
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            memory_limit_bytes: 512 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            batch_size: 8192,
            tier_preference: TierPreference::Cost,
        }
    }
}

/// Builds per-tenant sessions. Cheap to clone.
#[derive(Clone)]
pub struct QueryEngine {
    catalog: DynCatalog,
    hot: Arc<HotStore>,
    cold: Option<ColdAccess>,
    config: QueryConfig,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine")
            .field("config", &self.config)
            .finish()
    }
}

impl QueryEngine {
    pub fn new(catalog: DynCatalog, hot: Arc<HotStore>, config: QueryConfig) -> Self {
        QueryEngine {
            catalog,
            hot,
            cold: None,
            config,
        }
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
    /// `information_schema`, and the `strata_raw` table function. Built from the catalog's
    /// current schema, so every schema change is visible to the next session.
    pub async fn session(&self, tenant: TenantId) -> Result<TenantSession, QueryError> {
        let schema = self.catalog.schema(tenant).await.map_err(|e| {
            tracing::error!(error = %e, "reading the tenant schema for a query session");
            QueryError::Internal("could not read the tenant's schema".to_string())
        })?;
        let limit = self.config.memory_limit_bytes.max(1);
        let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
            GreedyMemoryPool::new(limit),
            NonZeroUsize::MIN.saturating_add(2),
        ));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(pool)
            // No temp files: a query that does not fit in memory fails instead of spilling.
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()?;
        let cold = self.cold.as_ref().map(|access| {
            runtime.register_object_store(access.url.as_ref(), access.store.clone());
            ColdContext {
                catalog: self.catalog.clone(),
                access: access.clone(),
                preference: self.config.tier_preference,
                retention_days: schema.cold_retention_days,
            }
        });
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG_NAME, METRIC_SCHEMA)
            .with_create_default_catalog_and_schema(true)
            .with_information_schema(true)
            .with_batch_size(self.config.batch_size.max(1));
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        let mut ctx = SessionContext::new_with_state(state);
        for function in crate::utc_time::utc_fast_path_functions() {
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

        let mut resolver = AliasResolver::new();
        let mut by_name: HashMap<String, Arc<MetricModel>> = HashMap::new();
        for metric in &schema.metrics {
            let model = Arc::new(MetricModel::from_catalog(metric));
            let aliases = Arc::new(model.alias_map());
            let table = Arc::new(
                MetricTable::new(tenant, model.clone(), self.hot.clone()).with_cold(cold.clone()),
            );
            for name in &model.table_names {
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
        let system = Arc::new(MemorySchemaProvider::new());
        system.register_table(
            "errors".to_string(),
            Arc::new(ErrorsTable::new(tenant, self.hot.clone())),
        )?;
        system.register_table(
            "unknown_fields".to_string(),
            Arc::new(UnknownFieldsTable::new(schema.clone())),
        )?;
        let catalog = ctx
            .catalog(CATALOG_NAME)
            .ok_or_else(|| QueryError::Internal("session catalog was not created".to_string()))?;
        catalog.register_schema(SYSTEM_SCHEMA, system)?;
        ctx.register_udtf(
            "strata_raw",
            Arc::new(RawFunction::new(
                tenant,
                by_name,
                self.hot.clone(),
                cold.clone(),
            )),
        );
        Ok(TenantSession {
            ctx,
            resolver,
            timeout: self.config.timeout,
        })
    }
}

/// One tenant's SQL session.
pub struct TenantSession {
    ctx: SessionContext,
    resolver: AliasResolver,
    timeout: Duration,
}

/// A running query: its schema and the stream of its batches. Stream errors convert to
/// [`QueryError`] with `QueryError::from`.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub stream: SendableRecordBatchStream,
}

impl QueryResult {
    /// Reads the whole result.
    pub async fn collect(self) -> Result<Vec<RecordBatch>, QueryError> {
        Ok(self.stream.try_collect().await?)
    }
}

impl TenantSession {
    /// Parses one statement, refuses anything but a query (DDL, DML, COPY, SET, ...), rewrites
    /// field aliases, plans and starts executing. The timeout covers planning and the stream.
    pub async fn execute(&self, sql: &str) -> Result<QueryResult, QueryError> {
        if sql.len() > MAX_SQL_BYTES {
            return Err(QueryError::Sql(format!(
                "statement is {} bytes; the limit is {MAX_SQL_BYTES}",
                sql.len()
            )));
        }
        let deadline = Instant::now() + self.timeout;
        let planned = tokio::time::timeout_at(deadline, self.plan_and_start(sql)).await;
        let stream = match planned {
            Ok(result) => result?,
            Err(_) => return Err(QueryError::Timeout(self.timeout)),
        };
        let schema = stream.schema();
        Ok(QueryResult {
            schema: schema.clone(),
            stream: Box::pin(DeadlineStream {
                inner: stream,
                sleep: Box::pin(tokio::time::sleep_until(deadline)),
                timeout: self.timeout,
                schema,
                expired: false,
            }),
        })
    }

    async fn plan_and_start(&self, sql: &str) -> Result<SendableRecordBatchStream, QueryError> {
        let mut statements =
            DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(QueryError::from)?;
        if statements.len() != 1 {
            return Err(QueryError::Sql(format!(
                "expected exactly one statement, got {}",
                statements.len()
            )));
        }
        let Some(mut statement) = statements.pop_front() else {
            return Err(QueryError::Sql("empty statement".to_string()));
        };
        sandbox::check(&statement)?;
        self.rewrite(&mut statement);
        let state = self.ctx.state();
        let plan = state.statement_to_plan(statement).await?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|e| {
                QueryError::Refused(format!(
                    "statement not allowed: {} (Strata SQL is read-only)",
                    crate::error::clean_message(&e.strip_backtrace())
                ))
            })?;
        let frame = self.ctx.execute_logical_plan(plan).await?;
        Ok(frame.execute_stream().await?)
    }

    fn rewrite(&self, statement: &mut DfStatement) {
        match statement {
            DfStatement::Statement(inner) => self.resolver.rewrite(inner.as_mut()),
            DfStatement::Explain(explain) => self.rewrite(explain.statement.as_mut()),
            _ => {}
        }
    }

    /// The underlying DataFusion session (for the Postgres wire layer). Statements run through it
    /// directly bypass the read-only check and alias rewrite of [`TenantSession::execute`].
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
}

/// Ends a result stream with a timeout error once the query deadline passes.
struct DeadlineStream {
    inner: SendableRecordBatchStream,
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
    schema: SchemaRef,
    expired: bool,
}

impl Stream for DeadlineStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            let timeout = self.timeout;
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(
                DeadlineExceeded(timeout),
            )))));
        }
        self.inner.poll_next_unpin(cx)
    }
}

impl RecordBatchStream for DeadlineStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
