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
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use std::panic::AssertUnwindSafe;
use strata_catalog::DynCatalog;
use strata_cold::ColdAccess;
use strata_core::TenantId;
use strata_format::model::MetricModel;
use strata_storage::HotStore;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use crate::error::{DeadlineExceeded, QueryError};
use crate::federated::{ColdContext, TierPreference};
use crate::limits;
use crate::rewrite::{AliasResolver, CATALOG_NAME, METRIC_SCHEMA};
use crate::runtime::QueryRuntime;
use crate::sandbox;
use crate::system::{ErrorsTable, UnknownFieldsTable};
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

/// Builds per-tenant sessions. Cheap to clone.
#[derive(Clone)]
pub struct QueryEngine {
    catalog: DynCatalog,
    hot: Arc<HotStore>,
    cold: Option<ColdAccess>,
    config: QueryConfig,
    /// `None` only when the query threads could not be started; queries then run on the
    /// caller's runtime (logged at startup).
    runtime: Option<QueryRuntime>,
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
        let runtime = QueryRuntime::start(config.threads)
            .inspect_err(|error| {
                tracing::error!(%error, "queries will share the request threads");
            })
            .ok();
        QueryEngine {
            catalog,
            hot,
            cold: None,
            config,
            runtime,
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
            .with_physical_optimizer_rule(Arc::new(crate::yielding::YieldingJoins))
            .build();
        let mut ctx = SessionContext::new_with_state(state);
        for function in crate::utc_time::utc_fast_path_functions() {
            ctx.register_udf(function);
        }
        for function in crate::bounded::output_bounded_functions(output_limit_bytes(limit)) {
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
            planner: Planner {
                ctx,
                resolver: Arc::new(resolver),
            },
            timeout: self.config.timeout,
            runtime: self.runtime.clone(),
        })
    }
}

/// The largest output one call of a size-amplifying function may produce (`bounded.rs`): the
/// session's memory limit, and never more than 1 GiB, below the 2 GiB where Arrow's 32-bit string
/// offsets overflow (a panic, issue 24 defect 11).
fn output_limit_bytes(memory_limit_bytes: usize) -> usize {
    memory_limit_bytes.min(1024 * 1024 * 1024)
}

/// Batches buffered between the query task and the reader: enough to overlap encoding with
/// execution, few enough that a slow reader holds little memory.
const BATCHES_IN_FLIGHT: usize = 2;

/// One tenant's SQL session.
pub struct TenantSession {
    planner: Planner,
    timeout: Duration,
    runtime: Option<QueryRuntime>,
}

/// What a session needs to plan a statement, cheap to clone into the query task.
#[derive(Clone)]
struct Planner {
    ctx: SessionContext,
    resolver: Arc<AliasResolver>,
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

/// What the query task tells the reader, in order: the schema (or a failure), then batches.
enum Event {
    Schema(SchemaRef),
    Batch(datafusion::error::Result<RecordBatch>),
    Failed(QueryError),
}

impl TenantSession {
    /// Parses one statement, refuses anything but a query (DDL, DML, COPY, SET, ...), rewrites
    /// field aliases, plans and starts executing on the query runtime. The timeout covers planning
    /// and the stream; dropping the result (or the timeout) aborts the query task.
    pub async fn execute(&self, sql: &str) -> Result<QueryResult, QueryError> {
        limits::check_text(sql)?;
        let deadline = Instant::now() + self.timeout;
        let (events, mut received) = mpsc::channel(BATCHES_IN_FLIGHT);
        let task = self.spawn(self.planner.clone().produce(sql.to_owned(), events));
        let schema = match tokio::time::timeout_at(deadline, received.recv()).await {
            Err(_) => return Err(QueryError::Timeout(self.timeout)),
            Ok(Some(Event::Schema(schema))) => schema,
            Ok(Some(Event::Failed(error))) => return Err(error),
            Ok(Some(Event::Batch(_))) | Ok(None) => {
                return Err(QueryError::Internal(
                    "the query ended without a result schema".to_string(),
                ))
            }
        };
        let received = Box::pin(ReceivedStream {
            received,
            _task: task,
            schema: schema.clone(),
        });
        Ok(QueryResult {
            schema: schema.clone(),
            stream: Box::pin(DeadlineStream {
                inner: received,
                sleep: Box::pin(tokio::time::sleep_until(deadline)),
                timeout: self.timeout,
                schema,
                expired: false,
            }),
        })
    }

    fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) -> AbortOnDrop {
        AbortOnDrop(match &self.runtime {
            Some(runtime) => runtime.spawn(work),
            None => tokio::spawn(work),
        })
    }

    /// The underlying DataFusion session (for the Postgres wire layer). Statements run through it
    /// directly bypass the read-only check and alias rewrite of [`TenantSession::execute`], and
    /// run on the caller's threads.
    pub fn context(&self) -> &SessionContext {
        &self.planner.ctx
    }
}

impl Planner {
    /// The query task: plans, then forwards batches until the reader goes away. A panic anywhere
    /// in planning or execution (DataFusion re-raises its workers' panics here) becomes an
    /// internal error for the reader instead of a dropped connection.
    async fn produce(self, sql: String, events: mpsc::Sender<Event>) {
        let outcome = AssertUnwindSafe(self.forward(&sql, &events))
            .catch_unwind()
            .await;
        let failure = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(panic) => {
                // The message can name internals (paths, offsets): the log gets it, the client
                // a generic internal error.
                let message = strata_core::panic_text(panic.as_ref());
                tracing::error!(panic = %message, "a query panicked");
                QueryError::Internal("the query failed unexpectedly".to_string())
            }
        };
        let _ = events.send(Event::Failed(failure)).await;
    }

    async fn forward(&self, sql: &str, events: &mpsc::Sender<Event>) -> Result<(), QueryError> {
        let mut stream = self.plan_and_start(sql).await?;
        if events.send(Event::Schema(stream.schema())).await.is_err() {
            return Ok(());
        }
        while let Some(batch) = stream.next().await {
            let failed = batch.is_err();
            if events.send(Event::Batch(batch)).await.is_err() || failed {
                break;
            }
        }
        Ok(())
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
        limits::check_result_width(plan.schema().fields().len())?;
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
}

/// Aborts the query task when the reader drops the result: its DataFusion stream (and every task
/// that stream spawned) is dropped at the task's next await point.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The reader's side of the query task's channel.
struct ReceivedStream {
    received: mpsc::Receiver<Event>,
    _task: AbortOnDrop,
    schema: SchemaRef,
}

impl Stream for ReceivedStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.received.poll_recv(cx).map(|event| match event? {
            Event::Batch(batch) => Some(batch),
            Event::Failed(error) => Some(Err(DataFusionError::External(Box::new(error)))),
            Event::Schema(_) => Some(Err(DataFusionError::Internal(
                "a second result schema".to_string(),
            ))),
        })
    }
}

impl RecordBatchStream for ReceivedStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
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
